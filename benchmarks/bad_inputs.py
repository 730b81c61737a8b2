"""Run every command and the Python API on a corpus of bad inputs; count tracebacks, signals and hangs.

Issue 17's target: over 300+ bad inputs, 0 tracebacks, 0 signals, 0 hangs over 30 s, and every error
message naming the file or option at fault. Each case runs as its own subprocess (the CLI through
``train.cli:main``, the API through a short ``python -c``), with the device commands always and the
workstation commands (data, train, convert, pipeline) only when TensorFlow is installed.

    python -m benchmarks.bad_inputs                  # the corpus: prints the table, exit 1 on any failure
    python -m benchmarks.bad_inputs --fuzz 6000 --runtime tflite_runtime   # benchmarks.fuzz_model
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click

from . import bad_corpus
from .bad_cases import api_cases, cli, option_cases, workstation_cases

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str        # what is bad, e.g. "model conv stride_w=0 / infer"
    argv: list       # arguments after `python`
    names: tuple     # any one of these in the output counts as "the message names the file or option"
    may_pass: bool = False  # an odd but valid input: exit 0 is right
    slow: bool = False      # imports TensorFlow, whose start-up alone takes 10-70 s on a busy 2-core machine


@dataclass
class Result:
    case: Case
    code: int        # exit status; negative: killed by that signal; None: hung
    output: str
    seconds: float

    @property
    def traceback(self):
        return "Traceback (most recent call last)" in self.output

    @property
    def named(self):
        return self.case.may_pass and self.code == 0 or any(n and n in self.output for n in self.case.names)


def file_cases(corpus, model, picture, data):
    """Every corpus file through the commands and API calls that read that kind of file."""
    cases = []
    for name, path in corpus["models"].items():
        names = (bad_corpus_name(path),)
        cases += [Case(f"{name} / infer", cli("infer", "--model", path, picture), names),
                  Case(f"{name} / Classifier", ["-c", API_CLASSIFIER, str(path)], names)]
        if not name.startswith(("model truncated", "metadata")):  # bench loads models as Classifier does
            cases.append(Case(f"{name} / bench", cli("bench", path, "--data", data, "--no-memory", "--runs", 2), names))
    for name, path in corpus["pictures"].items():
        cases.append(Case(f"{name} / infer", cli("infer", path), (bad_corpus_name(path),),
                          may_pass=name in ODD_BUT_VALID))
    cases.append(Case("picture 9000x9000 RGBA / load_images", ["-c", API_LOAD, str(corpus["pictures"]["picture 9000x9000 RGBA"])],
                      ("big.png",)))
    for name, path in corpus["arrays"].items():
        names = (bad_corpus_name(path),)
        cases += [Case(f"{name} / infer", cli("infer", path), names, may_pass=name in VALID_FOR_INFER),
                  Case(f"{name} / bench --data", cli("bench", model, "--data", path, "--no-memory", "--runs", 2), names)]
    return cases


ODD_BUT_VALID = {"picture 1x1", "picture 20000x1", "picture 16-bit", "picture palette", "picture CMYK jpeg",
                 "picture newline in name", "picture gif", "picture folder with a fifo"}  # a folder's FIFO is skipped
VALID_FOR_INFER = {"array 28x28", "array labels 2", "array labels shape", "array labels count",
                   "array no labels", "array empty set"}  # infer reads only `images`, of any size
_API = ("import sys, numpy as np\nfrom edge_runtime import Classifier, load_images\n"
        "from edge_runtime.errors import MnistEdgeError\ntry:\n    {}\n"
        "except MnistEdgeError as e:\n    print('MnistEdgeError:', e); raise SystemExit(1)")
API_CLASSIFIER = _API.format("c = Classifier(sys.argv[1], num_threads=1); c.predict(np.zeros((2, *c.input_shape), np.uint8))")
API_LOAD = _API.format("load_images([sys.argv[1]], (64, 64))")


def bad_corpus_name(path):
    """The part of a path a message must show: its file name (escaped as infer prints it)."""
    name = Path(path).name
    return name if name.isprintable() else repr(name)[1:-1]


def run_case(case, env, cwd, timeout, tf_timeout):
    start = time.monotonic()
    timeout = tf_timeout if case.slow else timeout
    try:
        run = subprocess.run([sys.executable, *case.argv], capture_output=True, env=env, cwd=cwd, timeout=timeout)
        code, output = run.returncode, (run.stdout + run.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        code, output = None, ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
    return Result(case, code, output, time.monotonic() - start)


def build_cases(work, model):
    """The corpus files under ``work`` and the cases that use them."""
    for sub in ("models", "pictures", "arrays", "run"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    corpus = {"models": {**bad_corpus.broken_models(model, work / "models"),
                         **bad_corpus.mutated_models(model, work / "models"),
                         **bad_corpus.metadata_models(model, work / "models")},
              "pictures": bad_corpus.pictures(work / "pictures"),
              "arrays": bad_corpus.arrays(work / "arrays")}
    picture = bad_corpus._save(bad_corpus.Image.new("L", (64, 64)), work / "pictures" / "good.png")
    data = bad_corpus._savez(work / "arrays" / "good.npz", {"images": bad_corpus.np.zeros((8, 64, 64), "uint8"),
                                                            "labels": bad_corpus.np.eye(8, 10, dtype="uint8")})
    cases = file_cases(corpus, model, picture, data)
    cases += [Case(*c) for c in option_cases(model, picture, data, work)]
    cases += [Case(*c) for c in api_cases(model)]
    has_tf = importlib.util.find_spec("tensorflow") is not None
    if has_tf:
        bad_corpus.workstation_files(work)
        cases += [Case(*c, slow=True) for c in workstation_cases(model, data, work)]
    return cases, has_tf


def table(results):
    """The summary: one row per kind of input (the case name's first word), and a total."""
    rows = {}
    for r in results:
        kind = r.case.name.split()[0]
        row = rows.setdefault(kind, [0] * 6)
        for k, hit in enumerate((True, r.traceback, r.code is not None and r.code < 0, r.code is None,
                                 r.named, r.code == 0 and not r.case.may_pass)):
            row[k] += bool(hit)
    total = [sum(col) for col in zip(*rows.values())]
    head = f"{'input':<12}{'cases':>7}{'traceback':>11}{'signal':>8}{'hang':>6}{'named':>7}{'exit 0':>8}"
    lines = [head] + [f"{k:<12}" + "".join(f"{v:>{w}}" for v, w in zip(row, (7, 11, 8, 6, 7, 8)))
                      for k, row in sorted(rows.items())]
    return "\n".join(lines + [f"{'total':<12}" + "".join(f"{v:>{w}}" for v, w in zip(total, (7, 11, 8, 6, 7, 8)))])


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The model the corpus mutates and the commands use. [default: the shipped int8 model]")
@click.option("--timeout", type=click.FloatRange(1, 600), default=30.0, show_default=True,
              help="Seconds after which a case counts as hung.")
@click.option("--tf-timeout", type=click.FloatRange(1, 3600), default=300.0, show_default=True,
              help="The same for the workstation commands, which start TensorFlow first.")
@click.option("--jobs", type=click.IntRange(1, 64), default=os.cpu_count() or 1, show_default="CPU count")
@click.option("--only", default=None, help="Run only the cases whose name contains this text.")
@click.option("--verbose", "-v", is_flag=True, help="Print every case's last output line.")
@click.option("--fuzz", type=click.IntRange(1, 10**6), default=None,
              help="Instead of the corpus: this many one-byte mutations of the model (benchmarks.fuzz_model).")
@click.option("--runtime", default="auto", show_default=True, help="Interpreter for --fuzz.")
@click.pass_context
def main(ctx, model, timeout, tf_timeout, jobs, only, verbose, fuzz, runtime):
    """Run the bad-input corpus; exit 1 if any case printed a traceback, died of a signal or hung."""
    from edge_runtime.classifier import default_model_path
    model = (model or default_model_path("int8")).resolve()
    if fuzz:
        from .fuzz_model import main as fuzz_main
        ctx.invoke(fuzz_main, model=str(model), count=fuzz, runtime=runtime, seed=0, timeout=timeout, jobs=jobs)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
               TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        work = Path(tmp)
        cases, has_tf = build_cases(work, model)
        cases = [c for c in cases if not only or only in c.name]
        click.echo(f"{len(cases)} cases, {jobs} at a time, timeout {timeout:g} s"
                   + (f" ({tf_timeout:g} s with TensorFlow)" if has_tf else
                      "; workstation commands skipped: no TensorFlow"))
        start = time.monotonic()
        with ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, env, work / "run", timeout, tf_timeout), cases))
    for r in results:
        bad = r.traceback or r.code is None or r.code < 0
        accepted = r.code == 0 and not r.case.may_pass
        if bad or verbose or not r.named or accepted:
            last = " ".join((r.output.strip().splitlines() or ["(no output)"])[-1].split())
            label = "HANG" if r.code is None else f"exit {r.code}"
            flag = "FAIL" if bad else "unnamed" if not r.named else "accepted" if accepted else "ok"
            click.echo(f"[{flag}] {r.case.name}: {label}: {last[:200]}")
    click.echo(table(results))
    click.echo(f"{time.monotonic() - start:.0f} s")
    sys.exit(1 if any(r.traceback or r.code is None or r.code < 0 for r in results) else 0)


if __name__ == "__main__":
    main()
