"""`mnist-edge pipeline --quick` end to end, as a user runs it, then resumed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import needs_tf
from train.cli import main

pytestmark = [needs_tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("pipeline") / "quick"
    script = Path(sys.executable).with_name("mnist-edge")
    env = {**os.environ, "MNIST_EDGE_DATA": str(mnist_dir)}
    run = subprocess.run([str(script), "pipeline", "--out", str(out), "--quick"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run


def test_quick_pipeline_writes_every_stage(quick_run):
    out, run = quick_run
    for name in ("data/train.npz", "data/test.npz", "data/dataset.json", "run/model.keras", "run/metadata.json",
                 "models/model_float32.tflite", "models/model_int8.tflite", "bench/report.json", "report.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "bench" / "report.json").read_text())
    assert [m["format"] for m in report["models"]] == ["float32", "int8"]
    assert report["models"][1]["delta_f1"] is not None and len(report["models"][1]["per_digit"]["f1"]) == 10
    assert "| model_int8.tflite | int8 |" in (out / "report.md").read_text()
    assert "Traceback" not in run.stderr
    # a smoke run says so, on the console and at the top of its report
    assert "smoke run" in run.stderr and (out / "report.md").read_text().startswith("> **Smoke run.**")
    meta = json.loads((out / "run" / "metadata.json").read_text())
    assert meta["training_images"]["mode"] == "fresh" and meta["epochs_run"] >= 1


def test_rerun_skips_finished_stages(quick_run):
    out, _ = quick_run
    result = CliRunner().invoke(main, ["pipeline", "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    assert result.output.count("done already, skipped") == 4


def test_scale_and_pair_options_reach_the_training_stage(quick_run):
    out, _ = quick_run
    for option, value in (("--overlap-pairs", "0.3"), ("--digit-scale", "1,1")):
        result = CliRunner().invoke(main, ["pipeline", "--out", str(out), "--quick", option, value])
        assert result.exit_code == 1 and "--redo train" in result.output, result.output
        assert option[2:].replace("-", "_") in result.output


def test_changed_option_is_refused_not_mixed(quick_run):
    out, _ = quick_run
    result = CliRunner().invoke(main, ["pipeline", "--out", str(out), "--quick", "--epochs", "5"])
    assert result.exit_code == 1
    assert "epochs: 3 -> 5" in result.output and "--redo train" in result.output
    assert "Traceback" not in result.output
