"""`mnist-edge infer` end to end: real models, real image files, the output contract, bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import edge_runtime.classifier as classifier_module
from conftest import REPO
from edge_runtime import Classifier
from models_for_tests import canvases, model, models  # noqa: F401 (fixtures)
from train.cli import main


def infer(*args):
    return CliRunner().invoke(main, ["infer", *map(str, args)])


@pytest.fixture()
def inputs(canvases, tmp_path):
    """Two dark-on-light PNGs and an .npz of three canvases."""
    images = canvases[0]
    pngs = []
    for i in range(2):
        pngs.append(tmp_path / f"digit{i}.png")
        Image.fromarray(255 - images[i]).save(pngs[-1])
    np.savez(tmp_path / "set.npz", images=images[2:5])
    return pngs, tmp_path / "set.npz", images[:5]


def test_json_lines_schema_and_values(models, inputs):
    pngs, npz, images = inputs
    result = infer("--model", models["int8"], "--json", "--threads", 1, *pngs, npz)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in rows] == [str(p) for p in pngs] + [f"{npz}#{i}" for i in range(3)]
    expected = Classifier(models["int8"], num_threads=1).predict(images)
    for row, p in zip(rows, expected):
        assert set(row) == {"input", "digits", "scores"}
        assert row["digits"] == list(p.digits) == sorted(row["digits"])
        assert all(isinstance(d, int) for d in row["digits"])
        assert len(row["scores"]) == 10 and all(isinstance(s, float) and 0 <= s <= 1 for s in row["scores"])
        np.testing.assert_allclose(row["scores"], p.scores, atol=5e-5)


def test_plain_lines(models, inputs):
    pngs, npz, images = inputs
    result = infer("--model", models["float32"], *pngs, npz)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    for line, p in zip(lines, Classifier(models["float32"]).predict(images)):
        if p.digits:
            assert f": digits {' '.join(map(str, p.digits))} (scores " in line
        else:
            assert ": no digits (highest " in line
    assert lines[0].startswith(f"{pngs[0]}: ")


def test_threshold_option_applies_to_every_digit(models, inputs):
    pngs, _, _ = inputs
    rows = [json.loads(line) for line in infer("--model", models["int8"], "--json", "--threshold", 0, *pngs).stdout.splitlines()]
    assert all(r["digits"] == list(range(10)) for r in rows)
    rows = [json.loads(line) for line in infer("--model", models["int8"], "--json", "--threshold", 1, *pngs).stdout.splitlines()]
    assert all(r["digits"] == [d for d, s in enumerate(r["scores"]) if s >= 1] for r in rows)


def test_folder_input_and_runtime_options(models, inputs):
    pngs, _, _ = inputs
    result = infer("--model", models["float32"], "--json", "--no-xnnpack", "--runtime", "auto", pngs[0].parent)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [str(p) for p in pngs]


def test_unreadable_inputs_are_reported_and_the_rest_printed(models, inputs, tmp_path):
    pngs, npz, _ = inputs
    (tmp_path / "notes.png").write_text("not an image")
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan))
    result = infer("--model", models["int8"], "--json", pngs[0], tmp_path / "notes.png", tmp_path / "gone.png",
                   tmp_path / "nan.npy", npz)
    assert result.exit_code == 1
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [str(pngs[0])] + [f"{npz}#{i}" for i in range(3)]
    errors = [line for line in result.stderr.splitlines() if not line.startswith("Warning: ")]  # no metadata
    assert errors[:3] == [f"Error: {tmp_path / 'notes.png'}: not a readable image (cannot identify image file "
                          f"'{tmp_path / 'notes.png'}')",
                          f"Error: {tmp_path / 'gone.png'}: no such file",
                          f"Error: {tmp_path / 'nan.npy'}: images contain NaN or infinite values"]
    assert errors[-1] == "Error: 3 input(s) could not be read (reported above)"
    assert "Traceback" not in result.output


def test_bad_models_fail_with_one_line(models, inputs, tmp_path):
    pngs, _, _ = inputs
    (tmp_path / "empty.tflite").write_bytes(b"")
    (tmp_path / "cut.tflite").write_bytes(models["int8"].read_bytes()[:1000])
    (tmp_path / "text.tflite").write_text("hello")
    bad = {tmp_path / "missing.tflite": "model file not found", tmp_path / "empty.tflite": "model file is empty",
           tmp_path / "cut.tflite": "corrupt or truncated TFLite model", tmp_path / "text.tflite": "not a TFLite model"}
    if "width5" in models:
        bad[models["width5"]] = "output must be 10 digit scores"
    for path, message in bad.items():
        result = infer("--model", path, pngs[0])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.startswith(f"Error: {path}: {message}") and result.stderr.count("\n") == 1, result.stderr


def test_missing_shipped_model(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_module, "MODELS_DIR", tmp_path / "none")
    result = infer(inputs[0][0])
    assert result.exit_code == 1 and "no int8 model ships with this installation" in result.stderr


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threshold", "1.5"], ["--runtime", "onnx"], []])
def test_bad_arguments_are_usage_errors(args):
    result = infer(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_real_process_without_tensorflow(models, inputs):
    """The console entry point in a fresh interpreter: exit codes, streams, and no TensorFlow loaded."""
    pngs, _, _ = inputs
    code = ("import sys\nfrom train.cli import main\ntry:\n    main()\nfinally:\n"
            "    assert 'tensorflow' not in sys.modules, 'infer imported TensorFlow'\n")
    args = [sys.executable, "-c", code, "infer", "--model", str(models["int8"]), "--json"]
    ok = subprocess.run(args + [str(p) for p in pngs], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 2, ok.stderr
    bad = subprocess.run(args + [str(pngs[0]), str(REPO / "pyproject.toml")], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and len(bad.stdout.splitlines()) == 1
    assert "Traceback" not in bad.stderr and "pyproject.toml: not a readable image" in bad.stderr
