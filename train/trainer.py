"""The training run behind ``mnist-edge train`` (TensorFlow is imported here, and only here).

Resume: after every epoch, one callback writes the model with its optimizer state
(``checkpoint/epoch-NNN.keras``), the best weights so far when they improved (``best-NNN.npz``),
then ``state.json`` (epochs done, early-stopping counters, history, options, time) by atomic
replace. The state file is the commit point: a kill at any moment leaves the previous state naming
complete files, so ``--resume`` restarts from the last finished epoch and loses only the running one.
Under multi-worker only the chief commits into RUN_DIR; the other workers run the same callback
into a folder of their own (train/multi_worker.py) and all resume from the chief's state.
history.csv is rewritten from the state, so it never holds a row the checkpoint does not (Keras'
CSVLogger would duplicate the row of an epoch killed between its log line and the checkpoint).

Determinism: every epoch's data order is a stateless shuffle keyed by (seed, epoch), so a resumed
run sees exactly the batches an uninterrupted one would; weights start from ``seed``. With
``deterministic`` TensorFlow's op determinism is on too. Then the same seed, machine, thread count
and TensorFlow build give the same weights, resumed or not. Not covered: other CPUs (oneDNN picks
kernels per instruction set), other thread counts or library versions (float sums in another
order), ``mirrored`` versus ``default`` (gradients summed per replica first), and another number of
multi-worker workers (each composes or takes its own share of an epoch, keyed by worker too).
On a CPU the switch changed neither the numbers nor the speed measurably (TF 2.21), and it works
with multi-worker's CPU collectives; on GPUs it selects deterministic kernels, which are slower,
and fails on ops that have none.
"""
import csv
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edge_runtime import __version__
from edge_runtime.errors import MnistEdgeError
from edge_runtime.files import atomic_path, write_text_atomic
from edge_runtime.metrics import evaluate, tune_thresholds
from edge_runtime.model_contract import MNIST_INK, NUM_CLASSES, PREPROCESSING
from train import multi_worker
from train.losses import WeightedBinaryCrossentropy, positive_weights
from train.models import build_model, count_macs
from train.run_folder import CHECKPOINT_DIR, HISTORY_FILE, METADATA_FILE, MODEL_FILE, STATE_FILE

MIN_LR_FRACTION = 0.01  # cosine decay ends at 1% of --lr
EVAL_BATCH = 256        # images per prediction step (no gradients, so larger than training's)


def train(run_dir, options, splits, dataset_info, composer=None, state=None, log=print):
    """Train (or resume) a run and write RUN_DIR; returns the metadata dict it wrote.

    ``composer`` (train.epoch_images.EpochComposer) composes fresh training images every epoch; without
    it the epochs shuffle the fixed training split. Under multi-worker only the chief writes RUN_DIR
    and returns the metadata; the other workers return None.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    strategy = make_strategy(options["strategy"])  # first: multi-worker must set TensorFlow up before any op
    keras.utils.set_random_seed(options["seed"])
    if options["deterministic"]:
        tf.config.experimental.enable_op_determinism()

    x_train, y_train = splits["train"]
    input_shape = (*x_train.shape[1:], 1)
    state = state or {"options": options, "epochs_done": 0, "finished": False, "best": [-1.0, -math.inf],
                      "best_epoch": 0, "wait": 0, "history": [], "train_seconds": 0.0}
    state["options"] = options  # a resumed run may have changed the RESUMABLE ones
    pos_weight = positive_weights(y_train) if options["pos_weight"] == "auto" else None
    if not state["finished"]:
        with multi_worker.output_folder(run_dir, strategy) as out_dir:  # RUN_DIR, unless a non-chief worker
            (out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
            fit(run_dir, out_dir, state, strategy, splits["train"], splits["val"], composer, pos_weight, log)
    if not strategy.extended.should_checkpoint:
        return None

    if "best_weights" not in state:
        raise MnistEdgeError(f"validation scores were never finite in {state['epochs_done']} epochs; try a lower --lr")
    write_text_atomic(run_dir / HISTORY_FILE, history_csv(state["history"]))  # in case a kill came before it
    # The model a user gets: the best epoch's weights in a fresh, uncompiled model (no custom loss to load).
    final = build_model(options["arch"], input_shape)
    final.set_weights(load_weights(run_dir / CHECKPOINT_DIR / state["best_weights"]))
    meta = describe_run(final, splits, dataset_info, composer, state, pos_weight, strategy)
    meta["wall_seconds"] = time.perf_counter() - start  # this invocation, start to end
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        final.save(tmp)
    write_text_atomic(run_dir / METADATA_FILE, json.dumps(meta, indent=2) + "\n")  # last: marks the run finished
    return meta


def describe_run(final, splits, dataset_info, composer, state, pos_weight, strategy):
    """metadata.json: the final model's thresholds (tuned on val), val and test metrics, and how it was made."""
    options = state["options"]
    (x_train, _), (x_val, y_val), (x_test, y_test) = (splits[name] for name in ("train", "val", "test"))
    val_scores = final.predict(eval_dataset(x_val), verbose=0)
    test_scores = final.predict(eval_dataset(x_test), verbose=0)
    thresholds = tune_thresholds(y_val, val_scores)
    return {
        "toolkit_version": __version__,
        "arch": options["arch"],
        "input_shape": list(final.input_shape[1:]),
        "class_names": [str(c) for c in range(NUM_CLASSES)],
        "thresholds": thresholds.tolist(),
        "preprocessing": PREPROCESSING,
        "dataset": dataset_info,
        "metrics": {"val": evaluate(y_val, val_scores, thresholds), "test": evaluate(y_test, test_scores, thresholds)},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__},
        "seed": options["seed"],
        "options": options,
        "pos_weight": None if pos_weight is None else pos_weight.tolist(),  # per digit, from --pos-weight auto
        "training_images": training_images(composer, len(x_train)),
        **digit_heights(composer),
        "params": int(final.count_params()),
        "macs": count_macs(final),
        "epochs_run": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "stopped_early": state["epochs_done"] < options["epochs"],
        "num_replicas": strategy.num_replicas_in_sync,
        "train_seconds": state["train_seconds"],
    }


def fit(run_dir, out_dir, state, strategy, train, val, composer, pos_weight, log):
    """Build (or load from RUN_DIR's checkpoint) the compiled model under ``strategy`` and train it,
    checkpointing into ``out_dir``."""
    options, (x_train, y_train) = state["options"], train
    count = composer.count if composer else len(x_train)
    steps = math.ceil(count / options["batch_size"])
    sharded = multi_worker.is_multi_worker(strategy)
    if sharded:
        multi_worker.check_workers(strategy, state["epochs_done"], options["batch_size"])
    with strategy.scope():
        if state["epochs_done"]:
            model = keras.models.load_model(run_dir / CHECKPOINT_DIR / state["model"], safe_mode=True)
            log(f"Resuming {run_dir} after epoch {state['epochs_done']}")
        else:
            model = build_model(options["arch"], (*x_train.shape[1:], 1))
            schedule = keras.optimizers.schedules.CosineDecay(
                options["lr"], decay_steps=options["epochs"] * steps, alpha=MIN_LR_FRACTION)
            model.compile(optimizer=keras.optimizers.Adam(schedule),
                          loss=WeightedBinaryCrossentropy(pos_weight),
                          metrics=[keras.metrics.F1Score(average="macro", threshold=0.5, name="macro_f1")])
    epochs = (state["epochs_done"], options["epochs"])
    if sharded:
        multi_worker.prepare_model(model, strategy, (*x_train.shape[1:], 1))
        share = composer.epoch if composer else fixed_share(x_train, y_train, options["seed"])
        batches = sharded_dataset(strategy, share, x_train.shape[1:], steps, *epochs)
        validation = strategy.distribute_datasets_from_function(lambda _: eval_dataset(*val))  # all of it, everywhere
    else:
        batches = (fresh_dataset(composer, options["batch_size"], *epochs) if composer else
                   train_dataset(x_train, y_train, options["batch_size"], options["seed"], *epochs))
        validation = eval_dataset(*val)
    with multi_worker.lost_worker_errors():
        model.fit(batches,
                  epochs=options["epochs"], initial_epoch=state["epochs_done"], steps_per_epoch=steps,
                  validation_data=validation,
                  callbacks=[EpochCheckpoint(out_dir, state)],
                  shuffle=False,  # the dataset is already in its seeded per-epoch order
                  verbose=1 if sys.stdout.isatty() else 2)


def make_strategy(name):
    """default: no distribution. mirrored: one replica per GPU, else per logical CPU device.
    multi-worker: the processes TF_CONFIG names (train/multi_worker.py)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == multi_worker.STRATEGY:
        return multi_worker.make_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def epoch_order(seed, epoch, n):
    """The image order of one epoch: a stateless shuffle keyed by (seed, epoch), so resumable."""
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=[seed, epoch])


def train_dataset(images, labels, batch_size, seed, first_epoch, epochs):
    """Batches for epochs first_epoch..epochs-1 back to back, each epoch in its own seeded order."""
    images, labels = tf.constant(images), tf.constant(labels)
    n = len(images)

    def one_epoch(epoch):
        return tf.data.Dataset.from_tensor_slices(epoch_order(seed, epoch, n)).batch(batch_size)

    return (tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
            .map(lambda i: (_to_float(tf.gather(images, i)), tf.cast(tf.gather(labels, i), tf.float32)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def fresh_dataset(composer, batch_size, first_epoch, epochs):
    """Batches for epochs first_epoch..epochs-1, each epoch's images composed afresh (already in random order)."""
    def batches():
        for epoch in range(first_epoch, epochs):
            images, labels = composer.epoch(epoch)
            for start in range(0, len(images), batch_size):
                yield images[start:start + batch_size], labels[start:start + batch_size]

    side = composer.options["canvas"]
    spec = (tf.TensorSpec((None, side, side), tf.uint8), tf.TensorSpec((None, NUM_CLASSES), tf.uint8))
    return (tf.data.Dataset.from_generator(batches, output_signature=spec)
            .map(lambda x, y: (_to_float(x), tf.cast(y, tf.float32)))
            .prefetch(tf.data.AUTOTUNE))


def fixed_share(images, labels, seed):
    """``share(epoch, worker, workers)`` of the fixed split: every workers-th image of the epoch's seeded order."""
    def share(epoch, worker, workers):
        order = epoch_order(seed, epoch, len(images)).numpy()[worker::workers]
        return images[order], labels[order]
    return share


def sharded_dataset(strategy, share, image_shape, steps, first_epoch, epochs):
    """Every worker's own batches for epochs first_epoch..epochs-1 (multi-worker).

    ``share(epoch, worker, workers)`` gives this worker's images of an epoch, different on every
    worker and keyed by (seed, epoch, worker). Each is cut into ``steps`` nearly equal batches per
    local replica: all workers take the same number of steps (their collectives pair up), and a
    step's global batch, summed over the workers, is --batch-size give or take a few images.
    """
    def per_worker(context):
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines

        def batches():
            for epoch in range(first_epoch, epochs):
                images, labels = share(epoch, context.input_pipeline_id, context.num_input_pipelines)
                for part in np.array_split(np.arange(len(images)), steps * local_replicas):
                    yield images[part], labels[part]

        spec = (tf.TensorSpec((None, *image_shape), tf.uint8), tf.TensorSpec((None, NUM_CLASSES), tf.uint8))
        return (tf.data.Dataset.from_generator(batches, output_signature=spec)
                .map(lambda x, y: (_to_float(x), tf.cast(y, tf.float32)))
                .prefetch(tf.data.AUTOTUNE))

    return strategy.distribute_datasets_from_function(per_worker)


def digit_heights(composer):
    """{"digit_heights": [low, high]}: the ink heights (model pixels) the fresh images trained, which
    `infer` reads as the supported range (MNIST's ink is MNIST_INK px tall at scale 1); {} for fixed images."""
    if composer is None:
        return {}
    return {"digit_heights": [round(MNIST_INK * s, 2) for s in composer.options["digit_scale"]]}


def training_images(composer, fixed_count):
    """How the training images were made, for metadata.json."""
    if composer is None:
        return {"mode": "fixed", "images_per_epoch": fixed_count}
    return {"mode": "fresh", "images_per_epoch": composer.count, "digit_scale": list(composer.options["digit_scale"]),
            "overlap_pairs": composer.pair_share,
            "key": "numpy default_rng([seed, epoch, worker]) over the data set's train digit pool"}


def eval_dataset(images, labels=None):
    """Batches in file order, images scaled as the model expects (labels too when given)."""
    ds = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels)).batch(EVAL_BATCH)
    if labels is None:
        return ds.map(_to_float).prefetch(tf.data.AUTOTUNE)
    return ds.map(lambda x, y: (_to_float(x), tf.cast(y, tf.float32))).prefetch(tf.data.AUTOTUNE)


def _to_float(images):
    """edge_runtime.model_contract.to_model_input as a TensorFlow op, for the tf.data graph."""
    return tf.cast(images, tf.float32)[..., None] * PREPROCESSING["scale"]


def save_weights(path, weights):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *weights)


def load_weights(path):
    with np.load(path, allow_pickle=False) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]


class EpochCheckpoint(keras.callbacks.Callback):
    """Early stopping plus the per-epoch checkpoint, committed together (see module doc).

    "Best" is the highest validation macro-F1 (ties: the lower validation loss), among epochs whose
    figures are all finite: NaN weights still score a macro-F1 (every prediction negative), so a
    diverged epoch once became "best"; now it ends training with a one-line error. Not the loss
    alone: past a few epochs the loss creeps up as the model grows confident on its few mistakes
    while F1 still improves (seen on the default run: loss best at epoch 7, F1 at the last).
    """

    def __init__(self, run_dir, state):
        super().__init__()
        self.folder = Path(run_dir) / CHECKPOINT_DIR
        self.history_path = Path(run_dir) / HISTORY_FILE
        self.state = state
        self.patience = state["options"]["patience"]
        self.epochs = state["options"]["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        s, done = self.state, epoch + 1
        if not all(math.isfinite(float(v)) for v in logs.values()):
            # Diverged: commit nothing (--resume restarts from the last finite epoch) and stop.
            raise MnistEdgeError(f"training diverged in epoch {done} (loss {float(logs['loss']):g}, val_loss "
                                 f"{float(logs['val_loss']):g}); try a lower --lr than {s['options']['lr']:g}")
        seconds = time.perf_counter() - self.epoch_start
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        s["history"].append({"epoch": done, **{k: float(v) for k, v in logs.items()},
                             "learning_rate": lr, "seconds": round(seconds, 3)})
        score = [float(logs["val_macro_f1"]), -float(logs["val_loss"])]
        if score > s["best"]:
            s.update(best=score, best_epoch=done, wait=0,
                     best_weights=f"best-{done:03d}.npz")
            save_weights(self.folder / s["best_weights"], self.model.get_weights())
        else:
            s["wait"] += 1
        s["model"] = f"epoch-{done:03d}.keras"
        with atomic_path(self.folder / s["model"]) as tmp:
            self.model.save(tmp)
        s.update(epochs_done=done, train_seconds=s["train_seconds"] + seconds,
                 finished=s["wait"] >= self.patience or done >= self.epochs)
        write_text_atomic(self.folder / STATE_FILE, json.dumps(s, indent=1))
        write_text_atomic(self.history_path, history_csv(s["history"]))
        for old in self.folder.iterdir():  # files the committed state no longer names
            if old.name not in (STATE_FILE, s["model"], s.get("best_weights")):  # incl. temp files of a killed run
                old.unlink()
        if s["wait"] >= self.patience:
            self.model.stop_training = True


def history_csv(rows):
    """One row per finished epoch; columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
