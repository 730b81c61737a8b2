"""The labelled data set file: ``images`` uint8 (N,H,W) and ``labels`` uint8 (N,10) multi-hot,
optionally with per-image difficulty arrays (``DIFFICULTY``) that ``bench`` breaks results down by.

It lives here, beside the device runtime, because training, conversion and the on-device
benchmark all read it, and the device has only numpy.
"""
import contextlib
import zipfile
from pathlib import Path

import numpy as np

from .errors import MnistEdgeError
from .file_set import check_listed
from .files import atomic_path
from .model_contract import NUM_CLASSES

# Per-image arrays a composed data set also records (name -> dtype); readers that know only
# images and labels are unaffected.
DIFFICULTY = {
    "digits_per_image": np.uint8,  # how many digits were pasted (classes may repeat, so not labels.sum)
    "max_overlap": np.float32,     # largest share of one digit's ink box covered by another digit's box
}


@contextlib.contextmanager
def npz_errors(path, kind=".npz"):
    """Turn the many ways numpy fails to read an array file into one-line MnistEdgeErrors naming it."""
    try:
        yield
    except MnistEdgeError:
        raise
    except FileNotFoundError:
        raise MnistEdgeError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise MnistEdgeError(f"{path}: not a readable {kind} file ({e})") from None


def save_labelled_npz(path, images, labels, compressed=False, **difficulty):
    """Write images, labels and any ``DIFFICULTY`` arrays given, atomically; uncompressed (fast to read
    on a device) unless ``compressed``."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    _check(images, labels, path)
    unknown = set(difficulty) - set(DIFFICULTY)
    if unknown:
        raise TypeError(f"unknown per-image arrays: {', '.join(sorted(unknown))}")
    extra = {name: np.ascontiguousarray(value, dtype=DIFFICULTY[name]) for name, value in difficulty.items()}
    for name, value in extra.items():
        if value.shape != (len(images),):
            raise MnistEdgeError(f"{path}: {name} must hold one value per image ({len(images)}), got shape {value.shape}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, images=images, labels=labels, **extra)


def load_difficulty(path, num_images):
    """The ``DIFFICULTY`` arrays the file holds ({} for files written before they existed, or by hand)."""
    with npz_errors(path), np.load(path, allow_pickle=False) as npz:
        found = {name: npz[name] for name in DIFFICULTY if name in npz.files}
    for name, value in found.items():
        if value.shape != (num_images,):
            raise MnistEdgeError(f"{path}: {name} has shape {value.shape}, expected one value per image "
                                 f"({num_images}); rewrite the file with `mnist-edge data`")
    return found


def load_labelled_npz(path, require_labels=True):
    """Read and validate a data set file; every problem becomes a one-line MnistEdgeError.

    A file listed in a ``dataset.json`` beside it must be the listed one (edge_runtime.file_set).
    """
    if Path(path).is_dir():
        test = Path(path) / "test.npz"
        hint = f"pass the file inside it, e.g. {test}" if test.is_file() else "e.g. test.npz from `mnist-edge data`"
        raise MnistEdgeError(f"{path}: is a folder, expected a labelled .npz file; {hint}")
    with npz_errors(path):
        check_listed(path)
    with npz_errors(path), np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
        if "images" not in keys:
            raise MnistEdgeError(f"{path}: no 'images' array (found: {sorted(keys) or 'none'}); "
                                 "write data sets with `mnist-edge data`")
        if require_labels and "labels" not in keys:
            raise MnistEdgeError(f"{path}: no 'labels' array (found: {sorted(keys)}); "
                                 "a labelled set needs images and labels, as `mnist-edge data` writes")
        images = npz["images"]
        labels = npz["labels"] if "labels" in keys else None
    if labels is not None:
        _check(images, labels, path)
    elif images.ndim != 3:
        raise MnistEdgeError(f"{path}: images must be (N,H,W), got shape {images.shape}")
    return images, labels


def _check(images, labels, path):
    if images.ndim != 3:
        raise MnistEdgeError(f"{path}: images must be (N,H,W) grayscale, got shape {images.shape}")
    if labels.ndim != 2 or labels.shape[1] != NUM_CLASSES:
        raise MnistEdgeError(f"{path}: labels must be (N,{NUM_CLASSES}) multi-hot, got shape {labels.shape}")
    if len(images) != len(labels):
        raise MnistEdgeError(f"{path}: {len(images)} images but {len(labels)} labels")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise MnistEdgeError(f"{path}: labels must be 0/1 multi-hot")
