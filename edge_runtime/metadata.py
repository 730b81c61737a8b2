"""Read the toolkit's JSON metadata from a .tflite file, with the standard library only.

``mnist-edge convert`` stores one UTF-8 JSON object in the TFLite schema's ``Model.metadata`` list,
under the name ``mnist_edge``, pointing at a ``Model.buffers`` entry that holds the bytes (field ids in
``edge_runtime.flatbuffer``). Every read is bounds-checked, so a truncated or foreign file gives a
one-line MnistEdgeError.
"""
import json
import math
from pathlib import Path

from .errors import MnistEdgeError
from .flatbuffer import BadFlatbuffer, Reader, buffer_span
from .input_files import MAX_MODEL_BYTES, read_regular, shown
from .metrics import DEFAULT_THRESHOLD

METADATA_NAME = "mnist_edge"


def read_metadata(model, name=METADATA_NAME, source=None):
    """The JSON object embedded under ``name`` in a .tflite file (path or bytes); None if there is none.

    ``source`` names the file in errors when ``model`` is its bytes.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        buf, source = memoryview(model), shown(source or "model")
    else:
        source = shown(model)
        buf = memoryview(read_regular(Path(model), ".tflite model file", MAX_MODEL_BYTES))
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise MnistEdgeError(f"{source}: not a TFLite model (no TFL3 identifier)")
    fb = Reader(buf)
    try:
        model = fb.root()
        buffers = fb.tables(model, 4)
        entry = next((e for e in fb.tables(model, 6) if fb.string(e, 0) == name.encode()), None)
        if entry is None:
            return None
        index = fb.value(entry, 1, "<I")
        if index >= len(buffers):
            raise MnistEdgeError(f"{source}: metadata {name!r} points at buffer {index} of {len(buffers)}")
        start, size = buffer_span(fb, buffers[index])
    except BadFlatbuffer as e:
        raise MnistEdgeError(f"{source}: not a valid TFLite file ({e})") from None
    try:
        value = json.loads(bytes(buf[start:start + size]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise MnistEdgeError(f"{source}: metadata {name!r} is not UTF-8 JSON ({e})") from None
    except RecursionError:
        raise MnistEdgeError(f"{source}: metadata {name!r} is JSON nested too deeply to read") from None
    if not isinstance(value, dict):
        raise MnistEdgeError(f"{source}: metadata {name!r} is not a JSON object")
    return value


def missing_metadata_warning(model_path, threshold=None):
    """The one-line warning for a model without the toolkit's metadata: what is assumed instead."""
    return (f"Warning: {model_path} has no mnist-edge metadata: every digit's threshold is "
            f"{DEFAULT_THRESHOLD if threshold is None else threshold:g} and its 10 outputs are taken as independent "
            "per-digit sigmoid scores (a softmax classifier's answers would be meaningless)")


# metadata "format" -> the input tensor type a model of that format has
FORMAT_INPUT = {"float32": "float32", "float16": "float32", "dynamic": "float32", "int8": "int8", "uint8": "uint8",
                "w8a16": "int16"}


def check_metadata(metadata, input_detail, output_detail, source):
    """Refuse metadata that contradicts the tensors (copied from another model, or edited): the
    format, input shape and quantization it records must be the ones the file has."""
    source = shown(source)

    def refuse(what):
        raise MnistEdgeError(f"{source}: the embedded metadata does not match the model: {what}; "
                             "re-embed it with `mnist-edge convert`")

    tensor_in = input_detail["dtype"].__name__
    fmt = metadata.get("format")
    if fmt is not None and FORMAT_INPUT.get(fmt if isinstance(fmt, str) else None) != tensor_in:
        refuse(f"format {fmt!r} but the input tensor is {tensor_in}")
    shape = metadata.get("input_shape")
    actual = [int(n) for n in input_detail["shape"][1:]]
    if shape is not None and shape != actual:
        refuse(f"input shape {shape} but the input tensor is {actual}")
    recorded = metadata.get("quantization")
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        refuse("quantization is not an object")
    for role, detail in (("input", input_detail), ("output", output_detail)):
        entry = recorded.get(role)
        if entry is None:
            continue
        if not isinstance(entry, dict) or entry.get("dtype") != detail["dtype"].__name__:
            refuse(f"{role} quantization {entry!r} but the {role} tensor is {detail['dtype'].__name__}")
        scale, zero = detail["quantization"]
        if detail["dtype"].__name__ != "float32" and not (
                _number(entry.get("scale")) and math.isclose(entry["scale"], scale, rel_tol=1e-6)
                and entry.get("zero_point") == zero):
            refuse(f"{role} scale {entry.get('scale')!r}, zero point {entry.get('zero_point')!r} but the "
                   f"{role} tensor has {scale:g}, {zero}")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
