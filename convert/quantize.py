"""``mnist-edge quantize``: a float32 .tflite -> verified quantized files, with LiteRT Quantizer, no TensorFlow.

Runs where only the edge dependencies and ``litert-quantizer`` are installed (a device, a CI job
without TensorFlow): the reference is the float32 file itself, whose scores stand in for the
Keras model's (convert verified it against Keras to 1e-4), and its embedded metadata (thresholds,
class names, data set) carries over. Calibration and verification images are the same seeded
choice from the validation file as in ``convert``, so both commands make the same file. It lives
in ``convert`` beside the checks it shares; nothing in this package imports TensorFlow at import
time, and this path never does.
"""
import hashlib
from pathlib import Path

import click
import numpy as np

from edge_runtime.cli_options import choice_list
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.file_set import staged_set
from edge_runtime.interpreter import read_model_bytes
from edge_runtime.metadata import read_metadata
from edge_runtime.metrics import DEFAULT_THRESHOLD
from edge_runtime.model_contract import NUM_CLASSES
from edge_runtime.output_folder import check_output_folder, claim_output

from . import litert, publish, verify
from .tflite import (CALIB_SAMPLES, SEED, VERIFY_SAMPLES, _check_not_empty, _check_size, base_metadata,
                     calibration_images, refuse_test_split)

DEFAULT_FORMATS = ("int8",)


@click.command("quantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="MODEL_float32.tflite")
@click.option("--calib", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Train or val .npz to calibrate on (never test).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for model_<format>.tflite and quant_report.json/.md (created if missing).")
@click.option("--formats", default=",".join(DEFAULT_FORMATS), show_default=True, callback=choice_list(litert.RECIPES),
              help=f"Comma-separated formats out of {', '.join(litert.RECIPES)}.")
@click.option("--val", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled validation .npz for the checks and threshold re-tuning.  [default: the --calib file]")
@click.option("--calib-samples", type=click.IntRange(min=1), default=CALIB_SAMPLES, show_default=True,
              help="Calibration images, a seeded random choice.")
@click.option("--verify-samples", type=click.IntRange(min=1), default=VERIFY_SAMPLES, show_default=True,
              help="Validation images on which each file is compared with the float32 file.")
@click.option("--seed", type=click.IntRange(min=0), default=SEED, show_default=True, help="Seed for choosing calibration and verification images.")
def quantize_command(model, calib, out, formats, val, calib_samples, verify_samples, seed):
    """Quantize a float32 .tflite with LiteRT Quantizer: no TensorFlow needed (edge extra + litert-quantizer).

    \b
    int8     int8 weights and activations, int8 input/output (recipe static_wi8_ai8);
    w8a16    int8 weights, int16 activations and input/output (static_wi8_ai16);
    dynamic  int8 weights, float activations (dynamic_wi8_afp32).
    Same checks, threshold re-tuning, metadata and quantization report as `mnist-edge convert`,
    against the float32 file instead of the Keras model.
    """
    check_output_folder(out)  # before any work; quantize_file() locks it while it writes
    quantize_file(model, out, formats, calib, val=val, calib_samples=calib_samples,
                  verify_samples=verify_samples, seed=seed)


def quantize_file(model, out_dir, formats=DEFAULT_FORMATS, calib=None, val=None, calib_samples=CALIB_SAMPLES,
                  verify_samples=VERIFY_SAMPLES, seed=SEED, echo=click.echo):
    """Quantize float32 file ``model`` into ``out_dir/model_<format>.tflite``; returns the reports.

    All files and the report are published together, or none (as `convert`).
    """
    litert.require_quantizer()
    model = Path(model)
    float_bytes = read_model_bytes(model)
    base = read_metadata(model) or {}
    _require_float(model, float_bytes, base)
    size = tuple(int(d) for d in verify.inspect(float_bytes)["input_shape"][1:3])
    val_images, val_labels, val = _validation(Path(val or calib), base, size)
    rng = np.random.default_rng(seed)  # the same draws, in the same order, as `convert`
    subset = np.sort(rng.choice(len(val_images), min(verify_samples, len(val_images)), replace=False))
    calib_images, calib = calibration_images(Path(calib), (val, val_images, val_labels), calib_samples, rng,
                                             size, base.get("dataset"))

    def tool(fmt):
        return f"{litert.version()} {litert.RECIPES[fmt]}"

    meta = {**base_metadata(base, [*size, 1], "source_float32_sha256", hashlib.sha256(float_bytes).hexdigest()),
            "calibration": {"file": calib.name, "samples": len(calib_images), "seed": seed}}
    reports = []
    with claim_output(out_dir), staged_set(out_dir) as stage:
        float_scores = publish.scores_of(float_bytes, val_images, stage)
        ref = verify.Reference(val_images, val_labels, subset, float_scores[subset], np.asarray(
            base.get("thresholds", [DEFAULT_THRESHOLD] * NUM_CLASSES), dtype=np.float64))
        for fmt in formats:
            report = {"format": fmt, "path": Path(out_dir) / f"model_{fmt}.tflite"}
            reports.append(report)
            try:
                data = litert.quantize(float_bytes, fmt, calib_images)
                publish.verify_and_write(report, data, {**meta, "quantizer": tool(fmt)}, ref, stage)
            except MnistEdgeError as e:
                report["error"] = e.message
        publish.account(reports, float_bytes, calib_images, ref, float_scores, tool)
        return publish.finish(reports, out_dir, stage, echo)


def _validation(val, base, size):
    """The labelled validation images the files are checked and their thresholds tuned on."""
    images, labels = load_labelled_npz(val, require_labels=False)
    if labels is None:
        raise MnistEdgeError(f"{val}: has no labels, needed to check the files and re-tune thresholds; "
                             "pass a labelled --val (val.npz from `mnist-edge data`)")
    _check_not_empty(val, images, "verification and threshold tuning")
    refuse_test_split(val, "validation (threshold tuning)", labels, base.get("dataset"))
    _check_size(val, images, size)
    return images, labels, val


def _require_float(path, data, metadata):
    """Refuse a file that is not a float32 model: quantizing it again would only lose more."""
    structure = verify.inspect(data)
    quantized = sorted(structure["quantized_types"])
    fmt = metadata.get("format")
    if quantized or (fmt and fmt != "float32") or structure["quantization"]["input"]["dtype"] != "float32":
        found = f"it holds {', '.join(quantized)} tensors" if quantized else f"its metadata says {fmt}"
        raise MnistEdgeError(f"{path}: not a float32 model ({found}); pass the model_float32.tflite "
                             "written by `mnist-edge convert`")
