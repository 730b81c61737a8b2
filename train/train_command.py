"""``mnist-edge train``: options, input checks and the run folder, without importing TensorFlow.

Everything here is cheap (numpy and json), so bad input fails in a fraction of a second with a
one-line error and ``mnist-edge --help`` stays fast; the training itself is train/trainer.py,
imported only once the inputs are known to be good.
"""
import contextlib
from pathlib import Path

import click

from convert.tensorflow_env import import_tensorflow, require_tensorflow
from edge_runtime.cli_options import FiniteFloatRange, NumberPair
from edge_runtime.errors import MnistEdgeError
from edge_runtime.output_folder import check_output_folder, claim_output
from train import multi_worker
from train.dataset_folder import fresh_images, load_data
from train.options import ARCHS, COMPOSE_MODES, DEFAULTS, RESUMABLE
from train.run_folder import HISTORY_FILE, METADATA_FILE, MODEL_FILE, read_state


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


def _worker_args(ctx):
    """This invocation's command-line options again, for the workers --workers launches."""
    args = []
    for param in ctx.command.params:
        name, value = param.name, ctx.params[param.name]
        if name in ("workers", "strategy") or ctx.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        if param.is_flag and param.secondary_opts:  # --x/--no-x
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            args += [param.opts[0]] if value else []
        elif name == "mnist":
            args.append(f"--mnist={value}" if value else "--mnist")
        else:
            args += [param.opts[0], ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return args


def _launch_workers(ctx, workers, out):
    """--workers N: the command again as N local worker processes; each checks the inputs itself."""
    if ctx.params["strategy"] not in ("default", multi_worker.STRATEGY):
        raise click.UsageError(f"--workers runs --strategy {multi_worker.STRATEGY}; "
                               f"drop --strategy {ctx.params['strategy']}")
    try:
        multi_worker.launch_local(workers, _worker_args(ctx), click.echo)
    except MnistEdgeError as e:
        raise MnistEdgeError(f"{e}; continue with: mnist-edge train --out {out} --resume --workers {workers}") from None


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
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=DEFAULTS["lr"], show_default=True,
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
@click.option("--digit-scale", type=NumberPair(), default=",".join(map(str, DEFAULTS["digit_scale"])),
              show_default=True,
              help="With fresh images: resize each digit by a factor log-uniform in [LOW, HIGH] (1 = MNIST's "
                   "size, ink ~20 px tall), so the model reads digits from LOW to HIGH times that size.")
@click.option("--overlap-pairs", type=FiniteFloatRange(min=0, max=1), default=DEFAULTS["overlap_pairs"],
              show_default=True, metavar="SHARE",
              help="With fresh images: this share of every epoch is two digits overlapping freely within a 40x40 patch "
                   "placed anywhere on the canvas, so the model learns to read digits on top of each other "
                   "(0.2 with 64 epochs, as the shipped models: 40x40 pairs 0.69 -> 0.835 exact, for ~0.0008 "
                   "macro-F1 at MNIST scale; with 36-48 epochs pairs cost ~0.0015 there). 0 trains on the data set's own composition only. Ignored for data sets of single digits.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", multi_worker.STRATEGY]),
              default=DEFAULTS["strategy"], show_default=True,
              help="tf.distribute strategy: mirrored replicates the step over all GPUs (else all logical CPUs); "
                   "multi-worker over the processes TF_CONFIG names, one per machine (only the chief, worker 0, "
                   "writes --out; --resume needs --out on storage every worker reads).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Launch this many local worker processes on 127.0.0.1 (TF_CONFIG written for each) that train "
                   "with --strategy multi-worker; their output is prefixed [worker N]. For trying it out.")
@click.option("--deterministic/--no-deterministic", default=DEFAULTS["deterministic"], show_default=True,
              help="Enable TensorFlow op determinism, so the same seed on the same machine gives the same weights.")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out from its last finished epoch, with its saved options.")
@click.pass_context
def train_command(ctx, data, mnist, out, resume, workers, **given):
    """Train a multi-label digit model and write RUN_DIR (--out).

    Writes model.keras (10 sigmoid scores; loads with safe_mode=True), metadata.json (architecture,
    per-digit thresholds tuned on val, val and test metrics, data set, versions, options) and
    history.csv, checkpointing every epoch so --resume loses at most the epoch that was running.

    \b
    Example:
      mnist-edge data data/
      mnist-edge train --data data/ --out runs/default
      mnist-edge train --out runs/default --resume     # after an interruption
      mnist-edge train --data data/ --out runs/two --workers 2   # two local multi-worker processes
    """
    given.update(data=str(data.resolve()) if data else None, mnist=mnist)
    if data is not None and mnist is not None:
        raise click.UsageError("give --data DIR or --mnist, not both")
    check_output_folder(out)  # before an hour of training; locked once the inputs are known to be good
    options = _resolve_options(ctx, out, resume, given)
    if options is None:
        return
    if options["data"] is None and options["mnist"] is None:
        raise click.UsageError("give --data DIR (from `mnist-edge data`) or --mnist to compose the data set from MNIST")
    if options["data"] is not None and not Path(options["data"]).is_dir():
        raise MnistEdgeError(f"data set folder {options['data']} no longer exists")
    if workers:
        return _launch_workers(ctx, workers, out)
    cluster = multi_worker.cluster_from_env() if options["strategy"] == multi_worker.STRATEGY else None
    if cluster:
        role = "the chief: writes --out" if cluster.is_chief else "checkpoints to a temporary folder"
        click.echo(f"worker {cluster.worker} of {len(cluster.addresses)} ({role})")
    splits, info = load_data(options["data"], options["mnist"])
    composer = fresh_images(options, info, options["data"] or "the in-memory data set")

    require_tensorflow("train")  # after the input checks, which need no TensorFlow
    if cluster is None:  # multi-worker: the strategy must be what starts TensorFlow's runtime (trainer.make_strategy)
        import_tensorflow()
    from train import trainer

    # Only the chief writes (and locks) --out; the other workers only read its checkpoint.
    claim = claim_output(out) if cluster is None or cluster.is_chief else contextlib.nullcontext()
    try:
        with claim:
            meta = trainer.train(out, options, splits, info, composer, state=read_state(out), log=click.echo)
    except KeyboardInterrupt:
        raise MnistEdgeError(f"interrupted; continue with: mnist-edge train --out {out} --resume") from None
    if meta is None:
        click.echo(f"worker {cluster.worker} of {len(cluster.addresses)} done; the chief (worker 0) wrote {out}")
        return
    print_report(meta)
    click.echo(f"Wrote {out / MODEL_FILE}, {METADATA_FILE} and {HISTORY_FILE}")
