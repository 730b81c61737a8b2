"""`mnist-edge bench` on real tiny models and real composed MNIST images.

Models: with TensorFlow, trained and converted here (float32, int8, plus a deliberately degraded
model that predicts no digit); without it, prebuilt ones (see models_for_tests.find_models).
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import HAS_TF, REPO, edge_venv_runtime
from edge_runtime.dataset_file import save_labelled_npz
from edge_runtime.metrics import binarize, evaluate
from models_for_tests import build_models, find_models
from train import dataset
from train.cli import main
from train.difficulty import difficulty
from train.mnist import load_mnist

NUM_TEST = 200
FAST = ["--runs", "6", "--warmup", "2", "--rounds", "2", "--threads", "1", "--batch", "1,8", "--no-memory"]
LATENCY_KEYS = {"mean", "std", "min", "p50", "p90", "p99"}
EDGE_PYTHON = Path(os.environ.get("MNIST_EDGE_EDGE_PYTHON", "/work/venvs/edge/bin/python"))


def _degraded_model(path):
    """A small CNN whose output bias is -10: every score near 0, so it never predicts a digit."""
    import tensorflow as tf
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64, 64, 1)),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.Dense(10, activation="sigmoid", bias_initializer=keras.initializers.Constant(-10.0)),
    ])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture(scope="session")
def models(mnist_dir, tmp_path_factory):
    if HAS_TF:
        folder = tmp_path_factory.mktemp("bench_models")
        found = build_models(mnist_dir, folder)
        found["degraded"] = _degraded_model(folder / "model_degraded.tflite")
    else:
        found = find_models()
    if not {"float32", "int8"} <= set(found):
        pytest.skip("no float32/int8 test models (needs TensorFlow, $MNIST_EDGE_TEST_MODELS or shipped models)")
    return found


@pytest.fixture(scope="session")
def test_npz(mnist_dir, tmp_path_factory):
    """Canvases of 1-3 distinct MNIST test digits, with the difficulty arrays `mnist-edge data` writes."""
    mnist = load_mnist(mnist_dir)
    split = dataset.compose(mnist.test_images, mnist.test_labels, NUM_TEST, np.random.default_rng(7),
                            **dataset.resolve_options(max_digits=3, empty_fraction=0.0, distinct_classes=True))
    path = tmp_path_factory.mktemp("bench_data") / "test.npz"
    save_labelled_npz(path, split.images, split.labels, **difficulty(split.layout))
    return path


def bench(*args):
    return CliRunner().invoke(main, ["bench", *map(str, args)])


@pytest.fixture(scope="module")
def full_run(models, test_npz, tmp_path_factory):
    """One run with every measurement on (memory, two thread counts), shared by the schema tests."""
    out = tmp_path_factory.mktemp("bench_full")
    result = bench(models["float32"], models["int8"], "--data", test_npz, "--runs", "12", "--warmup", "3",
                   "--rounds", "3", "--threads", "1,2", "--batch", "1,8,32", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result, json.loads((out / "report.json").read_text())


def test_json_schema(full_run):
    _, _, report = full_run
    assert {"models", "machine", "settings", "data", "methods", "created", "mnist_edge_version"} <= set(report)
    assert report["settings"]["threads"] == [1, 2] and report["settings"]["batches"] == [1, 8, 32]
    assert report["data"]["num_images"] == NUM_TEST
    machine = report["machine"]
    for key in ("cpu", "cores", "os", "python", "numpy", "interpreter", "interpreter_version", "threads", "xnnpack"):
        assert machine[key] not in (None, ""), key
    first, second = report["models"]
    for m in report["models"]:
        assert Path(m["path"]).is_file() and m["size_bytes"] == Path(m["path"]).stat().st_size
        assert set(m["latency_us"]) == LATENCY_KEYS
        lat = m["latency_us"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] and lat["std"] >= 0
        assert set(m["latency_by_threads"]) == {"1", "2"} and m["latency_by_threads"]["1"] == lat
        assert set(m["throughput_ips"]) == {"1", "8", "32"} and all(v > 0 for v in m["throughput_ips"].values())
        assert set(m["throughput_by_threads"]) == {"1", "2"}
        assert {k: len(v) for k, v in m["per_digit"].items() if k in ("precision", "recall", "f1")} == \
            {"precision": 10, "recall": 10, "f1": 10}
        for key in ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss"):
            assert 0 <= m[key] <= 1
        assert len(m["thresholds"]) == 10 and m["runtime"]["name"] and m["threads"] == 1
        assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
        assert m["peak_rss_mb"] > 0 and m["model_rss_mb"] >= 0
    assert first["format"] == "float32" and second["format"] == "int8"
    assert first["delta_f1"] is None and first["delta_macro_f1"] is None
    assert second["delta_f1"] == pytest.approx(np.subtract(second["per_digit"]["f1"], first["per_digit"]["f1"]))


def _rescore(report, models, test_npz):
    """Each reported model with scores computed here, independently of the benchmark."""
    from edge_runtime import Classifier

    data = np.load(test_npz)
    for m, name in zip(report["models"], ("float32", "int8")):
        clf = Classifier(str(models[name]), num_threads=1)
        yield m, data["labels"], clf.scores(data["images"]), clf.thresholds


def test_metrics_equal_training_code(full_run, models, test_npz):
    for m, labels, scores, thresholds in _rescore(full_run[2], models, test_npz):
        expected = evaluate(labels, scores, thresholds)
        assert m["thresholds"] == thresholds.tolist()
        for key in ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss", "num_images", "per_digit"):
            assert m[key] == expected[key], key


def test_metrics_equal_sklearn(full_run, models, test_npz):
    sk = pytest.importorskip("sklearn.metrics")
    for m, labels, scores, thresholds in _rescore(full_run[2], models, test_npz):
        pred = binarize(scores, thresholds)
        p, r, f, _ = sk.precision_recall_fscore_support(labels, pred, average=None, zero_division=0)
        assert m["per_digit"]["precision"] == pytest.approx(p)
        assert m["per_digit"]["recall"] == pytest.approx(r)
        assert m["per_digit"]["f1"] == pytest.approx(f)
        assert m["macro_f1"] == pytest.approx(sk.f1_score(labels, pred, average="macro", zero_division=0))
        assert m["micro_f1"] == pytest.approx(sk.f1_score(labels, pred, average="micro", zero_division=0))
        assert m["subset_accuracy"] == pytest.approx(sk.accuracy_score(labels, pred))
        assert m["hamming_loss"] == pytest.approx(sk.hamming_loss(labels, pred))


def test_csv_markdown_and_plots(full_run):
    out, result, report = full_run
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [(r["model"], r["threads"]) for r in rows] == [
        ("model_float32.tflite", "1"), ("model_float32.tflite", "2"),
        ("model_int8.tflite", "1"), ("model_int8.tflite", "2")]
    assert float(rows[2]["macro_f1"]) == pytest.approx(report["models"][1]["macro_f1"])
    md = (out / "report.md").read_text()
    for heading in ("## Summary", "## Per-digit F1", "## Machine", "model_int8.tflite", report["machine"]["cpu"]):
        assert heading in md
    assert "model_float32.tflite" in result.stdout and "macro-F1" in result.stdout  # summary printed
    assert "round 1/3" in result.stderr  # progress
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert report["plots"]["files"] == []
        return
    assert {"f1_per_digit.png", "latency.png"} <= set(report["plots"]["files"])
    for name in report["plots"]["files"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp*"))  # atomic writes leave no temp files


def test_gate_rules():
    from benchmarks.gate import check_gate

    def model(name, f1):
        return {"name": name, "per_digit": {"f1": f1}, "macro_f1": float(np.mean(f1))}

    report = {"models": [model("float", [0.9] * 10), model("int8", [0.9] * 9 + [0.85])]}
    assert check_gate(report, max_f1_drop=0.05)["passed"]  # a drop of exactly D is allowed
    gate = check_gate(report, max_f1_drop=0.04, min_macro_f1=0.9)
    assert not gate["passed"] and len(gate["failures"]) == 2
    assert gate["failures"][0].startswith("int8: macro-F1 0.8950 is below")
    assert gate["failures"][1].startswith("int8: digit 9 F1 0.8500 is 0.0500 below float's 0.9000")
    assert check_gate(report) == {"max_f1_drop": None, "min_macro_f1": None, "on": "point", "passed": True,
                                  "failures": [], "judged_on": check_gate(report)["judged_on"]}
    assert "point estimate" in check_gate(report)["judged_on"]


def test_gate_fails_for_degraded_model(models, test_npz, tmp_path):
    if "degraded" not in models:
        pytest.skip("the degraded model is built with TensorFlow")
    result = bench(models["float32"], models["degraded"], "--data", test_npz, *FAST, "--out", tmp_path,
                   "--max-f1-drop", "0.2")
    assert result.exit_code == 3, result.output
    assert "release gate failed" in result.output and "model_degraded.tflite: digit" in result.output
    assert "Traceback" not in result.output
    report = json.loads((tmp_path / "report.json").read_text())  # written before failing
    assert report["gate"]["passed"] is False and report["gate"]["failures"]
    assert "FAILED" in (tmp_path / "report.md").read_text()

    result = bench(models["float32"], models["degraded"], "--data", test_npz, *FAST, "--out", tmp_path,
                   "--min-macro-f1", "0.1")
    assert result.exit_code == 3 and "model_degraded.tflite: macro-F1 0.0000 is below" in result.output
    assert "model_float32.tflite: macro-F1" not in result.output


def test_gate_passes_for_faithful_int8(models, test_npz, tmp_path):
    result = bench(models["float32"], models["int8"], "--data", test_npz, *FAST, "--out", tmp_path,
                   "--max-f1-drop", "0.2", "--min-macro-f1", "0.05")
    assert result.exit_code == 0, result.output
    assert "Release gate passed" in result.output
    assert json.loads((tmp_path / "report.json").read_text())["gate"]["passed"] is True


def test_own_thresholds_from_metadata(models, test_npz, tmp_path):
    """A model with embedded thresholds is scored with them, not 0.5."""
    embed = pytest.importorskip("convert.embed")
    pytest.importorskip("ai_edge_litert")
    thresholds = [0.3 + 0.04 * d for d in range(10)]
    model = tmp_path / "model_meta.tflite"
    model.write_bytes(embed.embed_metadata(models["float32"].read_bytes(),
                                           {"format": "float32", "thresholds": thresholds}))
    result = bench(models["float32"], model, "--data", test_npz, *FAST, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "out" / "report.json").read_text())["models"][1]
    assert m["thresholds"] == pytest.approx(thresholds)
    data = np.load(test_npz)
    from edge_runtime import Classifier
    scores = Classifier(str(model), num_threads=1).scores(data["images"])
    assert m["macro_f1"] == evaluate(data["labels"], scores, thresholds)["macro_f1"]


def test_without_matplotlib(models, test_npz, tmp_path, monkeypatch):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # any `import matplotlib...` now raises ImportError
    result = bench(models["float32"], models["int8"], "--data", test_npz, *FAST, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["plots"]["files"] == []
    assert (tmp_path / "report.csv").is_file()


def _bad_files(folder):
    folder.mkdir()
    save_labelled_npz(folder / "small.npz", np.zeros((4, 28, 28), np.uint8), np.zeros((4, 10), np.uint8))
    with open(folder / "nolabels.npz", "wb") as f:
        np.savez(f, images=np.zeros((4, 64, 64), np.uint8))
    (folder / "garbage.npz").write_bytes(b"this is not a zip file at all")
    return folder


@pytest.mark.parametrize("name, message", [
    ("nolabels.npz", "no 'labels' array"),
    ("small.npz", "images are 28x28 but"),
    ("garbage.npz", "not a readable .npz"),
    ("missing.npz", "no such file"),
])
def test_bad_data_gives_clear_error(models, tmp_path, name, message):
    data = _bad_files(tmp_path / "data") / name
    result = bench(models["float32"], "--data", data, *FAST, "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught exception
    assert "Error:" in result.output and message in result.output and "Traceback" not in result.output


def test_bad_arguments_are_usage_errors(models, test_npz):
    for args in (["--threads", "0"], ["--batch", "1,x"]):
        result = bench(models["float32"], "--data", test_npz, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output


def _edge_python():
    if not EDGE_PYTHON.is_file():
        pytest.skip(f"no edge-only venv at {EDGE_PYTHON} (set MNIST_EDGE_EDGE_PYTHON)")
    if subprocess.run([EDGE_PYTHON, "-c", "import benchmarks.cli"], cwd="/", capture_output=True).returncode:
        subprocess.run([EDGE_PYTHON, "-m", "pip", "install", "-q", "-e", str(REPO), "--no-deps"], check=True)
    return EDGE_PYTHON


def test_runs_in_edge_venv_without_tensorflow(models, test_npz, tmp_path):
    python = _edge_python()
    no_tf = subprocess.run([python, "-c", "import tensorflow"], capture_output=True)
    assert no_tf.returncode != 0, "the edge venv must not have TensorFlow"
    out = tmp_path / "edge"
    run = subprocess.run(
        [python, "-c", "from train.cli import main; main(prog_name='mnist-edge')", "bench",
         models["float32"], models["int8"], "--data", test_npz, "--runs", "6", "--warmup", "2",
         "--rounds", "2", "--threads", "1", "--batch", "1,8", "--out", out, "--max-f1-drop", "0.2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "report.json").read_text())
    runtime = edge_venv_runtime(python)  # tflite_runtime with numpy 1 where it has a wheel (.ci/device_venv.py)
    assert report["machine"]["interpreter"] == runtime
    assert report["machine"]["numpy"].startswith("1." if runtime == "tflite_runtime" else "2.")
    assert [m["format"] for m in report["models"]] == ["float32", "int8"]
    assert all(m["peak_rss_mb"] > 0 for m in report["models"])
    assert (out / "report.md").is_file() and (out / "report.csv").is_file()


def test_models_from_different_source_models(models, test_npz, tmp_path):
    """A float32 and an int8 of two different trainings: the gate is refused up front, a plain
    comparison runs with a warning."""
    pytest.importorskip("ai_edge_litert")
    from convert.embed import embed_metadata

    pair = []
    for fmt, source in (("float32", "a" * 64), ("int8", "b" * 64)):
        pair.append(tmp_path / f"model_{fmt}.tflite")
        pair[-1].write_bytes(embed_metadata(models[fmt].read_bytes(), {"format": fmt, "source_model_sha256": source}))
    gated = bench(*pair, "--data", test_npz, *FAST, "--out", tmp_path / "gated", "--max-f1-drop", "0.5")
    assert gated.exit_code == 1 and not (tmp_path / "gated").exists()
    assert gated.output.startswith("Error: the models come from different trained models (model_float32.tflite "
                                   "from aaaaaaaaaaaa; model_int8.tflite from bbbbbbbbbbbb)"), gated.output
    plain = bench(*pair, "--data", test_npz, *FAST, "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    assert "Warning: the models come from different trained models" in plain.output
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert [m["source_model_sha256"][0] for m in report["models"]] == ["a", "b"]
