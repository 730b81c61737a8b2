""".ci/run's device venv: tflite-runtime where PyPI has its wheel, else ai-edge-litert (the choice .ci/device_venv.py makes)."""
import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / ".ci" / "device_venv.py"
spec = importlib.util.spec_from_file_location("device_venv", SCRIPT)
device_venv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_venv)


@pytest.mark.parametrize("version, machine", [((3, 10), "x86_64"), ((3, 11), "x86_64"), ((3, 11), "aarch64"),
                                              ((3, 9), "aarch64")])
def test_tflite_runtime_where_it_has_a_wheel(version, machine):
    args, reason = device_venv.device_venv(version, machine)
    assert args == ["numpy<2", "tflite-runtime==2.14.0", "-e", "."]
    assert reason.startswith("device venv: tflite-runtime 2.14 with numpy<2")


@pytest.mark.parametrize("version, machine, system", [((3, 12), "x86_64", "Linux"), ((3, 13), "aarch64", "Linux"),
                                                      ((3, 14), "x86_64", "Linux"), ((3, 11), "armv7l", "Linux"),
                                                      ((3, 11), "arm64", "Darwin")])
def test_ai_edge_litert_elsewhere_and_says_why(version, machine, system):
    args, reason = device_venv.device_venv(version, machine, system)
    assert args == ["-e", ".[edge]"]
    assert reason.startswith("device venv: ai-edge-litert with numpy 2, because tflite-runtime 2.14 has wheels only "
                             "for Python 3.8-3.11 on Linux x86_64/aarch64")
    assert f"(this is Python {version[0]}.{version[1]} on {system} {machine})" in reason


def test_script_prints_pip_arguments_and_the_reason_apart():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    assert run.stdout.split() in (["numpy<2", "tflite-runtime==2.14.0", "-e", "."], ["-e", ".[edge]"])
    assert run.stderr.startswith("device venv: ")


def test_ci_run_uses_the_recipe_and_leaves_mnist_to_the_project():
    script = (REPO / ".ci" / "run").read_text()
    assert '.ci/device_venv.py' in script and "tflite-runtime" not in script.split("# --- the test command")[0] \
        .replace("# Device venv, no TensorFlow: tflite-runtime", "")
    assert 'if [ -z "${MNIST_EDGE_DATA:-}" ] && [ -d "$shared" ]' in script  # never exported to a missing folder
