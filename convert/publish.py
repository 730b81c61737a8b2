"""Verify, embed, publish and account for a converted file: one path for `convert` and `quantize`.

`convert` (a Keras model, TensorFlow) and `quantize` (a float32 .tflite, no TensorFlow, on a
device) hand their bytes to the same ``verify_and_write``: a file in the staging folder, the
structure and agreement checks of ``convert.verify``, thresholds re-tuned on the file's own
validation scores, the metadata embedded and read back; the set (with its report) is published
only when every file passed (``edge_runtime.file_set.staged_set``). Every quantized file then gets its entry in
``quant_report.json``/``.md`` (``convert.quant_report``) and its op placement (which ops run
integer, which ones XNNPACK executes).
"""
import json
from pathlib import Path

import numpy as np

from edge_runtime.errors import MnistEdgeError
from edge_runtime.files import TEMP_TAG
from edge_runtime.interpreter import load_interpreter
from edge_runtime.metadata import read_metadata
from edge_runtime.metrics import tune_thresholds
from edge_runtime.op_placement import describe, op_placement

from . import quant_report, verify
from .embed import embed_metadata

REPORT_FILE = "quant_report"  # .json and .md beside the model files


def verify_and_write(report, data, base, ref, stage):
    """Write ``data`` into the staging folder, check it, embed the metadata, check again.

    Fills in ``report`` as it goes (also the validation scores and thresholds, for the
    quantization report), so the table shows how far a failed file got.
    """
    fmt, path = report["format"], report["path"]
    structure = report["structure"] = verify.inspect(data)
    tmp = Path(stage) / path.name
    tmp.write_bytes(data)
    scores = verify.scores(tmp, ref.images)
    thresholds = ref.thresholds if fmt == "float32" else tune_thresholds(ref.labels, scores)
    agree = report["agreement"] = verify.agreement(ref, scores, thresholds)
    report["_scores"], report["_thresholds"], report["_bytes"] = scores, thresholds, data
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


def scores_of(data, images, stage):
    """Validation scores of model bytes not on disk (the float32 reference of a quantized file),
    through a file in the staging folder that is removed again before the set is published."""
    path = Path(stage) / f".reference{TEMP_TAG}.tflite"
    try:
        path.write_bytes(data)
        return verify.scores(path, images)
    finally:
        path.unlink(missing_ok=True)


def account(reports, float_bytes, calib_images, ref, float_scores, quantizer):
    """Add its quantization report (``report["quant_report"]``) to every non-float32 file that got scores.

    ``quantizer(fmt)``: the text naming the tool and recipe that made that format. Failed files
    are accounted for too (on the console): their report is what explains a bad F1 change.
    """
    validation = (ref.labels, float_scores, ref.thresholds)
    for r in reports:
        if r["format"] == "float32" or "_scores" not in r:
            continue
        data = r["_bytes"]
        placement = op_placement(load_interpreter(r["path"], 1, "ai_edge_litert", True, model_content=data)[0])
        r["quant_report"] = quant_report.build_entry(
            float_bytes, data, calib_images, (*validation, r["_scores"]), r["_thresholds"],
            file=r["path"].name, format=r["format"], quantizer=quantizer(r["format"]),
            ops=describe(placement), op_placement=placement)


def finish(reports, out_dir, stage, echo):
    """Print the table and the quantization reports; raise if a file failed (the staged set is then
    dropped), else stage quant_report.json/.md to be published with the files."""
    echo(format_table(reports))
    failures = [f"{r['format']}: {r['error']}" for r in reports if "error" in r]
    for r in reports:
        entry = r.get("quant_report")
        if entry is not None:
            entry["published"] = not failures  # the set goes in whole or not at all
            note = "it failed its checks" if "error" in r else "another file of the set failed its checks"
            echo("")
            echo(quant_report.format_entry(entry) + ("" if entry["published"] else f"\n(not published: {note})"))
        for key in ("_scores", "_thresholds", "_bytes"):  # for the report only; the caller gets plain figures
            r.pop(key, None)
    entries = [r["quant_report"] for r in reports if "quant_report" in r]
    if failures:
        raise MnistEdgeError("; ".join(failures) + f" (no file written: {out_dir} was left as it was)")
    if entries:
        stage_report(out_dir, stage, entries)
    return reports


def stage_report(out_dir, stage, entries):
    """quant_report.json (the folder's entries, ``entries`` replacing their formats) and .md, staged.

    A format not converted this time keeps its entry: its file beside the report is unchanged.
    """
    try:
        merged = json.loads((Path(out_dir) / f"{REPORT_FILE}.json").read_text(encoding="utf-8")).get("formats", {})
    except (OSError, ValueError, AttributeError):
        merged = {}
    merged.update({e["format"]: e for e in entries})
    (Path(stage) / f"{REPORT_FILE}.json").write_text(json.dumps({"formats": merged}, indent=1, allow_nan=False) + "\n",
                                                    encoding="utf-8")
    (Path(stage) / f"{REPORT_FILE}.md").write_text(quant_report.format_markdown(merged), encoding="utf-8")


def format_table(reports):
    """The verification table: one row per format, then each file's op list.

    same: images whose digit set matches the reference; sure: the same among images it is sure of.
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
