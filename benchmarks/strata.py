"""Where a model fails: quality by number of digits and by overlap band, and the digit pairs it confuses.

One macro-F1 hides that images with four digits or heavily overlapping digits are much harder. The
strata come from the per-image arrays ``mnist-edge data`` writes (``edge_runtime.dataset_file.DIFFICULTY``);
a data set without them gets only the confused pairs, which need nothing but labels.
"""
import numpy as np

# Overlap bands (share of a digit's ink box covered by another's): exactly 0, then (lo, hi].
OVERLAP_EDGES = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
CONFUSED_PAIRS = 5  # most frequent (missed digit, wrongly predicted digit) pairs listed per model


def overlap_bands(overlap):
    """(N,) band index and the band labels: 0 is 'none', k is (OVERLAP_EDGES[k-1], OVERLAP_EDGES[k]]."""
    edges = np.asarray(OVERLAP_EDGES)
    overlap = np.asarray(overlap, dtype=np.float64)
    band = np.where(overlap <= 0, 0, np.searchsorted(edges, overlap, side="left"))
    labels = ["none"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(OVERLAP_EDGES, OVERLAP_EDGES[1:])]
    return np.minimum(band, len(edges) - 1), labels


def stratum_quality(truth, pred, member):
    """Images, exact-set accuracy and micro-F1 (digits pooled) of the images in ``member``."""
    t, p = truth[member].astype(bool), pred[member].astype(bool)
    tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
    den = 2 * tp + fp + fn
    return {"images": int(member.sum()),
            "exact_set_accuracy": float((t == p).all(axis=1).mean()) if len(t) else None,
            "f1": float(2 * tp / den) if den else None}  # None: no digit present and none predicted


def confused_pairs(truth, pred, top=CONFUSED_PAIRS):
    """Most frequent (missed, wrongly added) digit pairs: images where the model misses digit
    ``missed`` and predicts ``added`` instead (both errors in the same image)."""
    t, p = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    counts = (t & ~p).astype(np.int64).T @ (~t & p).astype(np.int64)  # [missed, added] images
    order = np.argsort(-counts, axis=None, kind="stable")[:top]
    return [{"missed": int(m), "added": int(a), "images": int(counts[m, a])}
            for m, a in zip(*np.unravel_index(order, counts.shape)) if counts[m, a] > 0]


def strata(truth, preds, difficulty):
    """Per model: quality by digit count and overlap band (when ``difficulty`` has them), confused pairs.

    ``preds``: one (N,10) 0/1 array per model; ``difficulty``: edge_runtime.dataset_file.load_difficulty's dict.
    """
    truth = np.asarray(truth)
    groups = {}
    if "digits_per_image" in difficulty:
        count = np.asarray(difficulty["digits_per_image"])
        groups["digits"] = [(str(k), count == k) for k in np.unique(count)]
    if "max_overlap" in difficulty:
        band, labels = overlap_bands(difficulty["max_overlap"])
        groups["overlap"] = [(labels[k], band == k) for k in np.unique(band)]
    return {
        "available": sorted(groups),
        "overlap_edges": list(OVERLAP_EDGES),
        "models": [{**{name: [{"stratum": label, **stratum_quality(truth, pred, member)} for label, member in rows]
                       for name, rows in groups.items()},
                    "confused_pairs": confused_pairs(truth, pred)} for pred in preds],
    }
