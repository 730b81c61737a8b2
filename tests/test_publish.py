"""Publishing output folders safely: whole sets or nothing, one writer per folder, checks before work.

Real files and real processes: a `data` run killed with SIGKILL while composing into an existing
folder, a set cut off between its renames, a file swapped in from another composition, a second
process on a locked folder, and options that must be refused before any work starts.
"""
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, kill_when, needs_tf
from edge_runtime import file_set
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import PUBLISHING, sha256_file
from edge_runtime.files import FILE_MODE, TEMP_TAG, atomic_path
from edge_runtime.output_folder import LOCK_FILE, claim_output
from train.cli import main
from train.dataset_folder import load_data, write_dataset

SIZES = {"train": 200, "val": 40, "test": 40}
SET = ("train.npz", "val.npz", "test.npz", "dataset.json")


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def env():
    return {**os.environ, "PYTHONPATH": str(REPO)}


def command(*args):
    return [sys.executable, "-c", "from train.cli import main; main()", *map(str, args)]


def hashes(folder):
    return {name: sha256_file(folder / name) for name in SET}


@pytest.fixture()
def old_set(tmp_path, mnist_dir):
    folder = tmp_path / "data"
    write_dataset(folder, sizes=SIZES, seed=0, mnist_path=mnist_dir)
    return folder


def test_data_set_lists_its_files_and_a_foreign_file_is_refused(old_set, tmp_path, mnist_dir):
    info = json.loads((old_set / "dataset.json").read_text())
    assert info["files"] == {name: sha256_file(old_set / name) for name in SET[:3]}
    other = tmp_path / "other"
    write_dataset(other, sizes=SIZES, seed=1, mnist_path=mnist_dir)
    (old_set / "train.npz").write_bytes((other / "train.npz").read_bytes())  # train from another composition
    with pytest.raises(MnistEdgeError, match="train.npz: not the file .*dataset.json lists"):
        load_data(old_set)
    result = cli("train", "--data", old_set, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "another composition" in result.output and "Traceback" not in result.output


def test_data_killed_while_composing_leaves_the_old_set(old_set, mnist_dir):
    before = hashes(old_set)
    proc = subprocess.Popen(command("data", old_set, "--train", 30000, "--val", 2000, "--test", 2000,
                                    "--seed", 5, "--mnist", mnist_dir),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, old_set, f".stage{TEMP_TAG}*/train.npz", "staged train.npz")  # the first new file is complete
    assert hashes(old_set) == before  # the old set, whole
    splits, info = load_data(old_set)
    assert len(splits["train"][0]) == SIZES["train"] and info["seed"] == 0
    assert list(old_set.glob(f"*{TEMP_TAG}*"))  # the killed run's staging folder ...
    result = cli("data", old_set, "--train", 100, "--val", 20, "--test", 20, "--seed", 5, "--mnist", mnist_dir)
    assert result.exit_code == 0, result.output
    assert not list(old_set.glob(f"*{TEMP_TAG}*"))  # ... is removed by the next run that holds the lock
    assert len(load_data(old_set)[0]["train"][0]) == 100


def test_a_set_cut_off_between_renames_is_refused(old_set, mnist_dir, monkeypatch):
    renames = []
    real_replace = os.replace

    def killed_after_one(src, dst):
        if Path(dst).parent == old_set and Path(dst).suffix == ".npz":  # publishing, not staging
            if renames:
                raise KeyboardInterrupt  # as a kill would, between two renames
            renames.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(file_set.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(old_set, sizes=SIZES, seed=3, mnist_path=mnist_dir)
    monkeypatch.undo()
    assert (old_set / PUBLISHING).exists()
    with pytest.raises(MnistEdgeError, match="stopped while replacing the files"):
        load_data(old_set)
    write_dataset(old_set, sizes=SIZES, seed=3, mnist_path=mnist_dir)  # publishing again repairs it
    assert not (old_set / PUBLISHING).exists() and load_data(old_set)[1]["seed"] == 3


def test_second_process_on_a_locked_folder_gets_a_one_line_error(tmp_path, mnist_dir):
    out = tmp_path / "busy"
    with claim_output(out):
        done = subprocess.run(command("data", out, "--train", 50, "--val", 10, "--test", 10, "--mnist", mnist_dir),
                              env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (f"Error: {out} is in use by another mnist-edge process (pid {os.getpid()}); "
                                   "wait for it to finish or choose another OUT_DIR")
    assert not (out / "train.npz").exists()
    assert cli("data", out, "--train", 50, "--val", 10, "--test", 10, "--mnist", mnist_dir).exit_code == 0


def test_stale_temp_files_are_removed_when_the_folder_is_claimed(tmp_path):
    stale = [tmp_path / f".model_int8.tflite{TEMP_TAG}x1y2.tflite", tmp_path / f".stage{TEMP_TAG}abc"]
    stale[0].write_bytes(b"half")
    stale[1].mkdir()
    keep = tmp_path / ".hidden-but-not-ours"
    keep.write_text("mine")
    with claim_output(tmp_path):
        assert not any(p.exists() for p in stale) and keep.exists()
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_atomic_path_leaves_the_umask_alone_syncs_and_reports_a_full_disk(tmp_path, monkeypatch):
    def no_umask(mask):
        raise AssertionError("atomic_path changed the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    target = tmp_path / "report.json"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == FILE_MODE
    with pytest.raises(MnistEdgeError, match="no space left on the device"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("args", [
    ["data", "{out}", "--train", "10"],
    ["train", "--data", "{data}", "--out", "{out}"],
    ["convert", "{data}", "--out", "{out}"],
    ["bench", "m.tflite", "--data", "{data}/test.npz", "--out", "{out}"],
    ["pipeline", "--out", "{out}", "--quick"],
])
def test_out_under_a_file_or_in_a_link_loop_is_refused_before_any_work(tmp_path, old_set, args):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for out, message in ((tmp_path / "a_file" / "out", "a_file is a file"), (tmp_path / "loop" / "out", "link loop")):
        start = time.monotonic()
        result = cli(*(a.format(out=out, data=old_set) for a in args))
        assert result.exit_code == 1, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert time.monotonic() - start < 30  # checked first, not after the work


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "{data}", "--out", "{out}", "--lr", "nan"], "'nan' is not a finite number"),
    (["train", "--data", "{data}", "--out", "{out}", "--lr", "inf"], "'inf' is not a finite number"),
    (["data", "{out}", "--max-overlap", "nan"], "'nan' is not a finite number"),
    (["data", "{out}", "--digit-scale", "nan,1"], "expected finite numbers"),
    (["pipeline", "--out", "{out}", "--max-f1-drop", "nan"], "'nan' is not a finite number"),
    (["pipeline", "--out", "{out}", "--quick", "--ship"], "--ship replaces the package's default models"),
    (["convert", "{data}", "--out", "{out}", "--seed", "-1"], "-1 is not in the range x>=0"),
])
def test_options_refused_up_front(tmp_path, old_set, args, message):
    out = tmp_path / "out"
    result = cli(*(a.format(out=out, data=old_set) for a in args))
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


@needs_tf
def test_a_non_finite_epoch_is_never_best_and_ends_training(tmp_path):
    import keras

    from train.trainer import EpochCheckpoint

    (tmp_path / "checkpoint").mkdir()
    state = {"options": {"patience": 3, "epochs": 5, "lr": 1.0}, "epochs_done": 0, "finished": False,
             "best": [-1.0, -float("inf")], "best_epoch": 0, "wait": 0, "history": [], "train_seconds": 0.0}
    callback = EpochCheckpoint(tmp_path, state)
    callback.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    callback.on_epoch_begin(0)
    with pytest.raises(MnistEdgeError, match=r"training diverged in epoch 1 \(loss nan.*lower --lr"):
        # NaN weights predict no digit, which still scores a macro-F1: it used to become "best"
        callback.on_epoch_end(0, {"loss": float("nan"), "macro_f1": 0.0, "val_loss": float("nan"),
                                  "val_macro_f1": 0.0})
    assert "best_weights" not in state and state["history"] == [] and not list((tmp_path / "checkpoint").iterdir())


def test_float32_fidelity_is_judged_on_the_scores():
    from convert.verify import problems

    structure = {"quantization": {}, "fully_integer": False, "ops": {}, "float_ops": []}
    exact = {"non_finite": 0, "max_abs_diff": 1.2e-7, "mean_abs_diff": 1e-8, "identical_sets": 0.68,
             "identical_sets_confident": 1.0, "macro_f1_drop": 0.0}
    assert problems("float32", structure, exact) == []  # a weak model's scores on its thresholds: still exact
    wrong = {**exact, "max_abs_diff": 3e-3, "identical_sets": 1.0}
    assert problems("float32", structure, wrong) == ["max abs diff 0.003 is beyond the float32 bound 0.0001"]
    nan = {**exact, "mean_abs_diff": float("nan")}
    assert problems("float32", structure, nan)  # NaN fails every bound


def test_ship_refuses_models_below_the_bar_and_leaves_the_shipped_ones(tmp_path):
    import edge_runtime
    from train.pipeline import _ship

    shipped = Path(edge_runtime.__file__).parent / "models"
    before = {p.name: p.read_bytes() for p in shipped.glob("*.tflite")}
    (tmp_path / "bench").mkdir()
    report = {"models": [{"format": "float32", "macro_f1": 0.9851}, {"format": "int8", "macro_f1": 0.6204}]}
    (tmp_path / "bench" / "report.json").write_text(json.dumps(report))
    with pytest.raises(MnistEdgeError, match=r"not shipped: test macro-F1 int8 0.6204 is below the shipped models' "
                                             r"bar 0.98; the package's default models were left as they were"):
        _ship(tmp_path / "models", tmp_path / "bench")
    assert {p.name: p.read_bytes() for p in shipped.glob("*.tflite")} == before
