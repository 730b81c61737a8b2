"""What makes a benchmark trustworthy for a release, added to the report ``run_benchmark`` builds:
paired statistics against the baseline, results by difficulty, the acceleration check and, when
asked, runtime conformance. Each lives in its own module; this only runs them on the bench's data."""
from edge_runtime.dataset_file import DIFFICULTY, load_difficulty
from edge_runtime.metrics import binarize

from . import acceleration, conformance, paired, strata

METHODS = {
    **paired.METHODS,
    "difficulty": "digits_per_image and max_overlap come from the data set file (written by `mnist-edge data` "
                  "from the composition's layout); F1 pools all digits of a stratum's images",
    "acceleration": "per model, one-image latency (median) with the default delegates (XNNPACK) and without, "
                    "interleaved; XNNPACK partitions = DELEGATE nodes in the interpreter's graph; CPU features from "
                    "/proc/cpuinfo; frequency from cpufreq or /proc/cpuinfo before and after",
    "conformance": "every model scored on every image under each runtime, compared with the first available one",
}


def add_trust(report, models, data, images, labels, scores, thresholds, runtime, threads,
              bootstrap=None, runtimes=None, acceleration_runs=acceleration.CHECK["runs"], say=None):
    """Fill report["difficulty"], ["acceleration"], ["conformance"] and each model's "paired" and
    "by_difficulty" (the first model, the baseline, gets paired None)."""
    say = say or (lambda message: None)
    entries = report["models"]
    preds = [binarize(s, t) for s, t in zip(scores, thresholds)]
    bootstrap = {**paired.BOOTSTRAP, **(bootstrap or {})}
    if len(entries) > 1:
        say(f"paired statistics: {bootstrap['resamples']} bootstrap resamples, McNemar, flips")
    for i, entry in enumerate(entries):
        entry["paired"] = None if i == 0 else paired.compare(labels, preds[0], preds[i], **bootstrap)
    found = load_difficulty(data, len(images))
    by_difficulty = strata.strata(labels, preds, found)
    report["difficulty"] = {"available": by_difficulty["available"], "arrays": list(DIFFICULTY),
                            "overlap_edges": by_difficulty["overlap_edges"]}
    for entry, per_model in zip(entries, by_difficulty["models"]):
        entry["by_difficulty"] = per_model
    say(f"acceleration check: {acceleration_runs} runs per model with and without XNNPACK")
    report["acceleration"] = acceleration.check_acceleration(models, images, runtime=runtime, threads=threads,
                                                             runs=acceleration_runs)
    if runtimes:
        say(f"runtime conformance: {', '.join(name for name, _ in runtimes)}")
        report["conformance"] = conformance.conformance(models, data, images, runtimes, threads=threads)
    report["methods"] = {**report["methods"], **METHODS}
    return report
