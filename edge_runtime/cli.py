"""``mnist-edge infer``: the digits in image files, folders and arrays, with the device runtime only."""
import json
import warnings

import click

from .classifier import Classifier
from .cli_options import FiniteFloatRange
from .errors import MnistEdgeError
from .images import iter_images
from .input_files import shown
from .interpreter import MAX_THREADS, RUNTIMES
from .metadata import missing_metadata_warning
from .preprocess import DIGIT_HEIGHTS, TARGET_HEIGHT, PictureWarning
from .sample import example_pictures

BATCH = 64  # images per invoke while streaming through many files
INFER_HELP = f"""Print the digits found in each INPUT.

    INPUT is an image file (PNG, JPEG, BMP, PGM; any size or colour), a folder of them, or a
    .npy/.npz array of uint8 (N,H,W) images (key `images`). Pictures are normalised as MNIST:
    a 1-3 px frame stripped, dark ink on light paper inverted, the paper and its pixel noise
    mapped to black, faint ink stretched, and resized (never stretched) so the digits' ink is
    about {TARGET_HEIGHT} px tall in the model's input (where the size cues disagree, the model keeps
    the fitting it reads most surely). Supported digit heights there: {DIGIT_HEIGHTS[0]}-{DIGIT_HEIGHTS[1]} px (or what
    the model's metadata says); a picture whose digits cannot be brought into that range, or that
    does not look like digits, gets a one-line warning on stderr. A picture without ink gives no
    digits. Arrays of the model's own size are used as they are; other sizes are prepared like
    pictures but never inverted. Unreadable inputs are reported on stderr; the others are still
    printed, and the exit status is 1.

    \b
    Examples:
      mnist-edge infer --example                  # the shipped model on the shipped example pictures
      mnist-edge infer scan.png scans/ --model model_int8.tflite
    """


@click.command("infer", help=INFER_HELP)
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--example", is_flag=True,
              help="Also run on the example pictures shipped with the package (their names give their digits).")
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
def infer_command(inputs, example, model, as_json, threshold, threads, runtime, no_xnnpack):
    """Print the digits found in each INPUT (help: INFER_HELP)."""
    if example:
        pictures = example_pictures()
        click.echo(f"Example pictures shipped with mnist-edge, named by their true digits: {pictures[0].parent}", err=True)
        inputs = (*inputs, *map(str, pictures))
    if not inputs:
        raise click.UsageError("give INPUT files or folders, or --example for the pictures shipped with the package")
    clf = Classifier(model, num_threads=threads, runtime=runtime, use_xnnpack=not no_xnnpack, thresholds=threshold)
    if not clf.metadata:
        click.echo(missing_metadata_warning(clf.model_path, threshold), err=True)
    with warnings.catch_warnings():  # the command owns its process: warnings as one "Warning: ..." line each
        warnings.simplefilter("always", PictureWarning)
        warnings.showwarning = _warning_line
        failed = _infer(clf, inputs, _json_line if as_json else _text_line)
    if failed:
        raise MnistEdgeError(f"{failed} input(s) could not be read (reported above)")


def _infer(clf, inputs, show):
    """Print a line per image in batches of BATCH; the number of inputs that could not be read."""
    names, images, failed = [], [], 0
    for name, item in iter_images(inputs, clf.input_shape, classifier=clf):
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
    return failed


def _warning_line(message, category, filename, lineno, file=None, line=None):
    click.echo(f"Warning: {message}", err=True)


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
