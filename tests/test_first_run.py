"""A newcomer's first commands: the shipped sample and pictures, warnings and errors that say what to do.

The demo commands run as real processes with no MNIST anywhere they could find it (HOME is an empty
folder, so no Keras cache; no $MNIST_EDGE_DATA) and must not import TensorFlow or Keras, so they
cannot reach for a download either.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, needs_tf
from convert.tensorflow_env import quiet_native_output
from edge_runtime import Classifier
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.sample import SAMPLE_DIR, example_pictures, sample_path
from models_for_tests import model, models  # noqa: F401 (fixtures)
from train.cli import main
from train.sample import write_sample

# Runs the CLI and fails if anything that could fetch MNIST (TensorFlow, Keras or the MNIST reader) was imported.
NO_MNIST_CODE = ("import sys\nfrom train.cli import main\ntry:\n    main(prog_name='mnist-edge')\nfinally:\n"
                 "    loaded = [m for m in ('tensorflow', 'keras', 'train.mnist') if m in sys.modules]\n"
                 "    assert not loaded, f'imported {loaded}'\n")


def run_without_mnist(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "MNIST_EDGE_DATA"}
    env.update(HOME=str(tmp_path / "empty-home"), PYTHONPATH=str(REPO))
    (tmp_path / "empty-home").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", NO_MNIST_CODE, *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def test_shipped_sample_is_what_the_script_writes(mnist_dir, tmp_path):
    """`python -m train.sample` is reproducible and the shipped files are its output, byte for byte."""
    info, _ = write_sample(tmp_path, mnist_dir)
    shipped = sorted(p.name for p in SAMPLE_DIR.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == shipped
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name
    images, labels = load_labelled_npz(sample_path())
    assert images.shape == (info["images"], 64, 64) and labels.shape == (info["images"], 10)
    assert sample_path().stat().st_size < 300_000  # compressed; the package stays small
    for picture in example_pictures():  # the names give the digits
        digits = [int(d) for d in picture.stem.split("_")[1:]]
        assert 1 <= len(digits) <= 4


def test_sample_files_are_package_data():
    """pyproject.toml's package-data must cover every shipped sample file, or an installed package has no demo."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edge_runtime"]
    package = REPO / "edge_runtime"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert set(SAMPLE_DIR.iterdir()) <= shipped


def test_bench_without_arguments_is_a_demo_on_the_shipped_sample(tmp_path):
    run = run_without_mnist(tmp_path, "bench", "--runs", "20", "--warmup", "2", "--rounds", "2", "--batch", "1,8",
                            "--no-memory", "--out", tmp_path / "demo")
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("Demo: the float32 and int8 models shipped with mnist-edge on the small labelled sample")
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["data"]["path"] == str(sample_path()) and report["data"]["num_images"] == 300
    assert [m["format"] for m in report["models"]] == ["float32", "int8"]
    assert all(m["macro_f1"] > 0.9 for m in report["models"])  # real models, real labels
    assert "| model_int8.tflite | int8 |" in run.stdout and "Warning" not in run.stderr


def test_infer_example_shows_the_shipped_pictures(tmp_path):
    run = run_without_mnist(tmp_path, "infer", "--example", "--json")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    pictures = example_pictures()
    assert [row["input"] for row in rows] == [str(p) for p in pictures]
    right = [row["digits"] == [int(d) for d in p.stem.split("_")[1:]] for row, p in zip(rows, pictures)]
    assert sum(right) >= len(pictures) - 1, rows  # the shipped model reads its own examples
    assert "named by their true digits" in run.stderr


def test_bench_with_data_but_no_model_uses_the_shipped_models(tmp_path):
    result = cli("bench", "--data", sample_path(), "--runs", "4", "--warmup", "1", "--rounds", "1", "--threads", "1",
                 "--batch", "1", "--no-memory", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "No MODEL given: benchmarking the float32 and int8 models shipped" in result.stderr


def test_bench_models_without_data_is_a_usage_error(models):
    result = cli("bench", models["int8"])
    assert result.exit_code == 2 and "--data is required with MODEL files" in result.output


def test_model_without_metadata_gets_one_warning(models, tmp_path):
    picture = example_pictures()[0]
    result = cli("infer", "--model", models["int8"], picture)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning")]
    assert warnings == [f"Warning: {models['int8']} has no mnist-edge metadata: every digit's threshold is 0.5 and "
                        "its 10 outputs are taken as independent per-digit sigmoid scores (a softmax classifier's "
                        "answers would be meaningless)"]
    assert "threshold is 0.3" in cli("infer", "--model", models["int8"], "--threshold", 0.3, picture).stderr
    assert "Warning" not in cli("infer", "--model", model(models, "meta"), picture).stderr
    bench = cli("bench", models["int8"], "--data", sample_path(), "--runs", "2", "--warmup", "0", "--rounds", "1",
                "--threads", "1", "--batch", "1", "--no-memory", "--out", tmp_path / "b")
    assert bench.exit_code == 0 and bench.stderr.count("has no mnist-edge metadata") == 1


def test_keras_model_given_to_infer_and_bench_points_to_convert(tmp_path):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK\x03\x04" + bytes(100))  # a .keras file is a zip archive
    fix = f"is a Keras model, not TFLite; convert it first: mnist-edge convert {keras_file} --out models/"
    for result in (cli("infer", "--model", keras_file, example_pictures()[0]),
                   cli("bench", keras_file, "--data", sample_path(), "--no-memory", "--out", tmp_path / "b")):
        assert result.exit_code == 1 and result.stderr.splitlines()[-1] == f"Error: {keras_file}: {fix}"
    result = cli("infer", "--model", tmp_path, example_pictures()[0])  # a run folder holding model.keras
    assert f"convert it first with mnist-edge convert {tmp_path} --out models/" in result.stderr


def test_folder_given_as_data_suggests_its_test_npz(tmp_path, models):
    (tmp_path / "test.npz").write_bytes(sample_path().read_bytes())
    result = cli("bench", models["int8"], "--data", tmp_path, "--no-memory", "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert f"Error: {tmp_path}: is a folder, expected a labelled .npz file; pass the file inside it, e.g. " \
           f"{tmp_path / 'test.npz'}" in result.stderr


def test_missing_tflite_runtime_names_its_constraints():
    pytest.importorskip("ai_edge_litert")
    try:
        import tflite_runtime.interpreter  # noqa: F401
        pytest.skip("tflite_runtime loads here")
    except ImportError:
        pass
    result = cli("infer", "--runtime", "tflite_runtime", "--example")
    assert result.exit_code == 1
    message = result.stderr.splitlines()[-1]
    assert message.startswith("Error: runtime tflite_runtime is ") and "numpy<2" in message
    assert "up to Python 3.11" in message and "--runtime ai_edge_litert" in message


def test_quiet_native_output_holds_back_chatter_but_not_errors(capfd):
    with quiet_native_output():
        os.write(1, b"fully_quantize: 0\n")
        os.write(2, b"E0000 use_unbounded_threadpool\n")
        print("Captures:")
    with pytest.raises(ValueError, match="real problem"):
        with quiet_native_output():
            raise ValueError("real problem")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == ""


@needs_tf
def test_tensorflow_starts_without_log_lines():
    """TensorFlow 2.21 logs a oneDNN notice at import and at runtime start past any log level (issue 15)."""
    code = ("from convert.tensorflow_env import import_tensorflow\ntf = import_tensorflow()\n"
            "print(int(tf.reduce_sum(tf.data.Dataset.range(4).map(lambda v: v * 2).reduce(tf.constant(0, tf.int64), "
            "lambda a, b: a + b))))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout == "12\n" and run.stderr == "", run.stderr


def test_classifier_on_the_sample_matches_its_labels():
    """The sample is labelled right: the shipped int8 model agrees with most labels."""
    images, labels = load_labelled_npz(sample_path())
    predicted = np.zeros_like(labels)
    for row, p in zip(predicted, Classifier().predict(images)):
        row[list(p.digits)] = 1
    assert (predicted == labels).all(axis=1).mean() > 0.8
