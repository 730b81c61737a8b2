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

from .dataset_file import images_as_uint8, load_arrays
from .errors import MnistEdgeError, first_line
from .input_files import MAX_PICTURE_BYTES, open_regular, shown
from .preprocess import PictureWarning, prepare, prepare_choices, supported_heights
from .scale_choice import most_decisive

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".pnm", ".ppm", ".pbm"}  # what folders expand to
ARRAY_SUFFIXES = {".npy", ".npz"}
LIGHT = 127  # mean visible gray above this = light ink, laid on black when transparent
MAX_PIXELS = 40_000_000           # a 40-megapixel photo; Pillow's own bomb limit is 89 M (warning) / 179 M
MAX_DECODED_BYTES = 128 << 20     # pixels x bytes per pixel: a 9000x9000 RGBA PNG of 315 KB would need 324 MB
MAX_TRANSPARENT_PIXELS = 8_000_000  # transparency is flattened in float64, ~70 bytes a pixel: 8 MP peaks ~0.6 GB
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def load_images(inputs, size, errors=None, heights=None, classifier=None):
    """[(name, uint8 (H,W) image)] for files, folders and arrays, prepared for a model of ``size`` = (H, W).

    Names are the path, or ``path#i`` for the i-th image of an array file. A file that cannot be
    read raises a one-line MnistEdgeError, unless a list is passed as ``errors``: then the error is
    appended there and loading carries on with the other files (as ``mnist-edge infer`` does).
    A picture whose digits end up outside ``heights`` (model pixels; default: what the classifier's
    metadata supports, else DIGIT_HEIGHTS) or that does not look like digits gets a one-line
    ``PictureWarning`` naming it. With a ``classifier`` (as `infer` does), it
    picks each picture's digit scale among the size cues' candidates: the one it reads most decisively.
    """
    images = []
    for name, item in iter_images(inputs, size, heights, classifier):
        if isinstance(item, MnistEdgeError):
            if errors is None:
                raise item
            errors.append(item)
        else:
            images.append((name, item))
    return images


def iter_images(inputs, size, heights=None, classifier=None):
    """Yield (name, image) or (name, MnistEdgeError) in input order, one file at a time (low memory)."""
    size = tuple(size)
    if classifier is not None and getattr(classifier, "input_shape", None) != size:
        raise TypeError(f"classifier must be an edge_runtime.Classifier whose input is {size}, got {classifier!r}")
    if heights is None:  # the model's own range, as `infer` uses it
        heights = supported_heights(getattr(classifier, "metadata", None))
    for path, problem in _expand(inputs):
        if problem:
            yield str(path), MnistEdgeError(f"{shown(path)}: {problem}")
            continue
        try:
            if path.suffix.lower() in ARRAY_SUFFIXES:
                for i, image in enumerate(_read_array(path)):
                    yield f"{path}#{i}", image if image.shape == size else _prepared(
                        f"{path}#{i}", image, size, False, heights, classifier)
            else:
                yield str(path), _prepared(path, read_gray(path, size), size, "auto", heights, classifier)
        except MnistEdgeError as e:
            yield str(path), e


def _prepared(name, picture, size, invert, heights, classifier):
    if classifier is None:
        prepared = prepare(picture, size, invert, heights)
    else:
        prepared = most_decisive(classifier, prepare_choices(picture, size, invert, heights))
    if prepared.warning:
        warnings.warn(f"{name}: {prepared.warning}", PictureWarning, stacklevel=4)
    return prepared.image


def _expand(inputs):
    """(path, problem or None) in order, a folder replaced by its image files, sorted."""
    for given in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        if given == "":  # Path("") is the current folder
            yield "''", "empty file name"
            continue
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
            if not files:
                yield path, f"folder has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            yield from ((file, None) for file in files)
        else:
            yield path, None  # reading it says what is wrong (missing, a symlink loop, a FIFO...)


def read_gray(path, size=None):
    """Decode any image file to uint8 (H,W) gray; a one-line error for anything bad.

    With ``size`` = (H, W), a JPEG decodes straight to gray at the smallest scale still four times
    that size, and other pictures are box-averaged down to about that: a phone photo or a scanned
    page then costs a fraction of the time and memory on a device, and digits covering a tenth of
    it keep enough pixels for ``prepare`` to crop them out.
    """
    with open_picture(path) as f:
        try:
            with Image.open(f) as im:
                if size and im.format == "JPEG" and im.mode in ("L", "RGB"):
                    im.draft("L", (4 * size[1], 4 * size[0]))
                check_decoded_size(im, path)
                gray = _gray(ImageOps.exif_transpose(im))
        except MnistEdgeError:
            raise
        except Image.UnidentifiedImageError:  # its message shows the file object, not the name
            raise MnistEdgeError(f"{shown(path)}: not a readable image (cannot identify image file)") from None
        except Image.DecompressionBombError as e:
            raise MnistEdgeError(f"{shown(path)}: image too large, refused as a possible decompression bomb ({e})") from None
        except MemoryError:
            raise MnistEdgeError(f"{shown(path)}: image too large for memory") from None
        except Exception as e:  # decoders of malformed files raise many types (OSError, SyntaxError, struct.error...)
            raise MnistEdgeError(f"{shown(path)}: not a readable image ({first_line(e)})") from None
    factor = min(gray.shape[0] // (4 * size[0]), gray.shape[1] // (4 * size[1])) if size else 1
    return np.asarray(Image.fromarray(gray).reduce(factor)) if factor >= 2 else gray


def open_picture(path):
    """The picture file, opened only if it is a regular file of sane size (a FIFO would block forever)."""
    return open_regular(path, "picture file", MAX_PICTURE_BYTES)


def check_decoded_size(im, path):
    """Refuse a picture whose decoded pixels would not fit MAX_DECODED_BYTES, from its header alone
    (Image.open reads no pixels). Thread-safe, unlike turning Pillow's bomb warning into an error."""
    width, height = im.size
    per_pixel = 1 if im.mode in ("1", "L", "P") else 2 if im.mode.startswith("I;16") else 4  # Pillow's storage
    transparent = im.mode in ALPHA_MODES or "transparency" in im.info
    pixels = MAX_TRANSPARENT_PIXELS if transparent else MAX_PIXELS
    if width * height > pixels or width * height * per_pixel > MAX_DECODED_BYTES:
        raise MnistEdgeError(f"{shown(path)}: {width}x{height} {im.mode} picture is too large to decode "
                             f"(at most {pixels // 10**6} megapixels{' with transparency' if transparent else ''}, "
                             f"{MAX_DECODED_BYTES >> 20} MiB); scale it down first")


def _gray(im):
    if im.mode.startswith("I"):  # 16-bit (I;16*) and 32-bit int: 0..65535 to 0..255
        a = np.asarray(im, dtype=np.float64) / 257
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
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
    """uint8 (N,H,W) from a .npy or .npz (``images`` key), by the data set file's dtype contract."""
    arrays = load_arrays(path, ("images",), ("images",))
    array = arrays.get(None, arrays.get("images"))
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise MnistEdgeError(f"{shown(path)}: images must be (N,H,W) or (H,W) grayscale, got shape {array.shape}")
    return images_as_uint8(array, path)
