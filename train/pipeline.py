"""``mnist-edge pipeline``: data -> train -> convert -> bench in one resumable command.

Each stage is the same click command a user would run by hand (invoked with ctx.invoke, so every
check and message is shared), writing into one folder:

    OUT/data/    train.npz val.npz test.npz dataset.json preview.png   (mnist-edge data)
    OUT/run/     model.keras metadata.json history.csv                 (mnist-edge train)
    OUT/models/  model_float32.tflite model_int8.tflite quant_report.json/.md (mnist-edge convert)
    OUT/bench/   report.md report.json report.csv *.png                (mnist-edge bench)
    OUT/report.md                                                      (copy of bench/report.md)
    OUT/pipeline.json                                                  (options and finished stages)

A finished stage is skipped on the next run; ``--redo STAGE`` runs it (and every later stage)
again. Changing an option that a finished stage depended on is refused rather than silently mixed;
the data stage records which MNIST it used by digest, so naming the same copy another way (``--mnist``
once, ``$MNIST_EDGE_DATA`` the next time) continues.
"""
import json
import shutil
import time
from pathlib import Path

import click

from benchmarks.cli import bench_command
from convert.cli import convert_command
from edge_runtime.classifier import SHIPPED_FORMATS
from edge_runtime.cli_options import FiniteFloatRange
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import staged_set
from edge_runtime.files import write_bytes_atomic, write_text_atomic
from edge_runtime.output_folder import claim_output
from train.data_command import data_command
from train.dataset import mnist_digest
from train.mnist import load_mnist
from train.train_command import train_command

STAGES = ("data", "train", "convert", "bench")
# Options borrowed from `data` and `train` (same names, help and checks), keyed by the stage they feed.
DATA_OPTIONS = ("n_train", "n_val", "n_test", "canvas", "min_digits", "max_digits", "empty_fraction",
                "max_overlap", "class_prior", "mnist_path", "preset")
# The data stage is fingerprinted by what it used: MNIST's digest (MNIST_KEY), not the spelling of its path.
FINGERPRINTED_DATA_OPTIONS = tuple(name for name in DATA_OPTIONS if name != "mnist_path")
MNIST_KEY = "mnist_sha256"  # as dataset.json records it
TRAIN_OPTIONS = ("arch", "epochs", "batch_size", "lr", "pos_weight", "patience", "digit_scale", "overlap_pairs")
SHIP_MIN_MACRO_F1 = 0.98  # --ship: each model's test macro-F1 must reach this (the shipped models' bar)
# --quick: a smoke run of the whole chain on a small subset (~3 minutes on 2 cores); an explicit option still wins.
QUICK = dict(n_train=20000, n_val=1000, n_test=1000, epochs=3, runs=50, warmup=10, threads=(1,), batches=(1, 32))
SMOKE_NOTE = ("--quick is a smoke run of the chain (3 epochs of 20,000 fresh images, macro-F1 ~0.9): its model is not "
              "meant to be used; run without --quick for a real one")
# Bench settings of a full run: enough timed runs for stable percentiles, every core and one.
BENCH = dict(runs=300, warmup=30, threads=(1, 2), batches=(1, 8, 64))


def _borrow(command, names):
    return [p for p in command.params if p.name in names]


@click.command("pipeline")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for every stage's output (created; reused to resume).")
@click.option("--quick", is_flag=True,
              help=f"Smoke run: small subset, few epochs, short benchmark, the whole chain in ~3 minutes; "
                   f"its model is not meant to be used ({QUICK}).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for the data set, the weights and the data order.")
@click.option("--redo", type=click.Choice(STAGES + ("all",)), multiple=True,
              help="Run this stage again even if it finished (later stages follow). Repeatable.")
@click.option("--max-f1-drop", type=FiniteFloatRange(min=0), default=None,
              help="Release gate passed to bench: fail if int8 loses more F1 than this on any digit.")
@click.option("--ship", is_flag=True,
              help=f"Copy the float32 and int8 models into edge_runtime/models/, the defaults `infer` uses, if "
                   f"both reach test macro-F1 {SHIP_MIN_MACRO_F1} (so not with --quick).")
@click.pass_context
def pipeline_command(ctx, out, quick, seed, redo, max_f1_drop, ship, **given):
    """From MNIST to a benchmarked int8 model: data, train, convert, bench.

    Takes `mnist-edge data` and `mnist-edge train` options too (below). Re-running with the same
    --out resumes: finished stages are skipped, an interrupted training run continues from its
    last checkpoint.

    \b
    Examples:
      mnist-edge pipeline --out runs/quick --quick
      mnist-edge pipeline --out runs/default            # default settings: ~50 min on 2 cores
      mnist-edge pipeline --out runs/long --epochs 64 --patience 16 --overlap-pairs 0.2 --ship   # the shipped models
    """
    if ship and quick:
        raise click.UsageError(f"--ship replaces the package's default models, which must reach test macro-F1 "
                               f"{SHIP_MIN_MACRO_F1}; a --quick run cannot, drop --quick")
    with claim_output(out):
        _pipeline(ctx, out, quick, seed, redo, max_f1_drop, ship, given)


def _pipeline(ctx, out, quick, seed, redo, max_f1_drop, ship, given):
    """The pipeline's work, with OUT checked and locked."""
    def explicit(name):
        return ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT

    if quick:
        given.update({k: v for k, v in QUICK.items() if k in given and not explicit(k)})
        click.echo(f"Note: {SMOKE_NOTE}.", err=True)
    bench = {**BENCH, **({k: QUICK[k] for k in BENCH} if quick else {})}
    options = {"seed": seed, "quick": quick, **{k: _jsonable(v) for k, v in given.items()}}
    dirs = {"data": out / "data", "run": out / "run", "models": out / "models", "bench": out / "bench"}

    state_path = out / "pipeline.json"
    state = _read_state(state_path)
    redo = set(STAGES) if "all" in redo else set(redo)
    feeds = {"data": FINGERPRINTED_DATA_OPTIONS + ("seed",), "train": TRAIN_OPTIONS + ("seed",), "convert": (),
             "bench": ("quick",)}

    def save():
        write_text_atomic(state_path, json.dumps(state, indent=2) + "\n")

    rerun = False  # once a stage runs, every later stage runs too: its inputs changed
    for number, stage in enumerate(STAGES, 1):
        header = f"[{number}/{len(STAGES)}] {stage}"
        done = state["finished"].get(stage)
        if done and not rerun and stage not in redo:
            _check_unchanged(out, stage, done["options"], {k: options.get(k) for k in feeds[stage]},
                             given.get("mnist_path"))
            click.echo(f"{header}: done already, skipped (--redo {stage} to run it again)", err=True)
            continue
        click.echo(f"{header} ...", err=True)
        start = time.perf_counter()
        state["finished"].pop(stage, None)
        save()
        _run_stage(ctx, stage, out, dirs, seed, given, bench, max_f1_drop,
                   restart=bool(done or stage in redo or rerun))
        used = {k: options.get(k) for k in feeds[stage]}
        if stage == "data":
            used[MNIST_KEY] = _dataset_mnist_digest(dirs["data"])
        state["finished"][stage] = {"options": used, "seconds": round(time.perf_counter() - start, 1)}
        save()
        rerun = True
    if ship:
        _ship(dirs["models"], dirs["bench"])
    if quick:
        _mark_smoke_run(out / "report.md")
    click.echo(f"Pipeline finished: {out / 'report.md'}" + (f" ({SMOKE_NOTE})" if quick else ""), err=True)


def _mark_smoke_run(report):
    """Say at the top of a --quick run's report that its figures are a smoke test, not the model's."""
    text = report.read_text(encoding="utf-8")
    banner = f"> **Smoke run.** {SMOKE_NOTE}.\n\n"
    if not text.startswith(banner):
        write_text_atomic(report, banner + text)


def _check_unchanged(out, stage, recorded, now, mnist_path):
    """Refuse to reuse a finished stage made with other options (or another MNIST), naming the exact fix."""
    changed = {k: (recorded[k], now[k]) for k in now if k in recorded and recorded[k] != now[k]}
    if mnist_path is not None and recorded.get(MNIST_KEY):
        digest = mnist_digest(load_mnist(mnist_path))
        if digest != recorded[MNIST_KEY]:
            changed["MNIST (sha256 of its training digits)"] = (recorded[MNIST_KEY][:12], digest[:12])
    if changed:
        diffs = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        later = STAGES[STAGES.index(stage) + 1:]
        reruns = f"{stage} and the later stages ({', '.join(later)}) run again" if later else f"{stage} runs again"
        raise MnistEdgeError(f"{out} holds a finished '{stage}' stage made with other options ({diffs}); "
                             f"add --redo {stage} ({reruns}), or use a new --out")


def _dataset_mnist_digest(data_dir):
    """The digest of the MNIST the data stage composed from, as its dataset.json records it."""
    try:
        return json.loads((data_dir / "dataset.json").read_text()).get(MNIST_KEY)
    except (OSError, ValueError):
        return None


def _run_stage(ctx, stage, out, dirs, seed, given, bench, max_f1_drop, restart):
    """Run one stage through the user's own command, so every check and message is shared.

    The commands are invoked by their click parameter names (``ctx.invoke``): renaming an option of
    data, train, convert or bench means updating the call here (tests/test_pipeline.py runs them all).
    """
    if stage == "data":
        ctx.invoke(data_command, out_dir=dirs["data"], seed=seed, **_pick(given, DATA_OPTIONS))
    elif stage == "train":
        if restart:
            shutil.rmtree(dirs["run"], ignore_errors=True)  # a finished or stale run: start over
        resume = (dirs["run"] / "checkpoint").exists()
        if resume:
            click.echo(f"resuming the interrupted training run in {dirs['run']}", err=True)
        ctx.invoke(train_command, data=dirs["data"], out=dirs["run"], seed=seed, resume=resume,
                   **_pick(given, TRAIN_OPTIONS))
    elif stage == "convert":
        ctx.invoke(convert_command, source=dirs["run"], out=dirs["models"], formats=SHIPPED_FORMATS)
    else:
        models = [dirs["models"] / f"model_{f}.tflite" for f in SHIPPED_FORMATS]
        ctx.invoke(bench_command, models=models, data=dirs["data"] / "test.npz", out=dirs["bench"],
                   max_f1_drop=max_f1_drop, **bench)
        write_bytes_atomic(out / "report.md", (dirs["bench"] / "report.md").read_bytes())


def _ship(models_dir, bench_dir):
    """Install the pipeline's models as the package's defaults (what `infer` uses without --model),
    both or neither, and only if each reaches the quality bar on the test set."""
    import edge_runtime

    try:
        report = json.loads((bench_dir / "report.json").read_text(encoding="utf-8"))
        scores = {m["format"]: float(m["macro_f1"]) for m in report["models"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MnistEdgeError(f"{bench_dir / 'report.json'}: unreadable benchmark report ({e}); "
                             f"add --redo bench") from None
    short = [f"{fmt} {scores.get(fmt, float('nan')):.4f}" for fmt in SHIPPED_FORMATS
             if not scores.get(fmt, 0) >= SHIP_MIN_MACRO_F1]
    if short:
        raise MnistEdgeError(f"not shipped: test macro-F1 {', '.join(short)} is below the shipped models' bar "
                             f"{SHIP_MIN_MACRO_F1}; the package's default models were left as they were")
    target = Path(edge_runtime.__file__).parent / "models"
    with claim_output(target, "the package's models folder"), staged_set(target) as stage:
        for fmt in SHIPPED_FORMATS:
            shutil.copyfile(models_dir / f"model_{fmt}.tflite", stage / f"model_{fmt}.tflite")
    for fmt in SHIPPED_FORMATS:
        click.echo(f"shipped {target / f'model_{fmt}.tflite'}", err=True)


def _read_state(path):
    if not path.exists():
        return {"finished": {}}
    try:
        state = json.loads(path.read_text())
        state["finished"]  # noqa: B018 - the one key every state has
        return state
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MnistEdgeError(f"{path}: unreadable pipeline state ({e}); delete it to start over") from None


def _pick(values, names):
    return {k: values[k] for k in names if k in values}


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


pipeline_command.params.extend(_borrow(data_command, DATA_OPTIONS) + _borrow(train_command, TRAIN_OPTIONS))
