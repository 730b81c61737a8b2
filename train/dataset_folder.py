"""The data set folder: train.npz, val.npz, test.npz, dataset.json and preview.png.

``mnist-edge data`` writes it (``write_dataset``), ``mnist-edge train`` reads it (``load_data``) or
composes the same set in memory (``--mnist``); both describe it with the one ``dataset_info``. The
composition itself is train/dataset.py; the .npz format is edge_runtime/dataset_file.py.
"""
import json
import math
import time
from pathlib import Path

import numpy as np

from edge_runtime import __version__
from edge_runtime.dataset_file import MAX_LOADED_BYTES, load_labelled_npz, save_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import MANIFEST, MANIFEST_KEY, check_complete, sha256_file, staged_set
from edge_runtime.files import atomic_path, write_text_atomic
from edge_runtime.model_contract import NUM_CLASSES
from edge_runtime.output_folder import claim_output
from train.dataset import (SPLIT_SIZES, VAL_SOURCE_FRACTION, compose_splits, digit_sources,
                           mnist_digest, resolve_options, source_pools)
from train.difficulty import difficulty
from train.epoch_images import EpochComposer
from train.mnist import load_mnist

SPLITS = ("train", "val", "test")
MIN_SIDE = 28          # an image must hold at least one whole MNIST digit
MNIST_DATA_SEED = 0    # --mnist composes the data set `mnist-edge data` writes by default (its seed 0)
PREVIEW = dict(count=32, columns=8, min_cell=112)  # preview.png: samples, grid columns, cell size in px


def dataset_info(mnist, source, seed, preset, options, **extra):
    """dataset.json before its splits are described (``describe_split`` adds each as it is composed)."""
    return {
        "toolkit_version": __version__,
        **extra,
        "seed": seed,
        "preset": preset,
        "parameters": {**options, "val_source_fraction": VAL_SOURCE_FRACTION},
        "image_shape": [options["canvas"], options["canvas"]],
        "mnist_source": source,
        "mnist_sha256": mnist_digest(mnist),  # which MNIST, whatever its path: training finds the pool again by it
        "digit_sources": digit_sources(mnist),
        "splits": {},
    }


def write_dataset(out_dir, sizes=None, seed=0, preset=None, mnist_path=None, log=None, **options):
    """Compose the three splits and publish the data set folder as one set; returns the dataset.json content.

    Everything is written into a staging folder first and moved in only when complete, dataset.json
    (with each file's SHA-256, checked when a split is read) last: a kill or a failure leaves the
    old set as it was, never new train.npz beside old val.npz and test.npz.
    """
    log = log or (lambda line: None)
    out_dir = Path(out_dir)
    options = resolve_options(preset, **options)  # fail on bad settings before loading anything
    _check_split_sizes({**SPLIT_SIZES, **(sizes or {})}, options["canvas"])
    mnist, source = load_mnist(mnist_path, return_source=True)
    log(f"MNIST: {source}")
    info = dataset_info(mnist, source, seed, preset, options,
                        mnist_path=str(Path(mnist_path).resolve()) if mnist_path else None)
    preview = None
    start = time.perf_counter()
    with claim_output(out_dir, "OUT_DIR"), staged_set(out_dir) as stage:  # one writer; all files or none
        for name, split in compose_splits(mnist, sizes, seed, **options):
            save_labelled_npz(stage / f"{name}.npz", split.images, split.labels, **difficulty(split.layout))
            info["splits"][name] = describe_split(name, split, options["max_digits"])
            if preview is None and len(split.images):
                preview = split
            log(f"{name}: {len(split.images)} images composed and written in {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
        if preview is not None:
            write_preview(stage / "preview.png", preview.images, preview.labels)
        info[MANIFEST_KEY] = {f"{name}.npz": sha256_file(stage / f"{name}.npz") for name in info["splits"]}
        write_text_atomic(stage / MANIFEST, json.dumps(info, indent=2) + "\n")
    return info


def _check_split_sizes(sizes, canvas):
    """Refuse, before composing, a split too large to hold in memory -- and to be read back, which
    every reader caps at MAX_LOADED_BYTES per array."""
    for name, count in sizes.items():
        nbytes = count * canvas * canvas
        if nbytes > MAX_LOADED_BYTES:
            raise MnistEdgeError(f"{count:,} {name} images of {canvas}x{canvas} would take {nbytes / 2**30:,.1f} GiB; "
                                 f"a split may hold at most {MAX_LOADED_BYTES / 2**30:.0f} GiB: lower --{name} or --canvas")


def describe_split(name, split, max_digits):
    """One split's entry in dataset.json: its file, image count, per-class counts, digit-count histogram."""
    digits = split.layout.sources >= 0
    return {
        "file": f"{name}.npz",
        "images": len(split.images),
        "images_per_class": split.labels.sum(axis=0, dtype=np.int64).tolist(),
        "digits_per_class": np.bincount(split.layout.classes[digits], minlength=NUM_CLASSES).tolist(),
        "digit_count_histogram": np.bincount(digits.sum(axis=1), minlength=max_digits + 1).tolist(),
    }


def label_text(label):
    """'2 5 7' for a multi-hot row, '-' for an empty image."""
    return " ".join(str(d) for d in np.flatnonzero(label)) or "-"


def write_preview(path, images, labels, count=PREVIEW["count"], columns=PREVIEW["columns"]):
    """A grid of the first ``count`` images, upscaled, each with its label written underneath."""
    from PIL import Image, ImageDraw, ImageFont

    images, labels = images[:count], labels[:count]
    scale = max(1, math.ceil(PREVIEW["min_cell"] / images.shape[2]))
    h, w = images.shape[1] * scale, images.shape[2] * scale
    text_h, gap = 24, 4
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("L", (columns * (w + gap) + gap, rows * (h + text_h + gap) + gap), 64)
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        font = ImageFont.load_default()
    for n, (image, label) in enumerate(zip(images, labels)):
        x, y = gap + (n % columns) * (w + gap), gap + (n // columns) * (h + text_h + gap)
        sheet.paste(Image.fromarray(image).resize((w, h), Image.Resampling.NEAREST), (x, y))
        text = label_text(label)
        draw.text((x + (w - draw.textlength(text, font=font)) / 2, y + h + 2), text, fill=255, font=font)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def load_data(data_dir=None, mnist=None):
    """The three splits as {name: (images uint8 (N,H,W), labels uint8 (N,10))}, and the data set's description.

    ``data_dir`` is a folder written by ``mnist-edge data``; ``mnist`` ("" = look in the usual places,
    else a path) composes that command's default data set in memory instead.
    """
    if mnist is not None:
        return _compose(mnist or None)
    data_dir = Path(data_dir)
    check_complete(data_dir, "data set")
    splits = {name: load_labelled_npz(data_dir / f"{name}.npz") for name in SPLITS}  # checks the listed hashes
    info_path = data_dir / MANIFEST
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    except (OSError, ValueError) as e:
        raise MnistEdgeError(f"{info_path}: not readable JSON ({e})") from None
    _check_splits(splits, data_dir)
    return splits, info


def _compose(mnist_path):
    """``mnist-edge data``'s default data set, composed in memory, with the dataset.json it would write."""
    digits, source = load_mnist(mnist_path, return_source=True)
    options = resolve_options()
    info = dataset_info(digits, source, MNIST_DATA_SEED, None, options,
                        composed_by="mnist-edge train --mnist (in memory, as `mnist-edge data` with its defaults)")
    splits = {}
    for name, split in compose_splits(digits, seed=MNIST_DATA_SEED):
        splits[name] = (split.images, split.labels)
        info["splits"][name] = describe_split(name, split, options["max_digits"])
    return splits, info


def fresh_images(options, info, where):
    """The composer of each epoch's training images, or None when training on the fixed train.npz.

    Fresh images need what composed the data set: its parameters and seed (dataset.json) and the
    same MNIST (found as `mnist-edge data` finds it, checked by digest).
    """
    composable = isinstance(info.get("parameters"), dict) and isinstance(info.get("seed"), int)
    mode = options["compose"]
    if mode == "fixed" or (mode == "auto" and not composable):
        return None
    if not composable:
        raise MnistEdgeError(f"{where} has no dataset.json from `mnist-edge data`, so its training images cannot "
                             f"be composed afresh; pass --compose fixed to train on train.npz as it is")
    mnist = load_mnist(options["mnist"] or info.get("mnist_path"))
    expected = info.get("mnist_sha256")
    if expected and mnist_digest(mnist) != expected:
        raise MnistEdgeError(f"the MNIST found now differs from the one {where} was composed from; point --mnist or "
                             f"$MNIST_EDGE_DATA at that copy, or pass --compose fixed")
    parameters = {k: v for k, v in info["parameters"].items() if k != "val_source_fraction"}
    parameters = resolve_options(**{**parameters, "digit_scale": options["digit_scale"]})
    digits, labels, pool = source_pools(mnist, info["seed"])["train"]
    pairs = options.get("overlap_pairs", 0.0) if parameters["max_digits"] >= 2 else 0.0  # no pairs in a one-digit task
    return EpochComposer(digits, labels, pool, info["splits"]["train"]["images"], parameters, options["seed"], pairs)


def _check_splits(splits, where):
    shape = splits["train"][0].shape[1:]
    for name, (images, _) in splits.items():
        if images.shape[1:] != shape:
            raise MnistEdgeError(f"{where}: {name} images are {images.shape[1:]} but train images are {shape}")
    if min(shape) < MIN_SIDE:
        raise MnistEdgeError(f"{where}: images are {shape[0]}x{shape[1]}; the models need at least "
                             f"{MIN_SIDE}x{MIN_SIDE} (one MNIST digit)")
    for name, (images, _) in splits.items():
        if not len(images):
            raise MnistEdgeError(f"{where}: {name}.npz holds no images; training needs images in train, val and test")
