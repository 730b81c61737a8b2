"""mnist-edge's device runtime: numpy and a TFLite interpreter, never TensorFlow.

The public names load on first use (PEP 562), so reading ``__version__`` (``mnist-edge --help``)
does not pay for numpy, Pillow or an interpreter.
"""
import importlib

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {"Classifier": "classifier", "Prediction": "classifier", "default_model_path": "classifier",
            "load_images": "images", "read_metadata": "metadata", "prepare": "preprocess",
            "PictureWarning": "preprocess"}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
