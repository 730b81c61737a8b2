"""What ``mnist-edge train`` can be asked for: the architectures and the training defaults.

Cheap to import (no TensorFlow), so the command's ``--help`` and its option checks stay fast;
train/models.py builds the architectures named here.
"""
from edge_runtime.model_contract import MNIST_INK
from edge_runtime.preprocess import DIGIT_HEIGHTS

ARCHS = ("edge-cnn", "seed-cnn", "mlp")  # the builders in train/models.py

# Training defaults, in one place.
DEFAULTS = dict(
    arch="edge-cnn",       # the CNN designed for int8 edge inference (train/models.py)
    epochs=36,             # the cosine schedule spans them; ~80 s each for 60k images on 2 cores (pipeline 48 min measured);
                           # the shipped models trained 64 with overlap_pairs 0.2, which 36 epochs cannot afford (README)
    batch_size=128,        # global batch, split across replicas (mirrored) and workers (multi-worker)
    lr=3e-3,               # Adam peak learning rate, cosine-decayed to 1% of it over --epochs
    seed=0,                # weight initialisation and data order
    pos_weight="none",     # plain BCE: scores stay calibrated; per-digit thresholds then set each cut
    patience=8,            # epochs without a better validation macro-F1 before stopping (best epoch kept)
    strategy="default",    # tf.distribute strategy the training step runs under
    deterministic=True,    # TensorFlow op determinism: same seed, same machine -> same weights
    compose="auto",        # fresh: new training images every epoch from the train digit pool; fixed: train.npz
    digit_scale=tuple(h / MNIST_INK for h in DIGIT_HEIGHTS),  # fresh images: digits resized by a log-uniform factor in
                           # this range, 0.7-1.2: the 14-24 px ink heights `infer` supports (1 = MNIST's size);
                           # 0.6-1.2 read MNIST scale worse (same model: test macro-F1 0.988 against 0.990, README);
                           # 0.8-1.2 about the same there (+0.0006 over six sets) but 0.6-0.8x digits in arrays worse
    overlap_pairs=0.0,     # fresh images: share of each epoch that is two freely overlapping digits (train/epoch_images.py);
                           # 0.2 reads crowded pairs far better (40x40: 0.69 -> 0.835 in 64 epochs, the shipped models) but
                           # over 36 epochs 0.1 already costs 0.002 at MNIST scale (README)
)
COMPOSE_MODES = ("auto", "fresh", "fixed")  # --compose
# Options a resumed run may change: they affect where the work runs, not what is computed.
RESUMABLE = ("strategy", "deterministic")
