"""Binary cross-entropy with a per-digit weight on the positive term, for multi-hot targets.

Why not Keras ``class_weight``: it weights each *image* by the weight of one class (the argmax of
its target), which for a multi-hot target silently ignores every other digit in the image. Here each
of the 10 independent sigmoid outputs carries its own weight on its own positive term instead.
"""
import keras
import numpy as np
from keras import ops

EPSILON = 1e-7            # probabilities are clipped to [eps, 1-eps] before the log, as Keras does
WEIGHT_RANGE = (1.0, 100.0)  # auto weights are clipped so a rare digit cannot dominate the loss


def positive_weights(labels, clip=WEIGHT_RANGE):
    """neg/pos per digit from (N,10) training labels, clipped; a digit never present gets the maximum."""
    labels = np.asarray(labels, dtype=np.float64)
    pos = labels.sum(axis=0)
    neg = len(labels) - pos
    ratio = np.divide(neg, pos, out=np.full_like(pos, clip[1]), where=pos > 0)
    return np.clip(ratio, *clip)


@keras.saving.register_keras_serializable(package="mnist_edge")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """mean over digits of -(w_c * y * log p + (1 - y) * log(1 - p)); w = 1 is plain BCE."""

    def __init__(self, pos_weight=None, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in pos_weight] if pos_weight is not None else None

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        positive = y_true * ops.log(p)
        if self.pos_weight is not None:
            positive = positive * ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        return -ops.mean(positive + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}
