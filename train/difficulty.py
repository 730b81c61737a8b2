"""How hard each composed image is: how many digits it holds and how much they overlap.

Computed from the composition's layout (where each digit's cell was placed), not from pixels, so it
measures the same thing the ``--max-overlap`` rule caps: the share of a digit's *ink box* (the
central 20x20 of a 28x28 MNIST cell, scaled with the cell) covered by another digit's ink box,
against the smaller of the two boxes. Written into each split's .npz beside images and labels
(``edge_runtime.dataset_file.DIFFICULTY``), so
``bench`` can break its results down by difficulty on the device.
"""
import numpy as np

from edge_runtime.model_contract import MNIST_INK

from .dataset import DIGIT


def max_overlap(rows, cols, active, cell=DIGIT):
    """(N,) float32: per image, the largest share of one digit's ink box covered by another's.

    ``rows``/``cols``: (N, slots) top-left corners of the cells; ``active``: (N, slots) bool, the
    slots in use; ``cell``: the cells' side in pixels, one number or (N, slots) when digits come at
    different scales. Overlap is measured against the smaller of the two boxes (the one more covered).
    0 for images with fewer than two digits.
    """
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    active = np.asarray(active, dtype=bool)
    side = np.broadcast_to(np.asarray(cell, dtype=np.float64), rows.shape) * (MNIST_INK / DIGIT)
    margin = np.broadcast_to(np.asarray(cell, dtype=np.float64), rows.shape) * ((DIGIT - MNIST_INK) / 2 / DIGIT)
    top, left = rows + margin, cols + margin
    worst = np.zeros(len(rows))
    slots = rows.shape[1]
    for a in range(slots):  # loops over the few slot pairs, vectorised over images
        for b in range(a + 1, slots):
            both = active[:, a] & active[:, b]
            height = np.minimum(top[:, a] + side[:, a], top[:, b] + side[:, b]) - np.maximum(top[:, a], top[:, b])
            width = np.minimum(left[:, a] + side[:, a], left[:, b] + side[:, b]) - np.maximum(left[:, a], left[:, b])
            shared = np.clip(height, 0, None) * np.clip(width, 0, None)
            smaller = np.minimum(side[:, a], side[:, b]) ** 2
            worst = np.where(both, np.maximum(worst, shared / smaller), worst)
    return worst.astype(np.float32)


def difficulty(layout):
    """The per-image arrays ``edge_runtime.dataset_file.save_labelled_npz`` takes, from a composition's Layout."""
    active = layout.sources >= 0
    return {"digits_per_image": active.sum(axis=1).astype(np.uint8),
            "max_overlap": max_overlap(layout.rows, layout.cols, active, layout.sizes)}
