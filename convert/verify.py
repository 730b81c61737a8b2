"""Check a converted .tflite file before it may replace anything: structure, then agreement with Keras.

Structure comes from the flatbuffer itself (ai_edge_litert's schema), not from an interpreter,
so delegate rewrites (XNNPACK shows up as one DELEGATE op) cannot hide what the file contains.
Scores come from edge_runtime's Classifier on the real LiteRT interpreter with its default
delegates, as on a device. (Its XNNPACK int8 kernels round a few in 10^4 conv outputs 1 LSB off
the reference kernels, which tflite-runtime 2.14 matches bit for bit; the sigmoid can magnify
that to ~10/256 on <1% of scores. The bounds below absorb it.)

Agreement is measured on validation images against the Keras model: max and mean |Δp| of the
probabilities; the fraction of images whose predicted digit set is identical, the Keras thresholds
applied to both (the conversion's own effect; with the file's re-tuned thresholds it is recorded
too); and the macro-F1 drop, each model with its own thresholds. Bounds, per format, with what was
measured on small CNNs trained for seconds (val macro-F1 0.5-0.85; fewer scores sit near a
threshold in a well-trained model, so its figures are better):

- float32: the same arithmetic in another order of summation, judged on the scores alone: max |Δp|
  measured ~4e-7, bound 1e-4 (catches a wrong op or training-mode dropout, leaves room for deeper
  models); mean |Δp| measured ~1e-8, bound 1e-6. Not on identical sets: a weak model's scores sit
  on its thresholds, and a 1e-7 difference flipped 21-32% of them in an exact conversion.
- float16: weights rounded to 11-bit mantissas, arithmetic in float32: max |Δp| measured
  3e-4 to 2e-3, bound 1e-2; identical sets measured >= 99.6%, bound 99%.
- dynamic: int8 weights, activations quantized on the fly: mean |Δp| measured ~1e-3, bound 0.01;
  identical sets on confident images (below) >= 99%.
- int8: scores move in steps of 1/256 and errors add up through the layers, so one image's max
  |Δp| (measured 0.03-0.07) is recorded, not bounded. Mean |Δp| measured ~0.003, bound 0.02 (five
  output steps). Identical sets over all images measured 0.968-0.98 for faithful conversions of
  seconds-trained models, but only 0.895 for a faithful one (F1 drop 0.003) of a 1-minute model
  whose scores crowd its thresholds, so that figure is recorded, not bounded; the bound is on the
  images whose Keras scores are all >= 0.05 from the thresholds, where a faithful conversion
  cannot flip a decision: >= 99% (0.16 overall for a file calibrated on dimmed images). Macro-F1 drop measured
  0.004-0.008, bound 0.02 (the "silent accuracy collapse"). The file must also be fully integer (no tensor of a floating type
  read or written by any op, int8 input and output) with input scale 1/255 and zero point -128,
  so that q = pixel - 128 exactly.
"""
from typing import NamedTuple

import numpy as np

from edge_runtime.metrics import binarize, evaluate

# Upper bounds, except identical_sets, a lower bound (see the module docstring for why).
BOUNDS = {
    "float32": {"max_abs_diff": 1e-4, "mean_abs_diff": 1e-6},
    "float16": {"max_abs_diff": 1e-2, "identical_sets": 0.99},
    "dynamic": {"mean_abs_diff": 0.01, "identical_sets_confident": 0.99},
    "int8": {"mean_abs_diff": 0.02, "identical_sets_confident": 0.99, "macro_f1_drop": 0.02},
}
# An image is "confident" when every Keras score lies at least this far from its threshold.
CONFIDENT_MARGIN = 0.05
FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16", "COMPLEX64", "COMPLEX128"}


def inspect(model_bytes):
    """Ops, tensor types and input/output quantization, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray(model_bytes))
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops, float_ops = {}, set()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(fbu.get_builtin_code_from_operator_code(code), "?")
            if name == "CUSTOM":
                name = f"CUSTOM:{_text(code.customCode)}"
            ops[name] = ops.get(name, 0) + 1
            if any(t >= 0 and fbu.type_to_name(graph.tensors[t].type) in FLOAT_TYPES for t in [*op.inputs, *op.outputs]):
                float_ops.add(name)
    main = model.subgraphs[0]
    io = {"input": _io(main.tensors[main.inputs[0]]), "output": _io(main.tensors[main.outputs[0]])}
    return {
        "size_bytes": len(model_bytes),
        "ops": dict(sorted(ops.items())),
        "float_ops": sorted(float_ops),
        "fully_integer": not float_ops and not any(n.startswith("CUSTOM") for n in ops)
        and io["input"]["dtype"] == io["output"]["dtype"] == "int8",
        "per_channel": any(len(t.quantization.scale) > 1 for g in model.subgraphs for t in g.tensors
                           if t.quantization is not None and t.quantization.scale is not None),
        "quantization": io,
    }


def _io(tensor):
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    q = tensor.quantization
    scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
    zero_point = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
    return {"dtype": fbu.type_to_name(tensor.type).lower(), "scale": scale, "zero_point": zero_point}


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Reference(NamedTuple):
    """What each converted file is compared with."""
    images: np.ndarray      # uint8 (N,H,W): the validation set, for threshold tuning
    labels: np.ndarray      # uint8 (N,10)
    subset: np.ndarray      # indices of the images compared with Keras
    keras: np.ndarray       # Keras probabilities on images[subset]
    thresholds: np.ndarray  # the Keras model's thresholds


def scores(model_path, images):
    """(N,10) probabilities of a .tflite file for uint8 (N,H,W) images, on the device's own code path.

    edge_runtime's Classifier with the real LiteRT interpreter and its default delegates: pixels
    quantized and scores dequantized with the tensors' own parameters, as on a device.
    """
    from edge_runtime.classifier import Classifier

    return Classifier(model_path, runtime="ai_edge_litert").scores(images)


def agreement(ref, val_scores, thresholds):
    """How closely a file's ``val_scores`` follow the Keras model, and what they are worth.

    ``identical_sets`` applies the Keras thresholds to both, so it measures the conversion alone;
    ``identical_sets_confident`` counts only images the Keras model is sure of (every score at least
    CONFIDENT_MARGIN from its threshold): a faithful conversion cannot flip those, however weak the
    model, while a borderline image may flip on one 1/256 step.
    ``identical_sets_own_thresholds`` gives the file its own (re-tuned) ones, as deployed.
    ``macro_f1``/``macro_f1_keras``: each with its own thresholds on the same images.
    """
    probs, labels = val_scores[ref.subset], ref.labels[ref.subset]
    diff = np.abs(probs.astype(np.float64) - ref.keras.astype(np.float64))
    expected = binarize(ref.keras, ref.thresholds)
    same = (binarize(probs, ref.thresholds) == expected).all(axis=1)
    confident = (np.abs(ref.keras - ref.thresholds) >= CONFIDENT_MARGIN).all(axis=1)
    f1 = evaluate(labels, probs, thresholds)["macro_f1"]
    keras_f1 = evaluate(labels, ref.keras, ref.thresholds)["macro_f1"]
    return {
        "num_images": int(len(diff)),
        "non_finite": int((~np.isfinite(val_scores)).any(axis=1).sum()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "identical_sets": float(same.mean()),
        "confident_images": int(confident.sum()),
        "identical_sets_confident": float(same[confident].mean()) if confident.any() else 1.0,
        "identical_sets_own_thresholds": float((binarize(probs, thresholds) == expected).all(axis=1).mean()),
        "macro_f1": f1,
        "macro_f1_keras": keras_f1,
        "macro_f1_drop": keras_f1 - f1,
    }


def problems(fmt, structure, agree):
    """Why this file must not ship ([] when it may)."""
    found = []
    if fmt == "int8":
        q = structure["quantization"]
        if not structure["fully_integer"]:
            custom = [n for n in structure["ops"] if n.startswith("CUSTOM")]
            found.append(f"not fully integer: {', '.join(structure['float_ops']) or 'no op'} read or write float "
                         f"tensors{', custom ops ' + ', '.join(custom) if custom else ''}, input "
                         f"{q['input']['dtype']}, output {q['output']['dtype']} (a layer has no int8 TFLite "
                         "builtin kernel; replace it)")
        elif abs(q["input"]["scale"] * 255 - 1) > 1e-3 or q["input"]["zero_point"] != -128:
            found.append(f"input quantization scale {q['input']['scale']:.6g}, zero point {q['input']['zero_point']} "
                         "instead of 1/255, -128: the calibration images do not span pixel values 0..255")
    if agree["non_finite"]:
        found.append(f"{agree['non_finite']} validation images get NaN or infinite scores")
    for key, bound in BOUNDS[fmt].items():
        value = agree[key]
        if not (value >= bound if key.startswith("identical_sets") else value <= bound):  # NaN fails too
            found.append(f"{key.replace('_', ' ')} {value:.4g} is beyond the {fmt} bound {bound:g}")
    return found
