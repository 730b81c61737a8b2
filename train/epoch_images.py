"""Training images composed afresh every epoch from a data set's train digit pool (``train --compose fresh``).

numpy only, like train/dataset.py whose ``compose`` it calls: each epoch is keyed by (seed, epoch,
worker), so a resumed or sharded run sees exactly the images an uninterrupted one would.
"""
from typing import NamedTuple

import numpy as np

from train.dataset import cell_size, compose

# Overlapping pairs mixed into fresh training epochs (EpochComposer.pair_share): two digits free to
# overlap on a PAIR_CANVAS-sided patch (as crowded as two digits on a 40x40 picture; MultiMNIST's
# 36x36 included), the patch pasted anywhere on the canvas. The ordinary <=25%-overlap compositions
# never show a model such pairs; pairs always at the centre taught it that a lone centred digit is two.
PAIR_CANVAS = 40
OVERLAP_PAIRS = dict(min_digits=2, max_digits=2, empty_fraction=0.0, max_overlap=1.0, max_shift=None)


class EpochComposer(NamedTuple):
    """Composes each training epoch's images afresh from the train pool, keyed by (seed, epoch, worker).

    A model that sees new compositions every epoch cannot memorise them (a fixed 60k set is fit to
    F1 0.999 while val stalls), and the key makes a resumed or sharded run see exactly the images an
    uninterrupted one would. Composing 60k images takes ~1-2 s, next to ~62 s of training.
    """
    digits: np.ndarray   # MNIST training digits
    labels: np.ndarray   # their classes
    pool: np.ndarray     # indices the train split may use (val's digits are never among them)
    count: int           # images per epoch
    options: dict        # composition options (resolve_options), digit_scale included
    seed: int            # the training seed
    pair_share: float = 0.0  # share of each epoch composed with OVERLAP_PAIRS instead, shuffled in

    def epoch(self, epoch, worker=0, workers=1):
        """Images and labels of ``epoch``: this worker's share of ``count`` when sharded."""
        share = self.count // workers + (worker < self.count % workers)
        rng = np.random.default_rng([self.seed, epoch, worker])
        pairs = round(self.pair_share * share)
        split = compose(self.digits, self.labels, share - pairs, rng, pool=self.pool, **self.options)
        if not pairs:
            return split.images, split.labels
        pair_images, pair_labels = self._pairs(pairs, rng)
        order = rng.permutation(share)
        return (np.concatenate([split.images, pair_images])[order],
                np.concatenate([split.labels, pair_labels])[order])

    def _pairs(self, count, rng):
        """Images and labels of ``count`` overlapping pairs, each composed on a patch pasted at a random place."""
        canvas = self.options["canvas"]
        side = min(canvas, max(PAIR_CANVAS, cell_size(self.options["digit_scale"][1])))
        patches = compose(self.digits, self.labels, count, rng, pool=self.pool,
                          **{**self.options, **OVERLAP_PAIRS, "canvas": side})
        images = np.zeros((count, canvas, canvas), np.uint8)
        rows, cols = rng.integers(0, canvas - side + 1, size=(2, count))
        windows = np.lib.stride_tricks.sliding_window_view(images, (side, side), axis=(1, 2), writeable=True)
        windows[np.arange(count), rows, cols] = patches.images
        return images, patches.labels
