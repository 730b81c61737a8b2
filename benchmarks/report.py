"""The bench report: report.md, report.json, report.csv and the PNG plots, from one run's report dict."""
import csv
import io
import json
from pathlib import Path

import numpy as np

from edge_runtime.files import write_text_atomic
from edge_runtime.model_contract import NUM_CLASSES

from .markdown import table
from .report_trust import (acceleration_section, conformance_section, csv_columns, difficulty_section,
                           paired_section, strata_rows)


def write_reports(bench, out_dir):
    """Write PNGs (when matplotlib is there), report.csv, report.json, report.md; returns written paths."""
    from . import plots  # matplotlib itself is imported lazily inside

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs, note = plots.write_plots(bench, out_dir)
    bench.report["plots"] = {"files": [p.name for p in pngs], "note": note}
    names = ["report.csv", "report.json", "report.md"]
    write_text_atomic(out_dir / "report.csv", report_csv(bench.report))
    write_text_atomic(out_dir / "report.json", json.dumps(bench.report, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out_dir / "report.md", report_markdown(bench.report))
    strata = strata_rows(bench.report)
    if len(strata) > 1:
        write_text_atomic(out_dir / "strata.csv", _csv_text(strata))
        names.append("strata.csv")
    return pngs + [out_dir / n for n in names]


def _csv_text(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def report_csv(report):
    """One row per model and thread setting; the paired columns (ΔF1 interval, McNemar p) are empty
    for the baseline."""
    batches = report["settings"]["batches"]
    paired_header = list(csv_columns(report["models"][0]))
    header = (["model", "path", "format", "size_bytes", "runtime", "runtime_version", "threads", "xnnpack",
               "load_ms", "first_inference_ms"]
              + [f"latency_{k}_us" for k in ("mean", "std", "min", "p50", "p90", "p99")]
              + [f"ips_batch{b}" for b in batches]
              + ["peak_rss_mb", "model_rss_mb", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss",
                 "delta_macro_f1"]
              + [f"f1_{d}" for d in range(NUM_CLASSES)] + [f"delta_f1_{d}" for d in range(NUM_CLASSES)]
              + paired_header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for m in report["models"]:
        for t, lat in m["latency_by_threads"].items():
            ips = m["throughput_by_threads"][t]
            writer.writerow(
                [m["name"], m["path"], m["format"], m["size_bytes"], m["runtime"]["name"],
                 m["runtime"]["version"], t, m["xnnpack"], _f(m["load_ms"], 3), _f(m["first_inference_ms"], 3)]
                + [lat[k] for k in ("mean", "std", "min", "p50", "p90", "p99")]
                + [ips[str(b)] for b in batches]
                + [m["peak_rss_mb"], m["model_rss_mb"], _f(m["macro_f1"]), _f(m["micro_f1"]),
                   _f(m["subset_accuracy"]), _f(m["hamming_loss"]), _f(m["delta_macro_f1"])]
                + [_f(v) for v in m["per_digit"]["f1"]]
                + [_f(v) for v in (m["delta_f1"] or [None] * NUM_CLASSES)]
                + [_f(v) for v in csv_columns(m).values()])
    return out.getvalue()


def _f(value, digits=6):
    return "" if value is None else round(value, digits)


def _size(n):
    return f"{n / 1024:.1f} KB" if n < 2**20 else f"{n / 2**20:.2f} MB"


def _signed(v, fmt="+.4f"):
    return "—" if v is None else format(v, fmt)


def summary_table(report):
    """One row per model: what you gain (speed, size) and what you lose (F1)."""
    threads = report["settings"]["threads"]
    big = max(report["settings"]["batches"])
    per_t = len(threads) > 1
    header = ["model", "format", "size", "macro-F1", "ΔF1 (macro)", "worst digit ΔF1"]
    for t in threads:
        suffix = f" ({t} thr)" if per_t else ""
        header += [f"p50 ms{suffix}", f"img/s @{big}{suffix}"]
    header += ["load ms", "peak RSS MB"]
    rows = []
    for m in report["models"]:
        worst = None
        if m["delta_f1"] is not None:
            d = int(np.argmin(m["delta_f1"]))
            worst = f"{m['delta_f1'][d]:+.4f} (digit {d})"
        ci = m.get("paired") and m["paired"]["bootstrap"]["macro"]
        delta = _signed(m["delta_macro_f1"]) + (f" [{ci['low']:+.4f}, {ci['high']:+.4f}]" if ci else "")
        row = [m["name"], m["format"], _size(m["size_bytes"]), f"{m['macro_f1']:.4f}", delta, worst or "—"]
        for t in threads:
            ips = m["throughput_by_threads"][str(t)][str(big)]
            row += [f"{m['latency_by_threads'][str(t)]['p50'] / 1000:.3f}", "—" if ips is None else f"{ips:,.0f}"]
        row += [f"{m['load_ms']:.1f}", "—" if m["peak_rss_mb"] is None else f"{m['peak_rss_mb']:.1f}"]
        rows.append(row)
    return table(header, rows, "llrrrr" + "rr" * len(threads) + "rr")


def report_markdown(report):
    """The human-readable report: summary, per-digit F1 (first model vs each other), details, machine."""
    out = _summary_section(report) + _gate_section(report)
    for section in (_per_digit_section, paired_section, difficulty_section, _quality_section, _latency_section,
                    _memory_section, acceleration_section, conformance_section, _closing_sections):
        out += section(report)
    return "\n".join(out) + "\n"


def _summary_section(report):
    s, models, mach = report["settings"], report["models"], report["machine"]
    return ["# mnist-edge benchmark", "",
            f"{len(models)} model(s) on `{report['data']['path']}` ({report['data']['num_images']} images, "
            f"{'x'.join(map(str, report['data']['image_shape']))}), {mach['interpreter']} "
            f"{mach['interpreter_version']}, XNNPACK {'on' if s['xnnpack'] else 'off'}, "
            f"threads {', '.join(map(str, s['threads']))}; {s['runs']} timed runs after {s['warmup']} "
            f"warm-up, in {s['rounds']} interleaved rounds. Created {report['created']}.", "",
            "## Summary", "", summary_table(report), "",
            f"ΔF1 is against the first model, `{models[0]['name']}`; negative means worse; in brackets its "
            "paired bootstrap interval (see below). Each model uses its own thresholds.", ""]


def _gate_section(report):
    if "gate" not in report:
        return []
    g = report["gate"]
    rules = [f"--{k.replace('_', '-')} {g[k]}" for k in ("max_f1_drop", "min_macro_f1") if g[k] is not None]
    out = ["## Release gate", "", f"{', '.join(rules)}: " + ("**passed**" if g["passed"] else "**FAILED**"), "",
           f"Judged on {g['judged_on']}.", ""]
    return out + [f"- {f}" for f in g["failures"]] + ([""] if g["failures"] else [])


def _per_digit_section(report):
    base, others = report["models"][0], report["models"][1:]
    header = ["digit", f"{base['name']} F1"]
    for m in others:
        header += [f"{m['name']} F1", "Δ"]
    rows = []
    for d in range(NUM_CLASSES):
        row = [str(d), f"{base['per_digit']['f1'][d]:.4f}"]
        for m in others:
            row += [f"{m['per_digit']['f1'][d]:.4f}", f"{m['delta_f1'][d]:+.4f}"]
        rows.append(row)
    return ["## Per-digit F1", "", table(header, rows, "l" + "r" * (len(header) - 1)), ""]


def _quality_section(report):
    rows = [[m["name"], f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", f"{m['subset_accuracy']:.4f}",
             f"{m['hamming_loss']:.4f}", " ".join(f"{t:.3g}" for t in m["thresholds"])] for m in report["models"]]
    out = ["## Quality", "", table(["model", "macro-F1", "micro-F1", "subset accuracy", "Hamming loss",
                                     "thresholds 0..9"], rows, "lrrrrl"), ""]
    if all("top2_pair_accuracy" in m for m in report["models"]):  # every image holds two digits: MultiMNIST
        out += ["Two digits per image (MultiMNIST): share of images whose two top-scoring digits are exactly "
                "the true pair (Sabour et al. 2017: CapsNet 94.8%, their CNN baseline 91.9%): "
                + ", ".join(f"`{m['name']}` {m['top2_pair_accuracy']:.2%}" for m in report["models"]), ""]
    return out


def _latency_section(report):
    batches = report["settings"]["batches"]
    rows = []
    for m in report["models"]:
        for t, lat in m["latency_by_threads"].items():
            ips = m["throughput_by_threads"][t]
            rows.append([m["name"], t] + [f"{lat[k]:.1f}" for k in ("mean", "std", "min", "p50", "p90", "p99")]
                        + ["—" if ips[str(b)] is None else f"{ips[str(b)]:,.0f}" for b in batches])
    return ["## Latency (µs per image) and throughput (images/s)", "",
            table(["model", "threads", "mean", "std", "min", "p50", "p90", "p99"]
                   + [f"img/s @{b}" for b in batches], rows, "lr" + "r" * (6 + len(batches))), ""]


def _memory_section(report):
    rows = [[m["name"], f"{m['load_ms']:.2f}", f"{m['first_inference_ms']:.2f}",
             *("—" if m[k] is None else f"{m[k]:.1f}" for k in ("peak_rss_mb", "model_rss_mb"))]
            for m in report["models"]]
    return ["## Start-up and memory", "",
            table(["model", "load ms", "first inference ms", "peak RSS MB (process)", "RSS added by model MB"],
                   rows, "lrrrr"), ""]


def _closing_sections(report):
    """Plots, machine, methods."""
    plots = report.get("plots", {})
    out = ["## Plots", ""]
    out += [f"![{Path(f).stem}]({f})" for f in plots.get("files", [])]
    out += [plots["note"]] if plots.get("note") else []
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in report["machine"].items() if not isinstance(v, dict)]  # dicts: own sections
    out += ["", "## How it was measured", ""]
    out += [f"- {k}: {v}" for k, v in report["methods"].items()]
    return out
