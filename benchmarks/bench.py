"""Measure .tflite models side by side on the device: speed, memory, size and per-digit quality.

This is the run behind ``mnist-edge bench``; the pieces live beside it: timing.py (load time,
latency, throughput, in interleaved rounds), memory.py (peak RSS in a child process), trust.py
(paired statistics, results by difficulty, acceleration check, runtime conformance), gate.py (the
release gate) and report.py (report.md/.json/.csv). Quality comes from
``edge_runtime.metrics.evaluate``, the code training uses, on each model's own thresholds
(embedded metadata; 0.5 without).
"""
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime import Classifier, __version__
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import check_complete, sha256_file
from edge_runtime.metadata import read_metadata
from edge_runtime.metrics import evaluate

from .acceleration import cpu_frequency_mhz, frequency_record
from .machine import describe_machine
from .memory import measure_memory
from .timing import LOAD_REPEATS, cycle, latency_stats, time_inference, time_loads
from .trust import add_trust

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
                  bootstrap=None, runtimes=None, progress=None):
    """Benchmark ``models`` (paths; the first is the baseline for ΔF1) on the labelled ``data`` npz.

    ``bootstrap``: paired.BOOTSTRAP overrides (resamples, seed, confidence); ``runtimes``: [(name,
    python or None)] to compare for conformance (conformance.parse_runtimes), None to skip.
    """
    say = progress or (lambda message: None)
    models, threads, batches = [Path(m) for m in models], list(threads), list(batches)
    if not models:
        raise MnistEdgeError("no model given")
    images, labels = load_labelled_npz(data)
    if not len(images):
        raise MnistEdgeError(f"{data}: the data set has no images")
    settings = dict(runs=runs, warmup=warmup, threads=threads, batches=batches, rounds=min(rounds, runs),
                    runtime=runtime, xnnpack=use_xnnpack)

    def load(path, num_threads):
        return Classifier(str(path), num_threads=num_threads, runtime=runtime, use_xnnpack=use_xnnpack)

    entries, scores, clfs = _score_models(models, images, labels, data, settings, load, say)
    frequency_before = cpu_frequency_mhz()
    say(f"load time: {LOAD_REPEATS} fresh loads per model, interleaved")
    for entry, (load_ms, first_ms) in zip(entries, time_loads(models, images[:1], lambda p: load(p, threads[0]))):
        entry.update(load_ms=load_ms, first_inference_ms=first_ms)
    latency = _add_timing(entries, clfs, images, settings, say)
    frequency = frequency_record(frequency_before, cpu_frequency_mhz())
    for path, entry in zip(models, entries):
        if memory:
            say(f"memory: {entry['name']} in a fresh process")
        entry.update(measure_memory(path, threads[0], runtime, use_xnnpack, cycle(images, max(batches))) if memory
                     else dict(peak_rss_mb=None, model_rss_mb=None))
    _add_deltas(entries, settings)
    first = clfs[0, threads[0]]
    report = {
        "mnist_edge_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"path": str(data), "num_images": int(len(images)), "image_shape": list(images.shape[1:]),
                 "sha256": sha256_file(data)},
        "settings": settings,
        "machine": {**describe_machine(first.runtime_name, first.runtime_version, threads, use_xnnpack),
                    "cpu_frequency_during_timing": frequency},
        "methods": METHODS,
        "models": entries,
    }
    add_trust(report, models, data, images, labels, scores, [clfs[i, threads[0]].thresholds for i in range(len(models))],
              runtime, threads[0], bootstrap=bootstrap, runtimes=runtimes, say=say)
    return Bench(report, images, labels, scores, latency)


def _score_models(models, images, labels, data, settings, load, say):
    """Load every model, score the whole data set: report entries, scores, {(model, threads): Classifier}."""
    threads, names = settings["threads"], display_names(models)
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
            threads=threads[0], xnnpack=settings["xnnpack"], thresholds=[float(t) for t in clf.thresholds],
            source_model_sha256=clf.metadata.get("source_model_sha256"),
            **quality))
        for t in threads:
            clfs[i, t] = clf if t == threads[0] else load(path, t)
        say(f"      {clf.model_format}, {clf.runtime_name} {clf.runtime_version}: "
            f"macro-F1 {quality['macro_f1']:.4f}")
    return entries, scores, clfs


def _add_timing(entries, clfs, images, settings, say):
    """Latency and throughput into each entry (per thread setting); returns the raw latencies for plots."""
    runs, warmup, threads, batches = (settings[k] for k in ("runs", "warmup", "threads", "batches"))
    say(f"timing: {warmup} warm-up + {runs} runs in {settings['rounds']} rounds, batches {batches}, "
        f"threads {threads}")
    latency, throughput = time_inference(clfs, images, runs, warmup, batches, settings["rounds"], say)
    for i, entry in enumerate(entries):
        by_threads = {str(t): latency_stats(latency[i, t]) for t in threads}
        tp_by_threads = {str(t): {str(b): throughput[i, t, b] for b in batches} for t in threads}
        entry.update(latency_us=by_threads[str(threads[0])], latency_by_threads=by_threads,
                     throughput_ips=tp_by_threads[str(threads[0])], throughput_by_threads=tp_by_threads)
    return latency


def _add_deltas(entries, settings):
    """Each model's F1 change against the first model's, per digit and macro."""
    base = entries[0]["per_digit"]["f1"]
    for i, entry in enumerate(entries):
        f1 = entry["per_digit"]["f1"]
        entry["delta_f1"] = None if i == 0 else [a - b for a, b in zip(f1, base)]
        entry["delta_macro_f1"] = None if i == 0 else entry["macro_f1"] - entries[0]["macro_f1"]
        entry["settings"] = settings


def mixed_sources(models):
    """None when the models come from one trained model (or cannot tell: no metadata), else a sentence
    naming which come from which source model (the ``source_model_sha256`` convert embeds).

    Also refuses a folder whose last publication was cut off: its files may come from two runs.
    """
    sources = {}
    for path in models:
        check_complete(Path(path).parent, "model set")
        try:
            digest = (read_metadata(path) or {}).get("source_model_sha256") if os.path.isfile(path) else None
        except MnistEdgeError:
            continue  # not a readable model: the Classifier says what is wrong with it, with the fix
        if digest:
            sources.setdefault(digest, []).append(Path(path).name)
    if len(sources) < 2:
        return None
    groups = "; ".join(f"{', '.join(names)} from {digest[:12]}" for digest, names in sources.items())
    return (f"the models come from different trained models ({groups}), so their F1 differences measure "
            "training, not conversion")


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
