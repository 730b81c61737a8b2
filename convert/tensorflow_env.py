"""TensorFlow for the workstation commands: a one-line error where it is missing, and quiet when it loads.

``train`` and ``convert`` need TensorFlow; a device installs only the edge extra, and there a raw
``ModuleNotFoundError`` traceback would not say what to do. Lives in ``convert`` (the lowest package
that needs TensorFlow) so that ``train`` can use it too without a dependency pointing down.
"""
import importlib.util
import os

from edge_runtime.errors import MnistEdgeError

INSTALL_HINT = 'pip install "mnist-edge[train-cpu]" (or "mnist-edge[train]" for the full TensorFlow wheel)'


def quiet_tensorflow():
    """Keep TensorFlow's C++ start-up chatter out of the output; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tensorflow_installed():
    return importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(command):
    """Fail with one line naming the extra to install when TensorFlow is missing, else quieten it."""
    if not tensorflow_installed():
        raise MnistEdgeError(f"`mnist-edge {command}` needs TensorFlow, which is not installed here: {INSTALL_HINT}")
    quiet_tensorflow()
