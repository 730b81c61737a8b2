"""``mnist-edge infer``: the digits in image files, folders and arrays, with the device runtime only."""
import json

import click

from .classifier import Classifier
from .cli_options import FiniteFloatRange
from .errors import MnistEdgeError
from .images import iter_images
from .input_files import shown
from .interpreter import MAX_THREADS, RUNTIMES

BATCH = 64  # images per invoke while streaming through many files


@click.command("infer")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--model", "-m", type=click.Path(path_type=str), default=None,
              help="A .tflite model from `mnist-edge convert` or any with one (1,H,W,1) input and 10 "
                   "outputs. [default: the int8 model shipped with the package]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image: input, digits, scores.")
@click.option("--threshold", type=FiniteFloatRange(0, 1), default=None,
              help="One score threshold for every digit. [default: the model's own, else 0.5]")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
              help="Interpreter threads. [default: all CPU cores]")
@click.option("--runtime", type=click.Choice(["auto", *RUNTIMES]), default="auto", show_default=True,
              help="Interpreter package; auto tries them in this order.")
@click.option("--no-xnnpack", is_flag=True, help="Run without the default XNNPACK delegate (for comparisons).")
def infer_command(inputs, model, as_json, threshold, threads, runtime, no_xnnpack):
    """Print the digits found in each INPUT.

    INPUT is an image file (PNG, JPEG, BMP, PGM; any size or colour, dark ink on light paper is
    inverted), a folder of them, or a .npy/.npz array of uint8 (N,H,W) images (key `images`).
    Unreadable inputs are reported on stderr; the others are still printed, and the exit status is 1.
    """
    clf = Classifier(model, num_threads=threads, runtime=runtime, use_xnnpack=not no_xnnpack, thresholds=threshold)
    show = _json_line if as_json else _text_line
    names, images, failed = [], [], 0
    for name, item in iter_images(inputs, clf.input_shape):
        if isinstance(item, MnistEdgeError):
            click.echo(f"Error: {item.message}", err=True)
            failed += 1
            continue
        names.append(name)
        images.append(item)
        if len(images) == BATCH:
            _print(clf, names, images, show)
            names, images = [], []
    _print(clf, names, images, show)
    if failed:
        raise MnistEdgeError(f"{failed} input(s) could not be read (reported above)")


def _print(clf, names, images, show):
    if images:
        for name, prediction in zip(names, clf.predict(images)):
            click.echo(show(name, prediction))


def _text_line(name, p):
    name = shown(name)  # a newline in a file name must not split the line
    if not p.digits:
        best = int(p.scores.argmax())
        return f"{name}: no digits (highest {best} at {p.scores[best]:.2f})"
    return f"{name}: digits {' '.join(map(str, p.digits))} (scores {' '.join(f'{p.scores[d]:.2f}' for d in p.digits)})"


def _json_line(name, p):
    # 4 decimals: finer than an int8 output step (1/256) and than any threshold that matters
    return json.dumps({"input": name, "digits": list(p.digits), "scores": [round(float(s), 4) for s in p.scores]})
