"""`mnist-edge train --strategy multi-worker` / `--workers N`: worker processes on 127.0.0.1 only.

Every run here is bounded (TIMEOUT) and its processes are always stopped. The tiny runs barely
learn in 2 epochs, so the single- and two-worker val macro-F1 are compared with a loose tolerance;
what must match exactly is the schema of what they write, and who writes it.
"""
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, needs_tf
from edge_runtime.errors import MnistEdgeError
from train import dataset_folder
from train.cli import main
from train.multi_worker import parse_tf_config

SIZES = {"train": 320, "val": 120, "test": 120}
TWO_EPOCHS = ["--epochs", "2", "--batch-size", "64", "--patience", "10"]
TIMEOUT = 900  # seconds for one launch of two workers on a busy 2-core machine
F1_TOLERANCE = 0.1  # tiny models near their starting point: only gross breakage moves val macro-F1 this far


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("data")
    dataset_folder.write_dataset(out, sizes=SIZES, seed=0, mnist_path=mnist_dir)
    return out


def env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def train_command(*args):
    return [sys.executable, "-c", "from train.cli import main; main()", "train", *map(str, args)]


def worker_folder(run_dir, worker):
    """Where a non-chief worker checkpoints (train.multi_worker.output_folder)."""
    key = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mnist-edge-{key}-worker{worker}"


def epochs_in(run_dir):
    with open(run_dir / "history.csv") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


GOOD = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("value, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster: 1}", "TF_CONFIG is not JSON"),
    ("[1, 2]", 'no "cluster" object'),
    (json.dumps({"cluster": {}, "task": GOOD["task"]}), "no cluster.worker list"),
    (json.dumps({**GOOD, "cluster": {"worker": "127.0.0.1:2001"}}), "must be a list of \"host:port\" strings"),
    (json.dumps({**GOOD, "cluster": {"worker": ["127.0.0.1"]}}), "is not host:port"),
    (json.dumps({**GOOD, "cluster": {"worker": ["a:1", "a:1"]}}), "lists an address twice"),
    (json.dumps({**GOOD, "cluster": {**GOOD["cluster"], "ps": ["a:3"]}}), "only \"chief\""),
    (json.dumps({"cluster": GOOD["cluster"]}), "TF_CONFIG task must be"),
    (json.dumps({**GOOD, "task": {"type": "worker", "index": 2}}), "task.index 2 is out of range"),
    (json.dumps({**GOOD, "task": {"type": "worker", "index": "0"}}), "task.index \"0\" is out of range"),
])
def test_malformed_tf_config_is_named_in_one_line(value, message):
    with pytest.raises(MnistEdgeError, match=re.escape(message)) as error:
        parse_tf_config(value)
    assert "\n" not in str(error.value)


def test_tf_config_worker_ids_run_chief_first():
    assert parse_tf_config(json.dumps(GOOD)) == (("127.0.0.1:2001", "127.0.0.1:2002"), 1)
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = parse_tf_config(json.dumps(with_chief))
    assert cluster.addresses == ("c:1", "w:1", "w:2") and cluster.worker == 1 and not cluster.is_chief
    assert parse_tf_config(json.dumps({**with_chief, "task": {"type": "chief", "index": 0}})).is_chief


def test_the_command_rejects_a_bad_tf_config_before_loading_tensorflow(data_dir, tmp_path):
    for value, message in (("{not json", "Error: TF_CONFIG is not JSON"), ("", "needs the TF_CONFIG")):
        result = CliRunner().invoke(main, ["train", "--data", str(data_dir), "--out", str(tmp_path / "run"),
                                           "--strategy", "multi-worker"], env={"TF_CONFIG": value})
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(main, ["train", "--data", str(data_dir), "--out", str(tmp_path / "run"),
                                       "--workers", "2", "--strategy", "mirrored"])
    assert result.exit_code == 2 and "--workers runs --strategy multi-worker" in result.output


@needs_tf
def test_each_worker_gets_its_own_share_of_every_epoch(data_dir, mnist_dir):
    from train.trainer import fixed_share

    images = np.arange(11, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    share = fixed_share(images, np.zeros((11, 10), np.uint8), seed=3)
    parts = [share(4, worker, 2)[0][:, 0, 0] for worker in (0, 1)]
    assert sorted(np.concatenate(parts)) == list(range(11)) and len(parts[0]) == 6  # disjoint, all of them
    assert (share(4, 0, 2)[0] == share(4, 0, 2)[0]).all() and not (share(5, 0, 2)[0] == share(4, 0, 2)[0]).all()

    options = {"compose": "fresh", "mnist": str(mnist_dir), "digit_scale": (0.6, 1.2), "seed": 0}
    info = json.loads((data_dir / "dataset.json").read_text())
    composer = dataset_folder.fresh_images(options, info, str(data_dir))
    (a, _), (b, _), (a_again, _) = composer.epoch(1, 0, 2), composer.epoch(1, 1, 2), composer.epoch(1, 0, 2)
    assert len(a) == len(b) == SIZES["train"] // 2 and (a == a_again).all() and not (a == b).all()


@pytest.fixture(scope="module")
def single_worker_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    proc = subprocess.run(train_command("--data", data_dir, "--out", out, *TWO_EPOCHS),
                          env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def keys(tree):
    """The schema of a metadata dict: its nested key paths (lists of dicts by their first element)."""
    if isinstance(tree, dict):
        return {(k, *rest) for k, v in tree.items() for rest in keys(v) or {()}}
    return set()


@needs_tf
def test_two_workers_write_the_run_a_single_worker_writes(data_dir, single_worker_run, tmp_path):
    out = tmp_path / "two"
    proc = subprocess.run(train_command("--data", data_dir, "--out", out, *TWO_EPOCHS, "--workers", "2"),
                          env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[worker 1] worker 1 of 2 done" in proc.stdout and "[worker 0] Wrote" in proc.stdout

    single, two = (json.loads((run / "metadata.json").read_text()) for run in (single_worker_run, out))
    assert keys(two) == keys(single)
    assert two["num_replicas"] == 2 and single["num_replicas"] == 1 and two["epochs_run"] == 2
    assert two["options"]["strategy"] == "multi-worker" and two["training_images"]["mode"] == "fresh"
    assert abs(two["metrics"]["val"]["macro_f1"] - single["metrics"]["val"]["macro_f1"]) < F1_TOLERANCE
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single_worker_run.iterdir())
    assert epochs_in(out) == ["1", "2"]
    assert not worker_folder(out, 1).exists()  # worker 1 checkpointed there and removed it


class Launch:
    """`--workers 2` in a subprocess whose output is collected as it comes (worker pids included)."""

    def __init__(self, out, *args):
        self.out, self.lines = str(out), []
        self.proc = subprocess.Popen(train_command("--out", out, *args, "--workers", "2"), env=env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def worker_pids(self):
        return [int(m.group(1)) for line in list(self.lines) if (m := re.search(r"worker \d: pid (\d+)", line))]

    def running_workers(self):
        """Worker pids still running this run (checked by command line: a reaped pid may be reused)."""
        def ours(pid):
            try:
                return self.out in Path(f"/proc/{pid}/cmdline").read_text() and \
                    Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                return False
        return [pid for pid in self.worker_pids() if ours(pid)]

    def stop(self):
        """Kill the launcher and any worker still running (the launcher normally stops them itself)."""
        if self.proc.poll() is None:
            self.proc.kill()
        for pid in self.running_workers():
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=5)


@needs_tf
def test_killed_worker_then_restart_resumes_from_the_committed_epoch(data_dir, tmp_path):
    out = tmp_path / "killed"
    state = out / "checkpoint" / "state.json"
    first = Launch(out, "--data", data_dir, "--compose", "fixed", "--epochs", "3", "--batch-size", "64",
                   "--patience", "10")
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state.exists():
            assert first.proc.poll() is None, "".join(first.lines)
            assert time.monotonic() < deadline, "no epoch committed in time"
            time.sleep(0.02)
        os.kill(first.worker_pids()[1], signal.SIGKILL)  # mid-epoch 2: worker 1 dies
        assert first.proc.wait(timeout=120) == 1  # the launcher stops worker 0 and fails
        first.reader.join(timeout=5)
        output = "".join(first.lines)
        assert "Error: worker 1 exited with status -9; stopped the others" in output
        assert "--resume --workers 2" in output
        assert first.running_workers() == []
    finally:
        first.stop()
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 3

    again = subprocess.run(train_command("--out", out, "--resume", "--workers", "2"),
                           env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    for worker in (0, 1):
        assert f"[worker {worker}] Resuming {out} after epoch {done}" in again.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["epochs_run"] == 3 and meta["num_replicas"] == 2 and meta["training_images"]["mode"] == "fixed"
    assert epochs_in(out) == ["1", "2", "3"]
    assert not worker_folder(out, 1).exists()


@needs_tf
def test_without_the_launcher_a_lost_worker_ends_the_other_with_one_line(data_dir, tmp_path):
    from train.multi_worker import free_loopback_ports

    out, state = tmp_path / "lost", tmp_path / "lost" / "checkpoint" / "state.json"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_loopback_ports(2)]}
    procs = [subprocess.Popen(train_command("--data", data_dir, "--out", out, "--epochs", "50", "--batch-size", "64",
                                            "--strategy", "multi-worker"),
                              env=env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state.exists():
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
            time.sleep(0.05)
        procs[1].kill()
        stdout, stderr = procs[0].communicate(timeout=300)  # TensorFlow notices the missing heartbeats
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(worker_folder(out, 1), ignore_errors=True)  # killed worker 1's; a restart would remove it
    assert procs[0].returncode == 1
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("Error: a worker stopped")
    assert "restart every worker with --resume" in stderr
