"""Keras model -> verified .tflite files with the toolkit's metadata inside (`mnist-edge convert`).

Why a SavedModel in between: with Keras 3, ``TFLiteConverter.from_keras_model`` fails outright in
TensorFlow 2.16 ("'Functional' object has no attribute '_get_save_spec'", tensorflow#63867).
TF 2.21 (measured here) converts our CNNs through it, but only by exporting a SavedModel itself
inside a broad ``except`` that falls back to the Keras 2 tracing path, so an export problem
surfaces as an unrelated error. ``model.export(..., format="tf_saved_model")`` +
``from_saved_model`` gave files of identical size on 2.21 (float32 and int8), works on every
TF >= 2.16, and fails where the real problem is. Keras' export serves the model in inference
mode; the float32 agreement bound would catch it if it ever did not.

Every file is written into a staging folder and verified from disk; only when every format passed
are they moved in, as one set (edge_runtime.file_set): a failed or killed conversion leaves the
previous files as they were, never a new float32 beside an old int8.
"""
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import click
import numpy as np

from edge_runtime import __version__
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.errors import MnistEdgeError, first_line
from edge_runtime.file_set import staged_set
from edge_runtime.files import TEMP_TAG
from edge_runtime.output_folder import claim_output
from edge_runtime.metadata import read_metadata
from edge_runtime.metrics import DEFAULT_THRESHOLD, tune_thresholds
from edge_runtime.model_contract import NUM_CLASSES, PREPROCESSING, to_model_input

from . import verify
from .embed import embed_metadata
from .tensorflow_env import import_tensorflow, quiet_native_output

FORMATS = ("float32", "int8", "dynamic", "float16")
DEFAULT_FORMATS = ("float32", "int8")  # the reference and the file that ships
CALIB_SAMPLES = 300  # calibration ranges settle after a few hundred images; more only slows it
VERIFY_SAMPLES = 1000  # resolves a 1% difference in identical-set rate; Keras predicts them once
SEED = 0  # picks calibration and verification images


def convert(source, out_dir, formats=DEFAULT_FORMATS, calib=None, calib_samples=CALIB_SAMPLES,
            val=None, verify_samples=VERIFY_SAMPLES, seed=SEED, echo=click.echo):
    """Convert RUN_DIR (or a .keras file) to ``out_dir/model_<format>.tflite`` for each format.

    Prints the verification table through ``echo``. Returns one report per format (path,
    structure, agreement, metadata). Raises MnistEdgeError naming every format that failed; then
    no file is written, not even the formats that passed (they would not match the old files).
    """
    model, base, model_path = load_source(source)
    val = Path(val) if val else _dataset_file(base, model_path, "val.npz", "--val")
    val_images, val_labels = load_labelled_npz(val)
    _check_not_empty(val, val_images, "verification and threshold tuning")
    refuse_test_split(val, "validation (threshold tuning)", val_labels, base.get("dataset"))
    _check_size(val, val_images, model)
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(len(val_images), min(verify_samples, len(val_images)), replace=False))
    ref = verify.Reference(val_images, val_labels, subset,
                           model.predict(to_model_input(val_images[subset]), verbose=0, batch_size=256),
                           np.asarray(base.get("thresholds", [DEFAULT_THRESHOLD] * NUM_CLASSES), dtype=np.float64))
    base = {  # a bare model.keras without metadata.json gets the model contract's defaults
        **base,
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "class_names": base.get("class_names", [str(d) for d in range(NUM_CLASSES)]),
        "preprocessing": base.get("preprocessing", PREPROCESSING),
        "source_model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "toolkit_version": __version__,
    }
    calib_images = None
    if "int8" in formats:
        calib = Path(calib) if calib else val
        images, labels = (val_images, val_labels) if calib == val else load_labelled_npz(calib, require_labels=False)
        refuse_test_split(calib, "calibration", labels, base.get("dataset"))
        _check_not_empty(calib, images, "int8 calibration")
        _check_size(calib, images, model)
        calib_images = images[np.sort(rng.choice(len(images), min(calib_samples, len(images)), replace=False))]
        base_int8 = {**base, "calibration": {"file": calib.name, "samples": len(calib_images), "seed": seed}}

    reports, failures = [], []
    with claim_output(out_dir), staged_set(out_dir) as stage:  # one convert per folder; all files or none
        # Beside the output (named as our temp files), so a kill leaves nothing in /tmp for ever.
        with tempfile.TemporaryDirectory(prefix=f".savedmodel{TEMP_TAG}", dir=out_dir) as saved_model:
            export_saved_model(model, saved_model)
            for fmt in formats:
                report = {"format": fmt, "path": Path(out_dir) / f"model_{fmt}.tflite"}
                reports.append(report)
                try:
                    data = convert_saved_model(saved_model, fmt, calib_images)
                    _verify_and_write(report, data, base_int8 if fmt == "int8" else base, ref, stage)
                except MnistEdgeError as e:
                    report["error"] = e.message
                    failures.append(f"{fmt}: {e.message}")
        echo(format_table(reports))
        if failures:
            raise MnistEdgeError("; ".join(failures) + f" (no file written: {out_dir} was left as it was)")
    return reports


def _verify_and_write(report, data, base, ref, stage):
    """Write ``data`` into the staging folder, check it, embed the metadata, check again.

    Fills in ``report`` as it goes, so the table shows how far a failed file got.
    """
    fmt, path = report["format"], report["path"]
    structure = report["structure"] = verify.inspect(data)
    tmp = stage / path.name
    tmp.write_bytes(data)
    scores = verify.scores(tmp, ref.images)
    thresholds = ref.thresholds if fmt == "float32" else tune_thresholds(ref.labels, scores)
    agree = report["agreement"] = verify.agreement(ref, scores, thresholds)
    found = verify.problems(fmt, structure, agree)
    if found:
        raise MnistEdgeError("; ".join(found))
    metadata = {
        **base,
        "format": fmt,
        "thresholds": [float(t) for t in thresholds],
        "thresholds_float": [float(t) for t in ref.thresholds],
        "quantization": structure["quantization"],
        "verification": {**{k: structure[k] for k in ("size_bytes", "ops", "fully_integer", "per_channel")},
                         "agreement": agree, "bounds": verify.BOUNDS[fmt]},
    }
    tmp.write_bytes(embed_metadata(data, metadata))
    if read_metadata(tmp) != json.loads(json.dumps(metadata)):
        raise MnistEdgeError(f"{path}: the embedded metadata does not read back")
    if not np.allclose(verify.scores(tmp, ref.images[ref.subset]), scores[ref.subset], rtol=0, atol=1e-6):
        raise MnistEdgeError(f"{path}: the file with metadata computes other scores than without")
    report.update(size_bytes=tmp.stat().st_size, metadata=metadata)


def load_source(source):
    """RUN_DIR or MODEL.keras -> (Keras model, metadata.json dict or {}, path of the .keras file)."""
    source = Path(source)
    try:
        model_path = source / "model.keras" if source.is_dir() else source
        found = model_path.is_file()
    except OSError as e:  # e.g. a folder without read or search permission
        raise MnistEdgeError(f"{source}: cannot be read ({e.strerror}); check its permissions") from None
    if not found:
        raise MnistEdgeError(f"{source}: no model.keras here; pass a RUN_DIR from `mnist-edge train` or a .keras file")
    meta_path = model_path.parent / "metadata.json"
    metadata = {}
    if meta_path.is_file():
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise MnistEdgeError(f"{meta_path}: not readable JSON ({first_line(e)})") from None
    _check_zip(model_path)
    import_tensorflow()  # Keras loads it; this keeps its start-up lines out of the output
    import keras

    try:
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types (ValueError, zipfile errors, OSError, ...)
        raise MnistEdgeError(f"{model_path}: not a loadable Keras model ({first_line(e)})") from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else ()
    if len(shape) != 4 or None in shape[1:] or shape[3] != 1 or tuple(model.output_shape) != (None, NUM_CLASSES):
        raise MnistEdgeError(f"{model_path}: expected one fixed-size (N,H,W,1) input and a (N,{NUM_CLASSES}) output, "
                             f"got {model.input_shape} -> {model.output_shape}")
    return model, metadata, model_path


def _check_not_empty(path, images, role):
    if not len(images):
        raise MnistEdgeError(f"{path}: holds no images, so it cannot serve for {role}; pass a file with images")


def _check_zip(model_path):
    """A .keras file is a zip archive: a truncated or corrupt one is named so (Keras says "File not found")."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            bad = archive.testzip()
    except PermissionError as e:
        raise MnistEdgeError(f"{model_path}: cannot be read ({e.strerror}); check its permissions") from None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise MnistEdgeError(f"{model_path}: truncated or corrupt .keras file ({first_line(e)}); "
                             f"train again or copy it again") from None
    if bad is not None:
        raise MnistEdgeError(f"{model_path}: corrupt .keras file ({bad} fails its checksum); train again or copy it again")


def _check_size(path, images, model):
    if images.shape[1:] != tuple(model.input_shape[1:3]):
        raise MnistEdgeError(f"{path}: images are {images.shape[1]}x{images.shape[2]} but the model takes "
                             f"{model.input_shape[1]}x{model.input_shape[2]}")


def refuse_test_split(path, role, labels=None, dataset=None):
    """Refuse the test split for calibration or tuning: by its name, or as a data set's test split.

    A renamed copy is recognised by the test split's image count and per-class image counts, as
    described in the ``dataset.json`` beside the file or in the run's metadata (``dataset``).
    """
    path = Path(path)
    if "test" in path.name.lower():
        raise MnistEdgeError(f"{path}: refusing the test split for {role}; use train.npz or val.npz")
    if labels is None:
        return
    try:
        beside = json.loads((path.parent / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        beside = None
    counts = labels.sum(axis=0, dtype=np.int64).tolist()
    for info in (beside, dataset):
        test = ((info if isinstance(info, dict) else {}).get("splits") or {}).get("test") or {}
        if test.get("images") == len(labels) and test.get("images_per_class") == counts:
            raise MnistEdgeError(f"{path}: holds the data set's test split (same image and per-class counts); "
                                 f"refusing it for {role}")


def _dataset_file(metadata, model_path, name, option):
    """``name`` in the data set folder the run was trained on (``options.data`` in metadata.json)."""
    folder = (metadata.get("options") or {}).get("data")
    for path in ([Path(folder), model_path.parent / folder] if folder else []):  # as given, or beside the run
        if (path / name).is_file():
            return path / name
    raise MnistEdgeError(f"{model_path.parent}: metadata.json names no data set folder holding {name} "
                         f"(trained with --mnist, or moved); pass {option} DATA/{name}")


def export_saved_model(model, directory):
    try:
        with quiet_native_output():
            model.export(str(directory), format="tf_saved_model", verbose=False)
    except Exception as e:  # the traced model's own error, whatever its type
        raise MnistEdgeError(f"cannot export the Keras model as a SavedModel: {first_line(e)}") from None


def convert_saved_model(saved_model, fmt, calib_images=None):
    """TFLite bytes of one format; int8 calibrates on ``calib_images`` (uint8 (N,H,W))."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if fmt != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if fmt == "int8":
        # Per-channel weight scales are the converter's default; inputs are pixels/255 as in training.
        converter.representative_dataset = lambda: ([to_model_input(img[None])] for img in calib_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    try:
        with quiet_native_output():
            return bytes(converter.convert())
    except Exception as e:  # converter errors come as several types, with long MLIR dumps
        raise MnistEdgeError(f"the TFLite converter failed: {first_line(e)}") from None


def format_table(reports):
    """The verification table: one row per format, then each file's op list.

    same: images whose digit set matches Keras; sure: the same among images Keras is sure of.
    """
    rows = [f"{'format':8} {'size KB':>8} {'int-only':>8}  {'input':24} {'output':24} "
            f"{'max|dp|':>8} {'mean|dp|':>8} {'same':>6} {'sure':>6} {'dF1':>7}  status"]
    for r in reports:
        s, a = r.get("structure"), r.get("agreement")
        size = r.get("size_bytes") or (s["size_bytes"] if s else 0)
        integer = ("yes" if s["fully_integer"] else "no") if s else "-"
        inp, out = (_io_text(s["quantization"][k]) for k in ("input", "output")) if s else ("-", "-")
        diffs = (f"{a['max_abs_diff']:8.2g} {a['mean_abs_diff']:8.2g} {a['identical_sets']:6.1%} "
                 f"{a['identical_sets_confident']:6.1%} {a['macro_f1'] - a['macro_f1_keras']:+7.4f}"
                 if a else f"{'-':>8} {'-':>8} {'-':>6} {'-':>6} {'-':>7}")
        status = "FAILED" if "error" in r else f"ok -> {r['path']}"
        rows.append(f"{r['format']:8} {size / 1024:8.1f} {integer:>8}  {inp:24} {out:24} {diffs}  {status}")
    for r in reports:
        if r.get("structure"):
            ops = r["structure"]["ops"]
            rows.append(f"ops {r['format']}: " + ", ".join(f"{n}x{c}" if c > 1 else n for n, c in ops.items()))
    return "\n".join(rows)


def _io_text(q):
    return q["dtype"] if q["dtype"].startswith("float") else f"{q['dtype']} s={q['scale']:.4g} zp={q['zero_point']}"
