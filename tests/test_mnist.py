"""MNIST loading: the real files, and broken copies that must fail with a clear one-line error."""
import gzip

import numpy as np
import pytest

from edge_runtime.errors import MnistEdgeError
from train import mnist as mnist_module
from train.mnist import IDX_FILES, load_mnist


@pytest.fixture(scope="module")
def real(mnist_dir):
    return load_mnist(mnist_dir)


def write_idx(path, array, magic, gz=True):
    """An IDX file as the MNIST site ships it: big-endian magic and dims, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


def small_copy(real, folder, n=100, gz=True):
    """A folder of real MNIST digits (the first ``n`` of each split) in the standard IDX layout."""
    folder.mkdir(parents=True, exist_ok=True)
    for field, (name, magic, _) in IDX_FILES.items():
        write_idx(folder / (name + (".gz" if gz else "")), getattr(real, field)[:n], magic, gz)
    return folder


def test_real_mnist(real, mnist_dir):
    assert real.train_images.shape == (60000, 28, 28) and real.test_images.shape == (10000, 28, 28)
    assert real.train_labels.shape == (60000,) and real.test_labels.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in real)
    assert set(np.unique(real.train_labels)) == set(range(10)) == set(np.unique(real.test_labels))
    # white digits on black: the border is dark, the centre bright
    assert real.train_images[:, 0, :].mean() < 1 and real.train_images[:, 10:18, 10:18].mean() > 60
    _, source = load_mnist(mnist_dir, return_source=True)
    assert str(mnist_dir) in source


@pytest.mark.parametrize("gz", [True, False])
def test_idx_gz_and_raw(real, tmp_path, gz):
    loaded = load_mnist(small_copy(real, tmp_path, gz=gz))
    for field in IDX_FILES:
        np.testing.assert_array_equal(getattr(loaded, field), getattr(real, field)[:100])


def test_keras_npz_file_and_folder(real, tmp_path):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=real.train_images[:50], y_train=real.train_labels[:50],
             x_test=real.test_images[:20], y_test=real.test_labels[:20])
    for where in (npz, tmp_path):
        loaded = load_mnist(where)
        np.testing.assert_array_equal(loaded.test_images, real.test_images[:20])
        np.testing.assert_array_equal(loaded.train_labels, real.train_labels[:50])


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(MnistEdgeError, match="missing.*y_train"):
        load_mnist(tmp_path / "mnist.npz")


def test_truncated_gz(real, mnist_dir, tmp_path):
    folder = small_copy(real, tmp_path)
    whole = (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MnistEdgeError, match="train-images-idx3-ubyte.gz: truncated") as e:
        load_mnist(folder)
    assert "\n" not in str(e.value)


def test_truncated_raw(real, tmp_path):
    folder = small_copy(real, tmp_path, gz=False)
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(MnistEdgeError, match="truncated: header says 100 items"):
        load_mnist(folder)


def test_wrong_magic(real, tmp_path):
    folder = small_copy(real, tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", real.train_labels[:100], 2051 + 7)
    with pytest.raises(MnistEdgeError, match="magic number 2058, expected 2049"):
        load_mnist(folder)


def test_count_mismatch(real, tmp_path):
    folder = small_copy(real, tmp_path)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", real.test_labels[:99], 2049)
    with pytest.raises(MnistEdgeError, match="100 test images but labels of shape"):
        load_mnist(folder)


def test_wrong_dimensions(real, tmp_path):
    folder = small_copy(real, tmp_path)
    write_idx(folder / "train-images-idx3-ubyte.gz", real.train_images[:100, :27], 2051)
    with pytest.raises(MnistEdgeError, match="27x28, expected 28x28"):
        load_mnist(folder)


def test_missing_file(real, tmp_path):
    folder = small_copy(real, tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(MnistEdgeError, match="missing t10k-images-idx3-ubyte.gz"):
        load_mnist(folder)


def test_lookup_order(real, tmp_path, monkeypatch):
    explicit = small_copy(real, tmp_path / "explicit", n=10)
    env = small_copy(real, tmp_path / "env", n=20)
    home = tmp_path / "home"
    cache = home / ".keras" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    np.savez(cache, x_train=real.train_images[:30], y_train=real.train_labels[:30],
             x_test=real.test_images[:30], y_test=real.test_labels[:30])
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MNIST_EDGE_DATA", str(env))
    assert len(load_mnist(explicit).train_images) == 10
    assert len(load_mnist().train_images) == 20
    monkeypatch.delenv("MNIST_EDGE_DATA")
    mnist, source = load_mnist(return_source=True)
    assert len(mnist.train_images) == 30 and "Keras cache" in source


def test_explicit_path_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_EDGE_DATA", str(tmp_path / "gone"))
    with pytest.raises(MnistEdgeError, match=r"\$MNIST_EDGE_DATA .*gone: no such file or folder"):
        load_mnist()


def test_nowhere_to_find_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MNIST_EDGE_DATA", raising=False)
    monkeypatch.setattr(mnist_module, "_keras_installed", lambda: False)  # no download in tests
    with pytest.raises(MnistEdgeError) as e:
        load_mnist()
    message = str(e.value)
    assert "\n" not in message
    for part in ("MNIST not found", "$MNIST_EDGE_DATA (not set)", str(tmp_path / ".keras/datasets/mnist.npz"),
                 "--mnist PATH", "set MNIST_EDGE_DATA"):
        assert part in message


def test_offline_not_found_is_quick_and_loads_no_tensorflow(tmp_path, monkeypatch):
    """Keras would import TensorFlow (~10 s) just to fail offline: an unreachable source is reported first."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MNIST_EDGE_DATA", raising=False)
    monkeypatch.setattr(mnist_module, "_keras_installed", lambda: True)
    monkeypatch.setattr(mnist_module, "KERAS_ORIGIN", "http://127.0.0.1:9/mnist.npz")  # nothing listens there
    monkeypatch.setattr(mnist_module, "import_tensorflow", lambda: pytest.fail("went on to import Keras"))
    with pytest.raises(MnistEdgeError) as e:
        load_mnist()
    message = str(e.value)
    assert message.startswith("MNIST not found (looked at --mnist (not set); $MNIST_EDGE_DATA (not set); ")
    assert "cannot reach http://127.0.0.1:9/mnist.npz to download it: " in message and "\n" not in message
    assert message.endswith("pass --mnist PATH or set MNIST_EDGE_DATA to a folder with the four MNIST IDX files "
                            "or an mnist.npz")
