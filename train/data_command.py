"""``mnist-edge data``: compose the multi-label MNIST data set into a folder (numpy only, no TensorFlow).

The options and their checks; the composition is train/dataset.py, the folder it writes
train/dataset_folder.py.
"""
from pathlib import Path

import click

from edge_runtime.cli_options import FiniteFloatRange, NumberPair, comma_list
from edge_runtime.output_folder import check_output_folder
from train.dataset import DEFAULTS, DIGIT, PRESETS, SPLIT_SIZES
from train.dataset_folder import write_dataset


def _parse_prior(ctx, param, value):
    if value is None:
        return None
    return comma_list(value, float, "expected 10 comma-separated numbers, e.g. 1,1,1,1,1,1,1,1,1,0.1")


# options a preset fixes
GEOMETRY = ("canvas", "min_digits", "max_digits", "empty_fraction", "max_overlap", "digit_scale", "digit_warp")


@click.command("data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train", "n_train", type=click.IntRange(min=1), default=SPLIT_SIZES["train"], show_default=True,
              help="Training images.")
@click.option("--val", "n_val", type=click.IntRange(min=0), default=SPLIT_SIZES["val"], show_default=True,
              help="Validation images (digits from a held-out part of MNIST's training split).")
@click.option("--test", "n_test", type=click.IntRange(min=0), default=SPLIT_SIZES["test"], show_default=True,
              help="Test images (digits from MNIST's test split only).")
@click.option("--canvas", type=click.IntRange(min=DIGIT), default=DEFAULTS["canvas"], show_default=True,
              help="Canvas side in pixels (square, at least 28).")
@click.option("--min-digits", type=click.IntRange(min=1), default=DEFAULTS["min_digits"], show_default=True,
              help="Fewest digits in a non-empty image.")
@click.option("--max-digits", type=click.IntRange(min=1), default=DEFAULTS["max_digits"], show_default=True,
              help="Most digits in an image (the count is uniform between min and max).")
@click.option("--empty-fraction", type=FiniteFloatRange(0, 1), default=DEFAULTS["empty_fraction"],
              show_default=True, help="Share of empty images (no digit, all-zero label).")
@click.option("--max-overlap", type=FiniteFloatRange(0, 1), default=DEFAULTS["max_overlap"], show_default=True,
              help="Most of a digit's central 20x20 box that one other digit's box may cover.")
@click.option("--digit-scale", type=NumberPair(), default="1,1", show_default=True,
              help="Resize each digit by a factor drawn log-uniformly from [LOW, HIGH]; 1 is MNIST's size "
                   "(ink ~20 px tall in a 28 px cell), e.g. 0.5,0.5 for half-size digits.")
@click.option("--digit-warp", type=NumberPair("DEGREES,SHEAR", "20,0.35"), default="0,0", show_default=True,
              help="Rotate each digit by up to ±DEGREES and slant it (x += SHEAR * y) by up to ±SHEAR at random "
                   "(at most 30,0.5), e.g. 20,0.35 for a test set of tilted, slanted handwriting; 0,0: upright.")
@click.option("--class-prior", callback=_parse_prior, metavar="W0,...,W9",
              help="Relative frequency of each class 0-9, e.g. 1,1,1,1,1,1,1,1,1,0.1 for few nines "
                   "[default: uniform].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for every random choice; the same seed gives byte-identical files.")
@click.option("--mnist", "mnist_path", type=click.Path(exists=True, path_type=Path),
              help="MNIST copy: a folder with the four IDX files (.gz or raw) or an mnist.npz "
                   "[default: $MNIST_EDGE_DATA, then ~/.keras/datasets/mnist.npz, then a Keras download].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)),
              help="multimnist: Sabour et al. 2017's MultiMNIST (36x36, two digits of different classes, "
                   "each shifted up to 4 px); fixes the canvas, digit and overlap options.")
@click.pass_context
def data_command(ctx, out_dir, n_train, n_val, n_test, class_prior, seed, mnist_path, preset, **geometry):
    """Compose the multi-label MNIST data set into OUT_DIR.

    Writes train.npz, val.npz and test.npz (images uint8 (N,H,W), labels uint8 (N,10) multi-hot,
    and per image digits_per_image and max_overlap, which bench breaks results down by),
    dataset.json (parameters, per-class counts, digit-count histograms) and preview.png.

    \b
    Example:
      mnist-edge data data/ --seed 1
      mnist-edge data data/multimnist --preset multimnist
    """
    if preset is not None:
        given = [f"--{name.replace('_', '-')}" for name in GEOMETRY
                 if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--preset {preset} sets the canvas and digit options itself; drop {', '.join(given)}")
        geometry = {}
    check_output_folder(out_dir, "OUT_DIR")  # before loading MNIST; write_dataset locks it while it writes
    write_dataset(out_dir, sizes={"train": n_train, "val": n_val, "test": n_test}, seed=seed, preset=preset,
                  mnist_path=mnist_path, log=lambda line: click.echo(line, err=True),
                  class_prior=class_prior, **geometry)
    click.echo(f"Wrote {out_dir}/{{train,val,test}}.npz, dataset.json and preview.png")
