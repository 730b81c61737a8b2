"""The labelled data set file: ``images`` uint8 (N,H,W) and ``labels`` uint8 (N,10) multi-hot,
optionally with per-image difficulty arrays (``DIFFICULTY``) that ``bench`` breaks results down by.

It lives here, beside the device runtime, because training, conversion and the on-device
benchmark all read it, and the device has only numpy. It is also the one place the image dtype
contract is enforced (``images_as_uint8``: uint8, or float in [0,1]), so every command accepts the
same arrays, and where array files are opened: regular files only, each array's size read from its
``.npy`` header and capped before anything is allocated.
"""
import contextlib
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import MnistEdgeError, first_line
from .file_set import check_listed
from .files import atomic_path
from .input_files import MAX_ARRAY_BYTES, open_regular, shown
from .model_contract import NUM_CLASSES

# Per-image arrays a composed data set also records (name -> dtype); readers that know only
# images and labels are unaffected.
DIFFICULTY = {
    "digits_per_image": np.uint8,  # how many digits were pasted (classes may repeat, so not labels.sum)
    "max_overlap": np.float32,     # largest share of one digit's ink box covered by another digit's box
}
MAX_LOADED_BYTES = 2 << 30  # one array in memory: 8x the 60,000-image training set of 64x64


@contextlib.contextmanager
def npz_errors(path, kind=".npz"):
    """Turn the many ways numpy fails to read an array file into one-line MnistEdgeErrors naming it."""
    try:
        yield
    except MnistEdgeError:
        raise
    except FileNotFoundError:
        raise MnistEdgeError(f"{shown(path)}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as e:
        # RuntimeError/NotImplementedError: zipfile on an encrypted or exotically compressed member
        raise MnistEdgeError(f"{shown(path)}: not a readable {kind} file ({first_line(e)})") from None
    except MemoryError:
        raise MnistEdgeError(f"{shown(path)}: too large for memory") from None


def load_arrays(path, keys=None, required=()):
    """{name: array} from a .npy (name None) or .npz file, each array's header checked before it loads.

    ``keys``: the .npz members wanted (others are not read); an .npz without one of ``required``
    is refused, naming the arrays it has. One-line errors name the file.
    """
    kind = ".npz" if str(path).lower().endswith(".npz") else ".npy"
    with npz_errors(path, kind), open_regular(path, "NumPy .npz or .npy file", MAX_ARRAY_BYTES) as f:
        if not zipfile.is_zipfile(f):
            f.seek(0)
            _check_header(f, path, "array")
            f.seek(0)
            return {None: np.load(f, allow_pickle=False)}
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            for key in required:
                if key not in names:
                    raise MnistEdgeError(f"{shown(path)}: no '{key}' array (found: {', '.join(names) or 'none'}); "
                                         "data sets are written by `mnist-edge data`")
            arrays = {}
            for name in names if keys is None else [k for k in keys if k in names]:
                with archive.open(f"{name}.npy") as member:
                    _check_header(member, path, name)
                with archive.open(f"{name}.npy") as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays


def _check_header(f, path, name):
    """Refuse an array whose header asks for more than MAX_LOADED_BYTES, or holds objects (pickles)."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        raise MnistEdgeError(f"{shown(path)}: {name} holds Python objects (pickles), which are never loaded")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > MAX_LOADED_BYTES:
        raise MnistEdgeError(f"{shown(path)}: {name} {tuple(shape)} {dtype} would need {nbytes / 2**30:.1f} GiB "
                             f"(at most {MAX_LOADED_BYTES / 2**30:.0f} GiB)")


def images_as_uint8(images, path):
    """The one image dtype contract: uint8 (0..255) as is, float in [0,1] scaled to 0..255; else refused."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise MnistEdgeError(f"{shown(path)}: images must be uint8 (0..255) or float in [0,1], got {images.dtype}")
    if not np.isfinite(images).all():
        raise MnistEdgeError(f"{shown(path)}: images contain NaN or infinite values")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise MnistEdgeError(f"{shown(path)}: float images must lie in [0,1], got {images.min():g}..{images.max():g}")
    return np.rint(images * 255).astype(np.uint8)


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
    if os.fspath(path) not in ("", b"") and Path(path).is_dir():
        test = Path(path) / "test.npz"
        hint = f"pass the file inside it, e.g. {test}" if test.is_file() else "e.g. test.npz from `mnist-edge data`"
        raise MnistEdgeError(f"{shown(path)}: is a folder, expected a labelled .npz file; {hint}")
    with npz_errors(path):
        check_listed(path)
    arrays = load_arrays(path, ("images", "labels"), ("images", "labels") if require_labels else ("images",))
    if None in arrays:
        raise MnistEdgeError(f"{shown(path)}: a single array, expected a data set .npz; write one with `mnist-edge data`")
    images, labels = arrays["images"], arrays.get("labels")
    if labels is not None:
        _check(images, labels, path)
    elif images.ndim != 3:
        raise MnistEdgeError(f"{shown(path)}: images must be (N,H,W), got shape {images.shape}")
    return images_as_uint8(images, path), labels


def _check(images, labels, path):
    if images.ndim != 3:
        raise MnistEdgeError(f"{path}: images must be (N,H,W) grayscale, got shape {images.shape}")
    if labels.ndim != 2 or labels.shape[1] != NUM_CLASSES:
        raise MnistEdgeError(f"{path}: labels must be (N,{NUM_CLASSES}) multi-hot, got shape {labels.shape}")
    if len(images) != len(labels):
        raise MnistEdgeError(f"{path}: {len(images)} images but {len(labels)} labels")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise MnistEdgeError(f"{path}: labels must be 0/1 multi-hot")
