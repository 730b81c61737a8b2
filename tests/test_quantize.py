"""Both quantizers (`convert --quantizer converter|litert`, and `quantize` without TensorFlow) on a
tiny CNN trained for seconds on real composed MNIST images, with a head both keep integer.

Checks what the files are (int8 I/O, no float tensor between input and output, no REDUCE_MAX,
metadata inside), that the bounds are enforced, the bad-input paths, which ops XNNPACK takes,
and that the quantization report's per-layer figures match an independent computation.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, needs_tf
from edge_runtime.dataset_file import load_labelled_npz, save_labelled_npz
from edge_runtime.metadata import read_metadata
from test_convert import data_dir, save_run, trained_run  # noqa: F401  (data_dir is a fixture)

pytestmark = [needs_tf, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("litert_quantizer")

INTEGER = ("int8", "w8a16")


def cli(*args):
    from train.cli import main

    return CliRunner().invoke(main, [*map(str, args)])


def integer_head_cnn():
    """Three strided convs to an 8x8 map, then the head both quantizers keep integer:
    MaxPooling2D over the whole map + GlobalAveragePooling2D (a squeeze of the 1x1 map)."""
    import keras

    inputs = keras.Input((64, 64, 1))
    h = inputs
    for filters in (16, 32, 64):
        h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D(pool_size=8)(h))
    return keras.Model(inputs, keras.layers.Activation("sigmoid")(keras.layers.Dense(10)(h)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):  # noqa: F811
    import keras

    keras.utils.set_random_seed(0)
    return trained_run(tmp_path_factory.mktemp("run"), integer_head_cnn(), data_dir)


@pytest.fixture(scope="module", params=["converter", "litert"])
def converted(request, tmp_path_factory, run_dir):
    out = tmp_path_factory.mktemp(request.param)
    result = cli("convert", run_dir, "--out", out, "--formats", "float32,int8,w8a16,dynamic",
                 "--quantizer", request.param)
    assert result.exit_code == 0, result.output
    return request.param, out, result.output


def test_integer_files_are_fully_integer_with_integer_io(converted):
    from convert.verify import inspect

    quantizer, out, output = converted
    for fmt, dtype in (("int8", "int8"), ("w8a16", "int16")):
        s = inspect((out / f"model_{fmt}.tflite").read_bytes())
        assert s["fully_integer"] and s["float_ops"] == [], (quantizer, fmt, s["ops"])
        assert "REDUCE_MAX" not in s["ops"] and "DEQUANTIZE" not in s["ops"] and "MAX_POOL_2D" in s["ops"]
        assert s["quantization"]["input"]["dtype"] == s["quantization"]["output"]["dtype"] == dtype
    q = inspect((out / "model_int8.tflite").read_bytes())["quantization"]
    assert q["input"]["scale"] == pytest.approx(1 / 255) and q["input"]["zero_point"] == -128  # q = pixel - 128
    assert q["output"]["scale"] == pytest.approx(1 / 256) and q["output"]["zero_point"] == -128


def test_no_float_tensor_between_input_and_output(converted):
    """Every tensor an op reads or writes, as the interpreter sees it, is integer in the int8 file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(converted[1] / "model_int8.tflite"),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    for op in it._get_ops_details():
        assert all(np.dtype(t).kind in "iu" for t in op["operand_types"] + op["result_types"]), op


def test_metadata_and_report_are_written(converted, run_dir):
    quantizer, out, output = converted
    source = json.loads((run_dir / "metadata.json").read_text())
    for fmt in ("int8", "w8a16", "dynamic"):
        meta = read_metadata(out / f"model_{fmt}.tflite")
        assert meta["format"] == fmt and meta["thresholds_float"] == pytest.approx(source["thresholds"])
        assert meta["calibration"]["samples"] == 300 and meta["verification"]["agreement"]["num_images"] == 500
        assert ("litert-quantizer" if quantizer == "litert" else "TFLiteConverter") in meta["quantizer"]
    report = json.loads((out / "quant_report.json").read_text())["formats"]
    assert sorted(report) == ["dynamic", "int8", "w8a16"]
    entry = report["int8"]
    assert [r["op"] for r in entry["layers"]][:2] == ["INPUT", "CONV_2D"] and entry["layers"][-1]["op"] == "LOGISTIC"
    assert entry["layers"][0]["snr_db"] is None  # the input quantization is exact: q = pixel - 128
    assert all(r["dtype"] == "int8" for r in entry["layers"])
    assert all(0.05 < r["rmse_steps"] < 5 and 15 < r["snr_db"] < 60 for r in entry["layers"][1:])
    assert len(entry["dominant"]) >= 1 and len(entry["digits"]["delta_f1"]) == 10
    assert all(0 <= d <= 0.5 for d in entry["digits"]["threshold_to_step"])
    assert "quantization report, model_int8.tflite" in output and "largest losses" in output
    assert (out / "quant_report.md").read_text().startswith("# Quantization report")


def test_xnnpack_takes_every_int8_op_and_no_int16_one(converted):
    """The execution plan, not the delegate's 'fully accelerated' flag: XNNPACK has no int16 conv kernels."""
    entry = json.loads((converted[1] / "quant_report.json").read_text())["formats"]
    assert {(p["output"], p["executor"]) for p in entry["int8"]["op_placement"]} == {("int8", "XNNPACK")}
    assert {p["executor"] for p in entry["w8a16"]["op_placement"] if p["op"] in ("CONV_2D", "FULLY_CONNECTED")} \
        == {"builtin"}
    from edge_runtime.interpreter import load_interpreter
    from edge_runtime.op_placement import op_placement

    reference = load_interpreter(converted[1] / "model_int8.tflite", 1, "ai_edge_litert", use_xnnpack=False)[0]
    assert {p["executor"] for p in op_placement(reference)} == {"builtin"}


def test_both_quantizers_agree_on_the_same_float_model(run_dir, data_dir, tmp_path):  # noqa: F811
    """Same float32 file, same calibration images: int8 scores within a few output steps of each other."""
    from edge_runtime.classifier import Classifier

    outs = {}
    for quantizer in ("converter", "litert"):
        outs[quantizer] = tmp_path / quantizer
        assert cli("convert", run_dir, "--out", outs[quantizer], "--formats", "int8",
                   "--quantizer", quantizer).exit_code == 0
    val = load_labelled_npz(data_dir / "val.npz")[0][:200]
    a, b = (Classifier(outs[q] / "model_int8.tflite").scores(val) for q in outs)
    assert np.abs(a - b).mean() < 2 / 256


def test_report_layers_match_an_independent_dequantize_and_compare(converted, data_dir):  # noqa: F811
    """tf.lite's interpreter, tensors matched by name, dequantized by hand, on 6 images."""
    import tensorflow as tf

    from convert.quant_report import layer_errors

    out = converted[1]
    images = load_labelled_npz(data_dir / "val.npz")[0][:6]
    rows = layer_errors((out / "model_float32.tflite").read_bytes(), (out / "model_int8.tflite").read_bytes(), images)
    values = {}
    for fmt in ("float32", "int8"):
        it = tf.lite.Interpreter(model_path=str(out / f"model_{fmt}.tflite"), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        inp = it.get_input_details()[0]
        it.resize_tensor_input(inp["index"], [6, 64, 64, 1])
        it.allocate_tensors()
        x = images[..., None].astype(np.float32) / 255
        it.set_tensor(inp["index"], x if fmt == "float32" else (images[..., None].astype(np.int16) - 128).astype(np.int8))
        it.invoke()
        values[fmt] = {}
        for t in it.get_tensor_details():
            if t["name"].split(";")[0].endswith(tuple(r["name"] for r in rows[1:])) and t["dtype"] != np.int32:
                v = it.get_tensor(t["index"]).astype(np.float64)
                scale, zero = t["quantization"]
                values[fmt][t["name"].split(";")[0]] = ((v - zero) * scale if scale else v, scale)
    checked = 0
    for name, (q, step) in values["int8"].items():
        if name not in values["float32"] or not step:
            continue
        f = values["float32"][name][0]
        row = next(r for r in rows if name.endswith(r["name"]))
        rmse = np.sqrt(np.mean((q - f) ** 2))
        assert row["rmse_steps"] == pytest.approx(rmse / step, rel=1e-4), name  # float kernels differ in round-off
        assert row["snr_db"] == pytest.approx(10 * np.log10(np.sum(f ** 2) / np.sum((q - f) ** 2)), rel=1e-4), name
        checked += 1
    assert checked >= 4


def test_litert_cannot_quantize_a_global_max_pool_head_and_says_which_op(tmp_path, data_dir):  # noqa: F811
    from test_convert import tiny_cnn

    run = save_run(tmp_path / "run", tiny_cnn(), data_dir, [0.5] * 10)
    out = tmp_path / "out"
    result = cli("convert", run, "--out", out, "--formats", "int8", "--quantizer", "litert")
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: int8: not fully integer: DEQUANTIZE, QUANTIZE, REDUCE_MAX read or write float")
    assert "GlobalMaxPooling2D" in error
    assert not (out / "model_int8.tflite").exists() and not (out / "quant_report.json").exists()


def test_bounds_are_enforced_calibration_on_dim_images(run_dir, data_dir, tmp_path):  # noqa: F811
    """Calibrated on images dimmed to 0..127, the input scale misses 1/255: refused, old file kept."""
    images, labels = load_labelled_npz(data_dir / "train.npz")
    save_labelled_npz(tmp_path / "dim.npz", images // 2, labels)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.tflite").write_bytes(b"the previous, verified file")
    for quantizer in ("converter", "litert"):
        result = cli("convert", run_dir, "--out", out, "--formats", "int8", "--quantizer", quantizer,
                     "--calib", tmp_path / "dim.npz")
        assert result.exit_code == 1, result.output
        assert "the calibration images do not span pixel values 0..255" in result.output.splitlines()[-1]
    assert (out / "model_int8.tflite").read_bytes() == b"the previous, verified file"
    assert sorted(p.name for p in out.iterdir()) == [".mnist-edge.lock", "model_int8.tflite"]  # no temp files


def _quantize_without(modules, *args):
    """`mnist-edge quantize` in a subprocess where ``modules`` cannot be imported."""
    blocker = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    code = f"import sys; {blocker}from train.cli import main; main([*sys.argv[1:]], prog_name='mnist-edge')"
    return subprocess.run([sys.executable, "-c", code, "quantize", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def test_quantize_verb_runs_without_tensorflow_and_matches_convert(converted, data_dir, tmp_path):  # noqa: F811
    from edge_runtime.classifier import Classifier

    quantizer, out, _ = converted
    if quantizer != "litert":
        pytest.skip("compared with the litert conversion")
    run = _quantize_without(["tensorflow", "keras"], out / "model_float32.tflite", "--calib", data_dir / "val.npz",
                            "--out", tmp_path, "--formats", "int8")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mnist-edge.lock", "model_int8.tflite", "quant_report.json",
                                                           "quant_report.md"]
    images = load_labelled_npz(data_dir / "val.npz")[0][:100]
    mine, theirs = (Classifier(p / "model_int8.tflite").scores(images) for p in (tmp_path, out))
    assert np.array_equal(mine, theirs)  # same float file, same seeded calibration images
    meta = read_metadata(tmp_path / "model_int8.tflite")
    assert meta["format"] == "int8" and "source_float32_sha256" in meta and meta["class_names"][0] == "0"


def test_quantize_bad_input_is_one_line_and_writes_nothing(converted, data_dir, tmp_path):  # noqa: F811
    out = converted[1]
    target = tmp_path / "out"
    images, labels = load_labelled_npz(data_dir / "val.npz")
    save_labelled_npz(tmp_path / "small.npz", images[:, :32, :32], labels)
    cases = [
        ((out / "model_int8.tflite", "--calib", data_dir / "val.npz"), "not a float32 model (it holds INT8"),
        ((out / "model_float32.tflite", "--calib", tmp_path / "small.npz"), "images are 32x32 but the model takes 64x64"),
        ((out / "model_float32.tflite", "--calib", data_dir / "test.npz"), "refusing the test split"),
    ]
    for args, message in cases:
        result = cli("quantize", *args, "--out", target)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not target.exists()
    run = _quantize_without(["litert_quantizer"], out / "model_float32.tflite", "--calib", data_dir / "val.npz",
                            "--out", target)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "pip install 'litert-quantizer>=0.11'" in run.stderr.strip().splitlines()[-1] and not target.exists()


def test_quantize_verb_imports_no_tensorflow():
    code = ("import sys, convert.quantize, convert.publish; "
            "assert not any(m.startswith(('tensorflow', 'keras')) for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
