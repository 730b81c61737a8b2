"""Shared fixtures: the real MNIST copy CI points us at, and what TensorFlow-free venvs skip."""
import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from convert.tensorflow_env import quiet_tensorflow
from edge_runtime.errors import MnistEdgeError
from train.mnist import KERAS_CACHE, load_mnist

quiet_tensorflow()  # before any test imports TensorFlow: its C++ log lines are noise in test output
REPO = Path(__file__).resolve().parents[1]
HAS_TF = importlib.util.find_spec("tensorflow") is not None

# Tests that train or convert need TensorFlow; the edge-only venv skips them.
needs_tf = pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow (the train extra)")


def edge_venv_runtime(python):
    """The interpreter .ci/run gave the edge venv: tflite_runtime where it has a wheel, else ai_edge_litert."""
    has_tflite = subprocess.run([str(python), "-c", "import tflite_runtime.interpreter"], capture_output=True)
    return "tflite_runtime" if has_tflite.returncode == 0 else "ai_edge_litert"


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST copy tests run on: $MNIST_EDGE_DATA, else ../shared/data/mnist beside the repo (as CI has),
    else Keras' cached mnist.npz, fetched by the project's own lookup when it is not there yet."""
    given = os.environ.get("MNIST_EDGE_DATA")
    path = Path(given) if given else REPO.parent / "shared" / "data" / "mnist"
    if given or path.exists():
        if not path.exists():
            pytest.fail(f"MNIST_EDGE_DATA={path} does not exist; point it at a folder with the four IDX files")
        return path
    try:
        load_mnist()
    except MnistEdgeError as e:
        pytest.fail(e.message)
    return KERAS_CACHE.expanduser()


def kill_when(proc, folder, pattern, what, timeout=300):
    """SIGKILL ``proc`` the moment ``folder`` holds a file matching ``pattern`` (``what``, in words):
    a crash at exactly that point of its work."""
    deadline = time.monotonic() + timeout
    try:
        while not list(folder.glob(pattern)):
            assert proc.poll() is None, f"the command finished before it could be killed ({what} never seen)"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
