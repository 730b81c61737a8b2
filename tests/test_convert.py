"""`mnist-edge convert` on a tiny CNN trained for seconds on real composed MNIST images.

One module-scoped run converts to every format through the CLI; the tests then load each file
in ai-edge-litert, tf.lite and (in the numpy<2 edge venv, as a subprocess) tflite-runtime, and
check the failure paths: an op with no int8 kernel, corrupt input, the test split as calibration.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, edge_venv_runtime, kill_when, needs_tf
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.metadata import read_metadata

pytestmark = needs_tf

FORMATS = ("float32", "int8", "dynamic", "float16")
EDGE_PYTHON = os.environ.get("MNIST_EDGE_EDGE_PYTHON") or "/work/venvs/edge/bin/python"


def cli(*args):
    from train.cli import main

    return CliRunner().invoke(main, ["convert", *map(str, args)])


def tiny_cnn(extra_layer=None):
    """Three strided convs (receptive field 15 px: enough for single digits), max-pool, 10 sigmoids."""
    import keras

    inputs = keras.Input((64, 64, 1))
    h = inputs
    for filters in (16, 32, 64):
        h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)
    if extra_layer is not None:
        h = extra_layer(h)
    return keras.Model(inputs, keras.layers.Activation("sigmoid")(keras.layers.Dense(10)(h)))


def save_run(run_dir, model, data_dir, thresholds):
    """A RUN_DIR as `mnist-edge train` writes it (the keys convert reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    info = json.loads((data_dir / "dataset.json").read_text())
    meta = {"arch": "tiny", "input_shape": [64, 64, 1], "class_names": [str(d) for d in range(10)],
            "thresholds": [float(t) for t in thresholds], "dataset": info, "options": {"data": str(data_dir)},
            "preprocessing": {"scale": 1 / 255, "polarity": "light-on-dark"}}
    (run_dir / "metadata.json").write_text(json.dumps(meta))
    return run_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mnist_dir):
    from train.dataset_folder import write_dataset

    out = tmp_path_factory.mktemp("data")
    # One digit per image: a CNN trained for seconds reaches val macro-F1 ~0.8 on that, so its
    # scores are decisive enough for the real agreement bounds to apply.
    write_dataset(out, sizes={"train": 2500, "val": 500, "test": 200}, seed=0, mnist_path=mnist_dir, max_digits=1)
    return out


def trained_run(run_dir, model, data_dir):
    """Train ``model`` for seconds on the data set, tune its thresholds on val, and save it as a RUN_DIR
    (seed Keras before building ``model``: that seed also orders its training)."""
    import keras
    from edge_runtime.metrics import tune_thresholds

    x, y = load_labelled_npz(data_dir / "train.npz")
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(x[..., None] / np.float32(255), y, batch_size=32, epochs=6, verbose=0)
    vx, vy = load_labelled_npz(data_dir / "val.npz")
    thresholds = tune_thresholds(vy, model.predict(vx[..., None] / np.float32(255), verbose=0))
    return save_run(run_dir, model, data_dir, thresholds)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    import keras

    keras.utils.set_random_seed(0)
    return trained_run(tmp_path_factory.mktemp("run"), tiny_cnn(), data_dir)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, run_dir):
    out = tmp_path_factory.mktemp("models")
    result = cli(run_dir, "--out", out, "--formats", ",".join(FORMATS))
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def val_images(data_dir):
    return load_labelled_npz(data_dir / "val.npz")[0][:64]


def keras_scores(run_dir, images):
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True, compile=False)
    return model.predict(images[..., None] / np.float32(255), verbose=0)


def run_interpreter(interpreter, images):
    """Raw set_tensor/invoke/get_tensor, quantizing by hand: independent of the code under test."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(images), 64, 64, 1])
    interpreter.allocate_tensors()
    x = images[..., None].astype(np.float32) / 255
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def test_every_format_is_written_verified_and_tabled(converted):
    out, output = converted
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".mnist-edge.lock", *(f"model_{f}.tflite" for f in FORMATS), "quant_report.json", "quant_report.md"])
    for fmt in FORMATS:
        row = next(line for line in output.splitlines() if line.startswith(fmt + " "))
        assert "ok -> " in row, output
        assert f"ops {fmt}: " in output
    sizes = {fmt: (out / f"model_{fmt}.tflite").stat().st_size for fmt in FORMATS}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_each_file_runs_in_ai_edge_litert_close_to_keras(converted, run_dir, val_images):
    from ai_edge_litert.interpreter import Interpreter

    reference = keras_scores(run_dir, val_images)
    tolerance = {"float32": 1e-5, "float16": 1e-2, "dynamic": 0.1, "int8": 0.15}
    for fmt in FORMATS:
        scores = run_interpreter(Interpreter(model_path=str(converted[0] / f"model_{fmt}.tflite")), val_images)
        assert scores.shape == (len(val_images), 10)
        assert np.abs(scores - reference).max() <= tolerance[fmt], fmt


def test_int8_is_fully_integer_with_pixel_exact_input(converted):
    from convert.verify import inspect

    structure = inspect((converted[0] / "model_int8.tflite").read_bytes())
    assert structure["fully_integer"] and structure["per_channel"]
    assert structure["float_ops"] == [] and "DEQUANTIZE" not in structure["ops"]
    q = structure["quantization"]
    assert q["input"]["dtype"] == q["output"]["dtype"] == "int8"
    assert q["input"]["scale"] == pytest.approx(1 / 255) and q["input"]["zero_point"] == -128  # q = pixel - 128
    assert not inspect((converted[0] / "model_float32.tflite").read_bytes())["fully_integer"]


def test_metadata_round_trips(converted, run_dir):
    import hashlib

    source = json.loads((run_dir / "metadata.json").read_text())
    for fmt in FORMATS:
        meta = read_metadata(converted[0] / f"model_{fmt}.tflite")
        assert meta["format"] == fmt
        for key in ("arch", "class_names", "dataset", "options", "preprocessing", "input_shape"):
            assert meta[key] == source[key], key
        assert meta["thresholds_float"] == pytest.approx(source["thresholds"])
        assert meta["source_model_sha256"] == hashlib.sha256((run_dir / "model.keras").read_bytes()).hexdigest()
        assert meta["verification"]["agreement"]["num_images"] == 500
        assert meta["verification"]["size_bytes"] < (converted[0] / f"model_{fmt}.tflite").stat().st_size
        assert meta["toolkit_version"]
    float32, int8 = (read_metadata(converted[0] / f"model_{f}.tflite") for f in ("float32", "int8"))
    assert float32["thresholds"] == float32["thresholds_float"]
    assert int8["thresholds"] != int8["thresholds_float"]  # re-tuned on the int8 model's own scores
    assert int8["quantization"]["input"] == {"dtype": "int8", "scale": pytest.approx(1 / 255), "zero_point": -128}
    assert int8["verification"]["fully_integer"] and int8["calibration"]["samples"] == 300


def test_files_load_in_tf_lite(converted, val_images):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    for fmt in FORMATS:
        path = str(converted[0] / f"model_{fmt}.tflite")
        expected = run_interpreter(Interpreter(model_path=path), val_images)
        got = run_interpreter(tf.lite.Interpreter(model_path=path), val_images)
        assert np.allclose(got, expected, atol=1 / 256 + 1e-6), fmt


@pytest.mark.skipif(not Path(EDGE_PYTHON).exists(), reason=f"no edge venv at {EDGE_PYTHON} (set MNIST_EDGE_EDGE_PYTHON)")
def test_files_load_in_tflite_runtime_without_tensorflow(converted, val_images, tmp_path):
    """tflite-runtime 2.14 equals ai-edge-litert's reference kernels (measured: bit for bit on int8).

    ai-edge-litert's XNNPACK int8 kernels round some requantizations 1 LSB differently, which the
    sigmoid can magnify to ~10/256 on <1% of scores, so XNNPACK is not the comparison here.
    """
    if edge_venv_runtime(EDGE_PYTHON) != "tflite_runtime":
        pytest.skip("the edge venv has ai-edge-litert: no tflite-runtime wheel for its Python (.ci/device_venv.py)")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    REFERENCE = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    np.save(tmp_path / "images.npy", val_images)
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        import numpy as np
        from tflite_runtime.interpreter import Interpreter
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_convert import run_interpreter
        from edge_runtime.metadata import read_metadata
        assert importlib.util.find_spec("tensorflow") is None
        images = np.load({str(tmp_path / "images.npy")!r})
        out = {{}}
        for fmt in {FORMATS!r}:
            path = {str(converted[0])!r} + f"/model_{{fmt}}.tflite"
            out[fmt] = {{"scores": run_interpreter(Interpreter(model_path=path), images).tolist(),
                         "metadata": read_metadata(path)}}
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([EDGE_PYTHON, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for fmt in FORMATS:
        path = converted[0] / f"model_{fmt}.tflite"
        expected = run_interpreter(Interpreter(model_path=str(path), experimental_op_resolver_type=REFERENCE), val_images)
        if fmt == "int8":  # integer arithmetic: bit-identical to LiteRT's reference kernels
            assert np.array_equal(results[fmt]["scores"], expected)
        else:
            assert np.allclose(results[fmt]["scores"], expected, atol=1e-5), fmt
        assert results[fmt]["metadata"] == read_metadata(path)


def test_op_without_int8_kernel_fails_clearly_and_keeps_the_old_file(tmp_path, data_dir):
    """UnitNormalization converts with TFLITE_BUILTINS_INT8 only, but TF 2.21 leaves its RSQRT/SUM in
    float between DEQUANTIZE and QUANTIZE instead of failing: the fully-integer check must catch it."""
    import keras

    run = save_run(tmp_path / "run", tiny_cnn(keras.layers.UnitNormalization()), data_dir, [0.5] * 10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.tflite").write_bytes(b"the previous, verified file")
    result = cli(run, "--out", out, "--formats", "int8")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: int8: not fully integer: DEQUANTIZE, QUANTIZE, SQUARE read or write float")
    assert "Traceback" not in result.output
    assert (out / "model_int8.tflite").read_bytes() == b"the previous, verified file"
    assert sorted(p.name for p in out.iterdir()) == [".mnist-edge.lock", "model_int8.tflite"]  # no temp file left


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04 truncated zip", "zip"])
def test_corrupt_or_non_keras_input_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "model.keras"
    if content == "zip":  # a valid zip that is not a Keras archive
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hello.txt", "hi")
    else:
        path.write_bytes(content)
    result = cli(path, "--out", tmp_path / "out", "--val", tmp_path / "missing.npz")
    assert result.exit_code == 2  # --val must exist: click checks arguments first
    result = cli(path, "--out", tmp_path / "out")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    expected = "not a loadable Keras model" if content == "zip" else "truncated or corrupt .keras file"
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_folder_without_model_and_bad_formats(tmp_path):
    result = cli(tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "no model.keras here" in result.output
    result = cli(tmp_path, "--out", tmp_path / "out", "--formats", "int4")
    assert result.exit_code == 2 and "int4" in result.output


def test_test_split_is_refused_for_calibration_and_tuning(run_dir, data_dir, tmp_path):
    result = cli(run_dir, "--out", tmp_path, "--calib", data_dir / "test.npz")
    assert result.exit_code == 1 and "refusing the test split for calibration" in result.output
    result = cli(run_dir, "--out", tmp_path, "--val", data_dir / "test.npz")
    assert result.exit_code == 1 and "refusing the test split" in result.output
    renamed = data_dir / "holdout.npz"
    shutil.copy(data_dir / "test.npz", renamed)
    try:
        result = cli(run_dir, "--out", tmp_path, "--calib", renamed)
    finally:
        renamed.unlink()
    assert result.exit_code == 1 and "holds the data set's test split" in result.output
    assert list(tmp_path.iterdir()) == []


def test_convert_command_imports_no_tensorflow():
    code = "import sys, convert.cli; assert not any(m.startswith(('tensorflow', 'keras')) for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_int8_failing_after_float32_publishes_no_mixed_set(tmp_path, run_dir, data_dir):
    """float32 passes; int8, calibrated on dimmed images, fails: neither may replace the previous pair."""
    from edge_runtime.dataset_file import save_labelled_npz

    images, labels = load_labelled_npz(data_dir / "val.npz")
    save_labelled_npz(tmp_path / "dim.npz", images // 4, labels)
    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("float32", "int8"):
        (out / f"model_{fmt}.tflite").write_bytes(f"the previous {fmt} file".encode())
    result = cli(run_dir, "--out", out, "--formats", "float32,int8", "--calib", tmp_path / "dim.npz")
    assert result.exit_code == 1
    assert next(line for line in result.output.splitlines() if line.startswith("float32 ")).endswith(
        f"ok -> {out / 'model_float32.tflite'}")
    assert "int8: input quantization scale" in result.output and f"no file written: {out} was left as it was" in result.output
    for fmt in ("float32", "int8"):
        assert (out / f"model_{fmt}.tflite").read_bytes() == f"the previous {fmt} file".encode()
    assert sorted(p.name for p in out.iterdir()) == [".mnist-edge.lock", "model_float32.tflite", "model_int8.tflite"]


def test_exact_float32_passes_with_scores_sitting_on_the_thresholds(run_dir, data_dir, tmp_path):
    """Thresholds equal to Keras scores that the float32 file computes 1 ulp lower flip those images'
    digit sets although the file is exact: float32 is judged on |dp|, not on identical sets."""
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "first"
    assert cli(run_dir, "--out", out, "--formats", "float32").exit_code == 0
    images = load_labelled_npz(data_dir / "val.npz")[0]
    import keras

    keras_p = keras.saving.load_model(run_dir / "model.keras", compile=False).predict(
        images[..., None] / np.float32(255), verbose=0, batch_size=256)
    lite_p = run_interpreter(Interpreter(model_path=str(out / "model_float32.tflite")), images)
    thresholds, flipped = [], 0
    for digit in range(10):
        lower = np.flatnonzero(lite_p[:, digit] < keras_p[:, digit])
        thresholds.append(float(keras_p[lower[0], digit]) if len(lower) else 0.5)
        flipped += bool(len(lower))
    assert flipped >= 2  # >= 2 of 500 images change their digit set: identical sets <= 99.6% < 99.9%
    meta = json.loads((run_dir / "metadata.json").read_text())
    weak = save_run(tmp_path / "weak", keras.saving.load_model(run_dir / "model.keras"), data_dir, thresholds)
    result = cli(weak, "--out", tmp_path / "second", "--formats", "float32")
    assert result.exit_code == 0, result.output
    agreement = read_metadata(tmp_path / "second" / "model_float32.tflite")["verification"]["agreement"]
    assert agreement["identical_sets"] < 0.999 and agreement["max_abs_diff"] < 1e-5
    assert meta["thresholds"] != thresholds


def test_empty_calibration_or_validation_set_is_refused(run_dir, tmp_path):
    from edge_runtime.dataset_file import save_labelled_npz

    save_labelled_npz(tmp_path / "empty.npz", np.zeros((0, 64, 64), np.uint8), np.zeros((0, 10), np.uint8))
    for option, role in (("--calib", "calibration"), ("--val", "verification and threshold tuning")):
        result = cli(run_dir, "--out", tmp_path / "out", option, tmp_path / "empty.npz")
        assert result.exit_code == 1 and result.output.strip() == (
            f"Error: {tmp_path / 'empty.npz'}: holds no images, so it cannot serve for {role}; pass a file with images")
    assert not (tmp_path / "out").exists()


@needs_tf
def test_convert_killed_mid_set_leaves_the_previous_pair(tmp_path, run_dir):
    """SIGKILL once the new float32 file is staged: the previous pair stays whole, no mixed set."""
    from edge_runtime.files import TEMP_TAG

    out = tmp_path / "models"
    out.mkdir()
    for fmt in ("float32", "int8"):
        (out / f"model_{fmt}.tflite").write_bytes(f"the previous {fmt} file".encode())
    proc = subprocess.Popen([sys.executable, "-c", "from train.cli import main; main()", "convert", str(run_dir),
                             "--out", str(out)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, out, f"*{TEMP_TAG}*/model_float32.tflite", "staged float32 file")
    for fmt in ("float32", "int8"):
        assert (out / f"model_{fmt}.tflite").read_bytes() == f"the previous {fmt} file".encode()
    assert cli(run_dir, "--out", out).exit_code == 0  # the next run cleans up and publishes a whole pair
    assert not list(out.glob(f"*{TEMP_TAG}*"))
    sources = {read_metadata(out / f"model_{fmt}.tflite")["source_model_sha256"] for fmt in ("float32", "int8")}
    assert len(sources) == 1
