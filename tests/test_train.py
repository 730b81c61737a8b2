"""`mnist-edge train`: tiny real trainings on composed MNIST, resume after SIGKILL, mirrored, bad input.

In-process runs pass --no-deterministic: op determinism is a process-wide TensorFlow switch with no
public way back, and the other test modules share this process. Runs in subprocesses use the default.
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, kill_when, needs_tf
from edge_runtime.dataset_file import save_labelled_npz
from edge_runtime.metrics import evaluate
from edge_runtime.preprocess import DIGIT_HEIGHTS
from train import dataset, dataset_folder
from train.cli import main
from train.options import ARCHS

SIZES = {"train": 320, "val": 120, "test": 120}
TINY = ["--epochs", "1", "--batch-size", "64", "--no-deterministic"]
METADATA_KEYS = {"toolkit_version", "arch", "input_shape", "class_names", "thresholds", "preprocessing", "dataset",
                 "metrics", "versions", "seed", "options", "params", "macs", "epochs_run", "best_epoch",
                 "train_seconds", "wall_seconds", "num_replicas"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("data")
    dataset_folder.write_dataset(out, sizes=SIZES, seed=0, mnist_path=mnist_dir)
    return out


def run(*args):
    result = CliRunner().invoke(main, ["train", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def subprocess_env():
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_importing_the_command_does_not_import_tensorflow():
    code = "import sys, train.train_command; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert out.stdout.strip() == "[]"


@needs_tf
def test_weighted_bce_equals_hand_computed_value():
    from train.losses import EPSILON, WeightedBinaryCrossentropy, positive_weights

    y = np.array([[1, 0, 1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    p = np.linspace(0.05, 0.95, 20, dtype=np.float32).reshape(2, 10)
    p[0, 0], p[1, 1] = 0.0, 1.0  # clipped to eps / 1-eps
    w = np.arange(1, 11, dtype=np.float32)
    q = np.clip(p, np.float32(EPSILON), np.float32(1 - EPSILON)).astype(np.float64)  # clipped in float32, as in the loss
    expected = np.mean(-(w * y * np.log(q) + (1 - y) * np.log(1 - q)))  # mean over digits and images
    got = float(WeightedBinaryCrossentropy(w)(y, p))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(WeightedBinaryCrossentropy()(y, p)) == pytest.approx(
        np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))), rel=1e-5)

    labels = np.zeros((100, 10), np.uint8)
    labels[:20, 0] = 1    # 80/20 -> 4
    labels[:, 1] = 1      # always present -> 0, clipped up to 1
    labels[:1, 2] = 1     # 99/1 -> 99
    weights = positive_weights(labels)
    assert weights[:3].tolist() == [4.0, 1.0, 99.0]
    assert weights[3] == 100.0  # never present: the clip maximum


@needs_tf
def test_models_end_in_sigmoid_and_count_macs():
    from train.models import ARCHS as BUILT, build_model, count_macs

    assert set(BUILT) == set(ARCHS)
    macs = {arch: count_macs(build_model(arch)) for arch in ARCHS}
    # seed-cnn at 64x64: conv 62x62x32x9, conv 29x29x64x9x32, dense 14*14*64 x 128, dense 128 x 10
    assert macs["seed-cnn"] == 62 * 62 * 32 * 9 + 29 * 29 * 64 * 9 * 32 + 14 * 14 * 64 * 128 + 128 * 10
    assert macs["mlp"] == 64 * 64 * 128 + 128 * 10
    # Six blocks with 160 channels at 8x8 cost 1.5x 0.1's five blocks of 128: still 2x under seed-cnn;
    # latency, the real target, is in train/compare_archs.py and bench.
    assert macs["seed-cnn"] >= 2 * macs["edge-cnn"]
    model = build_model("edge-cnn", (36, 36, 1))  # any canvas size works
    assert model.output.shape[1:] == (10,) and model.layers[-1].get_config()["activation"] == "sigmoid"


@needs_tf
def test_every_epoch_has_its_own_seeded_order():
    from train.trainer import epoch_order

    a, b, c = (epoch_order(seed, epoch, 50).numpy() for seed, epoch in ((3, 1), (3, 1), (3, 2)))
    assert (a == b).all() and not (a == c).all() and sorted(a) == list(range(50))


# The edge-cnn run is also the uninterrupted reference for the resume test, hence its 3 epochs.
EDGE_ARGS = ["--arch", "edge-cnn", "--epochs", "3", "--batch-size", "64", "--patience", "10", "--overlap-pairs", "0.2"]


@pytest.fixture(scope="module")
def edge_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("edge") / "run"
    result = run("--data", data_dir, "--out", out, *EDGE_ARGS, "--no-deterministic")
    assert result.exit_code == 0, result.output
    return out, result.output


@needs_tf
@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_training_writes_a_loadable_run(arch, data_dir, mnist_dir, edge_run, tmp_path, monkeypatch):
    import keras

    if arch == "edge-cnn":
        out, output = edge_run
    else:
        out = tmp_path / "run"
        if arch == "mlp":  # compose the same data in memory instead, at the tiny sizes
            monkeypatch.setattr(dataset, "SPLIT_SIZES", SIZES)
            result = run("--mnist", mnist_dir, "--out", out, "--arch", arch, *TINY)
        else:
            result = run("--data", data_dir, "--out", out, "--arch", arch, *TINY)
        assert result.exit_code == 0, result.output
        output = result.output
    assert "macro-F1" in output and "threshold" in output

    meta = json.loads((out / "metadata.json").read_text())
    epochs = 3 if arch == "edge-cnn" else 1
    assert METADATA_KEYS <= set(meta)
    assert meta["arch"] == arch and meta["input_shape"] == [64, 64, 1] and len(meta["thresholds"]) == 10
    assert meta["class_names"] == [str(c) for c in range(10)] and meta["epochs_run"] == epochs
    written = json.loads((data_dir / "dataset.json").read_text())
    if arch == "mlp":  # --mnist composed `mnist-edge data`'s defaults
        assert meta["dataset"]["parameters"] == written["parameters"]
    else:
        assert meta["dataset"] == written
    assert [row["epoch"] for row in history(out)] == [str(e) for e in range(1, epochs + 1)]

    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    with np.load(data_dir / "test.npz") as test:  # --mnist composed these same images
        images, labels = test["images"], test["labels"]
    scores = model.predict(images[..., None].astype(np.float32) / 255, verbose=0)
    assert scores.shape == (len(images), 10) and scores.min() >= 0 and scores.max() <= 1
    stored = meta["metrics"]["test"]  # those of the saved model with the saved thresholds
    assert evaluate(labels, scores, meta["thresholds"])["macro_f1"] == pytest.approx(stored["macro_f1"], abs=1e-3)


@needs_tf
def test_resume_after_sigkill_continues_from_the_last_checkpoint(data_dir, edge_run, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-c", "from train.cli import main; main()", "train", "--data", str(data_dir),
               "--out", str(out), *EDGE_ARGS]
    proc = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "state.json"
    kill_when(proc, state.parent, state.name, "first checkpoint")
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 3  # killed while a later epoch was running

    assert run("--data", data_dir, "--out", out).exit_code == 1  # no silent restart over an interrupted run
    resumed = run("--out", out, "--resume", "--no-deterministic")
    assert resumed.exit_code == 0, resumed.output
    assert f"after epoch {done}" in resumed.output

    rows, reference = history(out), history(edge_run[0])
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    for column in ("loss", "val_loss"):  # same batches, same optimizer state: the same run up to float round-off
        np.testing.assert_allclose([float(r[column]) for r in rows], [float(r[column]) for r in reference], rtol=1e-4)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["epochs_run"] == 3
    assert meta["training_images"]["mode"] == "fresh"  # every epoch composed anew, keyed by (seed, epoch)
    assert meta["training_images"]["overlap_pairs"] == 0.2  # overlapping pairs included, from the same key
    assert meta["digit_heights"] == [14.0, 24.0] == list(DIGIT_HEIGHTS)  # 0.7-1.2x MNIST's 20 px: `infer`'s fallback
    assert run("--out", out, "--resume").output.strip().endswith("nothing to resume")


@needs_tf
def test_mirrored_strategy_on_two_logical_cpus(data_dir, tmp_path):
    code = ("import sys, tensorflow as tf\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "from train.cli import main\n"
            "main(sys.argv[1:])\n")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", code, "train", "--data", str(data_dir), "--out", str(out),
                           "--strategy", "mirrored", "--epochs", "1", "--batch-size", "64"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["num_replicas"] == 2 and meta["options"]["strategy"] == "mirrored"


def _bad_sets(tmp_path, data_dir):
    """Data set folders that are each broken in one way, with the message the user should see."""
    good = {name: np.load(data_dir / f"{name}.npz") for name in ("train", "val", "test")}

    def folder(name, **train):
        path = tmp_path / name
        path.mkdir()
        for split, npz in good.items():
            save_labelled_npz(path / f"{split}.npz", npz["images"], npz["labels"])
        if train:
            with open(path / "train.npz", "wb") as f:
                np.savez(f, **train)
        return path

    images, labels = good["train"]["images"], good["train"]["labels"]
    yield folder("no_labels", images=images), "no 'labels'"
    yield folder("labels_5", images=images, labels=labels[:, :5]), "labels must be (N,10)"
    yield folder("rank_4", images=images[..., None], labels=labels), "images must be (N,H,W)"
    small = tmp_path / "small"
    small.mkdir()
    for split in ("train", "val", "test"):
        save_labelled_npz(small / f"{split}.npz", np.zeros((4, 16, 16), np.uint8), np.zeros((4, 10), np.uint8))
    yield small, "at least 28x28"
    missing_test = folder("missing_test")
    (missing_test / "test.npz").unlink()
    yield missing_test, "test.npz: no such file"


def test_bad_data_gives_a_one_line_error(tmp_path, data_dir):
    for path, message in _bad_sets(tmp_path, data_dir):
        result = run("--data", path, "--out", tmp_path / "out")
        assert result.exit_code == 1, (path.name, result.output)
        assert message in result.output and result.output.startswith("Error:"), result.output
        assert not (tmp_path / "out").exists()


def test_bad_arguments_and_run_folders(tmp_path, data_dir):
    missing = run("--data", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert run("--out", tmp_path / "out").exit_code == 2  # neither --data nor --mnist
    assert run("--data", data_dir, "--mnist", "--out", tmp_path / "out").exit_code == 2

    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "metadata.json").write_text("{}")
    result = run("--data", data_dir, "--out", finished)
    assert result.exit_code == 1 and "already holds a finished run" in result.output

    interrupted = tmp_path / "interrupted" / "checkpoint"
    interrupted.mkdir(parents=True)
    options = {"data": str(data_dir), "mnist": None, "arch": "mlp"}
    (interrupted / "state.json").write_text(json.dumps({"epochs_done": 2, "options": options}))
    result = run("--data", data_dir, "--out", interrupted.parent)
    assert result.exit_code == 1 and "pass --resume" in result.output
    result = run("--out", interrupted.parent, "--resume", "--arch", "seed-cnn")
    assert result.exit_code == 2 and "--arch seed-cnn differs" in result.output


def test_fresh_images_need_a_composed_data_set(tmp_path, data_dir):
    own = tmp_path / "own"
    own.mkdir()
    for name in ("train.npz", "val.npz", "test.npz"):  # the user's own npz files: no dataset.json
        (own / name).write_bytes((data_dir / name).read_bytes())
    result = run("--data", own, "--out", tmp_path / "run", "--compose", "fresh")
    assert result.exit_code == 1 and "--compose fixed" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run("--data", data_dir, "--out", tmp_path / "run", "--digit-scale", "0.1,1")
    assert result.exit_code != 0 and "digit" in result.output.lower()
