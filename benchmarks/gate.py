"""The release gate: may int8 ship? Every model's macro-F1 and every digit's F1 drop, against limits."""
from edge_runtime.errors import MnistEdgeError

GATE_EXIT_CODE = 3       # exit status when the release gate fails (1: bad input, 2: bad arguments)


class GateFailed(MnistEdgeError):
    """The release gate rejected a model; distinct exit status so scripts can tell it from bad input."""
    exit_code = GATE_EXIT_CODE


def check_gate(report, max_f1_drop=None, min_macro_f1=None):
    """The gate's verdict: every model's macro-F1 >= min, every digit's F1 drop vs the first <= max."""
    models = report["models"]
    failures = []
    for m in models:
        if min_macro_f1 is not None and m["macro_f1"] < min_macro_f1:
            failures.append(f"{m['name']}: macro-F1 {m['macro_f1']:.4f} is below --min-macro-f1 {min_macro_f1}")
    if max_f1_drop is not None:
        base = models[0]
        for m in models[1:]:
            for digit, (f1, f1_base) in enumerate(zip(m["per_digit"]["f1"], base["per_digit"]["f1"])):
                if f1_base - f1 > max_f1_drop + 1e-12:
                    failures.append(f"{m['name']}: digit {digit} F1 {f1:.4f} is {f1_base - f1:.4f} below "
                                    f"{base['name']}'s {f1_base:.4f} (--max-f1-drop {max_f1_drop})")
    return {"max_f1_drop": max_f1_drop, "min_macro_f1": min_macro_f1, "passed": not failures,
            "failures": failures}
