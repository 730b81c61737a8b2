"""edge_runtime.metrics against scikit-learn (a test oracle only; the device never has it)."""
import warnings

import numpy as np
import pytest

from edge_runtime.metrics import F1_TOLERANCE, average_precision, binarize, evaluate, tune_thresholds


@pytest.fixture(scope="module")
def sk():
    """scikit-learn's metrics: the oracle (the dev extra; the device venv runs only the hand-made cases)."""
    return pytest.importorskip("sklearn.metrics")


def _sklearn_evaluate(sk, y, scores, thresholds):
    pred = (scores >= thresholds).astype(np.uint8)
    with warnings.catch_warnings():  # classes without positives warn in scikit-learn; values are still defined
        warnings.simplefilter("ignore")
        p, r, f, s = sk.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
        return {
            "precision": p, "recall": r, "f1": f, "support": s,
            "average_precision": sk.average_precision_score(y, scores, average=None),
            "macro_f1": sk.f1_score(y, pred, average="macro", zero_division=0),
            "micro_f1": sk.f1_score(y, pred, average="micro", zero_division=0),
            "subset_accuracy": sk.accuracy_score(y, pred),
            "hamming_loss": sk.hamming_loss(y, pred),
        }


def _label_cases():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 10)) < 0.25).astype(np.uint8)
    yield "random", y, rng.random((300, 10)).astype(np.float32)
    edge = y.copy()
    edge[:40] = 0        # all-zero rows (empty images)
    edge[:, 7] = 0       # a class never present
    scores = rng.random((300, 10))
    scores[:, 3] = np.round(scores[:, 3] * 4) / 4  # heavy ties, as int8 scores have
    yield "edge", edge, scores
    quantized = np.round(rng.random((300, 10)) * 255) / 256  # an int8 model's 1/256 steps
    yield "quantized", y, quantized


@pytest.mark.parametrize("name,y,scores", list(_label_cases()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("thresholds", [0.5, np.linspace(0.3, 0.7, 10)], ids=["0.5", "per-digit"])
def test_evaluate_equals_sklearn(sk, name, y, scores, thresholds):
    ours = evaluate(y, scores, thresholds)
    ref = _sklearn_evaluate(sk, y, scores, thresholds)
    for key in ("precision", "recall", "f1", "support", "average_precision"):
        np.testing.assert_allclose(ours["per_digit"][key], ref[key], atol=1e-12, err_msg=key)
    for key in ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours["num_images"] == len(y)


def test_a_class_never_present_scores_zero():
    y = np.zeros((6, 10), np.uint8)
    y[:3, 0] = 1
    scores = np.linspace(0, 1, 60).reshape(6, 10)
    result = evaluate(y, scores)
    assert result["per_digit"]["f1"][5] == 0 and result["per_digit"]["average_precision"][5] == 0


def test_binarize_includes_the_threshold():
    assert binarize([[0.5, 0.49]], 0.5).tolist() == [[1, 0]]
    assert binarize([[0.2, 0.2]], [0.2, 0.3]).tolist() == [[1, 0]]


def test_average_precision_on_a_hand_ranked_case():
    # ranked: pos (P=1/1), neg, pos (P=2/3) -> AP = (1 + 2/3) / 2
    y = np.array([[1], [0], [1], [0]])
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    assert average_precision(y, scores)[0] == pytest.approx(5 / 6)


def test_tune_thresholds_finds_the_f1_optimal_cut():
    # Digit 0, by score: pos .9, pos .8, neg .7, pos .6 | neg .3, neg .2
    # F1 of cutting after each: 1/2, 4/5, 2/3, 6/7 (best), 3/4, 2/3 -> threshold between .6 and .3
    y = np.zeros((6, 10), np.uint8)
    y[[0, 1, 3], 0] = 1
    scores = np.full((6, 10), 0.1)
    scores[:, 0] = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    t = tune_thresholds(y, scores)
    assert t[0] == pytest.approx(0.45)
    assert (t[1:] == 0.5).all()  # digits with no positive keep the default
    assert evaluate(y, scores, t)["per_digit"]["f1"][0] == pytest.approx(6 / 7)


def test_tuned_thresholds_reach_the_best_f1_any_cut_gives(sk):
    rng = np.random.default_rng(1)
    y = (rng.random((200, 10)) < 0.3).astype(np.uint8)
    scores = np.clip(y * 0.3 + rng.random((200, 10)) * 0.7, 0, 1)
    scores = np.round(scores * 256) / 256  # ties
    exact = evaluate(y, scores, tune_thresholds(y, scores, tolerance=0))["per_digit"]["f1"]
    near = evaluate(y, scores, tune_thresholds(y, scores))["per_digit"]["f1"]
    for c in range(10):
        best = max(sk.f1_score(y[:, c], scores[:, c] >= cut, zero_division=0) for cut in np.unique(scores[:, c]))
        assert exact[c] == pytest.approx(best, abs=1e-12)
        assert best - F1_TOLERANCE - 1e-12 <= near[c] <= best + 1e-12


def test_tuned_threshold_is_the_middle_of_a_flat_f1_plateau():
    # Digit 0: 100 positives scored 0.6-0.99, 100 negatives 0.01-0.4, and one negative at 0.5.
    # The best cut (F1 1) is between 0.6 and 0.5. Within 0.01 of it: the cuts after the 99th positive
    # (F1 0.9950), after 0.6 (1), after 0.5 (0.9950) and after 0.4 (0.9901); the middle one is after 0.5.
    y = np.zeros((201, 10), np.uint8)
    y[:100, 0] = 1
    scores = np.full((201, 10), 0.1)
    scores[:, 0] = np.r_[np.linspace(0.99, 0.6, 100), np.linspace(0.4, 0.01, 100), 0.5]
    assert tune_thresholds(y, scores, tolerance=0)[0] == pytest.approx(0.55)
    assert tune_thresholds(y, scores, tolerance=0.01)[0] == pytest.approx(0.45)


def test_top2_pair_accuracy_only_for_two_digit_sets():
    from edge_runtime.metrics import top2_pair_accuracy

    y = np.zeros((3, 10), dtype=np.uint8)
    y[0, [1, 2]] = y[1, [3, 4]] = y[2, [5, 9]] = 1
    scores = np.full((3, 10), 0.1)
    scores[0, [1, 2]] = 0.9              # right pair
    scores[1, [3, 7]] = 0.9              # one wrong digit ranks second
    scores[2, [5, 9]] = 0.02             # right pair, although under any threshold
    scores[2, :5] = 0.01
    scores[2, 6:9] = 0.01
    assert top2_pair_accuracy(y, scores) == {"top2_pair_accuracy": 2 / 3}
    y[2, 0] = 1                          # a three-digit image: not a MultiMNIST set
    assert top2_pair_accuracy(y, scores) == {}
