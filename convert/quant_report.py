"""What quantization cost, layer by layer and digit by digit (``quant_report.json``/``.md``).

Per layer: every op's output in the quantized file is compared with the same op's output in the
float32 file, on the calibration images, both run on LiteRT's reference kernels with every tensor
kept. Ops are matched by their order after dropping QUANTIZE/DEQUANTIZE (the quantizers insert
those; the compute ops and their order are the float graph's), and the op names must agree.

- ``rmse_steps``: RMSE of the dequantized output against float, in units of the tensor's own
  quantization step (scale). Rounding alone gives 1/sqrt(12) = 0.29; more is error carried in
  from earlier layers or clipping. int16 tensors show how little of their finer steps is used.
- ``snr_db``: 10 log10(signal power / error power) of that output (None: no error at all).
- ``snr_loss_db``: SNR of the op's input minus SNR of its output, the dB this op lost. Errors
  from earlier layers pass through an op with little change of SNR, so the largest losses point
  at the layers that dominate; a 1x1 conv that averages independent errors can gain.
- ``clipped``: share of float values outside the tensor's representable range: a calibration
  range too narrow, or at the sigmoid's int8 output simply scores above 255/256 (saturated).

Per digit, on the validation images: the SNR of that digit's logit (the input of the final
sigmoid, on the calibration images), the threshold's distance from the nearest output step, the
number of scores within NEAR_STEPS steps of the threshold (images that one or two steps of error
can flip), and each model's F1 with its own thresholds. A low logit SNR and many scores near
the threshold go with a digit's F1 change.
"""
import math
import warnings

import numpy as np

from edge_runtime.model_contract import to_model_input
from edge_runtime.errors import MnistEdgeError
from edge_runtime.metrics import binarize, per_digit

NEAR_STEPS = 2  # "within a few output steps" of a threshold
DOMINANT = 3  # layers the summary names as dominating
CHUNK = 100  # images per invoke while every tensor is kept (memory grows with the batch)
BOOKKEEPING = ("QUANTIZE", "DEQUANTIZE")
EXACT_STEPS = 1e-3  # RMSE below this many steps is float32 round-off of an exact mapping (q = pixel - 128)


class _Graph:
    """A model on the reference kernels with every tensor kept; its compute ops in order."""

    def __init__(self, model_bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with warnings.catch_warnings():  # "keeping all tensors is for debugging": that is the point
            warnings.simplefilter("ignore")
            self.interpreter = Interpreter(
                model_content=bytes(model_bytes), experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        details = self.interpreter._get_ops_details()
        producer = {t: d for d in details for t in d["outputs"]}
        compute = [d for d in details if d["op_name"] not in BOOKKEEPING]
        position = {d["index"]: k for k, d in enumerate(compute)}
        self.ops, self.sources = [], []
        for d in compute:
            tensor = self.interpreter._get_tensor_details(d["outputs"][0], 0)
            self.ops.append({"op": d["op_name"], "name": _short(tensor["name"]), "tensor": d["outputs"][0],
                             **_quantization(tensor)})
            source = producer.get(d["inputs"][0])
            while source is not None and source["op_name"] in BOOKKEEPING:  # look through (de)quantize
                source = producer.get(source["inputs"][0])
            self.sources.append(None if source is None else position[source["index"]])
        self.input_row = {"op": "INPUT", "name": "input", "tensor": self.input["index"],
                          **_quantization(self.interpreter._get_tensor_details(self.input["index"], 0))}
        self._batch = 1

    def run(self, images):
        """Dequantized float64 values of the input and of every compute op's output."""
        it, index = self.interpreter, self.input["index"]
        if len(images) != self._batch:
            it.resize_tensor_input(index, [len(images), *self.input["shape"][1:]])
            it.allocate_tensors()
            self._batch = len(images)
        x = to_model_input(images)
        if self.input["dtype"] != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.rint(x / scale + zero), info.min, info.max).astype(self.input["dtype"])
        it.set_tensor(index, x)
        it.invoke()
        return [_dequantize(it.get_tensor(row["tensor"]), row) for row in [self.input_row, *self.ops]]


def layer_errors(float_bytes, quant_bytes, images):
    """One row per tensor (the input, then each compute op's output) of ``quant_bytes`` against
    ``float_bytes``, on uint8 (N,H,W) ``images``; the last row is the model's output.

    Each row also keeps per-channel sums (``_err``, ``_sig``) for the per-digit figures.
    """
    ref, got = _Graph(float_bytes), _Graph(quant_bytes)
    if [o["op"] for o in ref.ops] != [o["op"] for o in got.ops]:
        raise MnistEdgeError(f"quantization report: the quantized file's ops {[o['op'] for o in got.ops]} do not "
                             f"follow the float file's {[o['op'] for o in ref.ops]}, so its layers cannot be compared")
    rows = [{"index": k, "op": o["op"], "name": o["name"], "dtype": q["dtype"], "step": q["step"], "_q": q,
             "_err": 0.0, "_sig": 0.0, "_clip": 0, "_n": 0}
            for k, (o, q) in enumerate(zip([ref.input_row, *ref.ops], [got.input_row, *got.ops]))]
    for start in range(0, len(images), CHUNK):
        batch = images[start:start + CHUNK]
        for row, r, g in zip(rows, ref.run(batch), got.run(batch)):
            axes = tuple(range(r.ndim - 1))
            row["_err"] = row["_err"] + ((g - r) ** 2).sum(axis=axes)
            row["_sig"] = row["_sig"] + (r ** 2).sum(axis=axes)
            low, high = _range(row["_q"])
            row["_clip"] += int(((r < low) | (r > high)).sum())
            row["_n"] += r.size // r.shape[-1]
    for row in rows:
        err, sig = float(np.sum(row["_err"])), float(np.sum(row["_sig"]))
        count = row["_n"] * np.size(row["_err"])
        rmse = math.sqrt(err / count)
        steps = rmse / row["step"] if row["step"] else None
        exact = err == 0 or (steps is not None and steps < EXACT_STEPS)
        row.update(rmse=rmse, rmse_steps=steps, snr_db=None if exact else _snr(sig, err), clipped=row["_clip"] / count)
    for row, source in zip(rows[1:], ref.sources):  # an op fed by the model input loses "all" (None)
        before = None if source is None else rows[source + 1]["snr_db"]
        row["snr_loss_db"] = None if row["snr_db"] is None or source is None else (
            math.inf if before is None else before - row["snr_db"])
    rows[0]["snr_loss_db"] = None
    return rows


def build_entry(float_bytes, quant_bytes, calib_images, validation, thresholds, **info):
    """The report of one quantized file (JSON-ready).

    ``validation``: (labels, float scores, float thresholds, quantized scores) on the same images;
    ``thresholds``: the quantized file's own; ``info``: file, format, quantizer, ops, op_placement...
    """
    labels, ref_scores, ref_thresholds, scores = validation
    rows = layer_errors(float_bytes, quant_bytes, calib_images)
    output = rows[-1]["_q"]
    table = public(rows)
    return {
        **info,
        "calibration_samples": int(len(calib_images)),
        "validation_images": int(len(labels)),
        "layers": table,
        "dominant": [table[r["index"]] for r in dominant_layers(rows)],
        "digits": digit_figures(rows, labels, ref_scores, ref_thresholds, scores, thresholds,
                                {"scale": output["step"] or 0.0, "zero_point": output["zero_point"]}),
    }


def digit_figures(rows, labels, ref_scores, ref_thresholds, scores, thresholds, output_quant):
    """Per-digit headroom and F1 change (lists of 10), from validation ``labels`` and scores."""
    logits = next((r for r in reversed(rows[:-1]) if np.size(r["_err"]) == len(thresholds)), rows[-1])
    step = output_quant["scale"] or None
    ref_f1 = per_digit(labels, binarize(ref_scores, ref_thresholds))["f1"]
    f1 = per_digit(labels, binarize(scores, thresholds))["f1"]
    near = (np.abs(scores - np.asarray(thresholds)) <= NEAR_STEPS * step).sum(axis=0) if step else None
    return {
        "logit_layer": logits["name"],
        "logit_snr_db": [_finite(_snr(float(s), float(e))) for s, e in
                         zip(np.atleast_1d(logits["_sig"]), np.atleast_1d(logits["_err"]))],
        "threshold": [float(t) for t in thresholds],
        "threshold_float": [float(t) for t in ref_thresholds],
        "step": step,
        "float_threshold_to_step": [_to_step(t, output_quant) for t in ref_thresholds] if step else None,
        "threshold_to_step": [_to_step(t, output_quant) for t in thresholds] if step else None,
        "near_threshold_images": near.tolist() if near is not None else None,
        "f1_float": ref_f1.tolist(),
        "f1": f1.tolist(),
        "delta_f1": (f1 - ref_f1).tolist(),
    }


def dominant_layers(rows, count=DOMINANT):
    """The ops that lost the most SNR, largest loss first.

    Ops fed by the model input (the first conv) have no error to lose SNR against: their own SNR
    is the starting level, shown apart in the summary, and they are not ranked.
    """
    ranked = sorted((r for r in rows[1:] if r["snr_loss_db"] is not None and math.isfinite(r["snr_loss_db"])
                     and r["snr_loss_db"] > 0), key=lambda r: -r["snr_loss_db"])
    return ranked[:count]


def public(rows):
    """The rows without the per-channel sums, numbered, JSON-ready (inf -> None)."""
    keys = ("op", "name", "dtype", "step", "rmse", "rmse_steps", "snr_db", "snr_loss_db", "clipped")
    return [{"index": row["index"], **{key: _finite(row[key]) for key in keys}} for row in rows]


def _quantization(tensor):
    dtype = np.dtype(tensor["dtype"]).name
    scale, zero = tensor["quantization"]
    integer = not dtype.startswith("float")
    return {"dtype": dtype, "step": float(scale) if integer else None, "zero_point": int(zero) if integer else 0}


def _dequantize(values, q):
    values = values.astype(np.float64)
    return values if q["step"] is None else (values - q["zero_point"]) * q["step"]


def _range(q):
    if q["step"] is None:
        return -np.inf, np.inf
    info = np.iinfo(q["dtype"])
    half = q["step"] / 2
    return (info.min - q["zero_point"]) * q["step"] - half, (info.max - q["zero_point"]) * q["step"] + half


def _snr(signal, error):
    return None if error == 0 else (10 * math.log10(signal / error) if signal > 0 else -math.inf)


def _to_step(threshold, q):
    """Distance (in output steps, 0..0.5) from ``threshold`` to the nearest score the output can take."""
    position = threshold / q["scale"] + q["zero_point"]
    return float(abs(position - round(position)))


def _short(name):
    """'model/re_lu_12_1/Relu6;model/batch_norm...' -> 're_lu_12_1/Relu6': the first fused name."""
    first = name.split(";")[0]
    return first.split("/", 1)[1] if "/" in first else first


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summary_line(entry):
    """Which layers dominate, in one line: the starting SNR, the largest losses, the output SNR."""
    layers = entry["layers"]
    first = next((r for r in layers[1:] if r["snr_db"] is not None), None)
    losses = ", ".join(f"#{r['index']} {r['op']} {r['name']} -{r['snr_loss_db']:.1f} dB" for r in entry["dominant"])
    return (f"SNR {_db(first['snr_db'] if first else None)} after the first op, {_db(layers[-1]['snr_db'])} at the "
            f"output; largest losses: {losses or 'none'}")


def layer_table(entry, markdown=False):
    head = ("#", "op", "tensor", "type", "step", "rmse/step", "SNR dB", "loss dB", "clipped")
    rows = [(str(r["index"]), r["op"], r["name"][:40], r["dtype"], _num(r["step"], ".4g"), _num(r["rmse_steps"], ".2f"),
             _db(r["snr_db"]), _loss(r), f"{r['clipped']:.1%}") for r in entry["layers"]]
    return _table(head, rows, markdown)


def digit_table(entry, markdown=False):
    d = entry["digits"]
    head = ("digit", "F1 float", "F1", "dF1", "logit SNR dB", "threshold", "thr float->step", f"near +-{NEAR_STEPS}")
    rows = [(str(c), f"{d['f1_float'][c]:.4f}", f"{d['f1'][c]:.4f}", f"{d['delta_f1'][c]:+.4f}", _db(d["logit_snr_db"][c]),
             f"{d['threshold'][c]:.4f}", _num(d["float_threshold_to_step"] and d["float_threshold_to_step"][c], ".2f"),
             "-" if d["near_threshold_images"] is None else
             f"{d['near_threshold_images'][c]} ({d['near_threshold_images'][c] / entry['validation_images']:.2%})")
            for c in range(len(d["f1"]))]
    return _table(head, rows, markdown)


def format_entry(entry, markdown=False):
    """One quantized file's report as console text or a Markdown section."""
    title = (f"{entry['file']}: {entry['quantizer']}, {entry['calibration_samples']} calibration images, "
             f"{entry['validation_images']} validation images")
    ops = f"ops (arithmetic, executor in ai-edge-litert): {entry['ops']}"
    parts = [f"## {title}" if markdown else f"quantization report, {title}", layer_table(entry, markdown),
             summary_line(entry), digit_table(entry, markdown), ops]
    return "\n\n".join(parts) if markdown else "\n".join(parts)


def format_markdown(entries):
    intro = ("# Quantization report\n\nPer layer: the quantized file's tensors against the float32 file's, on the "
             "calibration images (RMSE in the tensor's own quantization steps; SNR; the dB each op lost against its "
             f"input). Per digit, on the validation images: F1 of each model with its own thresholds, the SNR of the "
             f"digit's logit, the float threshold's distance from the nearest output step (in steps), and the "
             f"validation images whose score lies within {NEAR_STEPS} output steps of the threshold.")
    return "\n\n".join([intro, *(format_entry(e, markdown=True) for e in entries.values())]) + "\n"


def _table(head, rows, markdown):
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                          *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(x) for x in column) for column in zip(head, *rows)]
    return "\n".join("  ".join(x.rjust(w) if k not in (1, 2) else x.ljust(w) for k, (x, w) in enumerate(zip(r, widths)))
                     for r in (head, *rows))


def _num(value, spec):
    return "-" if value is None else format(value, spec)


def _db(value):
    return "exact" if value is None else f"{value:.1f}"


def _loss(row):
    if row["index"] == 0:
        return "-"
    return "all" if row["snr_loss_db"] is None and row["snr_db"] is not None else _num(row["snr_loss_db"], "+.1f")
