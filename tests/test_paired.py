"""Paired statistics between two models on real predictions of real models on composed MNIST images."""
import math

import numpy as np
import pytest

from benchmarks import paired
from edge_runtime import Classifier
from edge_runtime.metrics import binarize, per_digit
from models_for_tests import models, sample_images  # noqa: F401  (pytest fixture)

NUM_IMAGES = 3000


@pytest.fixture(scope="module")
def predictions(models, mnist_dir):  # noqa: F811
    """Labels and the float32 and int8 test models' 0/1 predictions on the same images."""
    images, labels = sample_images(mnist_dir, num=NUM_IMAGES, seed=11)
    preds = []
    for name in ("float32", "int8"):
        clf = Classifier(str(models[name]), num_threads=1)
        preds.append(binarize(clf.scores(images), clf.thresholds))
    return labels, preds[0], preds[1]


def test_bootstrap_interval_contains_point_and_shrinks_with_more_images(predictions):
    labels, base, other = predictions
    small = paired.bootstrap_delta_f1(labels[:300], base[:300], other[:300], resamples=500)
    large = paired.bootstrap_delta_f1(labels, base, other, resamples=500)
    for ci in (small, large):
        m = ci["macro"]
        assert m["low"] <= m["delta"] <= m["high"]
        d = ci["per_digit"]
        assert all(lo <= p <= hi for lo, p, hi in zip(d["low"], d["delta"], d["high"]))
    f1 = [per_digit(labels, p)["f1"] for p in (base, other)]
    assert large["per_digit"]["delta"] == pytest.approx(f1[1] - f1[0])
    assert large["macro"]["delta"] == pytest.approx(np.mean(f1[1] - f1[0]))
    width = {k: ci["macro"]["high"] - ci["macro"]["low"] for k, ci in (("small", small), ("large", large))}
    assert 0 < width["large"] < width["small"] / 2  # 10x the images: about 1/sqrt(10) of the width
    assert paired.bootstrap_delta_f1(labels, base, other, resamples=500) == large  # seeded


def test_vectorised_resample_equals_scoring_the_resampled_images(predictions):
    """Counts times per-image contributions == metrics.per_digit on the images actually drawn."""
    labels, base, other = predictions
    rng = np.random.default_rng(3)
    (weights,) = paired.resample_counts(len(labels), 3, rng)
    for w in weights:
        drawn = np.repeat(np.arange(len(labels)), w.astype(np.int64))
        assert len(drawn) == len(labels)
        expected = per_digit(labels[drawn], other[drawn])["f1"] - per_digit(labels[drawn], base[drawn])["f1"]
        both = np.concatenate([paired._contributions(labels, base), paired._contributions(labels, other)], axis=1)
        counts = w @ both
        assert paired._f1(counts[30:]) - paired._f1(counts[:30]) == pytest.approx(expected, abs=1e-12)


def test_identical_models_give_a_zero_interval(predictions):
    labels, base, _ = predictions
    ci = paired.bootstrap_delta_f1(labels, base, base, resamples=50)
    assert ci["macro"] == {"delta": 0.0, "low": 0.0, "high": 0.0}
    assert paired.significant(ci["macro"]) == "no evidence"
    assert all(t["test"].startswith("none") and t["p"] == 1.0
               for t in paired.mcnemar_tests(labels, base, base)["per_digit"])


def test_mcnemar_hand_computed():
    # Exact: b=3, c=12, n=15: P(X<=3) = (1 + 15 + 105 + 455) / 2^15 = 576/32768; two-sided doubles it.
    exact = paired.mcnemar(3, 12)
    assert exact["test"] == "exact binomial" and exact["p"] == 2 * 576 / 32768
    assert paired.mcnemar(12, 3)["p"] == exact["p"]
    assert paired.mcnemar(5, 5)["p"] == 1.0
    # Chi-square with continuity correction: b=10, c=30: (|10-30| - 1)^2 / 40 = 9.025, df 1 -> p = 0.0026631
    chi = paired.mcnemar(10, 30)
    assert chi["test"] == "chi-square, continuity-corrected"
    assert chi["p"] == pytest.approx(0.0026631, abs=1e-6)
    assert chi["p"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert paired.mcnemar(paired.EXACT_BELOW - 1, 0)["test"] == "exact binomial"
    assert paired.mcnemar(paired.EXACT_BELOW, 0)["test"].startswith("chi-square")


def test_mcnemar_chi_square_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for b, c in ((10, 30), (40, 22), (100, 131)):
        statistic = (abs(b - c) - 1) ** 2 / (b + c)
        assert paired.mcnemar(b, c)["p"] == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-9)
    assert paired.mcnemar(3, 12)["p"] == pytest.approx(stats.binomtest(3, 15).pvalue, rel=1e-12)


def test_mcnemar_counts_discordant_images(predictions):
    labels, base, other = predictions
    tests = paired.mcnemar_tests(labels, base, other)
    for d, t in enumerate(tests["per_digit"]):
        base_right, other_right = base[:, d] == labels[:, d], other[:, d] == labels[:, d]
        assert (t["b"], t["c"]) == ((base_right & ~other_right).sum(), (~base_right & other_right).sum())
        assert 0 <= t["p"] <= 1
    set_base, set_other = (base == labels).all(axis=1), (other == labels).all(axis=1)
    assert tests["exact_set"]["b"] == (set_base & ~set_other).sum()


def test_flip_table(predictions):
    labels, base, other = predictions
    for row in paired.flip_table(labels, base, other):
        d = row["digit"]
        assert row["added"] - row["dropped"] == int(other[:, d].sum()) - int(base[:, d].sum())
        assert 0 <= row["added_right"] <= row["added"] and 0 <= row["dropped_right"] <= row["dropped"]
        for i in row["added_images"]:
            assert other[i, d] == 1 and base[i, d] == 0
        for i in row["dropped_images"]:
            assert other[i, d] == 0 and base[i, d] == 1
        assert len(row["added_images"]) == min(row["added"], paired.LISTED_IMAGES)
        # a flip is right exactly when it fixes an error: added right = FN fixed, dropped right = FP fixed
        fixed_fn = int(((other[:, d] == 1) & (base[:, d] == 0) & (labels[:, d] == 1)).sum())
        assert row["added_right"] == fixed_fn
