"""Bounds-checked reading of TFLite flatbuffers, with the standard library only.

A device has no schema package (tflite-runtime ships none), so ``read_metadata`` walks the few tables
it needs by hand. tflite-runtime builds models without verifying them and crashes the process on a
truncated file, so ``verify`` first checks, with the same reader, every part of the schema the
interpreter reads. Field ids are from tensorflow/lite/schema/schema.fbs, for example:

    Model    { version:0, operator_codes:1, subgraphs:2, description:3, buffers:4 [Buffer],
               metadata_buffer:5, metadata:6 [Metadata], ... }
    Metadata { name:0 string, buffer:1 uint }
    Buffer   { data:0 [ubyte], offset:1 ulong, size:2 ulong }   (offset/size: data stored after
                                                                 the flatbuffer, in files > 2 GB)
"""
import struct

# Field kinds by table (field id -> kind). "str" is a string, "[n]" a vector of n-byte scalars,
# "[Name]" a vector of tables, "Name" a table; "table" is a union member or a rarely used table whose
# inside the check does not descend into (bounds only).
SCHEMA = {
    "Model": {1: "[OperatorCode]", 2: "[SubGraph]", 3: "str", 4: "[Buffer]", 5: "[4]", 6: "[Metadata]",
              7: "[SignatureDef]", 8: "[table]", 9: "[table]"},
    "OperatorCode": {1: "str"},
    "SubGraph": {0: "[Tensor]", 1: "[4]", 2: "[4]", 3: "[Operator]", 4: "str"},
    "Tensor": {0: "[4]", 3: "str", 4: "QuantizationParameters", 6: "table", 7: "[4]", 9: "[table]"},
    "QuantizationParameters": {0: "[4]", 1: "[4]", 2: "[4]", 3: "[8]", 5: "table"},
    "Operator": {1: "[4]", 2: "[4]", 4: "table", 5: "[1]", 7: "[1]", 8: "[4]", 12: "table"},
    "Buffer": {0: "[1]"},
    "Metadata": {0: "str"},
    "SignatureDef": {0: "[TensorMap]", 1: "[TensorMap]", 2: "str"},
    "TensorMap": {0: "str"},
    "table": {},
}


class BadFlatbuffer(Exception):
    """Something the file points at is outside it or malformed; the message says what and where."""


class Reader:
    """Little-endian reads of flatbuffer tables, vectors and strings that never leave ``data``."""

    def __init__(self, data):
        self.data, self.parsed = data, {}  # table position -> field offsets, so each vtable is read once

    def need(self, pos, size, what, align=1):
        if pos % align or pos < 0 or pos + size > len(self.data):
            raise BadFlatbuffer(f"{what} at byte {pos} is {'misaligned' if pos % align else 'outside the file'}")

    def scalar(self, fmt, pos, what="value", align=1):
        self.need(pos, struct.calcsize(fmt), what, align)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def deref(self, pos):
        """Follow the uoffset stored at ``pos`` (relative to where it is stored)."""
        return pos + self.scalar("<I", pos, "offset")

    def root(self):
        pos = self.deref(0)
        if pos < 8:  # the root table cannot overlap its own offset and the file identifier
            raise BadFlatbuffer(f"root table at byte {pos}")
        return pos

    def table(self, pos, kind="table"):
        """The field offsets of the table at ``pos`` (0: absent), once it and its vtable are inside the data."""
        if pos in self.parsed:
            return self.parsed[pos]
        vtable = pos - self.scalar("<i", pos, kind, align=4)
        vsize = self.scalar("<H", vtable, f"{kind} vtable", align=2)
        size = self.scalar("<H", vtable + 2, f"{kind} vtable")
        self.need(pos, size, kind)
        if vsize < 4 or size < 4:
            raise BadFlatbuffer(f"{kind} vtable at byte {vtable} is malformed")
        fields = [self.scalar("<H", vtable + 2 * i, f"{kind} vtable") for i in range(2, vsize // 2)]
        if any(offset >= size for offset in fields):
            raise BadFlatbuffer(f"{kind} field outside its table")
        self.parsed[pos] = fields
        return fields

    def field(self, table, field_id):
        """Absolute position of a table's field, or None when it is absent (default value)."""
        fields = self.table(table)
        return table + fields[field_id] if field_id < len(fields) and fields[field_id] else None

    def value(self, table, field_id, fmt):
        """A scalar field (0 when absent, the schema default of every field read here)."""
        pos = self.field(table, field_id)
        return 0 if pos is None else self.scalar(fmt, pos)

    def vector(self, table, field_id, item_size=1, what="vector"):
        """(start, length) of a vector field, or None when it is absent."""
        pos = self.field(table, field_id)
        if pos is None:
            return None
        start = self.deref(pos)
        length = self.scalar("<I", start, what, align=4)
        self.need(start + 4, length * item_size, what)
        return start + 4, length

    def string(self, table, field_id):
        """A string field's bytes (its NUL terminator inside the data too), or None when it is absent."""
        span = self.vector(table, field_id, 1, "string")
        if span is None:
            return None
        start, length = span
        self.need(start, length + 1, "string")
        return bytes(self.data[start:start + length])

    def tables(self, table, field_id):
        """The tables of a vector-of-tables field ([] when absent)."""
        start, length = self.vector(table, field_id, 4) or (0, 0)
        return [self.deref(start + 4 * i) for i in range(length)]


def buffer_span(reader, buffer):
    """(start, length) of a Buffer table's bytes: its data vector, or a span after the flatbuffer."""
    offset = reader.value(buffer, 1, "<Q")
    if offset <= 1:  # in the flatbuffer (1 is the converter's "empty" marker)
        return reader.vector(buffer, 0) or (0, 0)
    size = reader.value(buffer, 2, "<Q")
    reader.need(offset, size, "buffer data")
    return offset, size


def verify(data):
    """None if every table, vector and string the interpreter reads lies inside ``data``, else why not."""
    reader = Reader(data)
    try:
        _check(reader, reader.root(), "Model")
    except BadFlatbuffer as e:
        return str(e)
    return None


def _check(reader, table, kind):
    reader.table(table, kind)
    for field_id, child in SCHEMA[kind].items():
        if child == "str":
            reader.string(table, field_id)
        elif child[1:-1].isdigit():
            reader.vector(table, field_id, int(child[1:-1]))
        elif child.startswith("["):
            for item in reader.tables(table, field_id):
                _check(reader, item, child[1:-1])
        elif (pos := reader.field(table, field_id)) is not None:
            _check(reader, reader.deref(pos), child)
    if kind == "Buffer":
        buffer_span(reader, table)
