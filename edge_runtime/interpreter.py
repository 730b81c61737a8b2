"""Find a TFLite interpreter, check a model file, and load it into the interpreter.

The interpreter packages are tried in the order a device is likely to have them; TensorFlow is only
the last resort and is imported by name at call time, so importing ``edge_runtime`` never pulls it in.
tflite-runtime builds models without verifying them and crashes the process on a truncated file, so
every file is first checked, in Python, by ``edge_runtime.flatbuffer.verify``.
"""
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from .errors import MnistEdgeError, first_line
from .flatbuffer import verify
from .model_contract import NUM_CLASSES

# runtime name -> (module holding Interpreter and OpResolverType, package whose __version__ we report)
RUNTIMES = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "ai_edge_litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite_runtime"),
    "tensorflow": ("tensorflow", "tensorflow"),  # Interpreter under .lite, OpResolverType under .lite.experimental
}
KERAS_SUFFIXES = (".keras", ".h5")  # what `mnist-edge train` and Keras write; `convert` turns them into .tflite
IO_DTYPES = (np.float32, np.int8, np.uint8)  # tensor types the Classifier can feed and read
# The interpreter for 32-bit ARM and Python 3.9: frozen at 2.14, built against numpy 1.
TFLITE_RUNTIME_INSTALL = 'pip install "numpy<2" "tflite-runtime==2.14.0"'


def import_runtime(runtime="auto"):
    """Return (Interpreter class, OpResolverType enum, runtime name, version) of the first importable runtime."""
    names = list(RUNTIMES) if runtime == "auto" else [runtime]
    if runtime not in RUNTIMES and runtime != "auto":
        raise MnistEdgeError(f"unknown runtime {runtime!r}; choose auto, {', '.join(RUNTIMES)}")
    for name in names:
        module_name, package = RUNTIMES[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            if runtime != "auto":
                raise MnistEdgeError(_missing_runtime(name, e)) from None
            continue
        if name == "tensorflow":
            interpreter, resolver = module.lite.Interpreter, module.lite.experimental.OpResolverType
        else:
            interpreter, resolver = module.Interpreter, module.OpResolverType
        return interpreter, resolver, name, importlib.import_module(package).__version__
    raise MnistEdgeError("no TFLite interpreter installed: pip install ai-edge-litert (Python 3.10+ on x86_64 or "
                         f"aarch64; elsewhere {TFLITE_RUNTIME_INSTALL})")


def _missing_runtime(name, error):
    """Why ``--runtime name`` cannot load, and how to install it where it can."""
    installed = importlib.util.find_spec(RUNTIMES[name][1]) is not None
    problem = f"runtime {name} is installed but does not load ({first_line(error)})" if installed else \
        f"runtime {name} is not installed"
    if name == "tflite_runtime":
        return (f"{problem}: it needs numpy<2 and has wheels only up to Python 3.11 (this is "
                f"{sys.version_info.major}.{sys.version_info.minor}, numpy {np.__version__}); in a venv with such a "
                f"Python: {TFLITE_RUNTIME_INSTALL}, or use --runtime ai_edge_litert")
    if name == "ai_edge_litert":
        return f"{problem}: pip install ai-edge-litert (wheels for Python 3.10+ on x86_64 and aarch64)"
    return f"{problem}: pip install tensorflow-cpu, or use the device interpreter ai_edge_litert"


def load_interpreter(model_path, num_threads, runtime="auto", use_xnnpack=True, model_content=None):
    """Check ``model_path`` and return (allocated interpreter, runtime name, runtime version).

    ``use_xnnpack=False`` selects the op resolver without default delegates, to compare against
    XNNPACK. Every problem with the file is a one-line MnistEdgeError naming it. ``model_content``:
    the file's bytes from ``read_model_bytes``, when the caller has them already.
    """
    data = read_model_bytes(model_path) if model_content is None else model_content
    interpreter_class, resolver, name, version = import_runtime(runtime)
    resolver_type = resolver.BUILTIN if use_xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = interpreter_class(model_content=data, num_threads=int(num_threads),
                                        experimental_op_resolver_type=resolver_type)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise MnistEdgeError(f"{model_path}: {name} cannot load this model ({first_line(e)})") from None
    check_signature(interpreter, model_path)
    return interpreter, name, version


def read_model_bytes(model_path):
    """The file's bytes, once they look like a complete TFLite flatbuffer."""
    path = Path(model_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MnistEdgeError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise MnistEdgeError(f"{path}: is a folder, expected a .tflite file{_folder_hint(path)}") from None
    except OSError as e:
        raise MnistEdgeError(f"{path}: cannot read the model ({e.strerror or e})") from None
    if not data:
        raise MnistEdgeError(f"{path}: model file is empty")
    if len(data) < 8 or data[4:8] != b"TFL3":
        if path.suffix in KERAS_SUFFIXES or data[:4] == b"PK\x03\x04":  # .keras files are zip archives
            raise MnistEdgeError(f"{path}: is a Keras model, not TFLite; convert it first: "
                                 f"mnist-edge convert {path} --out models/")
        raise MnistEdgeError(f"{path}: not a TFLite model (no TFL3 identifier at bytes 4-8)")
    problem = verify(data)
    if problem:
        raise MnistEdgeError(f"{path}: corrupt or truncated TFLite model ({problem})")
    return data


def _folder_hint(path):
    """A training run folder needs `convert`; a folder of models needs one of its files named."""
    if (path / "model.keras").is_file():
        return f"; it holds a Keras model: convert it first with mnist-edge convert {path} --out models/"
    models = sorted(path.glob("*.tflite"))
    return f", e.g. {models[0]}" if models else ""


def check_signature(interpreter, model_path):
    """One (1,H,W,1) image in, 10 scores out, in types the Classifier converts: the toolkit's model contract."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise MnistEdgeError(f"{model_path}: expected 1 input and 1 output tensor, found {len(inputs)} and {len(outputs)}")
    shape_in, shape_out = (tuple(int(n) for n in d[0]["shape"]) for d in (inputs, outputs))
    if len(shape_in) != 4 or shape_in[0] != 1 or shape_in[3] != 1:
        raise MnistEdgeError(f"{model_path}: input must be one grayscale image (1,H,W,1), found {shape_in}")
    if shape_out != (1, NUM_CLASSES):
        raise MnistEdgeError(f"{model_path}: output must be {NUM_CLASSES} digit scores (1,{NUM_CLASSES}), found {shape_out}")
    for role, detail in (("input", inputs[0]), ("output", outputs[0])):
        if detail["dtype"] not in IO_DTYPES:
            raise MnistEdgeError(f"{model_path}: {role} type {np.dtype(detail['dtype']).name} is not supported "
                                 "(float32, int8 or uint8)")
        if detail["dtype"] != np.float32 and not detail["quantization"][0] > 0:
            raise MnistEdgeError(f"{model_path}: {role} is {np.dtype(detail['dtype']).name} without a quantization scale")
