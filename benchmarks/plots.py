"""The benchmark's PNG plots. matplotlib is optional on a device: without it they are skipped.

Uses matplotlib's object API (Figure + Agg canvas), never pyplot, so no global backend state.
"""
import numpy as np

from edge_runtime.files import atomic_path
from edge_runtime.metrics import binarize
from edge_runtime.model_contract import NUM_CLASSES

ERROR_GRID = dict(count=32, columns=8)  # misclassified images shown, grid columns
DPI = 100
QUANTISED = ("int8", "uint8", "dynamic", "float16")  # the error grid shows the last such model


def write_plots(bench, out_dir):
    """Write the PNGs into ``out_dir``; returns (paths, note) where note says why some were skipped."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return [], "PNG plots skipped: matplotlib is not installed (pip install matplotlib)."
    models = bench.report["models"]
    paths = [_save(_f1_bars(Figure, models), out_dir / "f1_per_digit.png"),
             _save(_latency(Figure, models, bench.latency_us), out_dir / "latency.png")]
    errors = _errors(Figure, bench)
    note = None
    if errors is None:
        note = f"No misclassified image to show: {models[_error_model(models)]['name']} gets every image right."
    else:
        paths.append(_save(errors, out_dir / "errors.png"))
    return paths, note


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _f1_bars(Figure, models):
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    x = np.arange(NUM_CLASSES)
    for i, m in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, m["per_digit"]["f1"], width,
               label=f"{m['name']} ({m['format']}, macro {m['macro_f1']:.3f})")
    low = min(min(m["per_digit"]["f1"]) for m in models)
    ax.set(xticks=x, xlabel="digit", ylabel="F1", title="Per-digit F1 (each model with its own thresholds)",
           ylim=(max(0.0, low - 0.05), 1.0))
    fig.legend(loc="outside lower center", ncols=min(3, len(models)), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _latency(Figure, models, latency_us):
    fig = Figure(figsize=(max(6, 1.6 * len(latency_us)), 4.5), layout="constrained")
    ax = fig.add_subplot()
    keys = sorted(latency_us)  # (model index, threads)
    several = len({t for _, t in keys}) > 1
    ax.boxplot([latency_us[k] / 1000 for k in keys], whis=(1, 99), showfliers=False)
    labels = [models[i]["name"] + (f"\n{t} thread(s)" if several else "") for i, t in keys]
    ax.set_xticks(range(1, len(keys) + 1), labels, fontsize="small")
    ax.set(ylabel="ms per image", title="Latency of one image (box: quartiles, whiskers: p1-p99)", ylim=(0, None))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _error_model(models):
    """The last quantised model (what ships), else the last model."""
    picks = [i for i, m in enumerate(models) if m["format"] in QUANTISED]
    return picks[-1] if picks else len(models) - 1


def _errors(Figure, bench):
    """A grid of test images whose predicted digit set is wrong, with truth and answer; None if none."""
    models = bench.report["models"]
    i = _error_model(models)
    pred = binarize(bench.scores[i], models[i]["thresholds"])
    wrong = np.flatnonzero((pred != bench.labels).any(axis=1))
    if not len(wrong):
        return None
    shown = wrong[:ERROR_GRID["count"]]
    cols = min(ERROR_GRID["columns"], len(shown))
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(1.6 * cols, 1.9 * rows + 0.6), layout="constrained")
    fig.suptitle(f"{models[i]['name']}: {len(wrong)} of {len(pred)} images wrong "
                 f"(first {len(shown)} shown)", fontsize="medium")
    for k, idx in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(bench.images[idx], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"#{idx}\ntrue {_digits(bench.labels[idx])}\ngot {_digits(pred[idx])}", fontsize=8)
        ax.axis("off")
    return fig


def _digits(row):
    return ",".join(str(d) for d in np.flatnonzero(row)) or "none"
