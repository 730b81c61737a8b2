"""Read the toolkit's JSON metadata from a .tflite file, with the standard library only.

``mnist-edge convert`` stores one UTF-8 JSON object in the TFLite schema's ``Model.metadata`` list,
under the name ``mnist_edge``, pointing at a ``Model.buffers`` entry that holds the bytes. A device
has no schema package (tflite-runtime ships none), so this walks the few flatbuffer tables needed by
hand. Field ids, from ai_edge_litert's ``schema_py_generated.py``:

    Model    { version:0, operator_codes:1, subgraphs:2, description:3, buffers:4 [Buffer],
               metadata_buffer:5, metadata:6 [Metadata], ... }
    Metadata { name:0 string, buffer:1 uint }
    Buffer   { data:0 [ubyte], offset:1 ulong, size:2 ulong }   (offset/size: data stored after
                                                                 the flatbuffer, in files > 2 GB)
Every read is bounds-checked, so a truncated or foreign file gives a one-line MnistEdgeError.
"""
import json
import struct
from pathlib import Path

from .errors import MnistEdgeError

METADATA_NAME = "mnist_edge"


class _Flatbuffer:
    """Bounds-checked little-endian reads of flatbuffer tables, vectors and strings."""

    def __init__(self, buf, source):
        self.buf, self.source = buf, source

    def scalar(self, fmt, pos):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.buf):
            raise MnistEdgeError(f"{self.source}: not a valid TFLite file (offset {pos} out of bounds)")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def deref(self, pos):
        """Follow a uoffset (relative to where it is stored)."""
        return pos + self.scalar("<I", pos)

    def field(self, table, field_id):
        """Absolute position of a table's field, or None when it is absent (default value)."""
        vtable = table - self.scalar("<i", table)
        vtable_size = self.scalar("<H", vtable)
        if vtable_size < 4:
            raise MnistEdgeError(f"{self.source}: not a valid TFLite file (bad vtable at {vtable})")
        slot = 4 + 2 * field_id
        offset = self.scalar("<H", vtable + slot) if slot < vtable_size else 0
        return table + offset if offset else None

    def vector(self, pos):
        """(start, length) of the vector a field points to."""
        start = self.deref(pos)
        length = self.scalar("<I", start)
        return start + 4, length

    def bytes(self, pos):
        start, length = self.vector(pos)
        if start + length > len(self.buf):
            raise MnistEdgeError(f"{self.source}: not a valid TFLite file (vector runs past the end)")
        return bytes(self.buf[start:start + length])

    def tables(self, table, field_id):
        """The tables of a vector-of-tables field ([] when absent)."""
        pos = self.field(table, field_id)
        if pos is None:
            return []
        start, length = self.vector(pos)
        if start + 4 * length > len(self.buf):
            raise MnistEdgeError(f"{self.source}: not a valid TFLite file (vector runs past the end)")
        return [self.deref(start + 4 * i) for i in range(length)]


def read_metadata(model, name=METADATA_NAME):
    """The JSON object embedded under ``name`` in a .tflite file (path or bytes); None if there is none."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        buf, source = memoryview(model), "model"
    else:
        source = str(model)
        try:
            buf = memoryview(Path(model).read_bytes())
        except OSError as e:
            raise MnistEdgeError(f"{source}: cannot read ({e.strerror or e})") from None
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise MnistEdgeError(f"{source}: not a TFLite model (no TFL3 identifier)")
    fb = _Flatbuffer(buf, source)
    model_table = fb.deref(0)
    if model_table < 8:  # the root table cannot overlap its own offset and the file identifier
        raise MnistEdgeError(f"{source}: not a valid TFLite file (root table at {model_table})")
    buffers = fb.tables(model_table, 4)
    for entry in fb.tables(model_table, 6):
        name_pos = fb.field(entry, 0)
        if name_pos is None or fb.bytes(name_pos) != name.encode():
            continue
        index_pos = fb.field(entry, 1)
        index = fb.scalar("<I", index_pos) if index_pos is not None else 0
        if index >= len(buffers):
            raise MnistEdgeError(f"{source}: metadata {name!r} points at buffer {index} of {len(buffers)}")
        data = _buffer_data(fb, buffers[index])
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise MnistEdgeError(f"{source}: metadata {name!r} is not UTF-8 JSON ({e})") from None
        if not isinstance(value, dict):
            raise MnistEdgeError(f"{source}: metadata {name!r} is not a JSON object")
        return value
    return None


def _buffer_data(fb, buffer):
    offset_pos, size_pos = fb.field(buffer, 1), fb.field(buffer, 2)
    offset = fb.scalar("<Q", offset_pos) if offset_pos is not None else 0
    if offset > 1:  # data stored after the flatbuffer (1 is the converter's "empty" marker)
        size = fb.scalar("<Q", size_pos) if size_pos is not None else 0
        if offset + size > len(fb.buf):
            raise MnistEdgeError(f"{fb.source}: not a valid TFLite file (buffer runs past the end)")
        return bytes(fb.buf[offset:offset + size])
    data_pos = fb.field(buffer, 0)
    return fb.bytes(data_pos) if data_pos is not None else b""
