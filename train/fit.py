"""``mnist-edge train``: options, input checks and the run folder, without importing TensorFlow.

Everything here is cheap (numpy and json), so bad input fails in a fraction of a second with a
one-line error and ``mnist-edge --help`` stays fast; the training itself is train/trainer.py,
imported only once the inputs are known to be good.
"""
import json
import os
from pathlib import Path

import click
import numpy as np

from edge_runtime.data import load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from train.dataset import ScaleRange

ARCHS = ("edge-cnn", "seed-cnn", "mlp")  # the builders in train/models.py
SPLITS = ("train", "val", "test")
MIN_SIDE = 28          # an image must hold at least one whole MNIST digit
COMPOSE_MODES = ("auto", "fresh", "fixed")
MNIST_DATA_SEED = 0    # --mnist composes the data set `mnist-edge data` writes by default (its seed 0)

# Training defaults, in one place.
DEFAULTS = dict(
    arch="edge-cnn",       # the CNN designed for int8 edge inference (train/models.py)
    epochs=36,             # the cosine schedule spans them; ~85 s each for 60k images on 2 cores (pipeline < 60 min)
    batch_size=128,        # global batch, split across replicas under --strategy mirrored
    lr=3e-3,               # Adam peak learning rate, cosine-decayed to 1% of it over --epochs
    seed=0,                # weight initialisation and data order
    pos_weight="none",     # plain BCE: scores stay calibrated; per-digit thresholds then set each cut
    patience=8,            # epochs without a better validation macro-F1 before stopping (best epoch kept)
    strategy="default",    # tf.distribute strategy the training step runs under
    deterministic=True,    # TensorFlow op determinism: same seed, same machine -> same weights
    compose="auto",        # fresh: new training images every epoch from the train digit pool; fixed: train.npz
    digit_scale=(0.6, 1.2),  # fresh images: digits resized by a log-uniform factor in this range (1 = MNIST's size)
)
# Options a resumed run may change: they affect where the work runs, not what is computed.
RESUMABLE = ("strategy", "deterministic")

# Inside RUN_DIR
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"  # in CHECKPOINT_DIR; replaced last, so it always names complete files


def read_state(run_dir):
    """The last committed checkpoint state of RUN_DIR, or None if it has none."""
    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MnistEdgeError(f"{path}: unreadable checkpoint state ({e}); delete {path.parent} to start over") from None


def load_data(data_dir=None, mnist=None):
    """The three splits as {name: (images uint8 (N,H,W), labels uint8 (N,10))}, and the data set's description.

    ``data_dir`` is a folder written by ``mnist-edge data``; ``mnist`` ("" = look in the usual places,
    else a path) composes that command's default data set in memory instead.
    """
    if mnist is not None:
        return _compose(mnist or None)
    data_dir = Path(data_dir)
    splits = {name: load_labelled_npz(data_dir / f"{name}.npz") for name in SPLITS}
    info_path = data_dir / "dataset.json"
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    except (OSError, ValueError) as e:
        raise MnistEdgeError(f"{info_path}: not readable JSON ({e})") from None
    _check_splits(splits, data_dir)
    return splits, info


def _compose(mnist_path):
    from train.dataset import VAL_SOURCE_FRACTION, compose_splits, mnist_digest, resolve_options
    from train.mnist import load_mnist

    digits, source = load_mnist(mnist_path, return_source=True)
    splits = {name: (s.images, s.labels) for name, s in compose_splits(digits, seed=MNIST_DATA_SEED)}
    info = {
        "composed_by": "mnist-edge train --mnist (in memory, as `mnist-edge data` with its defaults)",
        "seed": MNIST_DATA_SEED,
        "preset": None,
        "parameters": {**resolve_options(), "val_source_fraction": VAL_SOURCE_FRACTION},
        "image_shape": list(splits["train"][0].shape[1:]),
        "mnist_source": source,
        "mnist_sha256": mnist_digest(digits),
        "splits": {name: {"images": len(labels), "images_per_class": labels.sum(axis=0, dtype=np.int64).tolist()}
                   for name, (_, labels) in splits.items()},
    }
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
    from train.dataset import EpochComposer, mnist_digest, resolve_options, source_pools
    from train.mnist import load_mnist

    mnist = load_mnist(options["mnist"] or info.get("mnist_path"))
    expected = info.get("mnist_sha256")
    if expected and mnist_digest(mnist) != expected:
        raise MnistEdgeError(f"the MNIST found now differs from the one {where} was composed from; point --mnist or "
                             f"$MNIST_EDGE_DATA at that copy, or pass --compose fixed")
    parameters = {k: v for k, v in info["parameters"].items() if k != "val_source_fraction"}
    parameters = resolve_options(**{**parameters, "digit_scale": options["digit_scale"]})
    digits, labels, pool = source_pools(mnist, info["seed"])["train"]
    return EpochComposer(digits, labels, pool, info["splits"]["train"]["images"], parameters, options["seed"])


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


def _resolve_options(ctx, out, resume, given):
    """The options this invocation trains with, or None when there is nothing to do."""
    state = read_state(out)
    finished = (out / METADATA_FILE).is_file()
    if not resume:
        if finished or state:
            what = "a finished run" if finished else f"an interrupted run (epoch {state['epochs_done']} done)"
            hint = ("choose another --out or delete it" if finished
                    else "pass --resume to continue it, or choose another --out")
            raise MnistEdgeError(f"{out} already holds {what}; {hint}")
        return given
    if finished:
        click.echo(f"{out} holds a finished run ({METADATA_FILE}); nothing to resume")
        return None
    if state is None:
        click.echo(f"{out} has no checkpoint; starting a new run")
        return given
    options = dict(state["options"])
    for name, value in given.items():
        if ctx.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE or value == options.get(name):
            continue
        if name not in RESUMABLE:
            raise click.UsageError(f"--{name.replace('_', '-')} {value} differs from the interrupted run's "
                                   f"{options.get(name)}; --resume continues with the options saved in {out}")
        options[name] = value
    return options


def print_report(meta):
    """The per-digit table for the test set, then the summary figures."""
    test, thresholds = meta["metrics"]["test"], meta["thresholds"]
    d = test["per_digit"]
    click.echo(f"\nTest set ({test['num_images']} images), thresholds tuned on val:")
    click.echo(f"{'digit':>5} {'precision':>9} {'recall':>7} {'F1':>7} {'AP':>7} {'threshold':>9} {'support':>7}")
    for c in range(len(thresholds)):
        click.echo(f"{c:>5} {d['precision'][c]:>9.4f} {d['recall'][c]:>7.4f} {d['f1'][c]:>7.4f} "
                   f"{d['average_precision'][c]:>7.4f} {thresholds[c]:>9.3f} {d['support'][c]:>7}")
    click.echo(f"macro-F1 {test['macro_f1']:.4f}  micro-F1 {test['micro_f1']:.4f}  subset accuracy "
               f"{test['subset_accuracy']:.4f}  Hamming loss {test['hamming_loss']:.4f}  "
               f"(val macro-F1 {meta['metrics']['val']['macro_f1']:.4f})")
    click.echo(f"{meta['arch']}: {meta['params']:,} parameters, {meta['macs']:,} multiply-adds; "
               f"{meta['epochs_run']} epoch(s) (best {meta['best_epoch']}) in {meta['train_seconds']:.0f} s")


@click.command("train")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Data set folder from `mnist-edge data` (train.npz, val.npz, test.npz, dataset.json).")
@click.option("--mnist", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Instead of --data: compose `mnist-edge data`'s default data set in memory from MNIST "
                   "(PATH, else $MNIST_EDGE_DATA, ~/.keras/datasets/mnist.npz, a Keras download).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: model.keras, metadata.json, history.csv and checkpoint/.")
@click.option("--arch", type=click.Choice(ARCHS), default=DEFAULTS["arch"], show_default=True,
              help="edge-cnn: small fully convolutional net for int8 devices; seed-cnn, mlp: the seed's examples.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS["epochs"], show_default=True,
              help="Epochs to train; the learning rate decays over them, and early stopping may end sooner.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS["batch_size"], show_default=True,
              help="Images per step (global: split across replicas with --strategy mirrored).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS["lr"], show_default=True,
              help="Adam's peak learning rate, cosine-decayed to 1% of it over --epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULTS["seed"], show_default=True,
              help="Seed for weight initialisation and the data order of every epoch.")
@click.option("--pos-weight", type=click.Choice(["none", "auto"]), default=DEFAULTS["pos_weight"], show_default=True,
              help="Weight on each digit's positive term of the BCE. auto: neg/pos of that digit in the "
                   "training labels, clipped to [1, 100], for imbalanced sets. (Not Keras class_weight: it "
                   "weights a whole image by one argmax class, wrong for multi-digit labels.)")
@click.option("--patience", type=click.IntRange(min=1), default=DEFAULTS["patience"], show_default=True,
              help="Stop after this many epochs without a better validation macro-F1; the best epoch's weights are kept.")
@click.option("--compose", type=click.Choice(COMPOSE_MODES), default=DEFAULTS["compose"], show_default=True,
              help="fresh: compose new training images every epoch from the data set's train digits (keyed by "
                   "--seed and epoch; needs MNIST, found as `data` finds it); fixed: train on train.npz as it is; "
                   "auto: fresh when the data set was composed by `mnist-edge data`, else fixed.")
@click.option("--digit-scale", type=ScaleRange(), default=",".join(map(str, DEFAULTS["digit_scale"])),
              show_default=True,
              help="With fresh images: resize each digit by a factor log-uniform in [LOW, HIGH] (1 = MNIST's "
                   "size, ink ~20 px tall), so the model reads digits from LOW to HIGH times that size.")
@click.option("--strategy", type=click.Choice(["default", "mirrored"]), default=DEFAULTS["strategy"], show_default=True,
              help="tf.distribute strategy: mirrored replicates the step over all GPUs (else all logical CPUs).")
@click.option("--deterministic/--no-deterministic", default=DEFAULTS["deterministic"], show_default=True,
              help="Enable TensorFlow op determinism, so the same seed on the same machine gives the same weights.")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out from its last finished epoch, with its saved options.")
@click.pass_context
def train_command(ctx, data, mnist, out, resume, **given):
    """Train a multi-label digit model and write RUN_DIR (--out).

    Writes model.keras (10 sigmoid scores; loads with safe_mode=True), metadata.json (architecture,
    per-digit thresholds tuned on val, val and test metrics, data set, versions, options) and
    history.csv, checkpointing every epoch so --resume loses at most the epoch that was running.

    \b
    Example:
      mnist-edge data data/
      mnist-edge train --data data/ --out runs/default
      mnist-edge train --out runs/default --resume     # after an interruption
    """
    given.update(data=str(data.resolve()) if data else None, mnist=mnist)
    if data is not None and mnist is not None:
        raise click.UsageError("give --data DIR or --mnist, not both")
    options = _resolve_options(ctx, out, resume, given)
    if options is None:
        return
    if options["data"] is None and options["mnist"] is None:
        raise click.UsageError("give --data DIR (from `mnist-edge data`) or --mnist to compose the data set from MNIST")
    if options["data"] is not None and not Path(options["data"]).is_dir():
        raise MnistEdgeError(f"data set folder {options['data']} no longer exists")
    splits, info = load_data(options["data"], options["mnist"])
    composer = fresh_images(options, info, options["data"] or "the in-memory data set")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output
    from train import trainer

    try:
        meta = trainer.train(out, options, splits, info, composer, state=read_state(out), log=click.echo)
    except KeyboardInterrupt:
        raise MnistEdgeError(f"interrupted; continue with: mnist-edge train --out {out} --resume") from None
    print_report(meta)
    click.echo(f"Wrote {out / MODEL_FILE}, {METADATA_FILE} and {HISTORY_FILE}")
