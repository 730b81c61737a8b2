"""Training across several processes or machines: TF_CONFIG, the strategy, chief and worker folders, a local launcher.

``--strategy multi-worker`` runs ``tf.distribute.MultiWorkerMirroredStrategy``: every worker holds
a full copy of the model and gradients are all-reduced over gRPC every step. The cluster comes from
the standard ``TF_CONFIG`` variable, one per worker: the same ``cluster`` everywhere and this
worker's ``task``. Worker ids run chief first (``cluster.chief`` if given, else ``worker`` 0), as
TensorFlow numbers input pipelines, so id 0 is the chief.

Only the chief writes RUN_DIR. Keras needs every worker to run the same callbacks (a save may
take part in collectives), so the others checkpoint into their own folder under the system temp
folder, named after RUN_DIR and the worker id: deleted when the worker ends, and at start, so a
worker killed with SIGKILL leaves nothing behind once it is restarted.

Everything TensorFlow-specific is imported inside the functions that need it: the command parses
TF_CONFIG and launches local workers without loading TensorFlow.
"""
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from edge_runtime.errors import MnistEdgeError, first_line

STRATEGY = "multi-worker"  # the --strategy value
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
STOP_GRACE_SECONDS = 10  # a stopped worker gets this long after SIGTERM before SIGKILL


class Cluster(NamedTuple):
    """What TF_CONFIG says, checked: worker addresses (chief first) and which of them this process is."""
    addresses: tuple
    worker: int

    @property
    def is_chief(self):
        return self.worker == 0


def parse_tf_config(text):
    """The Cluster of a TF_CONFIG value; a one-line MnistEdgeError naming what is wrong otherwise."""
    if text is None or not text.strip():
        raise MnistEdgeError(f"--strategy {STRATEGY} needs the TF_CONFIG environment variable (the cluster's worker "
                             f"addresses and this worker's task), e.g. TF_CONFIG='{EXAMPLE}'; or pass --workers N "
                             f"to launch N workers on this machine")
    try:
        config = json.loads(text)
    except ValueError as e:
        raise MnistEdgeError(f"TF_CONFIG is not JSON ({e}); expected e.g. {EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise MnistEdgeError(f"TF_CONFIG has no \"cluster\" object; expected e.g. {EXAMPLE}")
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise MnistEdgeError(f"TF_CONFIG cluster has {', '.join(sorted(unknown))}: only \"chief\" (optional, one "
                             f"address) and \"worker\" take part in multi-worker training")
    groups = {kind: _addresses(cluster, kind) for kind in ("chief", "worker")}
    if not groups["worker"]:
        raise MnistEdgeError("TF_CONFIG has no cluster.worker list of \"host:port\" addresses")
    if len(groups["chief"]) > 1:
        raise MnistEdgeError(f"TF_CONFIG cluster.chief has {len(groups['chief'])} addresses; it takes at most one")
    addresses = groups["chief"] + groups["worker"]
    if len(set(addresses)) < len(addresses):
        raise MnistEdgeError("TF_CONFIG cluster lists an address twice; every worker needs its own host:port")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in groups or not groups[task.get("type")]:
        kinds = " or ".join(f'"{k}"' for k in groups if groups[k])
        raise MnistEdgeError(f"TF_CONFIG task must be {{\"type\": {kinds}, \"index\": N}} naming this process; "
                             f"got {json.dumps(task)}")
    kind, index = task["type"], task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(groups[kind]):
        raise MnistEdgeError(f"TF_CONFIG task.index {json.dumps(index)} is out of range: cluster.{kind} has "
                             f"{len(groups[kind])} address(es), so it must be 0..{len(groups[kind]) - 1}")
    return Cluster(tuple(addresses), index + (len(groups["chief"]) if kind == "worker" else 0))


def _addresses(cluster, kind):
    value = cluster.get(kind, [])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise MnistEdgeError(f"TF_CONFIG cluster.{kind} must be a list of \"host:port\" strings; "
                             f"got {json.dumps(value)}")
    for address in value:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise MnistEdgeError(f"TF_CONFIG cluster.{kind} address {address!r} is not host:port (port 1..65535)")
    return value


def cluster_from_env():
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def make_strategy():
    """MultiWorkerMirroredStrategy from TF_CONFIG, patched for Keras 3 (see _KerasReduce).

    Must run before any other TensorFlow op: the strategy configures the process's collective
    runtime, which TensorFlow fixes when it first initialises its context.
    """
    import tensorflow as tf

    class _KerasReduce(tf.distribute.MultiWorkerMirroredStrategy):
        """Keras 3.15's fit reduces every scalar log with ``reduce("MEAN", value, axis=0)``, which
        MultiWorkerMirroredStrategy rejects for rank-0 values; across replicas (axis None) is what it means."""

        def reduce(self, reduce_op, value, axis):
            if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return _KerasReduce()


def is_multi_worker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def prepare_model(model, strategy, input_shape):
    """Build the model's metrics, loss and optimizer state before fit, and skip Keras' own build.

    Keras 3.15's fit builds them from the first batch, which it first ``reduce``s across replicas as
    one nest; MultiWorkerMirroredStrategy does not reduce nests and fails. Built here from one
    blank image, everything already exists and Keras' step is not needed.
    """
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=(tf.zeros((1, *input_shape)), tf.zeros((1, model.output.shape[-1]))))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def check_workers(strategy, epochs_done, batch_size):
    """Fail on every worker unless all of them resume from the same committed epoch (all read RUN_DIR)
    and every replica gets images in each step."""
    import tensorflow as tf

    if batch_size < strategy.num_replicas_in_sync:
        raise MnistEdgeError(f"--batch-size {batch_size} is the global batch and must be at least the "
                             f"{strategy.num_replicas_in_sync} replicas, one image each")

    @tf.function  # strategy.run outside a tf.function warns of overhead
    def everyones():
        return strategy.gather(strategy.run(lambda: tf.constant([epochs_done], tf.int64)), axis=0)

    seen = [int(v) for v in everyones().numpy()]
    if len(set(seen)) > 1:
        raise MnistEdgeError(f"the workers see different committed epochs in RUN_DIR ({seen}, chief first): every "
                             f"worker must read the chief's RUN_DIR (shared storage) to resume")


@contextlib.contextmanager
def lost_worker_errors():
    """When a worker dies the others' collectives fail (at once, or once its heartbeats stop): one line."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as e:
        reason = re.sub(r"\{\{.*?\}\}\s*", "", first_line(e, 1000))[:200]  # without the op's {{function_node …}}
        raise MnistEdgeError(f"a worker stopped, so this one cannot go on (TensorFlow: {reason}); "
                             f"restart every worker with --resume to continue after the last committed epoch") from None


@contextlib.contextmanager
def output_folder(run_dir, strategy):
    """The folder this process checkpoints into: RUN_DIR for the chief (and single-process runs), else a
    temporary folder of its own, emptied at start (a killed predecessor's) and removed at the end."""
    run_dir = Path(run_dir)
    if strategy.extended.should_checkpoint:
        yield run_dir
        return
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"mnist-edge-{key}-worker{cluster_from_env().worker}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def free_loopback_ports(count):
    """Ports free on 127.0.0.1 now (held together while choosing, so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch_local(workers, train_args, log):
    """Run ``mnist-edge train ARGS --strategy multi-worker`` as ``workers`` processes on 127.0.0.1.

    Each gets its own TF_CONFIG; their output is streamed line by line, prefixed ``[worker N]``.
    When one fails the others are stopped (SIGTERM, then SIGKILL) and a one-line error names it.
    """
    addresses = [f"127.0.0.1:{port}" for port in free_loopback_ports(workers)]
    command = [sys.executable, "-c", "from train.cli import main; main()", "train", *train_args,
               "--strategy", STRATEGY]
    base = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs, lock = [], threading.Lock()
    try:
        for i in range(workers):
            config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
            procs.append(subprocess.Popen(command, env={**base, "TF_CONFIG": json.dumps(config)}, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            log(f"[launcher] worker {i}: pid {procs[-1].pid}, {addresses[i]}")
        readers = [threading.Thread(target=_stream, args=(p, f"[worker {i}] ", log, lock), daemon=True)
                   for i, p in enumerate(procs)]
        for reader in readers:
            reader.start()
        failed = _wait_for_all(procs)
        for reader in readers:
            reader.join(timeout=5)
    except KeyboardInterrupt:
        _stop(procs)
        raise MnistEdgeError("interrupted; stopped the workers") from None
    if failed is not None:
        raise MnistEdgeError(f"worker {failed} exited with status {procs[failed].returncode}; stopped the others")


def _stream(proc, prefix, log, lock):
    for line in proc.stdout:
        with lock:
            log(prefix + line.rstrip("\n"))


def _wait_for_all(procs):
    """None when every worker exits 0; else the first failed worker's index, after stopping the rest."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            _stop(procs)
            return failed[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.2)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
