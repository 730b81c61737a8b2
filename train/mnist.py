"""Load MNIST with numpy alone, from whatever copy is at hand.

A device has no TensorFlow and often no network, so the reader understands the original IDX files
(gzipped or raw) and Keras's ``mnist.npz`` itself; Keras is only the last resort, for downloading.
"""
import gzip
import importlib.util
import os
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from convert.tensorflow_env import import_tensorflow
from edge_runtime.dataset_file import npz_errors
from edge_runtime.errors import MnistEdgeError, first_line

ENV_VAR = "MNIST_EDGE_DATA"
KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")
NPZ_NAME = "mnist.npz"
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"  # keras.datasets.mnist's source
# field -> (standard IDX file name without .gz, magic number, dimensions after the count)
IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", 2051, (28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", 2049, ()),
    "test_images": ("t10k-images-idx3-ubyte", 2051, (28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049, ()),
}
NPZ_KEYS = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}


class Mnist(NamedTuple):
    train_images: np.ndarray  # uint8 (60000, 28, 28), white digits on black
    train_labels: np.ndarray  # uint8 (60000,), 0..9
    test_images: np.ndarray   # uint8 (10000, 28, 28)
    test_labels: np.ndarray   # uint8 (10000,)


def load_mnist(path=None, return_source=False):
    """Load MNIST from ``path`` (a folder of IDX files or an ``mnist.npz``), else the usual places.

    Lookup order: ``path`` (``--mnist``), ``$MNIST_EDGE_DATA``, ``~/.keras/datasets/mnist.npz``,
    then a download through Keras if it is installed. With ``return_source=True`` returns
    ``(Mnist, description)``, the description saying where the digits came from.
    """
    looked = []
    for given, origin in ((path, "--mnist"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is not None:
            mnist, source = _read_location(Path(given).expanduser(), origin)
            return (mnist, source) if return_source else mnist
        looked.append(f"{origin} (not set)")
    cache = KERAS_CACHE.expanduser()
    if cache.is_file():
        mnist = _read_npz(cache)
        return (mnist, f"Keras cache {cache}") if return_source else mnist
    looked.append(str(cache))
    mnist = _keras_download(looked)
    return (mnist, f"downloaded by Keras to {cache}") if return_source else mnist


def _read_location(path, origin):
    """Read an explicitly named copy; failing here is an error, never a fall-through to other places."""
    if path.is_file():
        if path.suffix != ".npz":
            raise MnistEdgeError(f"{origin} {path}: expected a folder with the four MNIST IDX files or an mnist.npz")
        return _read_npz(path), f"{path}"
    if not path.is_dir():
        raise MnistEdgeError(f"{origin} {path}: no such file or folder")
    if not any((path / (name + ext)).is_file() for name, _, _ in IDX_FILES.values() for ext in ("", ".gz")):
        if (path / NPZ_NAME).is_file():
            return _read_npz(path / NPZ_NAME), f"{path / NPZ_NAME}"
    arrays = {field: _read_idx(_find_idx(path, name), magic, dims) for field, (name, magic, dims) in IDX_FILES.items()}
    return _checked(Mnist(**arrays), path), f"IDX files in {path}"


def _find_idx(folder, name):
    for candidate in (folder / (name + ".gz"), folder / name):
        if candidate.is_file():
            return candidate
    raise MnistEdgeError(f"{folder}: missing {name}.gz (or raw {name}); "
                         f"a MNIST folder needs the four IDX files or an {NPZ_NAME}")


def _read_idx(path, magic, dims):
    """Parse one IDX file (big-endian header: magic, then one uint32 per dimension, then uint8 data)."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zipfile.BadZipFile) as e:  # gzip raises EOFError on truncation
        raise MnistEdgeError(f"{path}: truncated or corrupt gzip file ({e})") from None
    ndim = 1 + len(dims)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistEdgeError(f"{path}: truncated IDX file ({len(data)} bytes, shorter than its header)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise MnistEdgeError(f"{path}: not an MNIST IDX file (magic number {found}, expected {magic})")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape[1:] != dims:
        raise MnistEdgeError(f"{path}: images are {'x'.join(map(str, shape[1:]))}, expected 28x28")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise MnistEdgeError(f"{path}: {what}: header says {shape[0]} items ({expected} bytes), file has {len(data)}")
    return np.frombuffer(bytearray(data), np.uint8, offset=header).reshape(shape)


def _read_npz(path):
    with npz_errors(path), np.load(path, allow_pickle=False) as npz:
        missing = sorted(set(NPZ_KEYS.values()) - set(npz.files))
        if missing:
            raise MnistEdgeError(f"{path}: not a Keras-style mnist.npz (missing {', '.join(missing)})")
        mnist = Mnist(**{field: npz[key] for field, key in NPZ_KEYS.items()})
    return _checked(mnist, path)


def _checked(mnist, where):
    """Shapes, dtypes, matching counts and label range: what the rest of the toolkit relies on."""
    for split in ("train", "test"):
        images, labels = getattr(mnist, f"{split}_images"), getattr(mnist, f"{split}_labels")
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise MnistEdgeError(f"{where}: {split} images must be uint8 (N,28,28), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise MnistEdgeError(f"{where}: {len(images)} {split} images but labels of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise MnistEdgeError(f"{where}: {split} labels must be digits 0..9")
    return mnist._replace(train_labels=mnist.train_labels.astype(np.uint8, copy=False),
                          test_labels=mnist.test_labels.astype(np.uint8, copy=False))


def _keras_download(looked):
    """Last resort: Keras fetches and caches mnist.npz. Any failure becomes the one-line 'not found'."""
    hint = f"pass --mnist PATH or set {ENV_VAR} to a folder with the four MNIST IDX files or an {NPZ_NAME}"
    if not _keras_installed():
        raise MnistEdgeError(f"MNIST not found (looked at {'; '.join(looked)}; Keras is not installed to download it); {hint}")
    offline = _unreachable(KERAS_ORIGIN)
    if offline:
        raise MnistEdgeError(f"MNIST not found (looked at {'; '.join(looked)}; cannot reach {KERAS_ORIGIN} to "
                             f"download it: {offline}); {hint}")
    try:
        import_tensorflow()  # Keras loads it; this keeps its start-up lines out of the output
        from keras.datasets import mnist as keras_mnist

        (x_train, y_train), (x_test, y_test) = keras_mnist.load_data()
    except Exception as e:  # offline, proxy, disk full: the user needs the same advice in every case
        raise MnistEdgeError(f"MNIST not found (looked at {'; '.join(looked)}; Keras download failed: {first_line(e)}); {hint}") from None
    return _checked(Mnist(x_train, y_train, x_test, y_test), "Keras download")


def _unreachable(url, timeout=10):
    """Why ``url`` cannot be fetched, or None. Checked first because importing Keras loads TensorFlow
    (~10 s), which an offline user would wait for only to read "not found"."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except (OSError, ValueError) as e:  # URLError, HTTPError and timeouts are OSErrors
        return str(getattr(e, "reason", None) or first_line(e))


def _keras_installed():
    return importlib.util.find_spec("keras") is not None
