"""Peak memory of one model, measured in a fresh child process (a peak never goes down)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge_runtime import Classifier
from edge_runtime.errors import MnistEdgeError
from edge_runtime.interpreter import import_runtime


def _maxrss_mb():
    """This process's peak RSS. Linux: VmHWM, which exec resets; ru_maxrss would keep the peak of
    the parent it was forked from (a pipeline with TensorFlow loaded: ~900 MB of someone else's)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        import resource  # POSIX only

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _rss_now_mb():
    """Current resident set size from /proc (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def memory_child(path, threads, runtime, use_xnnpack, shape):
    """Run in a fresh process: (peak RSS, RSS added by loading and running the model), in MB.

    The uint8 batch of ``shape`` comes on stdin, so the data set file is never loaded here. The
    runtime is imported first, so its memory is not counted as the model's.
    """
    images = np.frombuffer(sys.stdin.buffer.read(), dtype=np.uint8).reshape(shape)
    import_runtime(runtime)
    before, peak_before = _rss_now_mb(), _maxrss_mb()
    clf = Classifier(str(path), num_threads=threads, runtime=runtime, use_xnnpack=use_xnnpack)
    clf.scores(images)
    clf.scores(images[:1])
    after, peak = _rss_now_mb(), _maxrss_mb()
    # ru_maxrss is a high-water mark that imports may already have set, so prefer current RSS for the delta
    return peak, (after - before) if before is not None else (peak - peak_before)

_CHILD = ("import json, sys; from benchmarks.memory import memory_child; "
          "print(json.dumps(memory_child(*json.loads(sys.argv[1]))))")


def measure_memory(path, threads, runtime, use_xnnpack, batch):
    """Peak RSS of this model alone, in a short-lived child process (a peak never goes down).

    A plain subprocess rather than multiprocessing: 'spawn' re-runs the caller's main script,
    which breaks scripts without an ``if __name__ == "__main__"`` guard.
    """
    try:
        import resource  # noqa: F401
    except ImportError:  # Windows
        return dict(peak_rss_mb=None, model_rss_mb=None)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    batch = np.ascontiguousarray(batch, dtype=np.uint8)
    args = json.dumps([str(path), threads, runtime, use_xnnpack, list(batch.shape)])
    run = subprocess.run([sys.executable, "-c", _CHILD, args], input=batch.tobytes(), capture_output=True, env=env)
    if run.returncode:
        reason = (run.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise MnistEdgeError(f"{path}: memory measurement in a child process failed ({reason}); "
                             "--no-memory skips it")
    peak, added = json.loads(run.stdout.decode().strip().splitlines()[-1])
    return dict(peak_rss_mb=round(peak, 1), model_rss_mb=round(added, 1))
