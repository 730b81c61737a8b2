"""The report sections that say how far to trust the comparison: paired statistics, results by
difficulty, the acceleration check and runtime conformance (markdown and CSV rows from report.json)."""
from edge_runtime.model_contract import NUM_CLASSES

from .markdown import table
from .paired import significant


def _p(value):
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _opt(value, fmt=".4f"):
    return "—" if value is None else format(value, fmt)


def paired_section(report):
    """Per model against the baseline: ΔF1 with its bootstrap interval, McNemar, digits added/dropped."""
    models = report["models"]
    out = []
    for m in models[1:]:
        p = m["paired"]
        boot, tests = p["bootstrap"], p["mcnemar"]
        conf = f"{boot['confidence']:.0%}"
        rows = []
        for d, flips in enumerate(p["flips"]):
            t = tests["per_digit"][d]
            rows.append([str(d), f"{boot['per_digit']['delta'][d]:+.4f}",
                         f"[{boot['per_digit']['low'][d]:+.4f}, {boot['per_digit']['high'][d]:+.4f}]",
                         f"{t['b']} / {t['c']}", _p(t["p"]), t["test"],
                         f"{flips['added']} ({flips['added_right']} right)",
                         f"{flips['dropped']} ({flips['dropped_right']} right)"])
        macro, exact = boot["macro"], tests["exact_set"]
        out += [f"### {m['name']} against {models[0]['name']}", "",
                table(["digit", "ΔF1", f"{conf} CI", "McNemar b / c", "p", "test", "added", "dropped"],
                       rows, "lrrrrlrr"), "",
                f"- macro-F1: Δ {macro['delta']:+.4f}, {conf} CI [{macro['low']:+.4f}, {macro['high']:+.4f}]: "
                f"{_verdict(macro)}.",
                f"- exact digit set: {exact['b']} image(s) only {models[0]['name']} gets right, {exact['c']} only "
                f"{m['name']}; McNemar p = {_p(exact['p'])} ({exact['test']}).",
                f"- Digits with an interval below zero (really worse): "
                f"{_digits_where(boot['per_digit'], 'worse')}; above zero (really better): "
                f"{_digits_where(boot['per_digit'], 'better')}.", ""]
        shown = [f"digit {f['digit']}: added on {_images(f['added_images'], f['added'])}, dropped on "
                 f"{_images(f['dropped_images'], f['dropped'])}" for f in p["flips"] if f["added"] or f["dropped"]]
        out += (["Images where the digit flips (indices into the data set):", ""] + [f"- {s}" for s in shown] + [""]
                if shown else [])
    note = (f"b: images only the baseline gets right for that digit, c: only this model. Bootstrap: "
            f"{models[1]['paired']['bootstrap']['resamples']} resamples of the images, seed "
            f"{models[1]['paired']['bootstrap']['seed']}, paired between the models.") if len(models) > 1 else None
    return (["## Is the difference real? (paired statistics)", ""] + out + ([note, ""] if note else [])) if out else []


def _verdict(ci):
    return {"worse": "**worse** (the whole interval is below zero)",
            "better": "better (the whole interval is above zero)",
            "no evidence": "no evidence of a difference (the interval contains zero)"}[significant(ci)]


def _digits_where(per_digit, verdict):
    found = [str(d) for d, (lo, hi) in enumerate(zip(per_digit["low"], per_digit["high"]))
             if significant({"low": lo, "high": hi}) == verdict]
    return ", ".join(found) or "none"


def _images(listed, count, show=8):
    if not count:
        return "none"
    text = ", ".join(f"#{i}" for i in listed[:show])
    return text + (f" … ({count} in all)" if count > show else "")


def difficulty_section(report):
    """F1 (digits pooled) and exact-set accuracy per stratum for every model, and confused pairs."""
    diff, models = report.get("difficulty"), report["models"]
    if diff is None:
        return []
    out = ["## Results by difficulty", ""]
    if not diff["available"]:
        out += [f"The data set has no per-image difficulty arrays ({', '.join(diff['arrays'])}); "
                "compose it with `mnist-edge data` to get these tables.", ""]
    titles = {"digits": ("By number of digits in the image", "digits"),
              "overlap": ("By overlap (largest share of a digit's ink box covered by another's)", "overlap")}
    for key in diff["available"]:
        title, column = titles[key]
        header = [column, "images"]
        for m in models:
            header += [f"{m['name']} F1", "exact set"]
        strata = [m["by_difficulty"][key] for m in models]
        rows = [[s["stratum"], str(s["images"])]
                + [v for per_model in strata for v in (_opt(per_model[k]["f1"]),
                                                       _opt(per_model[k]["exact_set_accuracy"]))]
                for k, s in enumerate(strata[0])]
        out += [f"### {title}", "", table(header, rows, "lr" + "r" * (2 * len(models))), ""]
    out += ["### Most confused digit pairs", "",
            "Images where the model misses one digit and reports another in its place.", ""]
    for m in models:
        pairs = m["by_difficulty"]["confused_pairs"]
        text = ", ".join(f"{p['missed']}→{p['added']} ({p['images']})" for p in pairs) or "none"
        out.append(f"- {m['name']}: {text}")
    return out + ["", "F1 pools every digit of the images in the row; — where they hold no digit and none is "
                      "predicted. Exact set: share of images whose whole digit set is right.", ""]


def acceleration_section(report):
    acc = report.get("acceleration")
    if acc is None:
        return []
    rows = [[m["name"], m["format"], f"{m['p50_us_xnnpack']:.1f}", f"{m['p50_us_no_delegate']:.1f}",
             f"{m['xnnpack_speedup']:.2f}x", _opt(m["xnnpack_partitions"], "d"), m["status"], m["reason"] or ""]
            for m in acc["models"]]
    cpu = acc["cpu"]
    features = ("not readable here" if cpu["features"] is None else
                ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["features"].items()))
    timing = report["machine"].get("cpu_frequency_during_timing")
    return ["## Acceleration check", "",
            f"{acc['runtime']['name']} {acc['runtime']['version']}, {acc['threads']} thread(s), "
            f"{acc['runs']} one-image runs per model and setting, interleaved.", "",
            table(["model", "format", "p50 µs XNNPACK", "p50 µs no delegate", "speed-up", "XNNPACK partitions",
                    "status", "why"], rows, "llrrrrll"), "",
            f"- CPU: {cpu['architecture']}, {cpu['userland_bits']}-bit userland; {features}",
            f"- CPU frequency during the benchmark's timed runs: {_frequency(timing)}",
            f"- CPU frequency during this check: {_frequency(acc['frequency'])}", ""]


def _frequency(record):
    if not record or None in (record["before"], record["after"]):
        return "not exposed by this system"
    text = (f"{record['before']['mhz']:.0f} MHz before, {record['after']['mhz']:.0f} MHz after "
            f"({record['before']['source']})")
    return text + (f". **{record['note']}**" if record["note"] else "")


def conformance_section(report):
    conf = report.get("conformance")
    if conf is None:
        return []
    out = ["## Runtime conformance", ""]
    out += [f"- {r['name']} {r['version'] or ''} ({r['python']})" + (f": {r['note']}" if r["note"] else "")
            for r in conf["runtimes"]]
    out.append("")
    if conf["reference"] is None:
        return out + [conf.get("note", ""), ""]
    rows = [[m["name"], c["runtime"], f"{c['max_abs_diff']:.4g}", _opt(c["max_steps"], "d"),
             str(c["images_with_different_scores"]), str(c["digit_set_disagreements"]),
             ", ".join(f"#{i}" for i in c["disagreeing_images"][:8])]
            for m in conf["models"] for c in m["comparisons"]]
    return out + [f"Scores compared with {conf['reference']}, image by image (steps: the quantized output's scale).",
                  "", table(["model", "runtime", "max abs Δ score", "max steps", "images with other scores",
                              "digit-set disagreements", "first images"], rows, "llrrrrl"), ""]


def csv_columns(model):
    """Extra report.csv columns for one model: ΔF1 interval and McNemar p per digit and macro."""
    p = model.get("paired")
    cols = {}
    boot = p["bootstrap"] if p else None
    cols["delta_macro_f1_ci_low"] = boot["macro"]["low"] if p else None
    cols["delta_macro_f1_ci_high"] = boot["macro"]["high"] if p else None
    cols["mcnemar_p_exact_set"] = p["mcnemar"]["exact_set"]["p"] if p else None
    for d in range(NUM_CLASSES):
        cols[f"delta_f1_ci_low_{d}"] = boot["per_digit"]["low"][d] if p else None
        cols[f"delta_f1_ci_high_{d}"] = boot["per_digit"]["high"][d] if p else None
        cols[f"mcnemar_p_{d}"] = p["mcnemar"]["per_digit"][d]["p"] if p else None
    return cols


def strata_rows(report):
    """strata.csv rows: model, grouping (digits/overlap), stratum, images, F1, exact-set accuracy."""
    rows = [["model", "grouping", "stratum", "images", "f1", "exact_set_accuracy"]]
    available = (report.get("difficulty") or {}).get("available", [])
    for m in report["models"]:
        for key in available:
            rows += [[m["name"], key, s["stratum"], s["images"], "" if s["f1"] is None else round(s["f1"], 6),
                      "" if s["exact_set_accuracy"] is None else round(s["exact_set_accuracy"], 6)]
                     for s in m["by_difficulty"][key]]
    return rows
