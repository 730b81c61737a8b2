"""Pictures and arrays from files, made to look like the model's training images.

Image files (PNG, JPEG, BMP, PGM and anything else Pillow reads) go through one documented recipe:

1. EXIF orientation applied; any mode to 8-bit gray (16-bit scaled down, palette and CMYK via RGB;
   transparent pixels are laid on white when the visible ink is dark, on black when it is light,
   so the ink stays visible either way).
2. Polarity: the background is the median of the border pixels. A light background (> 127) means
   dark ink on paper, so the image is inverted: MNIST digits are light on dark.
3. Fit: resized keeping the aspect ratio to fit the model's H x W, then padded with the background
   to exactly H x W. Never stretched, since a squashed digit is a different shape.

``.npy`` / ``.npz`` (key ``images``) files hold data, not photos: uint8 (N,H,W) or (H,W) already in
MNIST polarity (float in [0,1] is scaled to 0..255); they are fitted the same way but never inverted.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .dataset_file import images_as_uint8, load_arrays
from .errors import MnistEdgeError, first_line
from .input_files import MAX_PICTURE_BYTES, open_regular, shown

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".pnm", ".ppm", ".pbm"}  # what folders expand to
ARRAY_SUFFIXES = {".npy", ".npz"}
LIGHT = 127  # border median above this = light background, so the image is inverted
MAX_PIXELS = 40_000_000           # a 40-megapixel photo; Pillow's own bomb limit is 89 M (warning) / 179 M
MAX_DECODED_BYTES = 128 << 20     # pixels x bytes per pixel: a 9000x9000 RGBA PNG of 315 KB would need 324 MB
MAX_TRANSPARENT_PIXELS = 8_000_000  # transparency is flattened in float64, ~70 bytes a pixel: 8 MP peaks ~0.6 GB
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def load_images(inputs, size, errors=None):
    """[(name, uint8 (H,W) image)] for files, folders and arrays, fitted to ``size`` = (H, W).

    Names are the path, or ``path#i`` for the i-th image of an array file. A file that cannot be
    read raises a one-line MnistEdgeError, unless a list is passed as ``errors``: then the error is
    appended there and loading carries on with the other files (as ``mnist-edge infer`` does).
    """
    images = []
    for name, item in iter_images(inputs, size):
        if isinstance(item, MnistEdgeError):
            if errors is None:
                raise item
            errors.append(item)
        else:
            images.append((name, item))
    return images


def iter_images(inputs, size):
    """Yield (name, image) or (name, MnistEdgeError) in input order, one file at a time (low memory)."""
    for path, problem in _expand(inputs):
        if problem:
            yield str(path), MnistEdgeError(f"{shown(path)}: {problem}")
            continue
        try:
            if path.suffix.lower() in ARRAY_SUFFIXES:
                for i, image in enumerate(_read_array(path)):
                    yield f"{path}#{i}", fit(image, size, 0)
            else:
                image, background = to_mnist_polarity(read_gray(path, size))
                yield str(path), fit(image, size, background)
        except MnistEdgeError as e:
            yield str(path), e


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
    """Decode any image file to uint8 (H,W), step 1 of the recipe; a one-line error for anything bad.

    With ``size`` = (H, W), a JPEG decodes straight to gray at the smallest scale still twice that
    size: a phone photo then costs a fraction of the time and memory on a device.
    """
    with open_picture(path) as f:
        try:
            with Image.open(f) as im:
                if size and im.format == "JPEG" and im.mode in ("L", "RGB"):
                    im.draft("L", (2 * size[1], 2 * size[0]))
                check_decoded_size(im, path)
                return _gray(ImageOps.exif_transpose(im))
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


def to_mnist_polarity(image):
    """Step 2: (image, background) with dark-on-light images inverted so digits are light on dark."""
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    background = int(np.median(border))
    return (255 - image, 255 - background) if background > LIGHT else (image, background)


def fit(image, size, background):
    """Step 3: resize keeping the aspect ratio to fit (H,W), centred and padded with ``background``."""
    height, width = size
    h, w = image.shape
    if (h, w) == (height, width):
        return image
    scale = min(height / h, width / w)
    new_h, new_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    out = np.full((height, width), background, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def _read_array(path):
    """uint8 (N,H,W) from a .npy or .npz (``images`` key), by the data set file's dtype contract."""
    arrays = load_arrays(path, ("images",), ("images",))
    array = arrays.get(None, arrays.get("images"))
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise MnistEdgeError(f"{shown(path)}: images must be (N,H,W) or (H,W) grayscale, got shape {array.shape}")
    return images_as_uint8(array, path)
