"""Write the toolkit's JSON into a .tflite file's standard ``Model.metadata`` list.

The schema's metadata list (name -> buffer index) is where TFLite keeps extra data
("min_runtime_version", "CONVERSION_METADATA"); interpreters ignore unknown names, so the file
still loads everywhere, and one file carries everything a device needs. The device reads it back
with ``edge_runtime.metadata.read_metadata`` (no schema package needed there).
"""
import json

import numpy as np

from edge_runtime.metadata import METADATA_NAME


def embed_metadata(model_bytes, metadata, name=METADATA_NAME):
    """Return ``model_bytes`` with ``metadata`` (a JSON-able dict) stored under ``name``, replacing any."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    data = json.dumps(metadata, allow_nan=False, separators=(",", ":")).encode("utf-8")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    # An old entry's buffer stays behind unreferenced; conversions here always start from a fresh file.
    model.metadata = [m for m in model.metadata or [] if _name(m) != name] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def strip_metadata(model_bytes, name=METADATA_NAME):
    """``model_bytes`` without the ``name`` entry: a file derived from this one (LiteRT Quantizer copies
    the metadata list) must not carry the source's description, which says float32."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    if not any(_name(m) == name for m in model.metadata or []):
        return bytes(model_bytes)
    model.metadata = [m for m in model.metadata if _name(m) != name]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(entry):
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name
