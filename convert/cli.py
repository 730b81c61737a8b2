"""``mnist-edge convert``: the options; the work is in convert.tflite (TensorFlow loads only when it runs)."""
from pathlib import Path

import click

from edge_runtime.cli_options import choice_list
from edge_runtime.output_folder import check_output_folder

from .tensorflow_env import require_tensorflow
from .tflite import (CALIB_SAMPLES, DEFAULT_FORMATS, DEFAULT_QUANTIZER, FORMATS, QUANTIZERS, SEED, VERIFY_SAMPLES,
                     convert)


@click.command("convert")
@click.argument("source", type=click.Path(exists=True, path_type=Path), metavar="RUN_DIR|MODEL.keras")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for model_<format>.tflite (created if missing).")
@click.option("--formats", default=",".join(DEFAULT_FORMATS), show_default=True, callback=choice_list(FORMATS),
              help=f"Comma-separated formats out of {', '.join(FORMATS)}.")
@click.option("--calib", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Train or val .npz for calibration (never test).  [default: the --val file]")
@click.option("--calib-samples", type=click.IntRange(min=1), default=CALIB_SAMPLES, show_default=True,
              help="Calibration images, a seeded random choice.")
@click.option("--val", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Validation .npz for agreement checks and threshold re-tuning.  "
                   "[default: val.npz of the data set recorded in RUN_DIR/metadata.json]")
@click.option("--verify-samples", type=click.IntRange(min=1), default=VERIFY_SAMPLES, show_default=True,
              help="Validation images on which each file is compared with the Keras model.")
@click.option("--seed", type=click.IntRange(min=0), default=SEED, show_default=True, help="Seed for choosing calibration and verification images.")
@click.option("--quantizer", type=click.Choice(QUANTIZERS), default=DEFAULT_QUANTIZER, show_default=True,
              help="converter: TFLiteConverter's post-training quantization; litert: LiteRT Quantizer "
                   "(pip install litert-quantizer) on the float32 file.")
def convert_command(source, out, formats, calib, calib_samples, val, verify_samples, seed, quantizer):
    """Convert a trained model to verified TensorFlow Lite files with metadata inside.

    \b
    float32  plain TFLite, the reference;
    int8     full-integer (int8 input/output and activations, per-channel int8 weights),
             the file that ships to devices; thresholds re-tuned on its own validation scores;
    w8a16    int16 activations and input/output, int8 weights (integer, finer steps);
    dynamic  dynamic-range (int8 weights), and float16 (float16 weights, converter only).
    Each file is checked (ops, integer-only, agreement with Keras); only when every format passes
    do they replace the older files, together; a check that fails exits non-zero and says why.
    Each quantized file also gets its quantization report (per-layer error against float32,
    per-digit threshold headroom, which ops run integer and on XNNPACK) on the console and in
    quant_report.json/.md.
    """
    check_output_folder(out)  # before loading anything; convert() locks it while it writes
    require_tensorflow("convert")
    convert(source, out, formats=formats, calib=calib, calib_samples=calib_samples, val=val,
            verify_samples=verify_samples, seed=seed, quantizer=quantizer)
