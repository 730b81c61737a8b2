"""The acceleration check on the shipped models with every interpreter installed in this venv.

The device venv has tflite-runtime 2.14 (no int8 XNNPACK kernels: must be flagged), the workstation
venv ai-edge-litert (XNNPACK runs int8: must pass).
"""
import importlib.util
import struct

import pytest

from benchmarks import acceleration
from edge_runtime.classifier import MODELS_DIR
from models_for_tests import sample_images

SHIPPED = [MODELS_DIR / "model_float32.tflite", MODELS_DIR / "model_int8.tflite"]


def _installed(name):
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def images(mnist_dir):
    return sample_images(mnist_dir, num=4, seed=2)[0]


def _check(runtime, images):
    if not _installed(runtime):
        pytest.skip(f"{runtime} is not installed in this venv")
    report = acceleration.check_acceleration(SHIPPED, images, runtime=runtime, runs=12, rounds=2)
    assert report["runtime"]["name"] == runtime
    float32, int8 = report["models"]
    assert (float32["quantized"], int8["quantized"]) == (False, True)
    for m in report["models"]:
        assert m["p50_us_xnnpack"] > 0 and m["p50_us_no_delegate"] > 0
        assert m["xnnpack_speedup"] == pytest.approx(m["p50_us_no_delegate"] / m["p50_us_xnnpack"], rel=0.01)
    assert float32["xnnpack_partitions"] >= 1 and float32["status"] == "accelerated"
    return report, int8


def test_flags_tflite_runtime_int8(images):
    _, int8 = _check("tflite_runtime", images)
    assert int8["xnnpack_partitions"] == 0 and int8["status"] == "not accelerated"
    assert int8["reason"].startswith("tflite-runtime 2.14") and "no int8 XNNPACK kernels: use ai-edge-litert" \
        in int8["reason"]


def test_passes_ai_edge_litert_int8(images):
    report, int8 = _check("ai_edge_litert", images)
    assert int8["xnnpack_partitions"] >= 1 and int8["status"] != "not accelerated"
    if int8["status"] == "slower than float":  # possible on a busy machine: then it must say why
        assert int8["reason"]
    else:
        assert int8["status"] == "accelerated" and int8["reason"] is None


def test_describes_this_cpu():
    cpu = acceleration.describe_cpu()
    assert cpu["userland_bits"] == 8 * struct.calcsize("P")
    if cpu["features"] is not None:  # Linux
        flags = acceleration.cpuinfo_flags()
        arm = cpu["architecture"].lower().startswith(("arm", "aarch64"))
        assert set(cpu["features"]) == set(acceleration.ARM_FEATURES if arm else acceleration.X86_FEATURES)
        assert all(present == (name in flags) for name, present in cpu["features"].items())
    freq = acceleration.cpu_frequency_mhz()
    assert freq is None or freq["mhz"] > 0


@pytest.mark.parametrize("cpu, hint", [
    ({"architecture": "aarch64", "userland_bits": 32, "features": {"asimddp": True}}, "32-bit userland"),
    ({"architecture": "aarch64", "userland_bits": 64, "features": {"asimddp": False}}, "asimddp"),
    ({"architecture": "aarch64", "userland_bits": 64, "features": {"asimddp": True}}, None),
    ({"architecture": "x86_64", "userland_bits": 64, "features": {"avx512_vnni": False, "avx_vnni": False}}, "VNNI"),
    ({"architecture": "x86_64", "userland_bits": 64, "features": {"avx512_vnni": True}}, None),
])
def test_cpu_hints(cpu, hint):
    found = acceleration._cpu_hint(cpu)
    assert (found is None) if hint is None else (hint in found)


def test_frequency_drift_note():
    assert acceleration._drift({"mhz": 1500.0}, {"mhz": 1490.0}) is None
    assert "-20%" in acceleration._drift({"mhz": 1500.0}, {"mhz": 1200.0})
    assert acceleration._drift(None, None) == "CPU frequency not exposed by this system"
