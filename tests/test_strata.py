"""Difficulty arrays written by `data` and the strata `bench` reports, on real composed MNIST images."""
import numpy as np
import pytest

from benchmarks import strata
from edge_runtime.dataset_file import DIFFICULTY, load_difficulty, load_labelled_npz, save_labelled_npz
from edge_runtime.model_contract import MNIST_INK
from train import dataset, dataset_folder
from train.difficulty import difficulty, max_overlap
from train.dataset import DIGIT
from train.mnist import load_mnist

NUM_IMAGES = 2000


@pytest.fixture(scope="module")
def split(mnist_dir):
    mnist = load_mnist(mnist_dir)
    return dataset.compose(mnist.test_images, mnist.test_labels, NUM_IMAGES, np.random.default_rng(4),
                           **dataset.resolve_options(max_overlap=0.4))


def _raster_overlap(layout, i):
    """Oracle: paint each digit's ink box on its own mask and count shared pixels, pair by pair."""
    masks = []
    for r, c in zip(layout.rows[i], layout.cols[i]):
        if r < 0:
            continue
        mask = np.zeros((200, 200), bool)
        m = (DIGIT - MNIST_INK) // 2
        mask[r + m:r + m + MNIST_INK, c + m:c + m + MNIST_INK] = True
        masks.append(mask)
    pairs = [(a & b).sum() / MNIST_INK**2 for k, a in enumerate(masks) for b in masks[k + 1:]]
    return max(pairs, default=0.0)


def test_difficulty_matches_the_composition(split):
    d = difficulty(split.layout)
    assert d["digits_per_image"].dtype == np.uint8 and d["max_overlap"].dtype == np.float32
    assert (d["digits_per_image"] == (split.layout.sources >= 0).sum(axis=1)).all()
    expected = [_raster_overlap(split.layout, i) for i in range(300)]
    assert d["max_overlap"][:300] == pytest.approx(expected, abs=1e-6)
    assert d["max_overlap"].max() <= 0.4 + 1e-6  # the composition's own rule
    assert (d["max_overlap"][d["digits_per_image"] < 2] == 0).all()
    assert (d["max_overlap"] > 0.25).any()  # the test exercises more than one band


def test_overlap_is_what_the_composition_caps_at_any_scale(mnist_dir):
    mnist = load_mnist(mnist_dir)
    split = dataset.compose(mnist.test_images, mnist.test_labels, 500, np.random.default_rng(8),
                            **dataset.resolve_options(max_overlap=0.3, digit_scale=(0.6, 1.2)))
    d = difficulty(split.layout)
    assert len(np.unique(split.layout.sizes[split.layout.sources >= 0])) > 3  # really several scales
    assert d["max_overlap"].max() <= 0.3 + 1e-6 and d["max_overlap"].max() > 0.2


def test_overlap_of_digits_at_different_scales():
    # A 28 px cell at (0,0) has ink box [4,24)^2; a 56 px cell at (0,0) has [8,48)^2: they share 16x16
    # pixels, 64% of the smaller box.
    rows = cols = np.array([[0, 0]])
    value = max_overlap(rows, cols, np.array([[True, True]]), cell=np.array([[28, 56]]))
    assert value[0] == pytest.approx(256 / 400)
    assert max_overlap(rows, cols, np.array([[True, False]]))[0] == 0


def test_strata_counts_sum_to_the_set_and_match_the_composition(split):
    d = difficulty(split.layout)
    pred = split.labels.copy()
    pred[::7, 3] ^= 1  # a model that errs on digit 3 in every 7th image
    report = strata.strata(split.labels, [split.labels, pred], d)
    assert report["available"] == ["digits", "overlap"]
    perfect, flawed = report["models"]
    digits = np.bincount((split.layout.sources >= 0).sum(axis=1))
    assert {int(s["stratum"]): s["images"] for s in perfect["digits"]} == \
        {k: int(n) for k, n in enumerate(digits) if n}
    for rows in (perfect["digits"], perfect["overlap"], flawed["digits"], flawed["overlap"]):
        assert sum(s["images"] for s in rows) == NUM_IMAGES
    assert all(s["exact_set_accuracy"] == 1.0 for s in perfect["digits"] + perfect["overlap"])
    assert [s["f1"] for s in perfect["digits"]][0] is None  # empty images: nothing to find, nothing found
    wrong = sum(s["images"] * (1 - s["exact_set_accuracy"]) for s in flawed["digits"])
    assert round(wrong) == len(range(0, NUM_IMAGES, 7))
    band, labels = strata.overlap_bands(d["max_overlap"])
    assert {s["stratum"] for s in perfect["overlap"]} == {labels[k] for k in np.unique(band)}
    assert labels[0] == "none" and (band[d["max_overlap"] == 0] == 0).all()


def test_overlap_bands():
    band, labels = strata.overlap_bands([0.0, 0.05, 0.1, 0.1001, 0.25, 0.3, 0.31, 1.0])
    assert [labels[b] for b in band] == ["none", "0-0.1", "0-0.1", "0.1-0.2", "0.2-0.3", "0.2-0.3",
                                         "0.3-0.5", "0.5-1"]


def test_confused_pairs(split):
    truth = split.labels
    pred = truth.copy()
    has7 = np.flatnonzero((truth[:, 7] == 1) & (truth[:, 1] == 0))[:30]
    pred[has7, 7], pred[has7, 1] = 0, 1  # 7 read as 1 in 30 images
    has4 = np.flatnonzero((truth[:, 4] == 1) & (truth[:, 9] == 0))[:10]
    pred[has4, 4], pred[has4, 9] = 0, 1
    pairs = strata.confused_pairs(truth, pred)
    assert pairs[0] == {"missed": 7, "added": 1, "images": 30}
    assert {"missed": 4, "added": 9, "images": 10} in pairs
    counts = {}
    for t, p in zip(truth, pred):  # oracle: every (missed, added) pair in every image
        for m in np.flatnonzero(t & ~p):
            for a in np.flatnonzero(~t & p):
                counts[m, a] = counts.get((m, a), 0) + 1
    assert all(counts[pair["missed"], pair["added"]] == pair["images"] for pair in pairs)
    assert pairs[-1]["images"] >= sorted(counts.values())[-len(pairs)]
    assert strata.confused_pairs(truth, truth) == []


def test_data_set_files_carry_difficulty(mnist_dir, tmp_path):
    info = dataset_folder.write_dataset(tmp_path, sizes={"train": 50, "val": 20, "test": 200}, seed=3, mnist_path=mnist_dir)
    images, labels = load_labelled_npz(tmp_path / "test.npz")  # loads as before
    with np.load(tmp_path / "test.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"images", "labels", *DIFFICULTY}
    d = load_difficulty(tmp_path / "test.npz", len(images))
    assert set(d) == set(DIFFICULTY)
    hist = np.bincount(d["digits_per_image"], minlength=5).tolist()
    assert hist == info["splits"]["test"]["digit_count_histogram"]
    assert (d["max_overlap"] <= info["parameters"]["max_overlap"] + 1e-6).all()
    # A two-key file (older `data`, or written by hand) has no difficulty: {} rather than an error.
    save_labelled_npz(tmp_path / "plain.npz", images, labels)
    assert load_difficulty(tmp_path / "plain.npz", len(images)) == {}
    with pytest.raises(Exception, match="one value per image"):
        save_labelled_npz(tmp_path / "bad.npz", images, labels, digits_per_image=np.zeros(3))
