"""Pictures and arrays from files, made to look like the model's training images.

Image files (PNG, JPEG, BMP, PGM and anything else Pillow reads) are decoded to 8-bit gray (EXIF
orientation applied; 16-bit scaled down, palette and CMYK via RGB; transparent pixels laid on white
when the visible ink is dark, on black when it is light, so the ink stays visible either way), then
``edge_runtime.preprocess.prepare`` normalises their background and digit scale.

``.npy`` / ``.npz`` (key ``images``) files hold data, not photos: uint8 (N,H,W) or (H,W) already in
MNIST polarity (float in [0,1] is scaled to 0..255). Images of the model's size are used as they
are (like ``mnist-edge bench`` does); other sizes are prepared like pictures but never inverted.
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .dataset_file import npz_errors
from .errors import MnistEdgeError, first_line
from .preprocess import DIGIT_HEIGHTS, PictureWarning, prepare

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".pnm", ".ppm", ".pbm"}  # what folders expand to
ARRAY_SUFFIXES = {".npy", ".npz"}
LIGHT = 127  # mean visible gray above this = light ink, laid on black when transparent


def load_images(inputs, size, errors=None, heights=DIGIT_HEIGHTS):
    """[(name, uint8 (H,W) image)] for files, folders and arrays, prepared for a model of ``size`` = (H, W).

    Names are the path, or ``path#i`` for the i-th image of an array file. A file that cannot be
    read raises a one-line MnistEdgeError, unless a list is passed as ``errors``: then the error is
    appended there and loading carries on with the other files (as ``mnist-edge infer`` does).
    A picture whose digits end up outside ``heights`` (model pixels) or that does not look like
    digits gets a one-line ``PictureWarning`` naming it.
    """
    images = []
    for name, item in iter_images(inputs, size, heights):
        if isinstance(item, MnistEdgeError):
            if errors is None:
                raise item
            errors.append(item)
        else:
            images.append((name, item))
    return images


def iter_images(inputs, size, heights=DIGIT_HEIGHTS):
    """Yield (name, image) or (name, MnistEdgeError) in input order, one file at a time (low memory)."""
    size = tuple(size)
    for path, problem in _expand(inputs):
        if problem:
            yield str(path), MnistEdgeError(f"{path}: {problem}")
            continue
        try:
            if path.suffix.lower() in ARRAY_SUFFIXES:
                for i, image in enumerate(_read_array(path)):
                    yield f"{path}#{i}", image if image.shape == size else _prepared(
                        f"{path}#{i}", image, size, False, heights)
            else:
                yield str(path), _prepared(path, read_gray(path, size), size, "auto", heights)
        except MnistEdgeError as e:
            yield str(path), e


def _prepared(name, picture, size, invert, heights):
    prepared = prepare(picture, size, invert, heights)
    if prepared.warning:
        warnings.warn(f"{name}: {prepared.warning}", PictureWarning, stacklevel=4)
    return prepared.image


def _expand(inputs):
    """(path, problem or None) in order, a folder replaced by its image files, sorted."""
    for given in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
            if not files:
                yield path, f"folder has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            yield from ((file, None) for file in files)
        else:
            yield path, None if path.exists() else "no such file"


def read_gray(path, size=None):
    """Decode any image file to uint8 (H,W) gray; a one-line error for anything bad.

    With ``size`` = (H, W), a JPEG decodes straight to gray at the smallest scale still four times
    that size, and other pictures are box-averaged down to about that: a phone photo or a scanned
    page then costs a fraction of the time and memory on a device, and digits covering a tenth of
    it keep enough pixels for ``prepare`` to crop them out.
    """
    try:
        with warnings.catch_warnings():
            # Over Image.MAX_IMAGE_PIXELS Pillow only warns; treat it like the error it raises at 2x.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if size and im.format == "JPEG" and im.mode in ("L", "RGB"):
                    im.draft("L", (4 * size[1], 4 * size[0]))
                gray = _gray(ImageOps.exif_transpose(im))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise MnistEdgeError(f"{path}: image too large, refused as a possible decompression bomb ({e})") from None
    except MemoryError:
        raise MnistEdgeError(f"{path}: image too large for memory") from None
    except Exception as e:  # decoders of malformed files raise many types (OSError, SyntaxError, struct.error...)
        raise MnistEdgeError(f"{path}: not a readable image ({first_line(e)})") from None
    factor = min(gray.shape[0] // (4 * size[0]), gray.shape[1] // (4 * size[1])) if size else 1
    return np.asarray(Image.fromarray(gray).reduce(factor)) if factor >= 2 else gray


def _gray(im):
    if im.mode.startswith("I"):  # 16-bit (I;16*) and 32-bit int: 0..65535 to 0..255
        a = np.asarray(im, dtype=np.float64) / 257
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2 luma, as Pillow's "L"
        alpha = rgba[..., 3] / 255
        ink = (gray * alpha).sum() / max(alpha.sum(), 1e-9)
        background = 255.0 if ink <= LIGHT else 0.0
        return np.rint(gray * alpha + background * (1 - alpha)).astype(np.uint8)
    if im.mode != "L":  # other modes (CMYK, YCbCr...) go through RGB, which Pillow converts from anything
        im = (im if im.mode in ("1", "P", "RGB", "F") else im.convert("RGB")).convert("L")
    return np.asarray(im, dtype=np.uint8)


def _read_array(path):
    """uint8 (N,H,W) from a .npy or .npz (``images`` key)."""
    with npz_errors(path, kind=path.suffix):
        loaded = np.load(path, allow_pickle=False)
        if hasattr(loaded, "files"):  # an .npz archive
            with loaded:
                if "images" not in loaded.files:
                    raise MnistEdgeError(f"{path}: no 'images' array (found: {', '.join(loaded.files) or 'none'})")
                loaded = loaded["images"]
    array = loaded
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise MnistEdgeError(f"{path}: images must be (N,H,W) or (H,W) grayscale, got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise MnistEdgeError(f"{path}: images contain NaN or infinite values")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise MnistEdgeError(f"{path}: float images must lie in [0,1], got {array.min():g}..{array.max():g}")
        return np.rint(array * 255).astype(np.uint8)
    if array.dtype != np.uint8:
        raise MnistEdgeError(f"{path}: images must be uint8 (or float in [0,1]), got {array.dtype}")
    return array
