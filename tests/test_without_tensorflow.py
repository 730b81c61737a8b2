"""`train` and `convert` where TensorFlow is missing (a device): one line naming the extra, no traceback."""
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import HAS_TF, REPO
from edge_runtime.dataset_file import save_labelled_npz
from train.cli import main

COMMANDS = {"train": ["train", "--data", "{tmp}", "--out", "{tmp}/run"],  # a valid (tiny) data set, so only TF is missing
            "convert": ["convert", "{tmp}", "--out", "{tmp}/models"]}


def _args(command, tmp_path):
    for split in ("train", "val", "test"):
        save_labelled_npz(tmp_path / f"{split}.npz", np.zeros((4, 28, 28), np.uint8), np.zeros((4, 10), np.uint8))
    return [a.format(tmp=tmp_path) for a in COMMANDS[command]]


def _check(command, status, output):
    assert status == 1, output
    assert "Traceback" not in output and "ModuleNotFoundError" not in output
    assert output.strip() == (f'Error: `mnist-edge {command}` needs TensorFlow, which is not installed here: '
                              'pip install "mnist-edge[train-cpu]" (or "mnist-edge[train]" for the full TensorFlow wheel)')


@pytest.mark.skipif(HAS_TF, reason="runs where TensorFlow is really absent (the edge venv of .ci/run)")
@pytest.mark.parametrize("command", COMMANDS)
def test_without_tensorflow_the_error_names_the_extra(command, tmp_path):
    run = subprocess.run([sys.executable, "-c", "from train.cli import main; main(prog_name='mnist-edge')",
                          *_args(command, tmp_path)], capture_output=True, text=True, cwd=REPO)
    _check(command, run.returncode, run.stdout + run.stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_check_itself_with_tensorflow_hidden(command, tmp_path, monkeypatch):
    """The same message in any venv: the check is what decides, not an ImportError deep inside."""
    import convert.tensorflow_env

    monkeypatch.setattr(convert.tensorflow_env, "tensorflow_installed", lambda: False)
    result = CliRunner().invoke(main, _args(command, tmp_path))
    _check(command, result.exit_code, result.output)
