"""``mnist-edge bench``: the float-vs-int8 trade-off measured on the device itself."""
import time
from pathlib import Path

import click

from edge_runtime.classifier import SHIPPED_FORMATS, default_model_path
from edge_runtime.cli_options import comma_list
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import staged_set
from edge_runtime.interpreter import RUNTIMES
from edge_runtime.metadata import missing_metadata_warning, read_metadata
from edge_runtime.output_folder import check_output_folder, claim_output
from edge_runtime.sample import sample_path

from .bench import DEFAULTS, mixed_sources, run_benchmark
from .conformance import parse_runtimes
from .gate import GATE_ON, GateFailed, check_gate
from .paired import BOOTSTRAP
from .report import summary_table, write_reports


def _int_list(ctx, param, value):
    """'1,2' -> (1, 2): positive integers, duplicates dropped, order kept."""
    if value is None:
        return None
    items = comma_list(value, int, f"expected comma-separated integers such as 1,2, got {value!r}")
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return tuple(dict.fromkeys(items))


def _runtimes(ctx, param, value):
    try:
        return None if value is None else parse_runtimes(value)
    except MnistEdgeError as e:
        raise click.BadParameter(e.message) from None


def _models_and_data(models, data):
    """The shipped models when no MODEL is named; the shipped sample when neither MODELs nor --data are."""
    if models and data is None:
        raise click.UsageError("--data is required with MODEL files: a labelled .npz such as test.npz from "
                               "`mnist-edge data` (with neither, bench runs the demo on the shipped sample)")
    if not models:
        models = tuple(default_model_path(fmt) for fmt in SHIPPED_FORMATS)
        what = "the float32 and int8 models shipped with mnist-edge"
        if data is None:
            data = sample_path()
            click.echo(f"Demo: {what} on the small labelled sample shipped with it (images composed from MNIST's "
                       "test digits); figures from so few images are rough: for real ones pass a full test set, "
                       "e.g. --data test.npz from `mnist-edge data`", err=True)
        else:
            click.echo(f"No MODEL given: benchmarking {what}", err=True)
    return models, data


def _warn_without_metadata(path):
    """Say once per model when its thresholds and output meaning are assumed, not read from the file."""
    try:
        metadata = read_metadata(path)
    except MnistEdgeError:
        return  # not a readable model: the benchmark itself reports it, with the fix
    if metadata is None:
        click.echo(missing_metadata_warning(path), err=True)


@click.command("bench")
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(path_type=Path),
              help="Labelled test set (.npz with images and labels, e.g. test.npz from `mnist-edge data`). "
                   "[default without MODELs: the small sample shipped with the package, as a demo]")
@click.option("--runs", type=click.IntRange(min=1), default=DEFAULTS["runs"], show_default=True,
              help="Timed one-image inferences per model and thread setting.")
@click.option("--warmup", type=click.IntRange(min=0), default=DEFAULTS["warmup"], show_default=True,
              help="Untimed inferences per model and thread setting before timing starts.")
@click.option("--rounds", type=click.IntRange(min=1), default=DEFAULTS["rounds"], show_default=True,
              help="Interleaved rounds the timed runs are split into, so machine drift favours no model.")
@click.option("--threads", callback=_int_list, default=",".join(map(str, DEFAULTS["threads"])),
              show_default="this machine's CPU count",
              help="Interpreter thread counts to measure, comma-separated (e.g. 1,2); the first is primary.")
@click.option("--batch", "batches", callback=_int_list, default=",".join(map(str, DEFAULTS["batches"])),
              show_default=True, help="Batch sizes for throughput (images/s), comma-separated.")
@click.option("--runtime", type=click.Choice(["auto", *RUNTIMES]), default=DEFAULTS["runtime"], show_default=True,
              help="Interpreter package; auto tries ai_edge_litert, tflite_runtime, then tensorflow.")
@click.option("--no-xnnpack", is_flag=True, help="Turn off TFLite's default XNNPACK CPU delegate.")
@click.option("--no-memory", is_flag=True,
              help="Skip peak-memory measurement (one short-lived child process per model).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default="./bench-<UTC timestamp>",
              help="Folder for report.md, report.json, report.csv and the PNG plots.")
@click.option("--max-f1-drop", type=click.FloatRange(min=0), default=None,
              help="Release gate: fail if any digit's F1 falls more than this below the first model's.")
@click.option("--min-macro-f1", type=click.FloatRange(0, 1), default=None,
              help="Release gate: fail if any model's macro-F1 is below this.")
@click.option("--gate-on", type=click.Choice(GATE_ON), default="point", show_default=True,
              help="Judge --max-f1-drop on this test set's ΔF1 (point) or on the lower end of its paired "
                   "bootstrap interval (ci: pass only if the data show the drop is within the limit).")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=100), default=BOOTSTRAP["resamples"],
              show_default=True, help="Bootstrap resamples of the images for the ΔF1 intervals.")
@click.option("--seed", type=click.IntRange(min=0), default=BOOTSTRAP["seed"], show_default=True,
              help="Seed of the bootstrap resampling.")
@click.option("--runtimes", callback=_runtimes, default=None, metavar="NAME[=PYTHON],...",
              help="Also score every model under each of these interpreters and compare them image by image, "
                   "e.g. ai_edge_litert,tensorflow; NAME:reference turns its XNNPACK off; NAME=PYTHON runs one "
                   "with another venv's Python (tflite_runtime=/path/to/venv/bin/python).")
def bench_command(models, data, runs, warmup, rounds, threads, batches, runtime, no_xnnpack, no_memory, out,
                  max_f1_drop, min_macro_f1, gate_on, resamples, seed, runtimes):
    """Benchmark MODEL.tflite files side by side: latency, throughput, memory, size, per-digit F1.

    The first model is the baseline (usually model_float32.tflite) that ΔF1 is measured against.
    Progress goes to stderr, the summary table to stdout. Models converted from different trained
    models get a warning (a comparison of trainings, not of conversions), and with a release gate
    they are refused. The reports are always written; then, if
    the release gate (--max-f1-drop / --min-macro-f1) fails, the command names each model and digit
    that fell short and exits with status 3 (1: bad input, 2: bad arguments). Every report also holds
    paired statistics (ΔF1 intervals, McNemar), results by difficulty, and an acceleration check.

    Without MODELs it measures the float32 and int8 models shipped with the package, and without
    --data as well, on the package's small sample of labelled images: a demo that needs no MNIST.

    \b
    Examples:
      mnist-edge bench                            # demo: shipped models, shipped 300-image sample
      mnist-edge bench model_float32.tflite model_int8.tflite --data test.npz --threads 1,4 \\
          --max-f1-drop 0.01 --gate-on ci --out bench_report   # on the device, with the files copied over
    """
    models, data = _models_and_data(models, data)
    for path in models:
        _warn_without_metadata(path)
    out = out or Path(time.strftime("bench-%Y%m%d-%H%M%S", time.gmtime()))
    check_output_folder(out)  # before the run; the lock is taken to write the reports
    gated = max_f1_drop is not None or min_macro_f1 is not None
    mixed = mixed_sources(models)
    if mixed and gated:  # a gate on such a pair would pass or fail on the wrong question
        raise MnistEdgeError(f"{mixed}; the release gate compares a conversion with its own source: "
                             "benchmark files from one `mnist-edge convert` run")
    if mixed:
        click.echo(f"Warning: {mixed}.", err=True)
    result = run_benchmark(models, data, runs=runs, warmup=warmup, threads=threads, batches=batches,
                           rounds=rounds, runtime=runtime, use_xnnpack=not no_xnnpack, memory=not no_memory,
                           bootstrap={"resamples": resamples, "seed": seed}, runtimes=runtimes,
                           progress=lambda message: click.echo(message, err=True))
    gate = None
    if gated:
        gate = result.report["gate"] = check_gate(result.report, max_f1_drop, min_macro_f1, on=gate_on)
    with claim_output(out), staged_set(out) as stage:  # every report of this run, or none
        write_reports(result, stage)
    click.echo(summary_table(result.report))
    note = result.report["plots"]["note"]
    if note:
        click.echo(note, err=True)
    click.echo(f"Reports written to {out}/ (report.md, report.json, report.csv"
               f"{', PNG plots' if result.report['plots']['files'] else ''})", err=True)
    if gate is not None:
        if not gate["passed"]:
            raise GateFailed("release gate failed:\n  " + "\n  ".join(gate["failures"]))
        click.echo("Release gate passed.", err=True)
