"""Which ops of a loaded model run in integer arithmetic, and which ones XNNPACK executes.

Why not the delegate's own verdict: LiteRT's benchmark reports ``fully_accelerated: true`` for a
graph that wraps a float REDUCE_MAX in DEQUANTIZE/QUANTIZE, because XNNPACK runs float ops too;
"accelerated" does not say "integer". So the two questions are answered separately:

- arithmetic: the types of the tensors each op reads and writes (int8/int16 activations, or float);
- executor: the interpreter's own execution plan after the default delegates were applied. Each
  DELEGATE node replaces a convex set of the model's ops; walking back from its outputs to its
  inputs recovers that set, so an op XNNPACK declined (tflite-runtime 2.14 declines every int8 op)
  stays on a builtin kernel and shows as such.

``benchmarks.acceleration`` measures the same thing from the outside on the device: latency with
and without the default delegates, interleaved, next to this per-op account.
"""
import numpy as np

DELEGATE = "DELEGATE"


def op_placement(interpreter):
    """One dict per op of the model, in execution order: op, input and output types, executor.

    ``interpreter`` is allocated, with or without delegates; ``executor`` is ``"XNNPACK"`` for
    ops inside a DELEGATE node and ``"builtin"`` otherwise. ``input``/``output``: the types of the
    op's first input (the activation) and first output (weights and biases are integer in a quantized op).
    """
    details = interpreter._get_ops_details()  # the only API that lists nodes (in all three runtimes)
    ops = [d for d in details if d["op_name"] != DELEGATE]
    producer = {t: i for i, d in enumerate(ops) for t in d["outputs"]}
    delegated = set()
    for node in (d for d in details if d["op_name"] == DELEGATE):
        boundary, todo = set(node["inputs"]), list(node["outputs"])
        while todo:
            tensor = todo.pop()
            i = producer.get(tensor)
            if tensor in boundary or i is None or i in delegated:
                continue
            delegated.add(i)
            todo.extend(ops[i]["inputs"])
    types = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    return [{
        "op": d["op_name"],
        "input": types.get(d["inputs"][0], "-") if len(d["inputs"]) else "-",
        "output": types.get(d["outputs"][0], "-") if len(d["outputs"]) else "-",
        "executor": "XNNPACK" if i in delegated else "builtin",
    } for i, d in enumerate(ops)]


def describe(placement):
    """Ops grouped as 'CONV_2Dx8 int8 XNNPACK, ...' in order of first appearance."""
    groups = {}
    for p in placement:
        kind = "float" if p["input"].startswith("float") or p["output"].startswith("float") else p["output"]
        key = (p["op"], kind if p["op"] not in ("QUANTIZE", "DEQUANTIZE") else f"{p['input']}->{p['output']}",
               p["executor"])
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"{op}{'x%d' % n if n > 1 else ''} {kind} {executor}" for (op, kind, executor), n in groups.items())

