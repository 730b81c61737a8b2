"""Read the toolkit's JSON metadata from a .tflite file, with the standard library only.

``mnist-edge convert`` stores one UTF-8 JSON object in the TFLite schema's ``Model.metadata`` list,
under the name ``mnist_edge``, pointing at a ``Model.buffers`` entry that holds the bytes (field ids in
``edge_runtime.flatbuffer``). Every read is bounds-checked, so a truncated or foreign file gives a
one-line MnistEdgeError.
"""
import json
from pathlib import Path

from .errors import MnistEdgeError
from .flatbuffer import BadFlatbuffer, Reader, buffer_span
from .metrics import DEFAULT_THRESHOLD

METADATA_NAME = "mnist_edge"


def read_metadata(model, name=METADATA_NAME, source=None):
    """The JSON object embedded under ``name`` in a .tflite file (path or bytes); None if there is none.

    ``source`` names the file in errors when ``model`` is its bytes.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        buf, source = memoryview(model), str(source or "model")
    else:
        source = str(model)
        try:
            buf = memoryview(Path(model).read_bytes())
        except OSError as e:
            raise MnistEdgeError(f"{source}: cannot read ({e.strerror or e})") from None
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
    if not isinstance(value, dict):
        raise MnistEdgeError(f"{source}: metadata {name!r} is not a JSON object")
    return value


def missing_metadata_warning(model_path, threshold=None):
    """The one-line warning for a model without the toolkit's metadata: what is assumed instead."""
    return (f"Warning: {model_path} has no mnist-edge metadata: every digit's threshold is "
            f"{DEFAULT_THRESHOLD if threshold is None else threshold:g} and its 10 outputs are taken as independent "
            "per-digit sigmoid scores (a softmax classifier's answers would be meaningless)")
