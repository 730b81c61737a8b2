""".ci/run's device venv: tflite-runtime where PyPI has its wheel, else ai-edge-litert (the choice .ci/device_venv.py makes)."""
import importlib.util
import os
import shutil
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
    assert '"$python" .ci/device_venv.py' in script and "source .ci/env.sh" in script
    env = (REPO / ".ci" / "env.sh").read_text()
    assert 'if [ -z "${MNIST_EDGE_DATA:-}" ] && [ -d "$shared" ]' in env  # never exported to a missing folder


def _source_env_sh(tmp_path, python):
    """Run .ci/env.sh's checks in a copy of .ci/, so nothing is installed."""
    (tmp_path / "repo" / ".ci").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / ".ci" / "env.sh", tmp_path / "repo" / ".ci")
    return subprocess.run(["bash", "-c", "set -e; source .ci/env.sh; echo sourced"], cwd=tmp_path / "repo",
                          env={**os.environ, "PYTHON": str(python)}, capture_output=True, text=True)


def test_ci_scripts_accept_this_python(tmp_path):
    run = _source_env_sh(tmp_path, sys.executable)
    assert run.returncode == 0 and run.stdout.strip() == "sourced", run.stderr


def test_ci_scripts_refuse_a_python_outside_3_10_to_3_13(tmp_path):
    fake = tmp_path / "python3.9"  # answers -V like Python 3.9 and fails the version check like it
    fake.write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Python 3.9.18"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    run = _source_env_sh(tmp_path, fake)
    assert run.returncode == 1 and run.stdout == ""
    assert "needs Python 3.10-3.13 (TensorFlow's range)" in run.stderr and "is Python 3.9.18" in run.stderr
