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
F1_MIN_SPAN = 0.1      # the F1 axis spans at least this much, so 0.001 is 1% of it
DELTA_MIN_SPAN = 0.01  # the ΔF1 axis reaches at least ±this
LATENCY_TOP = 2.0      # the latency axis ends at this multiple of the largest p90


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
    """Per-digit F1 on an axis at least F1_MIN_SPAN tall, and ΔF1 with its bootstrap interval below it,
    on an axis at least ±DELTA_MIN_SPAN: a 0.001 difference looks as small as it is, next to its noise."""
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    width = 0.8 / len(models)
    x = np.arange(NUM_CLASSES)
    for i, m in enumerate(models):
        offset = (i - (len(models) - 1) / 2) * width
        top.bar(x + offset, m["per_digit"]["f1"], width, label=f"{m['name']} ({m['format']}, macro {m['macro_f1']:.4f})")
        if m.get("paired"):
            ci = m["paired"]["bootstrap"]["per_digit"]
            delta = np.asarray(ci["delta"])
            bottom.errorbar(x + offset, delta, yerr=[delta - ci["low"], np.asarray(ci["high"]) - delta],
                            fmt="o", color=f"C{i}", capsize=3, label=f"{m['name']} - {models[0]['name']}")
    low = min(min(m["per_digit"]["f1"]) for m in models)
    top.set(ylabel="F1", title="Per-digit F1 (each model with its own thresholds)",
            ylim=(max(0.0, min(low - 0.01, 1 - F1_MIN_SPAN)), 1.0))
    top.grid(axis="y", alpha=0.3)
    top.legend(loc="lower right", fontsize="small")
    reach = max([DELTA_MIN_SPAN] + [abs(v) * 1.1 for m in models if m.get("paired")
                                    for k in ("low", "high") for v in m["paired"]["bootstrap"]["per_digit"][k]])
    conf = models[1]["paired"]["bootstrap"]["confidence"] if len(models) > 1 and models[1].get("paired") else None
    bottom.axhline(0, color="gray", lw=1)
    bottom.set(xticks=x, xlabel="digit", ylabel="ΔF1", ylim=(-reach, reach),
               title=f"ΔF1 against {models[0]['name']}" + (f" with {conf:.0%} bootstrap interval" if conf else ""))
    bottom.grid(axis="y", alpha=0.3)
    if len(models) > 1:
        bottom.legend(loc="lower right", fontsize="small")
    return fig


def _latency(Figure, models, latency_us):
    """Box plots on an axis cut at LATENCY_TOP x the largest p90, so a few slow runs (preemption,
    a busy device) cannot flatten the boxes; the runs above the cut are counted instead of drawn."""
    fig = Figure(figsize=(max(6, 1.6 * len(latency_us)), 4.5), layout="constrained")
    ax = fig.add_subplot()
    keys = sorted(latency_us)  # (model index, threads)
    several = len({t for _, t in keys}) > 1
    ms = [latency_us[k] / 1000 for k in keys]
    ax.boxplot(ms, whis=(1, 99), showfliers=False)
    top = LATENCY_TOP * max(float(np.percentile(v, 90)) for v in ms)
    for n, v in enumerate(ms, start=1):
        above = int((v > top).sum())
        if above:
            ax.annotate(f"{above} run(s) above\n{top:.2f} ms (max {v.max():.2f})", (n, top), xytext=(0, -4),
                        textcoords="offset points", ha="center", va="top", fontsize="x-small", color="dimgray")
    labels = [models[i]["name"] + (f"\n{t} thread(s)" if several else "") for i, t in keys]
    ax.set_xticks(range(1, len(keys) + 1), labels, fontsize="small")
    ax.set(ylabel="ms per image", ylim=(0, top), title="Latency of one image (box: quartiles, whiskers: p1-p99)")
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
