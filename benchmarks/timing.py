"""Timing the models: load time, first inference, per-image latency and batch throughput.

Fair between models: every model is warmed up first, then the timed runs are split into rounds and
each round visits every model and thread setting in a rotated order, so slow drift of the machine
(heat, frequency scaling, other load) spreads over all of them instead of favouring the one measured
first.
"""
import math
import time

import numpy as np

LOAD_REPEATS = 5         # fresh loads per model; load and first-inference times are their medians


def _elapsed_ns(fn, arg):
    start = time.perf_counter_ns()
    fn(arg)
    return time.perf_counter_ns() - start


def cycle(images, count, start=0):
    """``count`` images from ``start`` on, wrapping around a data set smaller than a batch."""
    return np.take(images, np.arange(start, start + count) % len(images), axis=0)


def _rotated(items, r):
    k = r % len(items)
    return items[k:] + items[:k]


def time_loads(paths, one_image, load):
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


def time_inference(clfs, images, runs, warmup, batches, rounds, say):
    """Per-image latencies (µs) per setting and images/s per (setting, batch), in rotated rounds."""
    singles = [images[k:k + 1] for k in range(min(len(images), runs))]
    per_round = [runs // rounds + (r < runs % rounds) for r in range(rounds)]
    calls = {b: max(1, math.ceil(runs / b / rounds)) for b in batches if b != 1}
    chunks = {b: [cycle(images, b, c * b) for c in range(calls[b])] for b in calls}
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


def latency_stats(us):
    """mean, std (sample), min and percentiles of per-image latencies, rounded to 0.01 µs."""
    p50, p90, p99 = np.percentile(us, (50, 90, 99))
    std = float(np.std(us, ddof=1)) if len(us) > 1 else 0.0
    return {k: round(float(v), 2) for k, v in
            dict(mean=us.mean(), std=std, min=us.min(), p50=p50, p90=p90, p99=p99).items()}
