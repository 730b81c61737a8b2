"""edge_runtime.op_placement on real models and real interpreters: what runs integer, and where.

The check must tell apart what the delegate's "fully accelerated" flag does not: an int8 file that
XNNPACK runs (ai-edge-litert) from one it declines (tflite-runtime 2.14 has no int8 kernels), and
any interpreter with its default delegates from the same one without them.
"""
import importlib.util

import pytest

from edge_runtime.interpreter import load_interpreter
from edge_runtime.op_placement import describe, op_placement
from models_for_tests import model, models  # noqa: F401 (fixtures)

HAS = {name: importlib.util.find_spec(name) is not None for name in ("ai_edge_litert", "tflite_runtime")}


def placement(path, runtime, use_xnnpack=True):
    return op_placement(load_interpreter(path, 1, runtime, use_xnnpack)[0])


@pytest.mark.parametrize("runtime", [r for r, present in HAS.items() if present])
def test_types_follow_the_file_and_no_delegate_means_builtin(models, runtime):
    int8, float32 = placement(models["int8"], runtime, False), placement(models["float32"], runtime, False)
    assert [p["op"] for p in int8] == [p["op"] for p in float32]  # the same graph, op for op
    assert {p["output"] for p in int8} == {"int8"} and {p["output"] for p in float32} == {"float32"}
    assert {p["executor"] for p in int8 + float32} == {"builtin"}
    assert "int8 builtin" in describe(int8)


@pytest.mark.skipif(not HAS["ai_edge_litert"], reason="needs ai-edge-litert")
def test_ai_edge_litert_runs_every_int8_op_on_xnnpack(models):
    assert {p["executor"] for p in placement(models["int8"], "ai_edge_litert")} == {"XNNPACK"}


@pytest.mark.skipif(not HAS["tflite_runtime"], reason="needs tflite-runtime (the edge venv)")
def test_tflite_runtime_2_14_declines_every_int8_op(models):
    assert {p["executor"] for p in placement(models["int8"], "tflite_runtime")} == {"builtin"}
    assert "XNNPACK" in {p["executor"] for p in placement(models["float32"], "tflite_runtime")}
