"""Invariants of the composed multi-label data set, checked against its layout and real MNIST."""
import subprocess
import sys

import click
import numpy as np
import pytest

from edge_runtime.errors import MnistEdgeError
from edge_runtime.model_contract import MNIST_INK
from train.dataset import DIGIT, capacity, compose, compose_splits, resolve_options, warp_digits
from train.dataset_folder import label_text
from train.mnist import load_mnist

SIZES = {"train": 4000, "val": 1000, "test": 1000}


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


@pytest.fixture(scope="module")
def splits(mnist):
    return dict(compose_splits(mnist, SIZES, seed=0))


def digits_of(name, mnist):
    return (mnist.test_images, mnist.test_labels) if name == "test" else (mnist.train_images, mnist.train_labels)


def overlaps(layout):
    """Worst shared ink-box area / 400 between any two digits of each image (0 for fewer than two)."""
    worst = np.zeros(len(layout.rows))
    slots = layout.rows.shape[1]
    for a in range(slots):
        for b in range(a + 1, slots):
            both = (layout.sources[:, a] >= 0) & (layout.sources[:, b] >= 0)
            shared = (np.clip(MNIST_INK - abs(layout.rows[:, a] - layout.rows[:, b]), 0, None)
                      * np.clip(MNIST_INK - abs(layout.cols[:, a] - layout.cols[:, b]), 0, None))
            worst = np.maximum(worst, np.where(both, shared / MNIST_INK**2, 0))
    return worst


def test_shapes(splits):
    for name, split in splits.items():
        assert split.images.shape == (SIZES[name], 64, 64) and split.images.dtype == np.uint8
        assert split.labels.shape == (SIZES[name], 10) and split.labels.dtype == np.uint8


@pytest.mark.parametrize("name", list(SIZES))
def test_labels_are_the_classes_drawn(splits, mnist, name):
    split = splits[name]
    digits, digit_labels = digits_of(name, mnist)
    used = split.layout.sources >= 0
    np.testing.assert_array_equal(split.layout.classes[used], digit_labels[split.layout.sources[used]])
    assert (split.layout.classes[~used] == -1).all()
    for image, label in enumerate(split.labels):
        assert set(np.flatnonzero(label)) == set(split.layout.classes[image][used[image]])


@pytest.mark.parametrize("name", list(SIZES))
def test_pixels_are_the_max_of_the_placed_digits(splits, mnist, name):
    split = splits[name]
    digits, _ = digits_of(name, mnist)
    layout = split.layout
    for i in range(300):
        expected = np.zeros((64, 64), np.uint8)
        for k in np.flatnonzero(layout.sources[i] >= 0):
            r, c = layout.rows[i, k], layout.cols[i, k]
            assert 0 <= r <= 64 - DIGIT and 0 <= c <= 64 - DIGIT
            cell = expected[r:r + DIGIT, c:c + DIGIT]
            np.maximum(cell, digits[layout.sources[i, k]], out=cell)
        np.testing.assert_array_equal(split.images[i], expected)


def test_digit_count_distribution_and_empty_fraction(splits):
    layout = splits["train"].layout
    counts = (layout.sources >= 0).sum(axis=1)
    empty = counts == 0
    assert empty.sum() == round(0.05 * SIZES["train"])
    assert not splits["train"].images[empty].any() and not splits["train"].labels[empty].any()
    observed = np.bincount(counts[~empty], minlength=5)[1:]
    expected = (~empty).sum() / 4
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert observed.sum() == (~empty).sum() and chi2 < 16.3  # 3 degrees of freedom, p = 0.001


def test_overlap_limit(splits):
    for split in splits.values():
        worst = overlaps(split.layout)
        assert worst.max() <= 0.25
        assert worst.max() > 0.2  # the limit is reached, not avoided by spreading digits apart


def test_no_overlap_at_all(mnist):
    split = compose(mnist.train_images, mnist.train_labels, 1000, np.random.default_rng(3), max_overlap=0.0)
    assert overlaps(split.layout).max() == 0


def test_split_sources_disjoint(splits, mnist):
    train = set(splits["train"].layout.sources[splits["train"].layout.sources >= 0])
    val = set(splits["val"].layout.sources[splits["val"].layout.sources >= 0])
    assert not train & val
    assert len(val) <= 6000 and max(train | val) < 60000
    test = splits["test"].layout.sources
    assert test.max() < len(mnist.test_images)  # pixel test above checks they are test-split digits


def test_class_prior(mnist):
    prior = [1] * 9 + [0.1]
    split = compose(mnist.train_images, mnist.train_labels, 3000, np.random.default_rng(0), class_prior=prior)
    per_class = np.bincount(split.layout.classes[split.layout.classes >= 0], minlength=10)
    ratio = per_class[9] / per_class[:9].mean()
    assert 0.06 < ratio < 0.15
    split = compose(mnist.train_images, mnist.train_labels, 500, np.random.default_rng(0),
                    class_prior=[0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    assert set(np.flatnonzero(split.labels.any(axis=0))) == {2, 9}


def test_multimnist_preset(mnist):
    splits = dict(compose_splits(mnist, {"train": 2000, "val": 200, "test": 500}, seed=0, preset="multimnist"))
    for split in splits.values():
        layout = split.layout
        assert split.images.shape[1:] == (36, 36)
        assert (layout.sources >= 0).all() and layout.sources.shape[1] == 2  # exactly two digits, never empty
        assert (layout.classes[:, 0] != layout.classes[:, 1]).all()
        assert (split.labels.sum(axis=1) == 2).all()
        for corner in (layout.rows, layout.cols):  # centre (4) shifted by at most 4 px
            assert corner.min() == 0 and corner.max() == 8
    shift = splits["train"].layout.rows - 4
    assert len(np.unique(shift)) == 9


def test_same_seed_same_bytes_other_seed_differs(mnist, splits):
    again = dict(compose_splits(mnist, SIZES, seed=0))
    other = dict(compose_splits(mnist, SIZES, seed=1))
    for name in SIZES:
        assert again[name].images.tobytes() == splits[name].images.tobytes()
        assert again[name].labels.tobytes() == splits[name].labels.tobytes()
        assert other[name].images.tobytes() != splits[name].images.tobytes()


def test_split_sizes_do_not_change_other_splits(mnist, splits):
    resized = dict(compose_splits(mnist, {**SIZES, "train": 100}, seed=0))
    for name in ("val", "test"):
        assert resized[name].images.tobytes() == splits[name].images.tobytes()


def test_option_checks():
    with pytest.raises(click.BadParameter, match="less than --min-digits"):
        resolve_options(min_digits=3, max_digits=2)
    with pytest.raises(click.BadParameter, match="cannot fit"):
        resolve_options(canvas=28, max_digits=2)
    with pytest.raises(click.BadParameter, match="smaller than an MNIST digit"):
        resolve_options(canvas=27)
    with pytest.raises(click.BadParameter, match="10 non-negative weights"):
        resolve_options(class_prior=[1, -1] + [1] * 8)
    with pytest.raises(click.BadParameter, match="unknown preset"):
        resolve_options("nope")
    with pytest.raises(TypeError, match="unknown composition options"):
        resolve_options(canvass=64)
    assert resolve_options(class_prior=[2] * 10)["class_prior"] == [0.1] * 10
    assert capacity(64, 0.25) == 9 and capacity(28, 0.25) == 1 and capacity(36, 1.0) == float("inf")


def test_impossible_placement_fails_clearly(mnist):
    with pytest.raises(MnistEdgeError, match="could not place 9 digits"):
        compose(mnist.train_images, mnist.train_labels, 20, np.random.default_rng(0),
                canvas=48, min_digits=9, max_digits=9, max_overlap=0.5)


def test_label_text():
    assert label_text(np.array([0, 0, 1, 0, 0, 1, 0, 1, 0, 0])) == "2 5 7"
    assert label_text(np.zeros(10)) == "-"


def test_ink_box_is_the_centre_of_the_cell(mnist):
    """The overlap rule's box really holds MNIST's ink (why 20x20 and a margin of 4)."""
    ink = mnist.train_images[:2000].astype(np.float64)
    margin = (DIGIT - MNIST_INK) // 2
    inside = ink[:, margin:margin + MNIST_INK, margin:margin + MNIST_INK].sum()
    assert inside / ink.sum() > 0.95  # 96.8%: centring by mass shifts a little ink outside


def test_import_does_not_load_tensorflow():
    code = ("import sys, train.dataset, train.dataset_folder, train.data_command, train.epoch_images, train.mnist; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fresh_epochs_differ_and_repeat_by_key(mnist):
    from train.dataset import resolve_options, source_pools
    from train.epoch_images import EpochComposer

    digits, labels, pool = source_pools(mnist, 0)["train"]
    composer = EpochComposer(digits, labels, pool, 200, resolve_options(digit_scale=(0.6, 1.2)), seed=3)
    first, again, second = composer.epoch(0), composer.epoch(0), composer.epoch(1)
    assert first[0].tobytes() == again[0].tobytes() and first[1].tobytes() == again[1].tobytes()
    assert first[0].tobytes() != second[0].tobytes()
    shards = [composer.epoch(0, worker=w, workers=3) for w in range(3)]
    assert sum(len(images) for images, _ in shards) == 200
    assert len({images.tobytes() for images, _ in shards}) == 3   # every worker composes its own images


def test_digit_scale_resizes_cells_and_keeps_the_overlap_rule(mnist):
    split = compose(mnist.train_images, mnist.train_labels, 300, np.random.default_rng(5),
                    digit_scale=(0.6, 1.2))
    used = split.layout.sources >= 0
    sizes = split.layout.sizes[used]
    assert sizes.min() >= round(28 * 0.6) and sizes.max() <= round(28 * 1.2) and len(np.unique(sizes)) > 5
    assert (split.layout.rows[used] + sizes <= 64).all() and (split.layout.cols[used] + sizes <= 64).all()
    # ink height of a lone digit follows its cell: ~20/28 of the side (most MNIST digits fill 20 px in height)
    ratios = []
    for i in np.flatnonzero(used.sum(axis=1) == 1):
        rows = np.flatnonzero(split.images[i].max(axis=1) > 64)  # resampling blurs the faintest edge outwards
        ratios.append((rows[-1] - rows[0] + 1) / split.layout.sizes[i][used[i]][0])
    assert len(ratios) > 30 and abs(np.median(ratios) - 20 / 28) < 0.04


def test_warp_turns_and_slants_digits_about_the_cell_centre(mnist):
    digits = mnist.train_images[:50]
    assert np.array_equal(warp_digits(digits, np.zeros(50), np.zeros(50)), digits)
    # a quarter turn maps pixel centres onto pixel centres: np.rot90 clockwise (y points down), up to float round-off
    turned = warp_digits(digits, np.full(50, 90.0), np.zeros(50)).astype(int)
    assert np.abs(turned - np.rot90(digits, -1, axes=(1, 2))).max() <= 1
    line = np.zeros((1, DIGIT, DIGIT), np.uint8)
    line[0, 4:24, 13:15] = 255  # a vertical stroke 20 px tall
    slanted = warp_digits(line, [0.0], [0.25])[0].astype(float)
    columns = np.arange(DIGIT)
    centre_of = lambda row: (slanted[row] * columns).sum() / slanted[row].sum()
    assert centre_of(22) - centre_of(5) == pytest.approx(0.25 * 17, abs=0.3)  # x += shear * y, y down
    assert abs(slanted.sum() / line.sum() - 1) < 0.02  # the ink stays in the cell


def test_digit_warp_changes_the_digits_not_the_layout(mnist):
    plain = compose(mnist.train_images, mnist.train_labels, 300, np.random.default_rng(5), digit_scale=(0.7, 1.2))
    off = compose(mnist.train_images, mnist.train_labels, 300, np.random.default_rng(5), digit_scale=(0.7, 1.2),
                  digit_warp=(0, 0))
    warped = compose(mnist.train_images, mnist.train_labels, 300, np.random.default_rng(5), digit_scale=(0.7, 1.2),
                     digit_warp=(10, 0.2))
    assert off.images.tobytes() == plain.images.tobytes()  # off draws nothing: data sets keep their bytes
    assert np.array_equal(warped.labels, plain.labels)
    assert all(np.array_equal(a, b) for a, b in zip(warped.layout, plain.layout))
    changed = (warped.images != plain.images).any(axis=(1, 2))
    assert changed.sum() == (plain.layout.sources >= 0).any(axis=1).sum()  # every image with a digit, only those
    assert abs(warped.images.mean() / plain.images.mean() - 1) < 0.02
    with pytest.raises(click.BadParameter, match="DEGREES 0-30, SHEAR 0-0.5"):
        resolve_options(digit_warp=(10, 0.6))


def test_overlap_pairs_mix_crowded_pairs_into_each_epoch(mnist):
    from train.dataset import _shared, resolve_options, source_pools
    from train.epoch_images import OVERLAP_PAIRS, PAIR_CANVAS, EpochComposer

    digits, labels, pool = source_pools(mnist, 0)["train"]
    options = resolve_options()
    plain = EpochComposer(digits, labels, pool, 400, options, seed=3)
    mixed = plain._replace(pair_share=0.25)
    images, multi_hot = mixed.epoch(0)
    assert images.shape == (400, 64, 64) and multi_hot.shape == (400, 10)
    assert images.tobytes() == mixed.epoch(0)[0].tobytes()  # still keyed by (seed, epoch, worker)
    assert plain.epoch(0)[0].tobytes() == EpochComposer(digits, labels, pool, 400, options, seed=3).epoch(0)[0].tobytes()

    pair_images, pair_labels = mixed._pairs(300, np.random.default_rng(1))
    rows, cols = pair_images.max(axis=2) > 0, pair_images.max(axis=1) > 0
    top, left = rows.argmax(axis=1), cols.argmax(axis=1)
    height = rows.shape[1] - rows[:, ::-1].argmax(axis=1) - top
    width = cols.shape[1] - cols[:, ::-1].argmax(axis=1) - left
    assert (height <= PAIR_CANVAS).all() and (width <= PAIR_CANVAS).all()  # each pair within one patch ...
    assert top.min() < 6 and top.max() > 20 and left.min() < 6 and left.max() > 20  # ... the patch anywhere
    assert (pair_labels.sum(axis=1) >= 1).all() and (pair_labels.sum(axis=1) <= 2).all()

    # and the pairs overlap beyond the ordinary 25%: ink boxes (20x20 at scale 1) share more than that often
    patches = compose(mnist.train_images, mnist.train_labels, 300, np.random.default_rng(1),
                      **{**options, **OVERLAP_PAIRS, "canvas": PAIR_CANVAS})
    lay = patches.layout
    ink = lay.sizes * 20 / 28
    top, left = lay.rows + (lay.sizes - ink) / 2, lay.cols + (lay.sizes - ink) / 2
    covered = (_shared(top[:, 0], top[:, 1], ink[:, 0], ink[:, 1]) * _shared(left[:, 0], left[:, 1], ink[:, 0], ink[:, 1])
               / np.minimum(ink[:, 0], ink[:, 1]) ** 2)
    assert (lay.sources >= 0).sum(axis=1).tolist() == [2] * 300
    assert np.mean(covered > 0.25) > 0.5 and covered.max() > 0.8
