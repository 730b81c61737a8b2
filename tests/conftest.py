"""Shared fixtures: the real MNIST copy CI points us at, and what TensorFlow-free venvs skip."""
import importlib.util
import os
from pathlib import Path

import pytest

from convert.tensorflow_env import quiet_tensorflow

quiet_tensorflow()  # before any test imports TensorFlow: its C++ log lines are noise in test output
REPO = Path(__file__).resolve().parents[1]
HAS_TF = importlib.util.find_spec("tensorflow") is not None

# Tests that train or convert need TensorFlow; the edge-only venv skips them.
needs_tf = pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow (the train extra)")


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST copy tests run on: $MNIST_EDGE_DATA, else ../shared/data/mnist beside the repo."""
    path = Path(os.environ.get("MNIST_EDGE_DATA") or REPO.parent / "shared" / "data" / "mnist")
    if not path.exists():
        pytest.fail(f"MNIST not found at {path}; set MNIST_EDGE_DATA to a folder with the four idx files")
    return path
