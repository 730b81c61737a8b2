"""edge_runtime.read_metadata: the stdlib flatbuffer reader against files written with the real schema.

Files are built with ai_edge_litert's schema package (no TensorFlow needed); without it (the edge
venv) only the garbage-input tests run, and test_convert's tflite-runtime subprocess reads real
converted files there.
"""
import json

import numpy as np
import pytest

from conftest import REPO
from edge_runtime.errors import MnistEdgeError
from edge_runtime.metadata import read_metadata

META = {"format": "int8", "thresholds": [0.5, 0.25] * 5, "class_names": list("0123456789"),
        "note": "ünïcödé ✓", "nested": {"x": [1, 2.5, None, True]}}


@pytest.fixture(scope="module")
def schema():
    return pytest.importorskip("ai_edge_litert.schema_py_generated")


def pack(schema, buffers=(), metadata=(), extra=b""):
    """A minimal valid TFLite flatbuffer: empty subgraph, ``buffers`` (BufferT), ``metadata`` (name, index)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = schema.ModelT()
    model.version = 3
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], [], []
    model.subgraphs, model.operatorCodes = [graph], []
    model.buffers = [schema.BufferT(), *buffers]
    model.metadata = []
    for name, index in metadata:
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, index
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) + extra


def data_buffer(schema, data):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    return buffer


@pytest.fixture(scope="module")
def embedded(schema):
    from convert.embed import embed_metadata

    return embed_metadata(pack(schema, [data_buffer(schema, b"\x01\x02")], [("min_runtime_version", 1)]), META)


def test_round_trip_from_bytes_and_path(embedded, tmp_path):
    assert read_metadata(embedded) == META
    path = tmp_path / "model.tflite"
    path.write_bytes(embedded)
    assert read_metadata(path) == META
    assert read_metadata(str(path)) == META


def test_embedding_again_replaces_the_entry(embedded):
    from convert.embed import embed_metadata

    assert read_metadata(embed_metadata(embedded, {"v": 2})) == {"v": 2}


def test_model_without_the_entry_gives_none(schema):
    assert read_metadata(pack(schema)) is None
    assert read_metadata(pack(schema, [data_buffer(schema, b"{}")], [("other", 1)])) is None


def test_buffer_stored_after_the_flatbuffer(schema):
    """Files over 2 GB keep buffer data past the flatbuffer, addressed by offset and size."""
    data = json.dumps(META).encode()

    def external(offset):
        buffer = schema.BufferT()
        buffer.offset, buffer.size = offset, len(data)
        return pack(schema, [buffer], [("mnist_edge", 1)])

    length = len(external(2 ** 40))  # u64 fields: the length does not depend on the value
    model = external(length) + data
    assert len(model) == length + len(data)
    assert read_metadata(model) == META


@pytest.mark.parametrize("payload, message", [(b"not json", "not UTF-8 JSON"), (b"\xff\xfe", "not UTF-8 JSON"),
                                              (b"[1, 2]", "not a JSON object")])
def test_bad_payload(schema, payload, message):
    with pytest.raises(MnistEdgeError, match=message):
        read_metadata(pack(schema, [data_buffer(schema, payload)], [("mnist_edge", 1)]))


def test_buffer_index_out_of_range(schema):
    with pytest.raises(MnistEdgeError, match="points at buffer 7 of 1"):
        read_metadata(pack(schema, [], [("mnist_edge", 7)]))


@pytest.mark.parametrize("data", [b"", b"TFL3", b"\x00" * 4 + b"TFL3", b"\x10\x00\x00\x00TFL3\x00\x00",
                                  b"PK\x03\x04" + b"\x00" * 60, bytes(range(256)) * 4])
def test_garbage_is_a_clear_error(data):
    with pytest.raises(MnistEdgeError, match="TFLite"):
        read_metadata(data)


def test_missing_file(tmp_path):
    with pytest.raises(MnistEdgeError, match="nope.tflite: no such file"):
        read_metadata(tmp_path / "nope.tflite")


def test_truncated_or_corrupted_files_never_crash(embedded):
    """Every cut and 400 random byte flips: the metadata, None, or a MnistEdgeError, nothing else."""
    for cut in range(0, len(embedded), 7):
        try:
            assert read_metadata(embedded[:cut]) in (META, None)
        except MnistEdgeError:
            pass
    rng = np.random.default_rng(0)
    for _ in range(400):
        data = bytearray(embedded)
        data[rng.integers(8, len(data))] = rng.integers(256)
        try:
            result = read_metadata(bytes(data))
        except MnistEdgeError:
            continue
        assert result is None or isinstance(result, dict)


def test_no_interpreter_or_schema_import():
    import subprocess
    import sys

    code = ("import sys, edge_runtime.metadata; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'ai_edge_litert', 'tflite_runtime', 'flatbuffers')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
