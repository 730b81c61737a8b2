"""The pipeline's record of a finished data stage: which MNIST it used (digest), not how its path was spelled.

The data stage runs for real on a tiny data set; the later stages are replaced by no-ops, so the
test needs neither TensorFlow nor minutes, and checks only the bookkeeping between runs.
"""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import train.pipeline as pipeline
from train.cli import main
from train.mnist import load_mnist

TINY = ["--train", "40", "--val", "20", "--test", "20"]


@pytest.fixture()
def data_only(monkeypatch):
    real = pipeline._run_stage

    def run_stage(ctx, stage, out, dirs, *args, **kwargs):
        if stage == "data":
            real(ctx, stage, out, dirs, *args, **kwargs)
        elif stage == "bench":
            (out / "report.md").write_text("stand-in\n")

    monkeypatch.setattr(pipeline, "_run_stage", run_stage)


def pipe(out, *args, env=None):
    return CliRunner().invoke(main, ["pipeline", "--out", str(out), *TINY, *map(str, args)], env=env)


def test_same_mnist_named_another_way_continues(data_only, mnist_dir, tmp_path):
    out = tmp_path / "run"
    assert pipe(out, "--mnist", mnist_dir).exit_code == 0
    record = json.loads((out / "pipeline.json").read_text())["finished"]["data"]["options"]
    assert "mnist_path" not in record
    assert record["mnist_sha256"] == json.loads((out / "data" / "dataset.json").read_text())["mnist_sha256"]
    again = pipe(out, env={"MNIST_EDGE_DATA": str(mnist_dir)})          # via the environment
    assert again.exit_code == 0, again.output
    assert again.output.count("done already, skipped") == 4
    respelled = pipe(out, "--mnist", f"{mnist_dir}/../{mnist_dir.name}")  # another spelling of the folder
    assert respelled.exit_code == 0, respelled.output


def test_other_mnist_is_refused_with_redo_data(data_only, mnist_dir, tmp_path):
    out = tmp_path / "run"
    assert pipe(out, "--mnist", mnist_dir).exit_code == 0
    mnist = load_mnist(mnist_dir)
    labels = mnist.train_labels.copy()
    labels[0] = (labels[0] + 1) % 10  # one label differs: another MNIST
    np.savez(tmp_path / "mnist.npz", x_train=mnist.train_images, y_train=labels, x_test=mnist.test_images,
             y_test=mnist.test_labels)
    result = pipe(out, "--mnist", tmp_path / "mnist.npz")
    assert result.exit_code == 1
    assert "MNIST (sha256 of its training digits)" in result.output
    assert "add --redo data (data and the later stages (train, convert, bench) run again)" in result.output


def test_changed_training_option_names_redo_train_not_data(data_only, mnist_dir, tmp_path):
    out = tmp_path / "run"
    assert pipe(out, "--mnist", mnist_dir, "--epochs", "2").exit_code == 0
    result = pipe(out, "--epochs", "3", env={"MNIST_EDGE_DATA": str(mnist_dir)})
    assert result.exit_code == 1
    error = result.output.splitlines()[-1]
    assert "epochs: 2 -> 3" in error and "--redo data" not in error
    assert error.endswith("add --redo train (train and the later stages (convert, bench) run again), or use a new --out")
