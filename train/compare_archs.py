"""Compare the --arch choices: parameters, multiply-adds, float TFLite size and single-image latency.

    python -m train.compare_archs [RUN_DIR ...]

Latency needs no trained weights, so the models are fresh (a minute's work in all); give run folders
from ``mnist-edge train`` to add each arch's test macro-F1 from its metadata.json. Latency is the
float32 TFLite file (as ``mnist-edge convert`` writes it) in ai_edge_litert on one thread (default
XNNPACK delegate), median of ``--runs`` single-image invokes after a warm-up, the archs
interleaved. Lives in train/ because it builds Keras models.
"""
import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from convert.tensorflow_env import import_tensorflow
from train.options import ARCHS


def float_tflite(model):
    """The float32 file `mnist-edge convert` would write (same SavedModel route)."""
    from convert.tflite import convert_saved_model, export_saved_model

    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        export_saved_model(model, folder)
        return convert_saved_model(folder, "float32")


def latency_ms(tflites, runs, warmup, threads, rounds=10):
    """{name: (median, p90)} of one-image invokes in ms, the models interleaved in rounds so drift favours none."""
    from ai_edge_litert.interpreter import Interpreter

    setups = {}
    for name, tflite in tflites.items():
        interpreter = Interpreter(model_content=tflite, num_threads=threads)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], np.random.default_rng(0).random(inp["shape"], dtype=np.float32))
        for _ in range(warmup):
            interpreter.invoke()
        setups[name] = interpreter
    times = {name: [] for name in tflites}
    for _ in range(rounds):
        for name, interpreter in setups.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(t), float(np.percentile(t, 90))) for name, t in times.items()}


def test_f1(run_dirs):
    """{arch: test macro-F1} from finished runs' metadata.json."""
    f1 = {}
    for run_dir in run_dirs:
        path = Path(run_dir) / "metadata.json"
        if not path.is_file():
            raise SystemExit(f"{path}: not found; give folders of finished `mnist-edge train` runs")
        meta = json.loads(path.read_text())
        f1[meta["arch"]] = meta["metrics"]["test"]["macro_f1"]
    return f1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", help="finished `mnist-edge train` runs, for the F1 column")
    parser.add_argument("--size", type=int, default=64, help="canvas side (default 64)")
    parser.add_argument("--runs", type=int, default=1000, help="timed invokes per model (default 1000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed invokes first (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    args = parser.parse_args(argv)
    import_tensorflow()
    from train.models import build_model, count_macs

    f1 = test_f1(args.run_dirs)
    models = {arch: build_model(arch, (args.size, args.size, 1)) for arch in ARCHS}
    tflites = {arch: float_tflite(model) for arch, model in models.items()}
    latency = latency_ms(tflites, args.runs, args.warmup, args.threads)
    rows = [(arch, m.count_params(), count_macs(m), len(tflites[arch]), *latency[arch], f1.get(arch))
            for arch, m in models.items()]
    base = {row[0]: row[4] for row in rows}["seed-cnn"]
    print(f"\n{args.size}x{args.size} input, float32 TFLite, ai_edge_litert, {args.threads} thread(s), "
          f"median of {args.runs} single-image invokes")
    print(f"{'arch':<9} {'params':>10} {'mult-adds':>12} {'file KB':>8} {'median ms':>10} {'p90 ms':>7} "
          f"{'vs seed-cnn':>11} {'test F1':>8}")
    for arch, params, macs, size, median, p90, score in rows:
        print(f"{arch:<9} {params:>10,} {macs:>12,} {size / 1024:>8.1f} {median:>10.3f} {p90:>7.3f} "
              f"{base / median:>10.1f}x {'-' if score is None else f'{score:.4f}':>8}")


if __name__ == "__main__":
    main()
