"""Real .tflite models and multi-digit test images for the device runtime tests.

With TensorFlow, ``build_models`` trains a tiny CNN for a few seconds on MNIST digits pasted onto
64x64 canvases and converts it to float32 and full-int8 TFLite, the int8 one again with toolkit
metadata embedded, plus two deliberately wrong models (5 outputs; RGB input). Without TensorFlow (the edge venv) the tests use a folder of such models
from ``$MNIST_EDGE_TEST_MODELS`` (``python tests/models_for_tests.py DIR`` writes one), else the
models shipped in edge_runtime/models/, else they skip.
"""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from convert.tensorflow_env import import_tensorflow, quiet_native_output
from edge_runtime.errors import MnistEdgeError
from train import dataset
from train.mnist import load_mnist

SIZE = 64        # canvas side, as the shipped models
SEED = 0
GOOD = ("float32", "int8")
BAD = ("width5", "rgb")   # output 5 wide; input (1,64,64,3)
META = "meta"             # the int8 model with toolkit metadata embedded
METADATA = {"format": "int8", "thresholds": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
            "input_shape": [SIZE, SIZE, 1], "class_names": [str(d) for d in range(10)]}
SHIPPED = Path(__file__).resolve().parents[1] / "edge_runtime" / "models"


def compose(digits, num, seed, max_digits=3):
    """``num`` canvases with 1..max_digits distinct MNIST digits each -> (images uint8, labels (N,10))."""
    split = dataset.compose(*digits, num, np.random.default_rng(seed), **dataset.resolve_options(
        canvas=SIZE, max_digits=max_digits, empty_fraction=0.0, distinct_classes=True))
    return split.images, split.labels


def sample_images(mnist_dir, num=16, seed=1):
    """Canvases from MNIST's test split (the models train on the train split)."""
    mnist = load_mnist(mnist_dir)
    return compose((mnist.test_images, mnist.test_labels), num, seed)


def build_models(mnist_dir, out_dir):
    """Train the tiny CNN and write model_<name>.tflite for GOOD, BAD and META; returns {name: path}.

    The models are built once per process; later calls write the same bytes to their own folder.
    """
    if not _blobs:
        _blobs.update(_train_and_convert(mnist_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, blob in _blobs.items():
        paths[name] = out_dir / f"model_{name}.tflite"
        paths[name].write_bytes(blob)
    return paths


_blobs = {}


def _train_and_convert(mnist_dir):
    tf = import_tensorflow()

    from convert.embed import embed_metadata
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    mnist = load_mnist(mnist_dir)
    x, y = compose((mnist.train_images, mnist.train_labels), 3000, SEED)
    x = x[..., None].astype(np.float32) / 255

    def cnn(channels=1, outputs=10):
        inputs = keras.Input((SIZE, SIZE, channels))
        h = inputs
        for filters in (16, 32, 64):
            h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
        h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
        h = keras.layers.GlobalMaxPooling2D()(h)
        return keras.Model(inputs, keras.layers.Dense(outputs, activation="sigmoid")(h))

    model = cnn()
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(x, y, batch_size=64, epochs=6, verbose=0)

    def convert(m, int8):
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        if int8:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(0, 400, 4))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        with quiet_native_output():
            return conv.convert()

    blobs = {"float32": convert(model, False), "int8": convert(model, True),
             "width5": convert(cnn(outputs=5), False), "rgb": convert(cnn(channels=3), False)}
    blobs[META] = embed_metadata(blobs["int8"], METADATA)
    return blobs


def find_models():
    """{name: path} of prebuilt models for venvs without TensorFlow ({} when there are none)."""
    folder = os.environ.get("MNIST_EDGE_TEST_MODELS")
    folder = Path(folder).resolve() if folder else SHIPPED  # absolute: some tests run commands from tmp folders
    return {name: folder / f"model_{name}.tflite" for name in GOOD + BAD + (META,)
            if (folder / f"model_{name}.tflite").is_file()}


_built = {}  # the fixtures are imported by several test modules; build once per session


@pytest.fixture(scope="session")
def models(mnist_dir, tmp_path_factory):
    """{name: path} of real models: $MNIST_EDGE_TEST_MODELS, else built with TensorFlow, else shipped."""
    if "models" not in _built:
        if os.environ.get("MNIST_EDGE_TEST_MODELS") or importlib.util.find_spec("tensorflow") is None:
            _built["models"] = find_models()
        else:
            _built["models"] = build_models(mnist_dir, tmp_path_factory.mktemp("models"))
    if not all(name in _built["models"] for name in GOOD):
        pytest.skip("no test models: needs TensorFlow, $MNIST_EDGE_TEST_MODELS or edge_runtime/models/")
    return _built["models"]


@pytest.fixture(scope="session")
def canvases(mnist_dir):
    """16 uint8 64x64 canvases of 1-3 MNIST test digits and their (16,10) labels."""
    return sample_images(mnist_dir)


def model(models, name):
    """One of the models, or skip (the edge venv may lack the deliberately wrong ones)."""
    if name not in models:
        pytest.skip(f"no model_{name}.tflite among the prebuilt test models")
    return models[name]


if __name__ == "__main__":
    try:  # MNIST as every command finds it ($MNIST_EDGE_DATA, Keras' cache, Keras' download)
        built = build_models(None, sys.argv[1])
    except MnistEdgeError as e:
        sys.exit(f"Error: {e.message}")
    for name, path in built.items():
        print(name, path)
