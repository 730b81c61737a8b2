"""``mnist-edge bench``: the float-vs-int8 trade-off measured on the device itself."""
import time
from pathlib import Path

import click

from edge_runtime.cli_options import FiniteFloatRange, comma_list
from edge_runtime.interpreter import MAX_THREADS, RUNTIMES

from .bench import DEFAULTS, run_benchmark
from .gate import GateFailed, check_gate
from .report import summary_table, write_reports

MAX_BENCH_BATCH = 1 << 14  # images per timed batch: 64 MB of 64x64 images, far past where throughput levels off


def _int_list(ctx, param, value):
    """'1,2' -> (1, 2): positive integers, duplicates dropped, order kept."""
    if value is None:
        return None
    items = comma_list(value, int, f"expected comma-separated integers such as 1,2, got {value!r}")
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    limit = {"threads": MAX_THREADS, "batches": MAX_BENCH_BATCH}[param.name]
    if max(items) > limit:
        raise click.BadParameter(f"at most {limit}, got {max(items)}")
    return tuple(dict.fromkeys(items))


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Labelled test set (.npz with images and labels, e.g. test.npz from `mnist-edge data`).")
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
@click.option("--max-f1-drop", type=FiniteFloatRange(min=0), default=None,
              help="Release gate: fail if any digit's F1 falls more than this below the first model's.")
@click.option("--min-macro-f1", type=FiniteFloatRange(0, 1), default=None,
              help="Release gate: fail if any model's macro-F1 is below this.")
def bench_command(models, data, runs, warmup, rounds, threads, batches, runtime, no_xnnpack, no_memory, out,
                  max_f1_drop, min_macro_f1):
    """Benchmark MODEL.tflite files side by side: latency, throughput, memory, size, per-digit F1.

    The first model is the baseline (usually model_float32.tflite) that ΔF1 is measured against.
    Progress goes to stderr, the summary table to stdout. The reports are always written; then, if
    the release gate (--max-f1-drop / --min-macro-f1) fails, the command names each model and digit
    that fell short and exits with status 3 (1: bad input, 2: bad arguments).

    \b
    Example (on the device, with the two converted files and a test set copied over):
      mnist-edge bench model_float32.tflite model_int8.tflite --data test.npz --threads 1,4 \\
          --max-f1-drop 0.01 --out bench_report
    """
    out = out or Path(time.strftime("bench-%Y%m%d-%H%M%S", time.gmtime()))
    result = run_benchmark(models, data, runs=runs, warmup=warmup, threads=threads, batches=batches,
                           rounds=rounds, runtime=runtime, use_xnnpack=not no_xnnpack, memory=not no_memory,
                           progress=lambda message: click.echo(message, err=True))
    gate = None
    if max_f1_drop is not None or min_macro_f1 is not None:
        gate = result.report["gate"] = check_gate(result.report, max_f1_drop, min_macro_f1)
    write_reports(result, out)
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
