"""One-byte mutations of a .tflite model through ``Classifier``: does any of them crash the process?

The interpreters build models without verifying them, so a bad operator option (a stride of 0) or a
tensor index out of range is a SIGFPE or SIGSEGV in C++, not an exception. ``edge_runtime.flatbuffer``
checks what they divide by and index with; this measures it. Each mutation runs in a child forked
from this process (the runtime is imported once, so a child costs milliseconds), and the parent counts
how each ended: scored (the model loaded and ran), refused with a MnistEdgeError, another Python
exception (a traceback to fix), a signal, or a hang (killed after ``--timeout`` seconds).

    python -m benchmarks.fuzz_model --mutations 6000 --runtime tflite_runtime
"""
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click
import numpy as np

OUTCOMES = ("scored", "refused", "exception", "signal", "hang")
_EXIT = {0: "scored", 3: "refused", 4: "exception"}


def mutations(data, count, seed):
    """``count`` (offset, new byte) pairs, each changing one byte of ``data`` to a different value."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, len(data), count)
    deltas = rng.integers(1, 256, count)  # added mod 256: never the original value
    return [(int(o), (data[o] + int(d)) % 256) for o, d in zip(offsets, deltas)]


def _child(path, runtime, images):
    """Load and run one mutated model; the exit status says how it went (``_EXIT``)."""
    from edge_runtime.classifier import Classifier  # imported by the parent already: free
    from edge_runtime.errors import MnistEdgeError
    try:
        clf = Classifier(path, num_threads=1, runtime=runtime)
        clf.scores(np.resize(images, (2, *clf.input_shape)))
        code = 0
    except MnistEdgeError:
        code = 3
    except BaseException:  # noqa: BLE001 - the point is to count them
        traceback.print_exc(limit=2, file=sys.stderr)
        code = 4
    sys.stderr.flush()
    os._exit(code)


def _outcome(status):
    if os.WIFSIGNALED(status):
        return "signal"
    return _EXIT.get(os.WEXITSTATUS(status), "exception")


def fuzz(model, count=6000, runtime="auto", seed=0, timeout=30.0, jobs=2, say=print):
    """Counts per outcome and the (offset, byte, outcome) of every signal, exception and hang."""
    import edge_runtime.classifier  # noqa: F401 - imported once here, so every child starts ready
    from edge_runtime.interpreter import import_runtime
    data = Path(model).read_bytes()
    runtime = import_runtime(runtime)[2]  # import it before forking, once
    images = np.random.default_rng(seed).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    counts, bad = dict.fromkeys(OUTCOMES, 0), []
    todo = list(enumerate(mutations(data, count, seed)))
    running = {}  # pid -> (index, offset, byte, started)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        while todo or running:
            while todo and len(running) < jobs:
                i, (offset, byte) = todo.pop(0)
                path = Path(tmp, f"m{i}.tflite")
                mutated = bytearray(data)
                mutated[offset] = byte
                path.write_bytes(mutated)
                pid = os.fork()
                if pid == 0:
                    sys.stderr = os.fdopen(os.dup(2), "w")  # tracebacks only; the runtime's C++ logs go to null
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, 1)
                    os.dup2(devnull, 2)
                    _child(str(path), runtime, images)
                running[pid] = (i, offset, byte, time.monotonic(), path)
            _reap(running, counts, bad, timeout)
            if (done := sum(counts.values())) and done % 500 == 0 and not running:
                say(f"  {done}/{count}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts, bad


def _reap(running, counts, bad, timeout):
    """Collect finished children (and kill hung ones) without blocking for long."""
    time.sleep(0.001)
    for pid, (i, offset, byte, started, path) in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done and time.monotonic() - started > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            outcome = "hang"
        elif not done:
            continue
        else:
            outcome = _outcome(status)
        del running[pid]
        path.unlink(missing_ok=True)
        counts[outcome] += 1
        if outcome in ("signal", "exception", "hang"):
            name = signal.Signals(os.WTERMSIG(status)).name if outcome == "signal" else ""
            bad.append((offset, byte, outcome + (f" {name}" if name else "")))


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="[default: the shipped int8 model]")
@click.option("--mutations", "count", type=click.IntRange(1, 10**6), default=6000, show_default=True)
@click.option("--runtime", default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--timeout", type=click.FloatRange(1, 600), default=30.0, show_default=True,
              help="Seconds before a child counts as hung.")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True, help="Children at a time.")
def main(model, count, runtime, seed, timeout, jobs):
    """Fuzz MODEL with one-byte mutations; exit 1 if any crashed, hung or raised a non-MnistEdgeError."""
    from edge_runtime.classifier import default_model_path
    from edge_runtime.interpreter import import_runtime
    model = model or default_model_path("int8")
    name, version = import_runtime(runtime)[2:]
    click.echo(f"{count} one-byte mutations of {model} through Classifier on {name} {version}, seed {seed}")
    start = time.monotonic()
    counts, bad = fuzz(model, count, runtime, seed, timeout, jobs, say=lambda m: click.echo(m, err=True))
    for offset, byte, outcome in bad:
        click.echo(f"  byte {offset} -> {byte:#04x}: {outcome}")
    click.echo(" ".join(f"{k} {v}" for k, v in counts.items()) + f"  ({time.monotonic() - start:.0f} s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
