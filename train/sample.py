"""Write the labelled sample that ships in the package (edge_runtime/sample.py says what uses it).

Run ``python -m train.sample`` (MNIST found as every command finds it; ``--mnist PATH`` to name a
copy) after changing the composition: it rewrites ``edge_runtime/sample_data/``. Everything is
seeded, so the same MNIST gives byte-identical files (tests/test_first_run.py checks the shipped
ones against a fresh run). The images come from MNIST's test split, composed with the ``data``
command's defaults, so the shipped models (trained on the training split) never saw their digits.
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime import __version__
from edge_runtime.dataset_file import save_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.files import atomic_path, write_text_atomic
from edge_runtime.sample import PICTURE_PATTERN, SAMPLE_DIR, SAMPLE_INFO, SAMPLE_NPZ
from train.dataset import compose, resolve_options
from train.dataset_folder import label_text
from train.mnist import load_mnist

SAMPLE_SEED = 15        # not 0 or 1: other seeds compose the test sets tests and the shipped-model check use
SAMPLE_SIZE = 300       # ~0.2 MB compressed: enough for a per-digit table, small enough to ship
PICTURE_DIGITS = (1, 2, 3, 3)  # the example pictures: the first sample images with these digit counts
PAPER_SCALE = 3         # the last picture is drawn as a scan: dark ink on light paper, 3x larger


def write_sample(out_dir=SAMPLE_DIR, mnist_path=None):
    """Compose the sample, write sample.npz (compressed), the example pictures and sample.json; returns the info."""
    out_dir = Path(out_dir)
    mnist, source = load_mnist(mnist_path, return_source=True)
    options = resolve_options()
    split = compose(mnist.test_images, mnist.test_labels, SAMPLE_SIZE, np.random.default_rng(SAMPLE_SEED), **options)
    images, labels = split.images, split.labels
    save_labelled_npz(out_dir / SAMPLE_NPZ, images, labels, compressed=True)  # fixed zip dates: same bytes each run
    for old in out_dir.glob(PICTURE_PATTERN.format("*")):
        old.unlink()
    pictures = [_write_picture(out_dir, images[i], labels[i], scan=n == len(PICTURE_DIGITS) - 1)
                for n, i in enumerate(_picture_indices(labels))]
    info = {"toolkit_version": __version__, "made_by": "python -m train.sample", "seed": SAMPLE_SEED,
            "images": SAMPLE_SIZE, "digits_from": "MNIST test split", "composition": options,
            "mnist_test_sha256": hashlib.sha256(mnist.test_images.tobytes() + mnist.test_labels.tobytes()).hexdigest(),
            "images_per_class": labels.sum(axis=0, dtype=np.int64).tolist(), "pictures": pictures}
    write_text_atomic(out_dir / SAMPLE_INFO, json.dumps(info, indent=2) + "\n")
    return info, source


def _picture_indices(labels):
    """Index of the first image with each count in PICTURE_DIGITS, none used twice."""
    counts, used = labels.sum(axis=1), []
    for wanted in PICTURE_DIGITS:
        used.append(next(i for i in range(len(labels)) if counts[i] == wanted and i not in used))
    return used


def _write_picture(out_dir, image, label, scan):
    """One PNG named by its digits; a ``scan`` is inverted and enlarged, as `infer` must undo."""
    picture = Image.fromarray(image)
    if scan:
        picture = Image.fromarray(255 - image).resize((image.shape[1] * PAPER_SCALE, image.shape[0] * PAPER_SCALE),
                                                      Image.Resampling.BICUBIC)
    name = PICTURE_PATTERN.format(label_text(label).replace(" ", "_"))
    with atomic_path(out_dir / name) as tmp:
        picture.save(tmp, format="PNG")
    return name


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.sample", description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", help="folder with the four MNIST IDX files or an mnist.npz")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help=f"output folder [default: {SAMPLE_DIR}]")
    args = parser.parse_args(argv)
    try:
        info, source = write_sample(args.out, args.mnist)
    except MnistEdgeError as e:
        sys.exit(f"Error: {e.message}")
    print(f"MNIST: {source}\nWrote {args.out}/{SAMPLE_NPZ} ({info['images']} images), {SAMPLE_INFO} "
          f"and {', '.join(info['pictures'])}")


if __name__ == "__main__":
    main()
