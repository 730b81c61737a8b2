"""Do the interpreters agree? The same .tflite files scored under each runtime, compared image by image.

ai-edge-litert's XNNPACK int8 kernels round some outputs a step differently from tflite-runtime's
reference kernels; a release should know by how much, and whether any image's digit set changes.
tflite-runtime needs numpy < 2 and ai-edge-litert works with numpy 2, so they rarely share a venv:
a runtime given as ``NAME=PYTHON`` is run by that Python in a child process (its own venv), one
given by name alone must be importable here, and the report says which were not available.
``NAME:reference`` runs that interpreter without its default delegates (XNNPACK), which tells
whether a difference comes from XNNPACK's kernels or from the interpreter's own.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_runtime import Classifier
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.interpreter import RUNTIMES, import_runtime
from edge_runtime.metrics import binarize

LISTED_IMAGES = 20  # disagreeing image indices kept per model and runtime (the count is complete)
REFERENCE = "reference"  # NAME:reference = the interpreter without its default delegates


def parse_runtimes(text):
    """'ai_edge_litert,tflite_runtime=/venv/bin/python' -> [(name, python or None)], names checked.

    A name may end in ':reference' (no XNNPACK)."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, python = item.partition("=")
        runtime, _, variant = name.partition(":")
        if runtime not in RUNTIMES or variant not in ("", REFERENCE):
            raise MnistEdgeError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}, optionally with "
                                 f":{REFERENCE} (no XNNPACK) or =PYTHON (another venv's Python)")
        specs.append((name, python or None))
    if len(specs) < 2:
        raise MnistEdgeError("needs at least two runtimes to compare, e.g. ai_edge_litert,tensorflow")
    return specs


def score_all(models, images, name, threads=1):
    """Scores of every model under the runtime ``name`` (NAME or NAME:reference) and the runtime's version."""
    runtime, _, variant = name.partition(":")
    clfs = [Classifier(str(m), num_threads=threads, runtime=runtime, use_xnnpack=variant != REFERENCE)
            for m in models]
    return [c.scores(images) for c in clfs], clfs[0].runtime_version


def _output_step(clf):
    """The quantized output's step (its scale), None for a float output."""
    detail = clf.output_details
    return None if detail["dtype"] == np.float32 else float(detail["quantization"][0])


def score_child():
    """Child-process entry: score the models on the data set, save the scores to an .npz."""
    models, data, runtime, threads, out = json.loads(sys.argv[1])
    images, _ = load_labelled_npz(data)
    scores, version = score_all(models, images, runtime, threads)
    np.savez(out, version=np.array(version), **{f"model{i}": s for i, s in enumerate(scores)})


_CHILD = "from benchmarks.conformance import score_child; score_child()"


def _score_in(python, models, data, runtime, threads):
    """(scores, version) from a child process run by ``python``; MnistEdgeError with its last line on failure."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.npz"
        args = json.dumps([[str(m) for m in models], str(data), runtime, threads, str(out)])
        try:
            run = subprocess.run([python, "-c", _CHILD, args], capture_output=True, env=env)
        except OSError as e:
            raise MnistEdgeError(f"cannot run {python} ({e.strerror or e})") from None
        if run.returncode:
            lines = run.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            raise MnistEdgeError(f"{python}: {lines[-1]}")
        with np.load(out, allow_pickle=False) as npz:
            return [npz[f"model{i}"] for i in range(len(models))], str(npz["version"])


def _available_here(name):
    try:
        import_runtime(name.partition(":")[0])
        return None
    except MnistEdgeError:
        return f"not installed in this Python ({sys.executable}); give {name}=PYTHON to use another venv's"


def conformance(models, data, images, specs, threads=1):
    """Score ``models`` under every runtime in ``specs`` and compare each with the first available one."""
    models = [Path(m) for m in models]
    runs = []
    for name, python in specs:
        entry = {"name": name, "python": python or sys.executable, "version": None, "note": None}
        try:
            if python:
                scores, entry["version"] = _score_in(python, models, data, name, threads)
            else:
                entry["note"] = _available_here(name)
                scores = None
                if entry["note"] is None:
                    scores, entry["version"] = score_all(models, images, name, threads)
        except MnistEdgeError as e:
            entry["note"], scores = f"failed: {e.message}", None
        runs.append((entry, scores))
    available = [(e, s) for e, s in runs if s is not None]
    result = {"runtimes": [e for e, _ in runs], "reference": None, "models": []}
    if len(available) < 2:
        result["note"] = "fewer than two runtimes available: nothing compared"
        return result
    reference, ref_scores = available[0]
    result["reference"] = reference["name"]
    clfs = [Classifier(str(m), num_threads=threads) for m in models]  # thresholds and output step only
    for i, clf in enumerate(clfs):
        step = _output_step(clf)
        ref_pred = binarize(ref_scores[i], clf.thresholds)
        comparisons = []
        for entry, scores in available[1:]:
            diff = np.abs(scores[i].astype(np.float64) - ref_scores[i])
            differ = np.flatnonzero((binarize(scores[i], clf.thresholds) != ref_pred).any(axis=1))
            comparisons.append({
                "runtime": entry["name"], "max_abs_diff": float(diff.max()) if diff.size else 0.0,
                "max_steps": None if step is None else int(np.rint(diff.max() / step)) if diff.size else 0,
                "images_with_different_scores": int((diff > 0).any(axis=1).sum()),
                "digit_set_disagreements": int(len(differ)), "disagreeing_images": differ[:LISTED_IMAGES].tolist()})
        result["models"].append({"name": models[i].name, "output_step": step, "comparisons": comparisons})
    return result
