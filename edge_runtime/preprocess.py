"""prepare(): any grayscale picture -> the model's input: light digits at MNIST scale on black.

The models are trained on MNIST digits (each size-normalised into a 20x20 ink box) pasted on a
black canvas; DIGIT_HEIGHTS is the range of ink heights they support. A picture gets there in three
steps, measured with benchmarks/scale_robustness.py:

1. Background: strip up to MAX_FRAME border lines that are a frame (uniform, far from the paper);
   the paper is the most common gray level and the ink lies on the far side of it (a dark frame
   fooled the old border rule), so dark ink is inverted; the paper and its pixel noise (measured
   on the paper, up to NOISE_FLOOR sd) go to 0 and faint ink is stretched so strong strokes reach
   255. A picture without ink (contrast below MIN_CONTRAST: blank pages, noisy or not, a 1x1
   image) becomes all black, which the models read as no digits.
2. Digit height: the median longer side of the 8-connected ink components (specks and stroke
   pieces dropped), on a mask of at most MASK_SIDE px, numpy only. Stroke width guards against
   overlapping digits that merge into one large component.
3. Fit: a picture that fits and whose digits are KEEP_MIN..KEEP_MAX px tall is pasted as
   it is (a 64x64 canvas at MNIST scale comes back unchanged); otherwise the inked part is cropped
   and resized (never stretched) so the digits are TARGET_HEIGHT px tall, or as large as still
   fits, and centred on black. Digits that end up below the supported range, and pictures that do
   not look like light digits on dark, get a one-line warning in ``Prepared.warning``
   (``load_images`` raises it as a PictureWarning).
"""
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from .errors import MnistEdgeError
from .model_contract import MNIST_INK

DIGIT_HEIGHTS = (14, 24)  # supported digit ink heights in model pixels (MNIST's own: 20); train's default --digit-scale
TARGET_HEIGHT = MNIST_INK  # digits are resized to this ink height, MNIST's
KEEP_MIN = 16             # in a picture that fits, digits from KEEP_MIN to KEEP_MAX px are not resampled:
KEEP_MAX = 28             # estimates of MNIST-scale digits vary that much (wide digits; taller ones are
                          # often overlapping digits), and a model is best at its training scale
PAPER_NOISE = 4           # gray levels either side of the paper's most common level that are still paper
MIN_CONTRAST = 40         # ink must differ from the paper by this many gray levels, else the picture is blank
NOISE_FLOOR = 3           # sensor noise up to this many of its standard deviations from the paper is paper
MAX_NOISE = 0.125         # noise sd above this share of the ink's contrast warns and gets a 3x3 median (README)
NOISE_RUNS = 256          # runs of 3 paper pixels needed to measure that noise (a tightly cropped digit has fewer)
STRONG_INK = 250          # ink whose strong strokes are already this bright is left as it is (MNIST: 255)
MAX_FRAME = 3             # border lines stripped per side, at most, when they differ from the paper
MASK_SIDE = 160           # the ink mask is max-pooled to at most this side before finding components
MIN_SHARE = 0.35          # components shorter than this share of the tallest are specks or stroke pieces
INK = 128                 # a pixel at least this bright (after normalisation) is ink, for measuring digits
MNIST_STROKE = 2.66       # median stroke width of MNIST digits in px (ink >= INK), the other scale cue
MERGED = 1.3              # a component this much taller than its strokes suggest is merged digits
MAX_INK_SHARE = 0.35      # ink covering more of the inked part (with its margin) than this ...
MAX_STROKE = 0.4          # ... in strokes thicker than this share of the digit height is not digits
TWO_SIDED = 0.5           # marks the other way from the paper this strong (vs the ink) do not look like ink on paper
MIN_PAPER = 0.25          # nor does a picture with less of its area within 2 PAPER_NOISE of the paper level
NOT_DIGITS = "does not look like light digits on a dark background after preprocessing ("
MARGIN = 0.2              # kept around the inked part when cropping, in digit heights


class Prepared(NamedTuple):
    image: np.ndarray      # uint8 (H,W): the model input
    digit_height: float    # estimated digit ink height in the picture's pixels (0: no ink found)
    scale: float           # picture pixels -> model pixels (1.0: not resampled)
    warning: str           # why the result may be unreliable, or "" when it looks fine


class PictureWarning(UserWarning):
    """A picture whose digits look too small or large, or that does not look like digits on paper."""


def supported_heights(metadata=None):
    """(low, high) digit ink heights in model pixels: the model's metadata if it says, else DIGIT_HEIGHTS."""
    value = (metadata or {}).get("digit_heights")
    try:
        low, high = (float(v) for v in value)
        return (low, high) if 0 < low <= TARGET_HEIGHT <= high else DIGIT_HEIGHTS
    except (TypeError, ValueError):
        return DIGIT_HEIGHTS


def prepare(picture, size, invert="auto", heights=DIGIT_HEIGHTS):
    """A Prepared model input of ``size`` = (H, W) from a uint8 (h, w) gray picture of any size.

    ``invert``: "auto" decides the polarity from the picture; False takes it as light on dark
    already (arrays in MNIST polarity). ``heights``: the model's supported digit heights
    (``supported_heights(classifier.metadata)``).
    """
    return _prepared(picture, size, invert, heights, choices=False)[0]


def prepare_choices(picture, size, invert="auto", heights=DIGIT_HEIGHTS):
    """[Prepared]: prepare()'s first, then the picture fitted by each other digit-size cue where that
    differs: the median of all ink components (merged or not), the strokes, and the picture as it is
    (not resampled, or as large as fits). The estimate misleads on a few percent of pictures, which
    a model reading the choices can tell (scale_choice.most_decisive)."""
    return _prepared(picture, size, invert, heights, choices=True)


def _prepared(picture, size, invert, heights, choices):
    picture, size = np.asarray(picture), tuple(size)
    if picture.ndim != 2 or picture.dtype != np.uint8:
        raise MnistEdgeError(f"a picture must be uint8 (h,w) gray, got {picture.dtype} {picture.shape}")
    light, doubt = normalise_background(picture, invert)
    blank = Prepared(np.zeros(size, np.uint8), 0.0, 1.0, NOT_DIGITS + doubt + ")" if doubt else "")
    if light is None:
        return [blank]
    boxes = ink_components(light)
    if not len(boxes):
        return [blank]
    by_stroke = stroke_height(light)
    cues = [digit_height(boxes, by_stroke)]
    if choices:
        cues += [float(np.median(longer_sides(boxes))), by_stroke, float(TARGET_HEIGHT)]
    prepared = []
    for height in cues:
        fitted = _fit(light, boxes, height, size, heights)
        if not any(np.array_equal(fitted.image, p.image) for p in prepared):
            prepared.append(fitted._replace(warning=NOT_DIGITS + doubt + ")") if doubt else fitted)
    return prepared


def digit_height(boxes, by_stroke):
    """The digits' ink height in picture pixels: the median of the ink components' longer sides
    (MNIST fits a digit's longer side, not always its height, to 20 px: a flat 2 is 20 wide).

    Touching or overlapping digits merge into one larger component. ``by_stroke`` (stroke_height)
    is the other scale cue: components larger than MERGED times it count as merged digits, and the
    others (or, if none, the strokes) give the height.
    """
    tall = longer_sides(boxes)
    ordinary = tall[tall <= MERGED * by_stroke]
    if len(ordinary) == len(tall):
        return float(np.median(tall))
    return float(np.median(ordinary)) if len(ordinary) else by_stroke


def longer_sides(boxes):
    """Each ink component's longer side: MNIST fits that, not always the height, into its 20 px box."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def stroke_height(light):
    """The digit height the strokes suggest: MNIST's strokes are MNIST_STROKE px wide at TARGET_HEIGHT."""
    return TARGET_HEIGHT * stroke_width(light >= INK) / MNIST_STROKE


def stroke_width(mask):
    """Mean stroke width in px of a bool ink mask: twice the area over the edge pixels (a stroke of
    width w and length L has area wL and 2L edge pixels)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return 2 * np.count_nonzero(mask) / max(1, np.count_nonzero(mask & ~inner))


def normalise_background(picture, invert="auto"):
    """(uint8 light-on-dark picture with the paper at 0, or None if it holds no ink; "" or why it
    does not look like ink on plain paper) -- step 1."""
    if min(picture.shape) < 2:
        return None, ""
    picture = strip_frame(picture)
    paper, dark_ink, contrast, other_way, noise = _levels(picture, invert)
    if contrast < MIN_CONTRAST:  # blank, but say so if noise this strong could hide faint ink
        return None, f"pixel noise of sd ~{noise:.0f} gray levels" if NOISE_FLOOR * noise > MIN_CONTRAST else ""
    doubt = ""
    if noise > MAX_NOISE * contrast:  # a 3x3 median costs clean MNIST strokes 6-10 points, saves these
        doubt = f"pixel noise of sd ~{noise:.0f} gray levels against ink {contrast:.0f} from the background"
        picture = np.asarray(Image.fromarray(picture).filter(ImageFilter.MedianFilter(3)))
        paper, dark_ink, contrast, other_way, noise = _levels(picture, invert)
        if contrast < MIN_CONTRAST:
            return None, doubt
    elif other_way > TWO_SIDED * contrast:
        doubt = "marks both lighter and darker than the background"
    elif np.mean(np.abs(picture - np.float32(paper)) <= max(2 * PAPER_NOISE, NOISE_FLOOR * noise)) < MIN_PAPER:
        doubt = "no even background"
    floor = NOISE_FLOOR * noise
    ink = (paper - floor - picture.astype(np.float32)) if dark_ink else (picture.astype(np.float32) - paper - floor)
    strong = float(np.percentile(ink[ink > contrast / 2], 99))
    if strong < STRONG_INK:
        ink *= 255 / strong
    return np.clip(np.rint(ink), 0, 255).astype(np.uint8), doubt


def _levels(picture, invert):
    """(paper level, whether the ink is darker, the ink's contrast above the noise floor, the strongest
    marks the other way, the paper's noise sd) of a picture."""
    paper = paper_level(picture)
    low, high = np.percentile(picture, (0.2, 99.8))
    dark_ink = invert == "auto" and paper - low > high - paper
    contrast, other_way = (paper - low, high - paper) if dark_ink else (high - paper, paper - low)
    noise = noise_level(picture, paper, contrast / 2)
    return paper, dark_ink, contrast - NOISE_FLOOR * noise, other_way, noise


def noise_level(picture, paper, reach):
    """The standard deviation of the paper's pixel noise (0 for a clean picture), from the median
    absolute second difference of horizontal neighbours (flat paper and smooth, blurred edges give 0;
    Gaussian noise gives 0.6745 * sqrt(6) sigma). Only runs of three pixels within ``reach`` of the
    paper count, and a picture with fewer than NOISE_RUNS of them (a tightly cropped digit) counts
    as clean; noise clipped at white or black paper is measured at about half its sd."""
    near = np.abs(picture.astype(np.float32) - paper) < reach
    wide = picture.astype(np.int16)
    second = np.abs(wide[:, :-2] - 2 * wide[:, 1:-1] + wide[:, 2:])[near[:, :-2] & near[:, 1:-1] & near[:, 2:]]
    return float(np.median(second)) / (0.6745 * np.sqrt(6)) if second.size >= NOISE_RUNS else 0.0


def paper_level(picture):
    """The most common gray level, give or take PAPER_NOISE: the paper even where ink covers more of
    the picture than the paper does (a small digit fills its own small picture), which a median is not."""
    counts = np.bincount(picture.ravel(), minlength=256)
    window = np.convolve(counts, np.ones(2 * PAPER_NOISE + 1, np.int64), "same")
    peak = int(np.argmax(window))
    near = picture[np.abs(picture.astype(np.int16) - peak) <= PAPER_NOISE]
    return float(np.median(near))


def strip_frame(picture):
    """The picture without up to MAX_FRAME border lines per side that are frame: nearly uniform and
    far from the paper (a row across a digit is not uniform; a line of paper is the paper)."""
    inner = picture[MAX_FRAME:-MAX_FRAME, MAX_FRAME:-MAX_FRAME]
    paper = paper_level(inner if inner.size >= 64 else picture)
    top, left, bottom, right = 0, 0, picture.shape[0], picture.shape[1]
    for _ in range(MAX_FRAME):
        if bottom - top <= 2 or right - left <= 2:
            break
        top += _is_frame(picture[top, left:right], paper)
        bottom -= _is_frame(picture[bottom - 1, left:right], paper)
        left += _is_frame(picture[top:bottom, left], paper)
        right -= _is_frame(picture[top:bottom, right - 1], paper)
    return picture[top:bottom, left:right]


def _is_frame(line, paper):
    level = float(np.median(line))
    uniform = np.mean(np.abs(line.astype(np.int16) - level) <= MIN_CONTRAST // 2) >= 0.75
    return bool(uniform and abs(level - paper) >= MIN_CONTRAST)


def ink_components(light):
    """int (K,4) boxes (top, left, bottom, right; exclusive ends) in picture pixels of the 8-connected
    ink components (pixels >= INK) tall enough to be digits, found on a max-pooled mask."""
    mask = light >= INK
    k = -(-max(mask.shape) // MASK_SIDE)
    if k > 1:
        h, w = -(-mask.shape[0] // k) * k, -(-mask.shape[1] // k) * k
        padded = np.zeros((h, w), bool)
        padded[:mask.shape[0], :mask.shape[1]] = mask
        mask = padded.reshape(h // k, k, w // k, k).any(axis=(1, 3))
    labels = _label(mask)
    if not labels.any():
        return np.zeros((0, 4), int)
    rows, cols = np.nonzero(labels)
    _, comp = np.unique(labels[rows, cols], return_inverse=True)
    n = comp.max() + 1
    top = np.full(n, mask.shape[0]); left = np.full(n, mask.shape[1])
    bottom = np.zeros(n, int); right = np.zeros(n, int)
    np.minimum.at(top, comp, rows); np.minimum.at(left, comp, cols)
    np.maximum.at(bottom, comp, rows + 1); np.maximum.at(right, comp, cols + 1)
    boxes = np.stack([top, left, bottom, right], axis=1) * k
    if k > 1:  # pooled boxes are up to k-1 px too large on each side: measure them on the full mask
        boxes = np.array([_tight(light[t:b, l:r] >= INK, t, l) for t, l, b, r in boxes])
    heights = boxes[:, 2] - boxes[:, 0]
    return boxes[heights >= max(3, MIN_SHARE * heights.max())]


def _tight(mask, top, left):
    """The ink box of ``mask`` (a box cut from the picture at top, left) in picture pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return top + rows[0], left + cols[0], top + rows[-1] + 1, left + cols[-1] + 1


def _label(mask):
    """Component labels of an 8-connected bool mask (0 = background): each pixel ends with the largest
    flat index + 1 in its component. Max propagation over 3x3 neighbours alternates with pointer
    jumping (a label names a pixel of the same component, whose label is at least as large), so it
    converges in far fewer sweeps than a component is long."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w), 0)
    padded = np.zeros((h + 2, w + 2), np.int32)
    while True:
        padded[1:-1, 1:-1] = labels
        grown = labels.copy()
        for dy in range(3):
            for dx in range(3):
                np.maximum(grown, padded[dy:dy + h, dx:dx + w], out=grown)
        grown *= mask
        flat = grown.ravel()
        inked = flat > 0
        flat[inked] = flat[flat[inked] - 1]
        if np.array_equal(grown, labels):
            return labels
        labels = grown


def _fit(light, boxes, height, size, heights):
    """Step 3: paste as is when the digits look MNIST-sized and it fits, else crop the inked part
    (with a margin), resize it so digits are TARGET_HEIGHT tall or as large as fits, centre on black."""
    low, high = heights
    margin = round(MARGIN * height)
    top, left = max(0, boxes[:, 0].min() - margin), max(0, boxes[:, 1].min() - margin)
    inked = light[top:boxes[:, 2].max() + margin, left:boxes[:, 3].max() + margin]
    warning = _look(inked, height)  # first: if it does not look like digits, their size is moot
    keep = KEEP_MIN <= height <= KEEP_MAX
    if keep and light.shape[0] <= size[0] and light.shape[1] <= size[1]:
        return Prepared(_paste(light, size), height, 1.0, warning)
    scale = 1.0 if keep else TARGET_HEIGHT / height
    scale = min(scale, size[0] / inked.shape[0], size[1] / inked.shape[1])
    if scale != 1.0:
        new = (max(1, round(inked.shape[1] * scale)), max(1, round(inked.shape[0] * scale)))
        inked = np.asarray(Image.fromarray(inked).resize(new, Image.Resampling.BILINEAR))
    if not warning and height * scale < low:
        warning = (f"digits look ~{height * scale:.1f} px tall after fitting to {size[0]}x{size[1]}; "
                   f"supported {low:g}-{high:g} px: crop the picture or enlarge the digits")
    return Prepared(_paste(inked, size), height, scale, warning)


def _paste(image, size):
    """``image`` centred on a black canvas of ``size`` (it fits)."""
    if image.shape == tuple(size):
        return image
    out = np.zeros(size, np.uint8)
    top, left = (size[0] - image.shape[0]) // 2, (size[1] - image.shape[1]) // 2
    out[top:top + image.shape[0], left:left + image.shape[1]] = image
    return out


def _look(inked, height):
    """A warning when the inked part does not look like strokes: much ink, in very thick strokes
    (MNIST digits at any scale: at most ~0.35 of it at 0.3 of the height at once)."""
    mask = inked >= INK
    share, stroke = np.count_nonzero(mask) / mask.size, stroke_width(mask) / height
    if share > MAX_INK_SHARE and stroke > MAX_STROKE:
        return NOT_DIGITS + f"ink covers {share:.0%} in strokes {stroke:.0%} of its height thick)"
    return ""
