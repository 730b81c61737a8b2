"""Is model B really worse than model A? Paired statistics on the same test images, numpy and math only.

A ΔF1 of -0.0009 on 10,000 images is noise until shown otherwise. Both models score the *same*
images, so the comparison is paired: the bootstrap resamples images (each resample scores both
models on the same images), and McNemar's test looks only at the images where the two disagree.

The bootstrap is vectorised: every image contributes 0/1 to each model's TP, FP and FN per digit,
a resample is a vector of image counts (how often each image was drawn), and one matrix product
turns a block of resamples into their TP/FP/FN totals -- 1,000 resamples of 10,000 images take
well under a second, in bounded memory.
"""
import math

import numpy as np

BOOTSTRAP = dict(resamples=1000, confidence=0.95, seed=0)
BLOCK = 100            # resamples per matrix product: BLOCK x N float32 counts (4 MB for N = 10,000)
EXACT_BELOW = 25       # McNemar: exact binomial test below this many discordant images, else chi-square
LISTED_IMAGES = 100    # flip table: image indices kept per digit and direction (the counts are complete)
METHODS = {
    "bootstrap": "percentile interval of ΔF1 (model minus baseline) over seeded bootstrap resamples of the "
                 "images; each resample draws N images with replacement and scores both models on them",
    "mcnemar": f"per digit, on the images where exactly one of the two models is right about that digit "
               f"(b: only the baseline right, c: only this model right); exact two-sided binomial test "
               f"when b + c < {EXACT_BELOW}, else chi-square with continuity correction (|b - c| - 1)^2 / (b + c)",
    "flips": "per digit, images where this model predicts the digit and the baseline does not (added) "
             "and the reverse (dropped); each split into right and wrong against the label",
}


def _contributions(truth, pred):
    """(N, 30) float32: each image's 0/1 contribution to TP, FP and FN of digits 0..9."""
    t, p = truth.astype(bool), pred.astype(bool)
    return np.concatenate([t & p, ~t & p, t & ~p], axis=1).astype(np.float32)


def _f1(counts):
    """(..., 30) TP|FP|FN totals -> (..., 10) F1, 0 where a digit has no positive and no prediction."""
    tp, fp, fn = np.split(counts.astype(np.float64), 3, axis=-1)
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def resample_counts(n_images, resamples, rng):
    """(resamples, n_images) uint16/32 draw counts, BLOCK rows at a time: a bootstrap resample each."""
    for start in range(0, resamples, BLOCK):
        rows = min(BLOCK, resamples - start)
        draws = rng.integers(0, n_images, size=(rows, n_images))
        draws += np.arange(rows)[:, None] * n_images  # row r's images land in bins r*N .. r*N+N-1
        # bincount takes intp: int32 on 32-bit ARM (Pi OS armhf), where int64 draws are refused
        yield np.bincount(draws.ravel().astype(np.intp, copy=False), minlength=rows * n_images
                          ).reshape(rows, n_images).astype(np.float32)


def bootstrap_delta_f1(truth, pred_base, pred_other, resamples=BOOTSTRAP["resamples"],
                       confidence=BOOTSTRAP["confidence"], seed=BOOTSTRAP["seed"]):
    """Point ΔF1 and its paired bootstrap interval, per digit and for macro-F1 (other minus base).

    Returns {"per_digit": {"delta", "low", "high"} lists of 10, "macro": {"delta", "low", "high"},
    "resamples", "confidence", "seed"}.
    """
    truth = np.asarray(truth)
    both = np.concatenate([_contributions(truth, pred_base), _contributions(truth, pred_other)], axis=1)
    point = _f1(both.sum(axis=0)[30:]) - _f1(both.sum(axis=0)[:30])
    rng = np.random.default_rng(seed)
    deltas = np.concatenate([_f1(w @ both[:, 30:]) - _f1(w @ both[:, :30])
                             for w in resample_counts(len(truth), resamples, rng)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, (tail, 100 - tail), axis=0)
    macro_low, macro_high = np.percentile(deltas.mean(axis=1), (tail, 100 - tail))
    return {"per_digit": {"delta": point.tolist(), "low": low.tolist(), "high": high.tolist()},
            "macro": {"delta": float(point.mean()), "low": float(macro_low), "high": float(macro_high)},
            "resamples": int(resamples), "confidence": confidence, "seed": seed}


def mcnemar(b, c):
    """McNemar's test for b and c discordant images -> {"b", "c", "p", "test"}; p is two-sided.

    Exact (binomial, p = 1/2) when b + c < EXACT_BELOW, where the chi-square approximation is poor;
    otherwise chi-square with one degree of freedom and continuity correction, p = erfc(sqrt(x/2)).
    """
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p": 1.0, "test": "none (no discordant image)"}
    if n < EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
        return {"b": b, "c": c, "p": min(1.0, 2 * tail / 2 ** n), "test": "exact binomial"}
    statistic = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "p": math.erfc(math.sqrt(statistic / 2)), "test": "chi-square, continuity-corrected"}


def mcnemar_tests(truth, pred_base, pred_other):
    """McNemar per digit (right/wrong about that digit) and for the exact digit set of each image."""
    truth = np.asarray(truth, dtype=bool)
    right_base = np.asarray(pred_base, dtype=bool) == truth
    right_other = np.asarray(pred_other, dtype=bool) == truth
    b = (right_base & ~right_other).sum(axis=0)
    c = (~right_base & right_other).sum(axis=0)
    set_base, set_other = right_base.all(axis=1), right_other.all(axis=1)
    return {"per_digit": [mcnemar(bd, cd) for bd, cd in zip(b, c)],
            "exact_set": mcnemar((set_base & ~set_other).sum(), (~set_base & set_other).sum())}


def flip_table(truth, pred_base, pred_other, listed=LISTED_IMAGES):
    """Per digit: images where the other model adds or drops the digit, right and wrong, with indices."""
    truth = np.asarray(truth, dtype=bool)
    base, other = np.asarray(pred_base, dtype=bool), np.asarray(pred_other, dtype=bool)
    rows = []
    for d in range(truth.shape[1]):
        added = np.flatnonzero(other[:, d] & ~base[:, d])
        dropped = np.flatnonzero(base[:, d] & ~other[:, d])
        rows.append({
            "digit": d,
            "added": int(len(added)), "added_right": int(truth[added, d].sum()),
            "dropped": int(len(dropped)), "dropped_right": int((~truth[dropped, d]).sum()),
            "added_images": added[:listed].tolist(), "dropped_images": dropped[:listed].tolist(),
        })
    return rows


def compare(truth, pred_base, pred_other, **bootstrap_options):
    """Everything paired between two models' 0/1 predictions on the same images (JSON-ready)."""
    return {"bootstrap": bootstrap_delta_f1(truth, pred_base, pred_other, **bootstrap_options),
            "mcnemar": mcnemar_tests(truth, pred_base, pred_other),
            "flips": flip_table(truth, pred_base, pred_other)}


def significant(ci, zero=0.0):
    """'worse', 'better' or 'no evidence': where the interval lies relative to zero."""
    if ci["high"] < zero:
        return "worse"
    if ci["low"] > zero:
        return "better"
    return "no evidence"
