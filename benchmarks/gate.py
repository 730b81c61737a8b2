"""The release gate: may int8 ship? Every model's macro-F1 and every digit's F1 drop, against limits.

The drop is judged on the point estimate (``on="point"``: this test set's ΔF1) or on the paired
bootstrap interval (``on="ci"``: its lower bound, the largest drop the data still allow, so a model
passes only when the test set shows its drop is within the limit -- a non-inferiority test).
"""
from edge_runtime.errors import MnistEdgeError

GATE_EXIT_CODE = 3       # exit status when the release gate fails (1: bad input, 2: bad arguments)
GATE_ON = ("point", "ci")


class GateFailed(MnistEdgeError):
    """The release gate rejected a model; distinct exit status so scripts can tell it from bad input."""
    exit_code = GATE_EXIT_CODE


def check_gate(report, max_f1_drop=None, min_macro_f1=None, on="point"):
    """The gate's verdict: every model's macro-F1 >= min, every digit's F1 drop vs the first <= max."""
    if on not in GATE_ON:
        raise ValueError(f"on must be one of {GATE_ON}, got {on!r}")
    models = report["models"]
    failures = []
    for m in models:
        if min_macro_f1 is not None and m["macro_f1"] < min_macro_f1:
            failures.append(f"{m['name']}: macro-F1 {m['macro_f1']:.4f} is below --min-macro-f1 {min_macro_f1}")
    if max_f1_drop is not None:
        base = models[0]
        for m in models[1:]:
            for digit, (f1, f1_base) in enumerate(zip(m["per_digit"]["f1"], base["per_digit"]["f1"])):
                failures += _drop_failure(m, base, digit, f1, f1_base, max_f1_drop, on)
    return {"max_f1_drop": max_f1_drop, "min_macro_f1": min_macro_f1, "on": on, "judged_on": _judged_on(report, on),
            "passed": not failures, "failures": failures}


def _drop_failure(m, base, digit, f1, f1_base, max_f1_drop, on):
    if on == "point":
        if f1_base - f1 > max_f1_drop + 1e-12:
            return [f"{m['name']}: digit {digit} F1 {f1:.4f} is {f1_base - f1:.4f} below "
                    f"{base['name']}'s {f1_base:.4f} (--max-f1-drop {max_f1_drop})"]
        return []
    boot = m["paired"]["bootstrap"]
    low = boot["per_digit"]["low"][digit]
    if -low > max_f1_drop + 1e-12:
        return [f"{m['name']}: digit {digit} F1 may be up to {-low:.4f} below {base['name']}'s (lower end of the "
                f"{boot['confidence']:.0%} interval of ΔF1 {low:+.4f}; point {f1 - f1_base:+.4f}) "
                f"(--max-f1-drop {max_f1_drop}, --gate-on ci)"]
    return []


def _judged_on(report, on):
    if on == "point":
        return "the point estimate of each digit's ΔF1 on this test set (--gate-on point)"
    confidence = next((m["paired"]["bootstrap"]["confidence"] for m in report["models"][1:] if m.get("paired")), 0.95)
    return (f"the lower end of each digit's {confidence:.0%} paired bootstrap interval of ΔF1, the largest drop the "
            "test set still allows (--gate-on ci); --min-macro-f1 on the point estimate")
