"""What the CI's device venv installs on this Python and machine: prints pip arguments, and why on stderr.

The device venv runs the device-side tests without TensorFlow. Where it can, it uses tflite-runtime
2.14 with numpy<2: the oldest interpreter and numpy the device code supports (32-bit Pi OS has
nothing newer). tflite-runtime 2.14's wheels on PyPI are CPython 3.8-3.11 for Linux x86_64 and
aarch64 only; everywhere else (e.g. Python 3.12+, Raspberry Pi OS Trixie's 3.13) the venv gets the
edge extra, ai-edge-litert with numpy 2, which has wheels for Python 3.10-3.14 there.
tests/test_ci_recipe.py checks the choice.
"""
import platform
import sys

TFLITE_RUNTIME_PYTHONS = ((3, 8), (3, 11))   # first and last CPython with a tflite-runtime 2.14 wheel
TFLITE_RUNTIME_MACHINES = ("x86_64", "aarch64")
TFLITE_RUNTIME = ["numpy<2", "tflite-runtime==2.14.0", "-e", "."]
EDGE_EXTRA = ["-e", ".[edge]"]  # ai-edge-litert, as pyproject.toml pins it


def device_venv(version, machine, system="Linux"):
    """(pip arguments, reason) for a device venv on Python ``version`` (major, minor) and ``machine``."""
    where = f"Python {version[0]}.{version[1]} on {system} {machine}"
    lo, hi = TFLITE_RUNTIME_PYTHONS
    if system == "Linux" and machine in TFLITE_RUNTIME_MACHINES and lo <= tuple(version[:2]) <= hi:
        return TFLITE_RUNTIME, f"device venv: tflite-runtime 2.14 with numpy<2 ({where} has its wheel)"
    return EDGE_EXTRA, (f"device venv: ai-edge-litert with numpy 2, because tflite-runtime 2.14 has wheels only for "
                        f"Python {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]} on Linux x86_64/aarch64 (this is {where}); "
                        "its tflite-runtime-only tests skip")


if __name__ == "__main__":
    args, reason = device_venv(sys.version_info[:2], platform.machine(), platform.system())
    print(reason, file=sys.stderr)
    print(" ".join(args))
