"""What edge_runtime adds on top of the bare interpreter, against its targets; prints figures.

    python benchmarks/runtime_overhead.py [MODEL.tflite] [--threads N] [--runtime NAME]

1. ``Classifier.predict`` on one uint8 image against bare ``set_tensor`` + ``invoke`` + ``get_tensor``
   of an already-converted input on the same interpreter (target: <= 1.10x).
2. Images per second: one invoke on a batch of 64 against 64 one-image calls.
3. ``import edge_runtime``, ``from edge_runtime import Classifier`` and cold start (a fresh process
   from its first line to its first prediction), in ms, median of fresh processes.
4. One shared Classifier (a lock around its interpreter) against one interpreter per thread, with
   8 threads: the measurement behind the Classifier's thread-safety choice.
The model defaults to the shipped int8 model. Timings interleave the variants in short rounds and
report medians, so drift and preemption on a shared machine hit them alike; the one-image figures
are also given in CPU time of the calling thread with a 1-thread interpreter, which other processes
on the machine cannot inflate.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

from edge_runtime import Classifier, default_model_path

ROUNDS = 101         # interleaved measurement rounds; medians over rounds are reported
CALLS = 30           # one-image calls per variant and round
BATCH = 64           # batch size for the batch-vs-singles comparison
PROCESSES = 7        # fresh processes for import and cold-start times
THREADS = 8          # concurrent caller threads for the lock-vs-per-thread comparison
PER_THREAD_CALLS = 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .tflite model [default: the shipped int8 model]")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="interpreter threads [all cores]")
    parser.add_argument("--runtime", default="auto", help="interpreter package [auto]")
    args = parser.parse_args()
    model = str(args.model or default_model_path("int8"))
    clf = Classifier(model, num_threads=args.threads, runtime=args.runtime)
    print(f"model {model} ({clf.model_format}, input {clf.input_shape}), {clf.runtime_name} "
          f"{clf.runtime_version}, {args.threads} interpreter threads, {os.cpu_count()} cores")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH,) + clf.input_shape, dtype=np.uint8)
    overhead(clf, images[0])
    overhead(Classifier(model, num_threads=1, runtime=args.runtime), images[0], time.thread_time, "CPU")
    batch_vs_singles(clf, images)
    startup(model, args.threads, args.runtime)
    lock_vs_per_thread(model, args.threads, args.runtime, images)


def overhead(clf, image, clock=time.perf_counter, label="wall"):
    it, ind, outd = clf.interpreter, clf.input_details["index"], clf.output_details["index"]
    x = clf._prepare(image)  # the converted input, so "bare" times the interpreter alone

    def bare():
        it.set_tensor(ind, x)
        it.invoke()
        return it.get_tensor(outd)

    clf.predict(image)
    rounds = _rounds({"bare": bare, "scores": lambda: clf.scores(image), "predict": lambda: clf.predict(image)},
                     clock=clock)
    b = rounds["bare"]
    print(f"one image, {clf.num_threads} interpreter thread(s), {label} us/call (median of {ROUNDS} rounds x {CALLS}): "
          f"bare {b:.1f}, scores {rounds['scores']:.1f} ({rounds['scores'] / b:.3f}x), "
          f"predict {rounds['predict']:.1f} ({rounds['predict'] / b:.3f}x; target <= 1.10x)")


def _rounds(variants, calls=CALLS, clock=time.perf_counter, rounds=ROUNDS):
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = clock()
            for _ in range(calls):
                fn()
            samples[name].append((clock() - start) / calls * 1e6)
    return {name: float(np.median(s)) for name, s in samples.items()}


def batch_vs_singles(clf, images):
    singles = list(images)

    def one_by_one():
        for image in singles:
            clf.scores(image)

    def batched():
        clf.scores(images)

    # Each call of a variant must keep its own batch size, so time them in separate blocks.
    t = {}
    for name, fn in (("singles", one_by_one), ("batch", batched), ("singles", one_by_one), ("batch", batched)):
        fn()  # resize to this batch size, untimed
        t.setdefault(name, []).append(_rounds({name: fn}, calls=5, rounds=15)[name])
    s, b = (BATCH / (min(t[k]) * 1e-6) for k in ("singles", "batch"))
    print(f"throughput: {BATCH} single calls {s:.0f} img/s, one batch of {BATCH} {b:.0f} img/s ({b / s:.2f}x)")


def startup(model, threads, runtime):
    code = {
        "import edge_runtime": "import edge_runtime",
        "from edge_runtime import Classifier": "from edge_runtime import Classifier",
        "cold start to first prediction": (
            "import numpy as np\nfrom edge_runtime import Classifier\n"
            f"c = Classifier({model!r}, num_threads={threads}, runtime={runtime!r})\n"
            "c.predict(np.zeros(c.input_shape, np.uint8))"),
    }
    for label, body in code.items():
        wrapped = f"import time\n_t = time.perf_counter()\n{body}\nprint((time.perf_counter() - _t) * 1e3)"
        ms = [float(subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=True)
                    .stdout.split()[-1]) for _ in range(PROCESSES)]
        print(f"{label}: {np.median(ms):.1f} ms median, {min(ms):.1f} ms best of {PROCESSES} processes")


def lock_vs_per_thread(model, threads, runtime, images):
    def run(classifiers):
        results = [None] * THREADS

        def work(i):
            c = classifiers[i]
            results[i] = [c.predict(images[(i + k) % len(images)]) for k in range(PER_THREAD_CALLS)]

        pool = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return THREADS * PER_THREAD_CALLS / (time.perf_counter() - start)

    print(f"{THREADS} threads x {PER_THREAD_CALLS} one-image predictions, img/s:")
    for n in sorted({1, threads}):
        shared = Classifier(model, num_threads=n, runtime=runtime)
        own = [Classifier(model, num_threads=n, runtime=runtime) for _ in range(THREADS)]
        rates = {"shared (lock)": [], "per thread": []}
        for _ in range(5):
            rates["shared (lock)"].append(run([shared] * THREADS))
            rates["per thread"].append(run(own))
        print(f"  interpreter threads {n}: " + ", ".join(f"{k} {np.median(v):.0f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
