"""Measure .tflite models side by side on the device: speed, memory, size and per-digit quality.

Timing is fair between models: every model is warmed up first, then the timed runs are split into
rounds and each round visits every model and thread setting in a rotated order, so slow drift of
the machine (heat, frequency scaling, other load) spreads over all of them instead of favouring the
one measured first. Quality comes from ``edge_runtime.metrics.evaluate``, the code training uses,
on each model's own thresholds (embedded metadata; 0.5 without).
"""
import csv
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime import Classifier, __version__
from edge_runtime.data import NUM_CLASSES, load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.files import write_text_atomic
from edge_runtime.interpreter import import_runtime
from edge_runtime.metrics import evaluate

from .machine import describe_machine

# Measurement defaults (the CLI shows and uses these).
DEFAULTS = dict(
    runs=200,            # timed one-image inferences per model and thread setting
    warmup=20,           # untimed one-image inferences per model and thread setting before timing
    threads=(os.cpu_count() or 1,),  # interpreter threads; os.cpu_count() is Classifier's own default
    batches=(1, 8, 64),  # batch sizes (images per invoke) for throughput
    rounds=5,            # the timed runs are split into this many interleaved rounds
    runtime="auto",      # interpreter package, as Classifier's runtime argument
    use_xnnpack=True,    # TFLite's default CPU delegate
)
LOAD_REPEATS = 5         # fresh loads per model; load and first-inference times are their medians
GATE_EXIT_CODE = 3       # exit status when the release gate fails (1: bad input, 2: bad arguments)
METHODS = {
    "latency": "one Classifier.scores call on one uint8 test image (input conversion, invoke, output "
               "dequantization), time.perf_counter_ns; after warm-up; runs split into rounds, each "
               "visiting every model and thread setting in a rotated order; std is the sample std",
    "throughput": "images per second of Classifier.scores on batches of that size (one invoke per batch, "
                  "input tensor resized once per size, untimed); batch 1 reuses the latency runs",
    "load": f"median of {LOAD_REPEATS} fresh Classifier constructions (file already in the OS cache); "
            "first inference = the first one-image call after each of those loads",
    "memory": "a fresh child process imports the runtime, loads only this model and scores one batch of "
              "the largest size; peak_rss_mb is its peak resident set size (VmHWM, else ru_maxrss: Python, numpy, "
              "interpreter and model), model_rss_mb the growth of its current RSS (/proc/self/statm) "
              "from just before loading the model to after the inference",
    "quality": "edge_runtime.metrics.evaluate on every image of the data set, each model with its own "
               "thresholds; delta_f1 = this model's F1 minus the first model's",
}


class GateFailed(MnistEdgeError):
    """The release gate rejected a model; distinct exit status so scripts can tell it from bad input."""
    exit_code = GATE_EXIT_CODE


@dataclass
class Bench:
    """One benchmark run: the JSON report plus the arrays the plots need."""
    report: dict          # everything report.json holds
    images: np.ndarray    # uint8 (N,H,W) test images
    labels: np.ndarray    # uint8 (N,10)
    scores: list          # per model, float32 (N,10)
    latency_us: dict      # (model index, threads) -> float64 array of per-image latencies in µs


def run_benchmark(models, data, runs=DEFAULTS["runs"], warmup=DEFAULTS["warmup"],
                  threads=DEFAULTS["threads"], batches=DEFAULTS["batches"], rounds=DEFAULTS["rounds"],
                  runtime=DEFAULTS["runtime"], use_xnnpack=DEFAULTS["use_xnnpack"], memory=True,
                  progress=None):
    """Benchmark ``models`` (paths; the first is the baseline for ΔF1) on the labelled ``data`` npz."""
    say = progress or (lambda message: None)
    models, threads, batches = [Path(m) for m in models], list(threads), list(batches)
    if not models:
        raise MnistEdgeError("no model given")
    images, labels = load_labelled_npz(data)
    if not len(images):
        raise MnistEdgeError(f"{data}: the data set has no images")
    settings = dict(runs=runs, warmup=warmup, threads=threads, batches=batches, rounds=min(rounds, runs),
                    runtime=runtime, xnnpack=use_xnnpack)
    names = display_names(models)

    def load(path, num_threads):
        return Classifier(str(path), num_threads=num_threads, runtime=runtime, use_xnnpack=use_xnnpack)

    entries, scores, clfs = [], [], {}
    for i, path in enumerate(models):
        say(f"[{i + 1}/{len(models)}] {names[i]}: loading and scoring {len(images)} images")
        clf = load(path, threads[0])
        _check_fits(clf, images, data, path)
        scores.append(clf.scores(images))  # Classifier runs it in chunks of edge_runtime.classifier.MAX_BATCH
        quality = evaluate(labels, scores[i], clf.thresholds)
        entries.append(dict(
            name=names[i], path=str(path), format=clf.model_format, size_bytes=path.stat().st_size,
            runtime={"name": clf.runtime_name, "version": clf.runtime_version},
            threads=threads[0], xnnpack=use_xnnpack, thresholds=[float(t) for t in clf.thresholds],
            **quality))
        for t in threads:
            clfs[i, t] = clf if t == threads[0] else load(path, t)
        say(f"      {clf.model_format}, {clf.runtime_name} {clf.runtime_version}: "
            f"macro-F1 {quality['macro_f1']:.4f}")

    say(f"load time: {LOAD_REPEATS} fresh loads per model, interleaved")
    for entry, (load_ms, first_ms) in zip(entries, _time_loads(models, images[:1], lambda p: load(p, threads[0]))):
        entry.update(load_ms=load_ms, first_inference_ms=first_ms)

    say(f"timing: {warmup} warm-up + {runs} runs in {settings['rounds']} rounds, batches {batches}, "
        f"threads {threads}")
    latency, throughput = _time_inference(clfs, images, runs, warmup, batches, settings["rounds"], say)
    for i, entry in enumerate(entries):
        by_threads = {str(t): _stats(latency[i, t]) for t in threads}
        tp_by_threads = {str(t): {str(b): throughput[i, t, b] for b in batches} for t in threads}
        entry.update(latency_us=by_threads[str(threads[0])], latency_by_threads=by_threads,
                     throughput_ips=tp_by_threads[str(threads[0])], throughput_by_threads=tp_by_threads)

    for i, entry in enumerate(entries):
        if memory:
            say(f"memory: {names[i]} in a fresh process")
        entry.update(_memory(models[i], threads[0], runtime, use_xnnpack, _cycle(images, max(batches))) if memory
                     else dict(peak_rss_mb=None, model_rss_mb=None))

    base = entries[0]["per_digit"]["f1"]
    for i, entry in enumerate(entries):
        f1 = entry["per_digit"]["f1"]
        entry["delta_f1"] = None if i == 0 else [a - b for a, b in zip(f1, base)]
        entry["delta_macro_f1"] = None if i == 0 else entry["macro_f1"] - entries[0]["macro_f1"]
        entry["settings"] = settings
    first = clfs[0, threads[0]]
    report = {
        "mnist_edge_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"path": str(data), "num_images": int(len(images)), "image_shape": list(images.shape[1:]),
                 "sha256": _sha256(data)},
        "settings": settings,
        "machine": describe_machine(first.runtime_name, first.runtime_version, threads, use_xnnpack),
        "methods": METHODS,
        "models": entries,
    }
    return Bench(report, images, labels, scores, latency)


def display_names(paths):
    """File names, or the full paths when two files share a name."""
    base = [Path(p).name for p in paths]
    return [b if base.count(b) == 1 else str(p) for b, p in zip(base, paths)]


def _check_fits(clf, images, data, path):
    if tuple(images.shape[1:]) != tuple(clf.input_shape):
        h, w = images.shape[1:]
        raise MnistEdgeError(f"{data}: images are {h}x{w} but {path} expects "
                             f"{clf.input_shape[0]}x{clf.input_shape[1]}; benchmark on a data set "
                             "composed for this model")


def _elapsed_ns(fn, arg):
    start = time.perf_counter_ns()
    fn(arg)
    return time.perf_counter_ns() - start


def _cycle(images, count, start=0):
    """``count`` images from ``start`` on, wrapping around a data set smaller than a batch."""
    return np.take(images, np.arange(start, start + count) % len(images), axis=0)


def _rotated(items, r):
    k = r % len(items)
    return items[k:] + items[:k]


def _time_loads(paths, one_image, load):
    """Median load and first-inference milliseconds per model, loads interleaved across models."""
    loads = {i: [] for i in range(len(paths))}
    firsts = {i: [] for i in range(len(paths))}
    for r in range(LOAD_REPEATS):
        for i in _rotated(list(range(len(paths))), r):
            start = time.perf_counter_ns()
            clf = load(paths[i])
            loads[i].append(time.perf_counter_ns() - start)
            firsts[i].append(_elapsed_ns(clf.scores, one_image))
            del clf
    return [(float(np.median(loads[i])) / 1e6, float(np.median(firsts[i])) / 1e6) for i in loads]


def _time_inference(clfs, images, runs, warmup, batches, rounds, say):
    """Per-image latencies (µs) per setting and images/s per (setting, batch), in rotated rounds."""
    singles = [images[k:k + 1] for k in range(min(len(images), runs))]
    per_round = [runs // rounds + (r < runs % rounds) for r in range(rounds)]
    calls = {b: max(1, math.ceil(runs / b / rounds)) for b in batches if b != 1}
    chunks = {b: [_cycle(images, b, c * b) for c in range(calls[b])] for b in calls}
    settings = list(clfs)
    for key in settings:
        for k in range(warmup):
            clfs[key].scores(singles[k % len(singles)])
    samples = {key: [] for key in settings}
    batch_ns = {(key, b): 0 for key in settings for b in calls}
    done = 0
    for r in range(rounds):
        for key in _rotated(settings, r):
            clf = clfs[key]
            clf.scores(singles[0])  # back to batch 1 (resizes the input) before timing
            samples[key] += [_elapsed_ns(clf.scores, singles[(done + k) % len(singles)])
                             for k in range(per_round[r])]
            for b, batch_list in chunks.items():
                clf.scores(batch_list[0])  # resize to b, untimed
                batch_ns[key, b] += sum(_elapsed_ns(clf.scores, chunk) for chunk in batch_list)
        done += per_round[r]
        say(f"      round {r + 1}/{rounds} done")
    latency = {key: np.asarray(v, dtype=np.float64) / 1e3 for key, v in samples.items()}
    throughput = {}
    for (i, t) in settings:
        for b in batches:
            seconds = latency[i, t].sum() / 1e6 if b == 1 else batch_ns[(i, t), b] / 1e9
            count = runs if b == 1 else b * calls[b] * rounds
            throughput[i, t, b] = round(count / seconds, 1) if seconds > 0 else None
    return latency, throughput


def _stats(us):
    p50, p90, p99 = np.percentile(us, (50, 90, 99))
    std = float(np.std(us, ddof=1)) if len(us) > 1 else 0.0
    return {k: round(float(v), 2) for k, v in
            dict(mean=us.mean(), std=std, min=us.min(), p50=p50, p90=p90, p99=p99).items()}


def _maxrss_mb():
    """This process's peak RSS. Linux: VmHWM, which exec resets; ru_maxrss would keep the peak of
    the parent it was forked from (a pipeline with TensorFlow loaded: ~900 MB of someone else's)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        import resource  # POSIX only

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _rss_now_mb():
    """Current resident set size from /proc (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def memory_child(path, threads, runtime, use_xnnpack, shape):
    """Run in a fresh process: (peak RSS, RSS added by loading and running the model), in MB.

    The uint8 batch of ``shape`` comes on stdin, so the data set file is never loaded here. The
    runtime is imported first, so its memory is not counted as the model's.
    """
    images = np.frombuffer(sys.stdin.buffer.read(), dtype=np.uint8).reshape(shape)
    import_runtime(runtime)
    before, peak_before = _rss_now_mb(), _maxrss_mb()
    clf = Classifier(str(path), num_threads=threads, runtime=runtime, use_xnnpack=use_xnnpack)
    clf.scores(images)
    clf.scores(images[:1])
    after, peak = _rss_now_mb(), _maxrss_mb()
    # ru_maxrss is a high-water mark that imports may already have set, so prefer current RSS for the delta
    return peak, (after - before) if before is not None else (peak - peak_before)


_CHILD = ("import json, sys; from benchmarks.bench import memory_child; "
          "print(json.dumps(memory_child(*json.loads(sys.argv[1]))))")


def _memory(path, threads, runtime, use_xnnpack, batch):
    """Peak RSS of this model alone, in a short-lived child process (a peak never goes down).

    A plain subprocess rather than multiprocessing: 'spawn' re-runs the caller's main script,
    which breaks scripts without an ``if __name__ == "__main__"`` guard.
    """
    try:
        import resource  # noqa: F401
    except ImportError:  # Windows
        return dict(peak_rss_mb=None, model_rss_mb=None)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    batch = np.ascontiguousarray(batch, dtype=np.uint8)
    args = json.dumps([str(path), threads, runtime, use_xnnpack, list(batch.shape)])
    run = subprocess.run([sys.executable, "-c", _CHILD, args], input=batch.tobytes(), capture_output=True, env=env)
    if run.returncode:
        reason = (run.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise MnistEdgeError(f"{path}: memory measurement in a child process failed ({reason}); "
                             "--no-memory skips it")
    peak, added = json.loads(run.stdout.decode().strip().splitlines()[-1])
    return dict(peak_rss_mb=round(peak, 1), model_rss_mb=round(added, 1))


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- release gate -------------------------------------------------------------------------------

def check_gate(report, max_f1_drop=None, min_macro_f1=None):
    """The gate's verdict: every model's macro-F1 >= min, every digit's F1 drop vs the first <= max."""
    models = report["models"]
    failures = []
    for m in models:
        if min_macro_f1 is not None and m["macro_f1"] < min_macro_f1:
            failures.append(f"{m['name']}: macro-F1 {m['macro_f1']:.4f} is below --min-macro-f1 {min_macro_f1}")
    if max_f1_drop is not None:
        base = models[0]
        for m in models[1:]:
            for digit, (f1, f1_base) in enumerate(zip(m["per_digit"]["f1"], base["per_digit"]["f1"])):
                if f1_base - f1 > max_f1_drop + 1e-12:
                    failures.append(f"{m['name']}: digit {digit} F1 {f1:.4f} is {f1_base - f1:.4f} below "
                                    f"{base['name']}'s {f1_base:.4f} (--max-f1-drop {max_f1_drop})")
    return {"max_f1_drop": max_f1_drop, "min_macro_f1": min_macro_f1, "passed": not failures,
            "failures": failures}


# ---- reports ------------------------------------------------------------------------------------

def write_reports(bench, out_dir):
    """Write PNGs (when matplotlib is there), report.csv, report.json, report.md; returns written paths."""
    from . import plots  # matplotlib itself is imported lazily inside

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs, note = plots.write_plots(bench, out_dir)
    bench.report["plots"] = {"files": [p.name for p in pngs], "note": note}
    write_text_atomic(out_dir / "report.csv", report_csv(bench.report))
    write_text_atomic(out_dir / "report.json", json.dumps(bench.report, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out_dir / "report.md", report_markdown(bench.report))
    return pngs + [out_dir / n for n in ("report.csv", "report.json", "report.md")]


def report_csv(report):
    """One row per model and thread setting."""
    batches = report["settings"]["batches"]
    header = (["model", "path", "format", "size_bytes", "runtime", "runtime_version", "threads", "xnnpack",
               "load_ms", "first_inference_ms"]
              + [f"latency_{k}_us" for k in ("mean", "std", "min", "p50", "p90", "p99")]
              + [f"ips_batch{b}" for b in batches]
              + ["peak_rss_mb", "model_rss_mb", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss",
                 "delta_macro_f1"]
              + [f"f1_{d}" for d in range(NUM_CLASSES)] + [f"delta_f1_{d}" for d in range(NUM_CLASSES)])
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
                + [_f(v) for v in (m["delta_f1"] or [None] * NUM_CLASSES)])
    return out.getvalue()


def _f(value, digits=6):
    return "" if value is None else round(value, digits)


def _table(header, rows, align):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


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
        row = [m["name"], m["format"], _size(m["size_bytes"]), f"{m['macro_f1']:.4f}",
               _signed(m["delta_macro_f1"]), worst or "—"]
        for t in threads:
            ips = m["throughput_by_threads"][str(t)][str(big)]
            row += [f"{m['latency_by_threads'][str(t)]['p50'] / 1000:.3f}", "—" if ips is None else f"{ips:,.0f}"]
        row += [f"{m['load_ms']:.1f}", "—" if m["peak_rss_mb"] is None else f"{m['peak_rss_mb']:.1f}"]
        rows.append(row)
    return _table(header, rows, "llrrrr" + "rr" * len(threads) + "rr")


def report_markdown(report):
    """The human-readable report: summary, per-digit F1 (first model vs each other), details, machine."""
    s, models, mach = report["settings"], report["models"], report["machine"]
    base = models[0]
    out = ["# mnist-edge benchmark", "",
           f"{len(models)} model(s) on `{report['data']['path']}` ({report['data']['num_images']} images, "
           f"{'x'.join(map(str, report['data']['image_shape']))}), {mach['interpreter']} "
           f"{mach['interpreter_version']}, XNNPACK {'on' if s['xnnpack'] else 'off'}, "
           f"threads {', '.join(map(str, s['threads']))}; {s['runs']} timed runs after {s['warmup']} "
           f"warm-up, in {s['rounds']} interleaved rounds. Created {report['created']}.", "",
           "## Summary", "", summary_table(report), "",
           f"ΔF1 is against the first model, `{base['name']}`; negative means worse. "
           "Each model uses its own thresholds.", ""]
    if "gate" in report:
        g = report["gate"]
        rules = [f"--{k.replace('_', '-')} {g[k]}" for k in ("max_f1_drop", "min_macro_f1") if g[k] is not None]
        out += ["## Release gate", "", f"{', '.join(rules)}: " + ("**passed**" if g["passed"] else "**FAILED**"), ""]
        out += [f"- {f}" for f in g["failures"]] + ([""] if g["failures"] else [])

    header = ["digit", f"{base['name']} F1"]
    for m in models[1:]:
        header += [f"{m['name']} F1", "Δ"]
    rows = []
    for d in range(NUM_CLASSES):
        row = [str(d), f"{base['per_digit']['f1'][d]:.4f}"]
        for m in models[1:]:
            row += [f"{m['per_digit']['f1'][d]:.4f}", f"{m['delta_f1'][d]:+.4f}"]
        rows.append(row)
    out += ["## Per-digit F1", "", _table(header, rows, "l" + "r" * (len(header) - 1)), ""]

    rows = [[m["name"], f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", f"{m['subset_accuracy']:.4f}",
             f"{m['hamming_loss']:.4f}", " ".join(f"{t:.3g}" for t in m["thresholds"])] for m in models]
    out += ["## Quality", "", _table(["model", "macro-F1", "micro-F1", "subset accuracy", "Hamming loss",
                                      "thresholds 0..9"], rows, "lrrrrl"), ""]

    rows = []
    for m in models:
        for t, lat in m["latency_by_threads"].items():
            ips = m["throughput_by_threads"][t]
            rows.append([m["name"], t] + [f"{lat[k]:.1f}" for k in ("mean", "std", "min", "p50", "p90", "p99")]
                        + ["—" if ips[str(b)] is None else f"{ips[str(b)]:,.0f}" for b in s["batches"]])
    out += ["## Latency (µs per image) and throughput (images/s)", "",
            _table(["model", "threads", "mean", "std", "min", "p50", "p90", "p99"]
                   + [f"img/s @{b}" for b in s["batches"]], rows, "lr" + "r" * (6 + len(s["batches"]))), ""]

    rows = [[m["name"], f"{m['load_ms']:.2f}", f"{m['first_inference_ms']:.2f}",
             *("—" if m[k] is None else f"{m[k]:.1f}" for k in ("peak_rss_mb", "model_rss_mb"))]
            for m in models]
    out += ["## Start-up and memory", "",
            _table(["model", "load ms", "first inference ms", "peak RSS MB (process)", "RSS added by model MB"],
                   rows, "lrrrr"), ""]

    plots = report.get("plots", {})
    out += ["## Plots", ""]
    out += [f"![{Path(f).stem}]({f})" for f in plots.get("files", [])]
    out += [plots["note"]] if plots.get("note") else []
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in mach.items()]
    out += ["", "## How it was measured", ""]
    out += [f"- {k}: {v}" for k, v in report["methods"].items()]
    return "\n".join(out) + "\n"
