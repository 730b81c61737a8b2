"""`mnist-edge data` end to end: in process with CliRunner, and as a real subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_runtime import __version__
from edge_runtime.dataset_file import load_labelled_npz
from train import mnist as mnist_module
from train.cli import main
from train.dataset_folder import fresh_images

SMALL = ["--train", "300", "--val", "40", "--test", "60"]


def run(*args):
    return CliRunner().invoke(main, ["data", *map(str, args)])


def command():
    """The installed console script beside this Python, else the same entry point via -c."""
    script = Path(sys.executable).with_name("mnist-edge")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from train.cli import main; main()"]


def test_writes_the_data_set(mnist_dir, tmp_path):
    out = tmp_path / "new" / "data"  # created if missing
    result = run(out, *SMALL, "--mnist", mnist_dir, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["dataset.json", "preview.png", "test.npz", "train.npz", "val.npz"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["toolkit_version"] == __version__ and info["seed"] == 3 and info["preset"] is None
    assert info["parameters"]["canvas"] == 64 and info["parameters"]["max_overlap"] == 0.25
    assert str(mnist_dir) in info["mnist_source"]
    for name, n in (("train", 300), ("val", 40), ("test", 60)):
        with np.load(out / f"{name}.npz", allow_pickle=False) as npz:
            assert sorted(npz.files) == ["digits_per_image", "images", "labels", "max_overlap"]
        images, labels = load_labelled_npz(out / f"{name}.npz")
        assert images.shape == (n, 64, 64) and labels.shape == (n, 10)
        split = info["splits"][name]
        assert split["images"] == n and sum(split["digit_count_histogram"]) == n
        assert split["images_per_class"] == labels.sum(axis=0).tolist()
        assert split["digit_count_histogram"][0] == round(0.05 * n)
    with Image.open(out / "preview.png") as preview:
        assert preview.width >= 8 * 112 and preview.height >= 4 * 112
    assert "train: 300 images" in result.output  # the progress line


def test_same_seed_same_files(mnist_dir, tmp_path):
    for out in ("a", "b"):
        assert run(tmp_path / out, *SMALL, "--mnist", mnist_dir).exit_code == 0
    for name in ("train", "val", "test"):
        a, b = (load_labelled_npz(tmp_path / out / f"{name}.npz") for out in ("a", "b"))
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()


def test_tilted_handwriting_test_set(mnist_dir, tmp_path):
    assert run(tmp_path / "plain", *SMALL, "--mnist", mnist_dir).exit_code == 0
    result = run(tmp_path / "tilted", *SMALL, "--mnist", mnist_dir, "--digit-warp", "20,0.35")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "tilted" / "dataset.json").read_text())
    assert info["parameters"]["digit_warp"] == [20, 0.35]
    (plain, plain_labels), (tilted, tilted_labels) = (load_labelled_npz(tmp_path / d / "test.npz") for d in ("plain", "tilted"))
    assert np.array_equal(plain_labels, tilted_labels) and plain.tobytes() != tilted.tobytes()  # same layout, warped digits
    options = {"compose": "auto", "mnist": mnist_dir, "digit_scale": (1, 1), "seed": 0}
    assert fresh_images(options, info, "tilted").options["digit_warp"] == (20, 0.35)  # train's fresh images alike
    result = run(tmp_path / "bad", *SMALL, "--mnist", mnist_dir, "--digit-warp", "10")
    assert result.exit_code == 2 and "DEGREES,SHEAR" in result.output


def test_preset_and_class_prior(mnist_dir, tmp_path):
    result = run(tmp_path, *SMALL, "--mnist", mnist_dir, "--preset", "multimnist", "--class-prior", "1,1,1,1,1,1,1,1,1,3")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["preset"] == "multimnist" and info["parameters"]["canvas"] == 36
    assert info["parameters"]["class_prior"][9] == pytest.approx(0.25)
    images, labels = load_labelled_npz(tmp_path / "train.npz")
    assert images.shape[1:] == (36, 36) and (labels.sum(axis=1) == 2).all()
    assert labels[:, 9].sum() > labels[:, :9].sum(axis=0).max()


@pytest.mark.parametrize("args, message", [
    (["--train", "-5"], "-5 is not in the range"),
    (["--val", "-1"], "-1 is not in the range"),
    (["--canvas", "20"], "20 is not in the range x>=28"),
    (["--min-digits", "3", "--max-digits", "2"], "less than --min-digits 3"),
    (["--max-digits", "12"], "cannot fit on a 64x64 canvas"),
    (["--preset", "capsules"], "'capsules' is not"),
    (["--preset", "multimnist", "--canvas", "64"], "drop --canvas"),
    (["--class-prior", "1,2,3"], "10 non-negative weights"),
    (["--empty-fraction", "1.5"], "1.5 is not in the range"),
])
def test_bad_arguments(tmp_path, args, message):
    result = run(tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MNIST_EDGE_DATA", raising=False)
    monkeypatch.setattr(mnist_module, "_keras_installed", lambda: False)  # no download in tests
    result = run(tmp_path / "out", *SMALL)
    assert result.exit_code == 1
    assert result.output.startswith("Error: MNIST not found") and result.output.count("\n") == 1
    assert "--mnist PATH" in result.output and "MNIST_EDGE_DATA" in result.output


def test_real_subprocess(mnist_dir, tmp_path):
    env = {**os.environ, "MNIST_EDGE_DATA": str(mnist_dir)}
    done = subprocess.run([*command(), "data", str(tmp_path), "--train", "200", "--val", "20", "--test", "30"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train: 200 images" in done.stderr and "IDX files in" in done.stderr
    assert load_labelled_npz(tmp_path / "test.npz")[0].shape == (30, 64, 64)
    bad = subprocess.run([*command(), "data", str(tmp_path), "--canvas", "10"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--canvas" in bad.stderr and "Traceback" not in bad.stderr


def test_splits_too_large_to_hold_are_refused_before_work(tmp_path):
    for args in (["--train", "100000000"], ["--canvas", "100000"]):
        result = CliRunner().invoke(main, ["data", str(tmp_path / "d"), *args])
        assert result.exit_code == 1 and "GiB" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "d" / "train.npz").exists()
