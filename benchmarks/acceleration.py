"""Is int8 really accelerated on this device? Measured, not assumed, with a one-line reason when not.

int8 is only fast when the interpreter hands the int8 graph to an optimised delegate (XNNPACK) and
the CPU has instructions for int8 dot products. tflite-runtime 2.14 has no int8 XNNPACK kernels
(its int8 runs on reference kernels, ~12x slower than its float here); 32-bit ARM userlands and x86
without VNNI lack the fast dot-product paths; a throttling Raspberry Pi drifts during a run. So for
every model this times the same images with and without the default delegates, asks the
interpreter whether XNNPACK took part of the graph, and records the CPU's relevant features and
its frequency before and after.
"""
import platform
import struct
import time
from pathlib import Path

import numpy as np

from edge_runtime import Classifier

CHECK = dict(runs=60, rounds=3)  # one-image inferences per model and delegate setting; interleaved rounds
QUANTIZED_INPUTS = ("int8", "uint8")
# Instruction-set flags that decide int8 speed, as /proc/cpuinfo spells them.
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("asimd", "neon", "asimddp", "i8mm", "sve", "bf16")
FREQUENCY_DRIFT = 0.10  # a change of the mean CPU frequency beyond this share is reported
NO_INT8_KERNELS = {"tflite_runtime": "{name} {version} has no int8 XNNPACK kernels: use ai-edge-litert"}


def cpuinfo_flags():
    """The CPU's feature flags (x86 'flags', ARM 'Features') from /proc/cpuinfo; empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("flags", "features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def describe_cpu():
    """Architecture, userland word size and the int8-relevant features present or absent."""
    machine = platform.machine().lower()
    arm = machine.startswith(("arm", "aarch64"))
    flags = cpuinfo_flags()
    wanted = ARM_FEATURES if arm else X86_FEATURES
    return {"architecture": platform.machine(), "userland_bits": 8 * struct.calcsize("P"),
            "features": {name: name in flags for name in wanted} if flags else None}


def cpu_frequency_mhz():
    """Mean current CPU frequency in MHz and where it was read, or None when the system hides it.

    cpufreq's scaling_cur_freq (kHz) is live on a Raspberry Pi; /proc/cpuinfo's 'cpu MHz' is the
    fallback (x86; on VMs often the nominal value).
    """
    values = []
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        try:
            values.append(int(path.read_text().strip()) / 1000)
        except (OSError, ValueError):
            pass
    if values:
        return {"mhz": round(float(np.mean(values)), 1), "source": "cpufreq scaling_cur_freq"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            values = [float(line.split(":")[1]) for line in f if line.lower().startswith("cpu mhz")]
    except (OSError, ValueError, IndexError):
        values = []
    return {"mhz": round(float(np.mean(values)), 1), "source": "/proc/cpuinfo cpu MHz"} if values else None


def delegate_partitions(classifier):
    """How many parts of the graph a delegate (XNNPACK) took, from the interpreter's node list.

    Uses the interpreters' private ``_get_ops_details`` (present in ai-edge-litert, tflite-runtime and
    tf.lite); None when it is missing, and the check then judges by speed alone.
    """
    try:
        ops = classifier.interpreter._get_ops_details()
    except (AttributeError, RuntimeError, ValueError):
        return None
    return sum(op.get("op_name") == "DELEGATE" for op in ops)


def _time_settings(classifiers, image, runs, rounds):
    """Median one-image latency in µs per classifier key, the keys visited in rotated rounds."""
    keys = list(classifiers)
    samples = {key: [] for key in keys}
    for key in keys:
        classifiers[key].scores(image)  # warm-up: first invoke allocates
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            scores = classifiers[key].scores
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter_ns()
                scores(image)
                samples[key].append(time.perf_counter_ns() - start)
    return {key: float(np.median(v)) / 1e3 for key, v in samples.items()}


def check_acceleration(models, images, runtime="auto", threads=1, runs=CHECK["runs"], rounds=CHECK["rounds"]):
    """Per model: latency with and without default delegates, XNNPACK partitions, status and reason.

    ``models``: paths, the first the float baseline that "slower than float" refers to.
    """
    models = [Path(m) for m in models]
    clfs = {(i, x): Classifier(str(p), num_threads=threads, runtime=runtime, use_xnnpack=x)
            for i, p in enumerate(models) for x in (True, False)}
    before = cpu_frequency_mhz()
    p50 = _time_settings(clfs, images[:1], runs, rounds)
    frequency = frequency_record(before, cpu_frequency_mhz())
    cpu = describe_cpu()
    entries = []
    for i, path in enumerate(models):
        clf = clfs[i, True]
        entries.append({
            "name": path.name, "format": clf.model_format,
            "quantized": np.dtype(clf.input_details["dtype"]).name in QUANTIZED_INPUTS,
            "p50_us_xnnpack": round(p50[i, True], 2), "p50_us_no_delegate": round(p50[i, False], 2),
            "xnnpack_speedup": round(p50[i, False] / p50[i, True], 2),
            "xnnpack_partitions": delegate_partitions(clf)})
    base = entries[0]
    for entry in entries:
        entry["status"], entry["reason"] = _verdict(entry, base, cpu, clfs[0, True])
    return {"runtime": {"name": clfs[0, True].runtime_name, "version": clfs[0, True].runtime_version},
            "threads": threads, "runs": runs, "cpu": cpu, "frequency": frequency, "models": entries}


def _took_graph(entry):
    if entry["xnnpack_partitions"] is not None:
        return entry["xnnpack_partitions"] > 0
    return entry["xnnpack_speedup"] > 1.5  # unknown node list: judge by speed


def _verdict(entry, base, cpu, clf):
    """(status, one-line reason or None) for one model."""
    runtime = {"name": clf.runtime_name.replace("_", "-"), "version": clf.runtime_version}
    if not _took_graph(entry):
        known = NO_INT8_KERNELS.get(clf.runtime_name) if entry["quantized"] else None
        reason = (known.format(**runtime) if known else
                  f"XNNPACK took none of this graph in {runtime['name']} {runtime['version']}: "
                  "it runs on the reference kernels")
        return "not accelerated", reason
    if entry["quantized"] and entry is not base and not base["quantized"] \
            and entry["p50_us_xnnpack"] > base["p50_us_xnnpack"]:
        return "slower than float", _cpu_hint(cpu) or ("XNNPACK runs the int8 graph, yet it is slower than "
                                                       "float here: per-op overhead dominates this small model")
    return "accelerated", None


def _cpu_hint(cpu):
    """Why this CPU runs int8 slowly, from its features, or None."""
    features, arch = cpu["features"] or {}, cpu["architecture"].lower()
    if arch.startswith(("arm", "aarch64")):
        if cpu["userland_bits"] == 32:
            return "32-bit userland: XNNPACK's fast int8 kernels are AArch64-only; use a 64-bit OS"
        if features and not features.get("asimddp"):
            return "the CPU has no ARM dot-product instructions (asimddp): int8 convolutions cannot use SDOT"
        return None
    if features and not (features.get("avx512_vnni") or features.get("avx_vnni")):
        return "the CPU has no AVX-VNNI / AVX-512 VNNI: XNNPACK's int8 path on x86 is weaker than its float path"
    return None


def frequency_record(before, after):
    """Mean CPU frequency before and after a timed stretch, and a note when it drifted or is hidden."""
    return {"before": before, "after": after, "note": _drift(before, after)}


def _drift(before, after):
    """A note when the mean CPU frequency moved during timing (throttling, scaling), else None."""
    if not before or not after or not before["mhz"]:
        return None if before and after else "CPU frequency not exposed by this system"
    change = after["mhz"] / before["mhz"] - 1
    if abs(change) > FREQUENCY_DRIFT:
        return (f"CPU frequency moved {change:+.0%} during timing ({before['mhz']:.0f} -> {after['mhz']:.0f} MHz): "
                "throttling or frequency scaling; latencies drift")
    return None
