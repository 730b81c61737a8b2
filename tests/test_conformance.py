"""Runtime conformance: the same files under several interpreters, compared image by image."""
import importlib.util
import os
from pathlib import Path

import pytest

from benchmarks.conformance import conformance, parse_runtimes
from edge_runtime.dataset_file import save_labelled_npz
from edge_runtime.errors import MnistEdgeError
from models_for_tests import models, sample_images  # noqa: F401  (pytest fixture)

EDGE_PYTHON = Path(os.environ.get("MNIST_EDGE_EDGE_PYTHON", "/work/main/.venv-edge/bin/python"))


@pytest.fixture(scope="module")
def data(mnist_dir, tmp_path_factory):
    images, labels = sample_images(mnist_dir, num=300, seed=5)
    path = tmp_path_factory.mktemp("conformance") / "test.npz"
    save_labelled_npz(path, images, labels)
    return path, images


def _need(*names):
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)}")


def test_parse_runtimes():
    assert parse_runtimes("ai_edge_litert, tflite_runtime=/v/bin/python") == [
        ("ai_edge_litert", None), ("tflite_runtime", "/v/bin/python")]
    with pytest.raises(MnistEdgeError, match="unknown runtime 'tflite'"):
        parse_runtimes("ai_edge_litert,tflite")
    with pytest.raises(MnistEdgeError, match="at least two"):
        parse_runtimes("ai_edge_litert")


def test_litert_against_tensorflow(models, data):  # noqa: F811
    _need("ai_edge_litert", "tensorflow")
    path, images = data
    result = conformance([models["float32"], models["int8"]], path, images,
                         parse_runtimes("ai_edge_litert,tensorflow"))
    assert result["reference"] == "ai_edge_litert"
    assert [r["version"] is not None for r in result["runtimes"]] == [True, True]
    float32, int8 = result["models"]
    assert float32["output_step"] is None and int8["output_step"] == pytest.approx(1 / 256)
    for m in result["models"]:
        (c,) = m["comparisons"]
        assert c["runtime"] == "tensorflow" and c["max_abs_diff"] >= 0
        assert c["digit_set_disagreements"] <= c["images_with_different_scores"] <= len(images)
    assert int8["comparisons"][0]["max_steps"] == round(int8["comparisons"][0]["max_abs_diff"] * 256)


def test_missing_runtime_is_reported_not_fatal(models, data):  # noqa: F811
    path, images = data
    here = [n for n in ("ai_edge_litert", "tflite_runtime", "tensorflow") if importlib.util.find_spec(n)]
    missing = [n for n in ("ai_edge_litert", "tflite_runtime", "tensorflow") if n not in here]
    if not missing:
        pytest.skip("every runtime is installed here")
    result = conformance([models["int8"]], path, images, parse_runtimes(f"{here[0]},{missing[0]}"))
    assert result["runtimes"][1]["note"].startswith("not installed in this Python")
    assert result["reference"] is None and result["models"] == [] and "nothing compared" in result["note"]


def test_other_venv_in_a_child_process(models, data):  # noqa: F811
    """tflite-runtime lives in the numpy<2 venv: run it there and compare with this venv's runtime."""
    _need("ai_edge_litert")
    if not EDGE_PYTHON.is_file():
        pytest.skip(f"no device venv at {EDGE_PYTHON} (set MNIST_EDGE_EDGE_PYTHON)")
    path, images = data
    result = conformance([models["float32"], models["int8"]], path, images,
                         parse_runtimes(f"ai_edge_litert,tflite_runtime={EDGE_PYTHON}"))
    assert [r["name"] for r in result["runtimes"]] == ["ai_edge_litert", "tflite_runtime"]
    assert result["runtimes"][1]["version"].startswith("2.14") and result["runtimes"][1]["python"] == str(EDGE_PYTHON)
    float32, int8 = result["models"]
    assert float32["comparisons"][0]["max_abs_diff"] < 1e-5  # float kernels agree to round-off
    c = int8["comparisons"][0]
    assert c["max_steps"] >= 0 and len(c["disagreeing_images"]) == min(c["digit_set_disagreements"], 20)
    broken = conformance([models["int8"]], path, images, parse_runtimes("ai_edge_litert,tflite_runtime=/nonexistent/python"))
    assert broken["runtimes"][1]["note"].startswith("failed: cannot run /nonexistent/python")


def test_interpreter_against_its_own_reference_kernels(models, data):  # noqa: F811
    """NAME:reference turns XNNPACK off. tflite-runtime 2.14 has no int8 XNNPACK kernels, so its int8
    scores cannot change; ai-edge-litert's XNNPACK int8 kernels may round differently."""
    here = next(n for n in ("tflite_runtime", "ai_edge_litert") if importlib.util.find_spec(n))
    path, images = data
    result = conformance([models["float32"], models["int8"]], path, images,
                         parse_runtimes(f"{here},{here}:reference"))
    assert [r["name"] for r in result["runtimes"]] == [here, f"{here}:reference"]
    float32, int8 = (m["comparisons"][0] for m in result["models"])
    assert float32["max_abs_diff"] < 1e-5
    if here == "tflite_runtime":
        assert int8["max_steps"] == 0 and int8["images_with_different_scores"] == 0
    with pytest.raises(MnistEdgeError, match="optionally with :reference"):
        parse_runtimes(f"{here},{here}:fast")
