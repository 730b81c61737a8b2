"""The models shipped in edge_runtime/models/, judged on images they have never seen.

The test set is composed afresh from the MNIST *test* split with a seed no shipped artefact used,
so neither training nor threshold tuning saw these images. Runs with the device dependencies only.
"""
import numpy as np
import pytest

from edge_runtime import Classifier, default_model_path, read_metadata
from edge_runtime.metrics import evaluate
from train.dataset import compose, resolve_options
from train.mnist import load_mnist

FRESH_SEED = 20261125  # not the data set's seed (0)
FRESH_IMAGES = 10000  # as many as the test split: ~2,200 images per digit, so a digit's F1 varies by ~0.003


@pytest.fixture(scope="module")
def fresh_test_set(mnist_dir):
    mnist = load_mnist(mnist_dir)
    split = compose(mnist.test_images, mnist.test_labels, FRESH_IMAGES, np.random.default_rng(FRESH_SEED),
                    **resolve_options())
    return split.images, split.labels


@pytest.fixture(scope="module")
def results(fresh_test_set):
    images, labels = fresh_test_set
    out = {}
    for fmt in ("float32", "int8"):
        path = default_model_path(fmt)
        if not path.exists():
            pytest.fail(f"{path} missing: regenerate with `mnist-edge pipeline --out runs/default --ship`")
        clf = Classifier(path, num_threads=1)
        out[fmt] = evaluate(labels, clf.scores(images), clf.thresholds)
    return out


def test_float_model_reaches_target(results):
    assert results["float32"]["macro_f1"] >= 0.98, results["float32"]["per_digit"]["f1"]


def test_int8_stays_close_to_float(results):
    assert results["int8"]["macro_f1"] >= results["float32"]["macro_f1"] - 0.01
    assert min(results["int8"]["per_digit"]["f1"]) >= 0.97, results["int8"]["per_digit"]["f1"]


def test_shipped_models_describe_themselves():
    for fmt in ("float32", "int8"):
        meta = read_metadata(default_model_path(fmt))
        assert meta["format"] == fmt
        assert len(meta["thresholds"]) == 10 and meta["input_shape"] == [64, 64, 1]
        assert meta["arch"] == "edge-cnn"
    assert read_metadata(default_model_path("int8"))["verification"]
