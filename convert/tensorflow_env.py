"""TensorFlow for the workstation commands: a one-line error where it is missing, and quiet when it loads.

``train`` and ``convert`` need TensorFlow; a device installs only the edge extra, and there a raw
``ModuleNotFoundError`` traceback would not say what to do. Lives in ``convert`` (the lowest package
that needs TensorFlow) so that ``train`` can use it too without a dependency pointing down.
"""
import contextlib
import importlib.util
import io
import logging
import os
import sys
import tempfile
import warnings

from edge_runtime.errors import MnistEdgeError

INSTALL_HINT = 'pip install "mnist-edge[train-cpu]" (or "mnist-edge[train]" for the full TensorFlow wheel)'
# TensorFlow's C++ log level: 3 drops INFO, WARNING and ERROR lines. Its ERROR lines on a successful run
# (e.g. `E0000 ... use_unbounded_threadpool`) are noise; a real failure also raises a Python exception,
# which our commands report. A TF_CPP_MIN_LOG_LEVEL set by the user wins, and below 2 also keeps
# quiet_native_output from holding back the converter's chatter (for debugging TensorFlow itself).
TF_LOG_LEVEL = "3"


def quiet_tensorflow():
    """Keep TensorFlow's start-up and logging chatter out of the output; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    logging.getLogger("absl").setLevel(logging.ERROR)  # absl's Python logger, used by TensorFlow and Keras


@contextlib.contextmanager
def quiet_native_output():
    """Hold back what TensorFlow prints straight to the process's stdout and stderr inside the block.

    The TFLite converter and SavedModel export write from C++ (``fully_quantize: 0, ...``) and with
    Python prints (the SavedModel "Captures:" listing), bypassing the log level. The failures that
    matter come back as exceptions, which pass through unchanged.
    """
    if _tensorflow_logs_wanted():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # Python's own streams too: under pytest or click's test runner they are not the process's fds.
            warnings.filterwarnings("ignore", module=r"tensorflow\b")  # e.g. "Statistics for quantized inputs ..."
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _tensorflow_logs_wanted():
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL) in ("0", "1")


def tensorflow_installed():
    return importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(command):
    """Fail with one line naming the extra to install when TensorFlow is missing, else quieten it.

    Cheap (TensorFlow is not imported yet), so input checks that follow stay fast; the code that
    needs TensorFlow loads it with ``import_tensorflow``.
    """
    if not tensorflow_installed():
        raise MnistEdgeError(f"`mnist-edge {command}` needs TensorFlow, which is not installed here: {INSTALL_HINT}")
    quiet_tensorflow()


def import_tensorflow():
    """Import TensorFlow and start its runtime with the start-up lines held back.

    TensorFlow 2.21 logs its oneDNN notice at import and again when the runtime starts, through absl
    before absl is initialised (with absl's "All log messages before absl::InitializeLog()" warning),
    so no log level filters them; once started, it stays quiet at TF_LOG_LEVEL.
    """
    quiet_tensorflow()
    with quiet_native_output():
        import tensorflow as tf

        tf.constant(0)  # starts the eager runtime, the second source of start-up lines
    return tf
