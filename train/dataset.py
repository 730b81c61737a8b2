"""The multi-label MNIST data set: several handwritten digits per canvas, labelled by their classes.

numpy only (no TensorFlow), so a device can rebuild the exact test set. Everything is vectorised
over images (loops run over the few digit slots, never over images), so 60,000 images take about a
second (--digit-warp's per-digit transforms add ~4 s), and every random choice comes from one
seed. The folder ``mnist-edge data`` writes from it is train/dataset_folder.py; the command,
train/data_command.py; training's fresh images per epoch, train/epoch_images.py.
"""
import hashlib
import math
from typing import NamedTuple

import click
import numpy as np

from edge_runtime.errors import MnistEdgeError
from edge_runtime.model_contract import MNIST_INK, NUM_CLASSES

DIGIT = 28  # an MNIST cell is 28x28, the digit in its central MNIST_INK x MNIST_INK box

# How images are composed (also the `data` command's defaults).
DEFAULTS = dict(
    canvas=64,               # canvas side in pixels (square)
    min_digits=1,            # digits per non-empty image: uniform in [min_digits, max_digits]
    max_digits=4,
    empty_fraction=0.05,     # share of all-black images with an all-zero label
    max_overlap=0.25,        # most of a digit's central 20x20 box that any single other digit's box may cover
    class_prior=None,        # 10 class weights (normalised); None = uniform
    distinct_classes=False,  # True: no class twice in one image
    max_shift=None,          # None: anywhere inside the canvas; k: the canvas centre shifted by up to ±k px
    digit_scale=(1.0, 1.0),  # each digit resized by a factor log-uniform in [lo, hi] (1: MNIST's 20 px ink)
    digit_warp=(0.0, 0.0),   # each digit rotated by up to ±[0] degrees and slanted (x += shear * y) by up to ±[1]
)
PRESETS = {
    # Sabour et al. 2017, "Dynamic Routing Between Capsules": two digits of different classes, each
    # shifted up to 4 px in x and y from the centre of a 36x36 canvas, overlapping freely.
    "multimnist": dict(canvas=36, min_digits=2, max_digits=2, empty_fraction=0.0, max_overlap=1.0,
                       distinct_classes=True, max_shift=4),
}
SPLIT_SIZES = {"train": 60000, "val": 5000, "test": 10000}  # images per split
VAL_SOURCE_FRACTION = 0.1  # share of MNIST's training digits reserved for val (train never uses them)
MIN_SCALE, MAX_SCALE = 0.25, 4.0  # digit_scale limits: 7 to 112 px cells
MAX_WARP = (30.0, 0.5)     # digit_warp limits: more tilt or slant than handwriting shows
MAX_TRIES = 20             # position draws for one digit before its image starts over
MAX_RESTARTS = 200         # rounds of image restarts before the settings count as impossible


class Layout(NamedTuple):
    """Where each image's digits came from, per digit slot; -1 in slots an image does not use."""
    sources: np.ndarray  # int64 (N, max_digits): index into the MNIST split's images
    classes: np.ndarray  # int64 (N, max_digits): that digit's class
    rows: np.ndarray     # int64 (N, max_digits): top row of its cell on the canvas
    cols: np.ndarray     # int64 (N, max_digits): left column
    sizes: np.ndarray    # int64 (N, max_digits): side of its (resized) cell, 28 at MNIST scale


class Split(NamedTuple):
    images: np.ndarray  # uint8 (N, canvas, canvas)
    labels: np.ndarray  # uint8 (N, 10) multi-hot
    layout: Layout


def resolve_options(preset=None, **overrides):
    """DEFAULTS, then the preset, then ``overrides``; validated, with the class prior normalised."""
    if preset is not None and preset not in PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})", param_hint="--preset")
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown composition options: {', '.join(sorted(unknown))}")
    options = {**DEFAULTS, **PRESETS.get(preset, {}), **overrides}
    _check(options)
    return options


def _check(o):
    """Reject settings that cannot work, naming the option to change (click shows these as usage errors)."""
    def bad(message, option):
        raise click.BadParameter(message, param_hint=f"--{option.replace('_', '-')}")

    lo, hi = o["digit_scale"] = tuple(float(v) for v in o["digit_scale"])
    if not (MIN_SCALE <= lo <= hi <= MAX_SCALE):
        bad(f"{lo},{hi} is not a range within [{MIN_SCALE}, {MAX_SCALE}] (low first)", "digit_scale")
    degrees, shear = o["digit_warp"] = tuple(float(v) for v in o["digit_warp"])
    if not (0 <= degrees <= MAX_WARP[0] and 0 <= shear <= MAX_WARP[1]):
        bad(f"{degrees:g},{shear:g} is out of range: DEGREES 0-{MAX_WARP[0]:g}, SHEAR 0-{MAX_WARP[1]:g}", "digit_warp")
    if o["canvas"] < cell_size(hi):
        bad(f"{o['canvas']} is smaller than an MNIST digit at scale {hi} ({cell_size(hi)} px)", "canvas")
    if o["min_digits"] < 1:
        bad("must be at least 1 (use --empty-fraction for images without digits)", "min_digits")
    if o["max_digits"] < o["min_digits"]:
        bad(f"{o['max_digits']} is less than --min-digits {o['min_digits']}", "max_digits")
    for name in ("empty_fraction", "max_overlap"):
        if not 0 <= o[name] <= 1:
            bad(f"{o[name]} is not between 0 and 1", name)
    fit = capacity(o["canvas"], o["max_overlap"], o["max_shift"])
    if o["max_digits"] > fit:
        bad(f"{o['max_digits']} digits cannot fit on a {o['canvas']}x{o['canvas']} canvas with max overlap "
            f"{o['max_overlap']} (at most {fit}); raise --canvas or --max-overlap", "max_digits")
    if o["class_prior"] is not None:
        prior = np.asarray(o["class_prior"], dtype=np.float64)
        if prior.shape != (NUM_CLASSES,) or not np.isfinite(prior).all() or (prior < 0).any() or prior.sum() <= 0:
            bad("expected 10 non-negative weights, not all zero, e.g. 1,1,1,1,1,1,1,1,1,0.1", "class_prior")
        o["class_prior"] = (prior / prior.sum()).tolist()
        if o["distinct_classes"] and np.count_nonzero(prior) < o["max_digits"]:
            bad(f"{o['max_digits']} different classes per image need at least that many non-zero weights", "class_prior")


def capacity(canvas, max_overlap, max_shift=None):
    """How many digits we promise to place: those a regular grid of cells holds within ``max_overlap``.

    Two central boxes offset by ``s`` px along one axis share ``(20 - s) * 20`` pixels, so the grid
    step is the smallest ``s`` with ``(20 - s) / 20 <= max_overlap``.
    """
    if max_overlap >= 1:
        return math.inf
    span = _span(canvas, max_shift, np.array(DIGIT))[1]
    step = math.ceil(MNIST_INK * (1 - max_overlap) - 1e-9)
    return int(span // step + 1) ** 2


def cell_size(scale):
    """Side of a digit's cell at ``scale`` (28 px at 1)."""
    return int(round(DIGIT * scale))


def _span(canvas, max_shift, sizes):
    """Where a cell of side ``sizes`` may put its top-left corner: (lowest, range), per cell.

    The whole canvas, or the canvas centre shifted by up to ±max_shift.
    """
    free = canvas - sizes
    if max_shift is None:
        return np.zeros_like(free), free
    return np.maximum(0, free // 2 - max_shift), np.minimum(2 * max_shift, free)


def compose(digits, digit_labels, count, rng, pool=None, **options):
    """Compose ``count`` multi-label images from the MNIST digits ``digits[pool]`` (all if None).

    Per image: the number of digits is uniform in [min_digits, max_digits], except for exactly
    ``round(empty_fraction * count)`` all-black images; each digit's class is drawn from the class
    prior (classes may repeat unless ``distinct_classes``), then a digit of that class uniformly from
    the pool; each digit is resized by a factor drawn log-uniformly from ``digit_scale`` (a 28x28
    cell becomes ``cell_size(factor)`` px; at (1, 1) nothing is resized or drawn), its cell placed
    wholly inside the canvas (or at the centre shifted by up to ``max_shift``) and the cells are
    combined by pixel-wise max. The label is the set of classes.

    Overlap rule: a digit's *ink box* is the central 20/28 of its cell (20x20 at MNIST scale). For
    every pair of digits in an image, area(ink box A ∩ ink box B) / area(the smaller box) <=
    ``max_overlap`` -- no digit is covered beyond the limit by any single other digit. Positions
    are drawn by rejection, slot by slot (``MAX_TRIES`` each), and an image whose digit finds no
    place starts over.
    """
    o = resolve_options(**options)
    slots = o["max_digits"]
    pool = np.arange(len(digits)) if pool is None else np.asarray(pool)

    counts = rng.integers(o["min_digits"], o["max_digits"] + 1, size=count)
    counts[rng.choice(count, size=round(o["empty_fraction"] * count), replace=False)] = 0
    active = np.arange(slots) < counts[:, None]

    classes = _draw_classes(rng, active, o["class_prior"], o["distinct_classes"])
    sources = np.full((count, slots), -1, dtype=np.int64)
    sources[active] = _draw_sources(rng, classes[active], digit_labels, pool)
    sizes = _draw_sizes(rng, active, *o["digit_scale"])

    rows, cols = _place(rng, counts, sizes, _span(o["canvas"], o["max_shift"], sizes), o["max_overlap"])
    warps = _draw_warps(rng, active, *o["digit_warp"])  # after the layout: a warp changes the digits, not where they go

    images = np.zeros((count, o["canvas"], o["canvas"]), dtype=np.uint8)
    for size in np.unique(sizes[active]):
        # cells[i, r, c] is the size x size window of image i whose top-left is (r, c): paste = max into it
        cells = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2), writeable=True)
        for k in range(slots):  # one digit per image per slot, so no window is written twice at once
            i = np.flatnonzero(active[:, k] & (sizes[:, k] == size))
            r, c = rows[i, k], cols[i, k]
            drawn = digits[sources[i, k]] if warps is None else warp_digits(digits[sources[i, k]], *warps[:, i, k])
            cells[i, r, c] = np.maximum(cells[i, r, c], resize_digits(drawn, size))

    labels = np.zeros((count, NUM_CLASSES), dtype=np.uint8)
    image, slot = np.nonzero(active)
    labels[image, classes[image, slot]] = 1
    return Split(images, labels, Layout(sources, classes, rows, cols, np.where(active, sizes, -1)))


def _draw_sizes(rng, active, lo, hi):
    """Cell sides per slot: 28 everywhere at scale (1, 1) (no draw, so such data sets keep their bytes)."""
    if lo == hi:
        return np.full(active.shape, cell_size(lo), dtype=np.int64)
    factors = np.exp(rng.uniform(np.log(lo), np.log(hi), size=active.shape))
    return np.rint(DIGIT * factors).astype(np.int64)


def _draw_warps(rng, active, degrees, shear):
    """(2, N, slots) rotations in degrees and shears, uniform in ±``degrees`` and ±``shear``; None when
    both are 0 (no draw, so data sets composed before digit_warp keep their bytes)."""
    if degrees == 0 and shear == 0:
        return None
    return np.stack([rng.uniform(-degrees, degrees, size=active.shape), rng.uniform(-shear, shear, size=active.shape)])


def warp_digits(digits, degrees, shears):
    """28x28 uint8 digits, each rotated by its ``degrees`` and slanted by its ``shears`` (x += shear * y)
    about the cell's centre, bilinear: handwriting more tilted and slanted than MNIST's, for test sets
    that ask how a model copes (``data --digit-warp``).

    One Pillow transform per digit: ~4 s for the ~145k digits of 60,000 images, faster than a
    vectorised numpy bilinear here. At 10 degrees and 0.2 the 20x20 ink box stays inside its cell.
    """
    from PIL import Image

    angle = np.deg2rad(degrees)
    out = np.empty_like(digits)
    for i, (digit, cos, sin, shear) in enumerate(zip(digits, np.cos(angle), np.sin(angle), shears)):
        # Pillow maps each output point to the input point it samples: (slant^-1 rotation^-1) about the centre.
        a, b, d, e = cos + shear * sin, sin - shear * cos, -sin, cos
        c, f = (1 - a - b) * DIGIT / 2, (1 - d - e) * DIGIT / 2
        out[i] = Image.fromarray(digit).transform((DIGIT, DIGIT), Image.Transform.AFFINE, (a, b, c, d, e, f),
                                                  Image.Resampling.BILINEAR)
    return out


def resize_digits(digits, size):
    """28x28 uint8 digits resized to size x size, as Pillow's antialiased bilinear would, for a whole batch.

    Resizing is separable, so one (size, 28) matrix -- Pillow's resize of the identity, row by row --
    applied on both sides does every digit at once.
    """
    if size == DIGIT:
        return digits
    from PIL import Image

    eye = Image.fromarray(np.eye(DIGIT, dtype=np.float32), mode="F")
    matrix = np.asarray(eye.resize((size, DIGIT), Image.Resampling.BILINEAR)).T  # (size, 28)
    out = matrix @ digits.astype(np.float32) @ matrix.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _draw_classes(rng, active, prior, distinct):
    classes = rng.choice(NUM_CLASSES, size=active.shape, p=prior)
    if distinct:  # redraw a slot's class while it repeats an earlier slot's
        for k in range(1, active.shape[1]):
            clash = active[:, k] & (classes[:, :k] == classes[:, k:k + 1]).any(axis=1)
            while clash.any():
                classes[clash, k] = rng.choice(NUM_CLASSES, size=np.count_nonzero(clash), p=prior)
                clash = active[:, k] & (classes[:, :k] == classes[:, k:k + 1]).any(axis=1)
    return np.where(active, classes, -1)


def _draw_sources(rng, wanted, digit_labels, pool):
    """A uniformly chosen pool digit of each wanted class."""
    by_class = pool[np.argsort(digit_labels[pool], kind="stable")]
    per_class = np.bincount(digit_labels[pool], minlength=NUM_CLASSES)
    missing = sorted(set(np.unique(wanted)) - set(np.flatnonzero(per_class)))
    if missing:
        raise MnistEdgeError(f"the MNIST digits given hold no examples of class {missing}")
    start = np.cumsum(per_class) - per_class
    return by_class[start[wanted] + rng.integers(0, per_class[wanted])]


def _place(rng, counts, sizes, span, max_overlap):
    """Top-left corners within each cell's ``span`` meeting the overlap rule (see ``compose``); -1 for unused slots."""
    slots = sizes.shape[1]
    rows = np.full((len(counts), slots), -1, dtype=np.int64)
    cols = rows.copy()
    ink = sizes * (MNIST_INK / DIGIT)    # ink box side
    start = (sizes - ink) / 2            # ink box offset inside the cell
    lo, width = span
    pending = np.flatnonzero(counts > 0)
    for _ in range(MAX_RESTARTS):
        if not pending.size:
            return rows, cols
        failed = np.zeros(len(counts), dtype=bool)
        for k in range(slots):
            todo = pending[(counts[pending] > k) & ~failed[pending]]
            for _ in range(MAX_TRIES):
                if not todo.size:
                    break
                low, high = _uniform_or_not(lo[todo, k]), _uniform_or_not(lo[todo, k] + width[todo, k] + 1)
                r, c = rng.integers(low, high, size=(2, todo.size))
                shared = (_shared(rows[todo, :k] + start[todo, :k], r[:, None] + start[todo, k:k + 1],
                                  ink[todo, :k], ink[todo, k:k + 1])
                          * _shared(cols[todo, :k] + start[todo, :k], c[:, None] + start[todo, k:k + 1],
                                    ink[todo, :k], ink[todo, k:k + 1]))
                smaller = np.minimum(ink[todo, :k], ink[todo, k:k + 1]) ** 2
                ok = (shared / smaller <= max_overlap + 1e-9).all(axis=1)
                rows[todo[ok], k], cols[todo[ok], k] = r[ok], c[ok]
                todo = todo[~ok]
            failed[todo] = True
        pending = np.flatnonzero(failed)
    raise MnistEdgeError(f"could not place {counts.max()} digits within max overlap {max_overlap} after "
                         f"{MAX_RESTARTS} restarts; raise --canvas or --max-overlap, or lower --max-digits")


def _shared(a, b, size_a, size_b):
    """Length shared by the intervals [a, a + size_a) and [b, b + size_b)."""
    return np.clip(np.minimum(a + size_a, b + size_b) - np.maximum(a, b), 0, None)


def _uniform_or_not(bounds):
    """A scalar when every bound is equal: numpy then draws exactly as it did for data sets before digit_scale."""
    return bounds[0] if bounds.size and (bounds == bounds[0]).all() else bounds


def compose_splits(mnist, sizes=None, seed=0, preset=None, **options):
    """Yield ``(name, Split)`` for train, val and test, composed one at a time.

    Train and val draw from a seeded, disjoint division of MNIST's training digits (val gets
    ``VAL_SOURCE_FRACTION``), test from MNIST's test digits. Each split has its own random stream
    spawned from ``seed``, so changing one split's size leaves the others byte-identical.
    """
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    options = resolve_options(preset, **options)
    streams = np.random.SeedSequence(seed).spawn(1 + len(SPLIT_SIZES))[1:]
    for (name, (digits, labels, pool)), stream in zip(source_pools(mnist, seed).items(), streams):
        yield name, compose(digits, labels, sizes[name], np.random.default_rng(stream), pool=pool, **options)


def source_pools(mnist, seed):
    """{split: (MNIST digits, their labels, pool of usable indices or None for all)} of the data set ``seed``.

    Train and val divide MNIST's training digits by a permutation from the first stream of ``seed``,
    so training can draw fresh images from exactly the train pool the data set was composed from.
    """
    division = np.random.SeedSequence(seed).spawn(1 + len(SPLIT_SIZES))[0]
    order = np.random.default_rng(division).permutation(len(mnist.train_images))
    n_val = _val_sources(len(order))
    return {"train": (mnist.train_images, mnist.train_labels, np.sort(order[n_val:])),
            "val": (mnist.train_images, mnist.train_labels, np.sort(order[:n_val])),
            "test": (mnist.test_images, mnist.test_labels, None)}


def mnist_digest(mnist):
    """SHA-256 of MNIST's training digits and labels: names the pool a data set was drawn from, whatever its path."""
    return hashlib.sha256(mnist.train_images.tobytes() + mnist.train_labels.tobytes()).hexdigest()


def _val_sources(n_train_digits):
    return round(VAL_SOURCE_FRACTION * n_train_digits)


def digit_sources(mnist):
    """Where each split's digits come from, in words, for dataset.json."""
    n, n_val = len(mnist.train_images), _val_sources(len(mnist.train_images))
    return {"train": f"MNIST training split: {n - n_val} of {n} digits, disjoint from val's",
            "val": f"MNIST training split: the other {n_val} digits",
            "test": f"MNIST test split: all {len(mnist.test_images)} digits"}
