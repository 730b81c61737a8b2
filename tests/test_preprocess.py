"""prepare(): real MNIST digits at other scales, on grey paper, in frames, and blank pages.

Assertions are on geometry (estimated and prepared digit heights) and pixels, not on a model's
accuracy: the figures per case are in benchmarks/scale_robustness.py.
"""
import tempfile
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_runtime import Classifier, PictureWarning, load_images, prepare
from edge_runtime.errors import MnistEdgeError
from edge_runtime.preprocess import DIGIT_HEIGHTS, NOISE_FLOOR, TARGET_HEIGHT, noise_level, supported_heights
from models_for_tests import canvases, models  # noqa: F401 (fixtures)
from train.cli import main
from train.mnist import load_mnist

SIZE = (64, 64)
SCALES = (0.5, 0.65, 1.0, 1.5, 2.5, 4.0)  # digit heights 10..80 px in the picture


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """40 bare 28x28 MNIST test digits."""
    return load_mnist(mnist_dir).test_images[:40]


def _resized(image, scale):
    h, w = image.shape
    return np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR))


def _ink_height(image):
    rows = np.flatnonzero((image >= 128).any(axis=1))
    return rows[-1] - rows[0] + 1


def _mnist_height(digit):
    return _ink_height(digit)  # 20 for most MNIST digits, less for some wide ones


@pytest.mark.parametrize("scale", SCALES)
def test_bare_digits_at_any_scale_come_back_mnist_sized(digits, scale):
    """Heights estimated from the ink, and the prepared digits' heights within the supported range.

    Measured: the estimate is within 0.75-1.3x of the truth for ~90% of digits (faint thin strokes
    of tiny digits break into pieces; a single thin-stroked big digit can pass for merged digits).
    """
    estimated, prepared = [], []
    for digit in digits:
        p = prepare(_resized(digit, scale), SIZE, invert=False)
        estimated.append(p.digit_height / (_mnist_height(digit) * scale))
        prepared.append(_ink_height(p.image))
    estimated, prepared = np.array(estimated), np.array(prepared)
    assert 0.75 <= np.median(estimated) <= 1.1
    assert np.mean((estimated > 0.6) & (estimated < 1.3)) >= 0.8
    low, high = DIGIT_HEIGHTS
    assert np.mean((prepared >= low) & (prepared <= high + 2)) >= 0.8
    assert abs(np.median(prepared) - TARGET_HEIGHT) <= 2  # back at MNIST's height


@pytest.mark.parametrize("scale", [0.65, 1.5, 2.5])
def test_digit_files_at_other_scales_on_paper(digits, tmp_path, scale):
    """Dark ink on white paper as PNG and JPEG: inverted, then the same heights as the arrays."""
    paths = []
    for i, digit in enumerate(digits[:20]):
        picture = 255 - _resized(digit, scale)
        paths += [tmp_path / f"{i}.png", tmp_path / f"{i}.jpg"]
        Image.fromarray(picture).save(paths[-2])
        Image.fromarray(picture).save(paths[-1], quality=90)
    heights = np.array([_ink_height(image) for _, image in load_images(paths, SIZE)])
    want = np.repeat([_ink_height(prepare(_resized(d, scale), SIZE, invert=False).image) for d in digits[:20]], 2)
    assert np.mean(np.abs(heights - want) <= 2) >= 0.9
    assert np.mean((heights >= DIGIT_HEIGHTS[0]) & (heights <= DIGIT_HEIGHTS[1] + 2)) >= 0.7


@pytest.mark.parametrize("scale", [0.65, 1.5])
def test_multi_digit_canvases_at_other_scales(canvases, scale):
    estimated, prepared = [], []
    for canvas in canvases[0]:
        p = prepare(_resized(canvas, scale), SIZE, invert=False)
        estimated.append(p.digit_height / (TARGET_HEIGHT * scale))
        prepared.append(prepare(p.image, SIZE, invert=False).digit_height)
    assert np.mean((np.array(estimated) > 0.75) & (np.array(estimated) < 1.3)) >= 0.8
    assert np.mean((np.array(prepared) >= DIGIT_HEIGHTS[0]) & (np.array(prepared) <= DIGIT_HEIGHTS[1])) >= 0.8


def test_model_sized_mnist_canvases_are_unchanged(canvases):
    for canvas in canvases[0]:
        p = prepare(canvas, SIZE)
        assert p.scale == 1.0 and not p.warning
        np.testing.assert_array_equal(p.image, canvas)


def _frame(picture, width, level):
    framed = np.full((picture.shape[0] + 2 * width, picture.shape[1] + 2 * width), level, np.uint8)
    framed[width:-width, width:-width] = picture
    return framed


@pytest.mark.parametrize("width", [1, 2, 3])
def test_frames_around_the_paper_are_stripped(canvases, width):
    """A black, grey or white frame fooled the border rule; now the paper and ink decide."""
    for canvas in canvases[0][:6]:
        for paper, level in ((255 - canvas, 0), (255 - canvas, 128), (canvas, 255)):
            np.testing.assert_array_equal(prepare(_frame(paper, width, level), SIZE).image, canvas)


@pytest.mark.parametrize("paper", [230, 200, 150])
def test_grey_paper_maps_to_black_and_ink_to_full_range(canvases, paper):
    for canvas in canvases[0][:6]:
        scan = np.rint(paper * (1 - canvas / 255.0)).astype(np.uint8)  # dark ink on grey paper
        got = prepare(_frame(scan, 2, 20), SIZE).image
        assert np.abs(got.astype(int) - canvas).max() <= 2


def test_faint_light_ink_on_dark_grey_is_stretched(canvases):
    for canvas in canvases[0][:6]:
        scan = (60 + canvas * (100 / 255.0)).round().astype(np.uint8)  # ink 60..160 on paper 60
        assert np.abs(prepare(scan, SIZE).image.astype(int) - canvas).max() <= 3


def _noisy(picture, sigma, seed=0):
    """``picture`` with Gaussian sensor noise, clipped to 0..255 as a camera or scanner clips it."""
    noise = np.random.default_rng(seed).normal(0, sigma, picture.shape)
    return np.clip(np.rint(picture + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("paper, ink, sigma, warned", [(200, 40, 10, False), (255, 0, 15, False), (0, 255, 15, False),
                                                    (200, 120, 16, True)])
def test_sensor_noise_on_the_paper_is_removed(canvases, paper, ink, sigma, warned):
    """Noise stretched with the ink read 0.48 exact instead of 0.97 (paper 200, sigma 12): now the
    paper's noise, measured from the picture, goes to black and the strokes stay. Noise clipped at
    white or black paper is measured at about half its sigma: faint specks are left, not ink. Noise
    strong against the ink (sd 16 against 80 levels) is median-filtered, and the picture warned."""
    for canvas in canvases[0][:6]:
        photo = _noisy(paper + (ink - paper) * (canvas / 255.0), sigma)
        got = prepare(photo, SIZE)
        assert got.scale == 1.0 and ("pixel noise of sd" in got.warning) == warned, got.warning
        assert np.mean(got.image[canvas == 0] == 0) >= 0.9 and np.mean(got.image[canvas == 0] < 64) >= 0.999
        assert np.mean(got.image[canvas >= 200] >= 128) >= (0.85 if warned else 0.95)


def test_noise_is_measured_on_the_paper_not_on_the_ink(digits):
    """Unclipped noise is measured to within 10%; a tightly cropped clean digit, all stroke edges, and
    its smooth enlargement are clean, so their faint ink is kept."""
    for sigma in (4, 10, 20):
        assert noise_level(_noisy(np.full((64, 64), 128.0), sigma), 128, 80) == pytest.approx(sigma, rel=0.1)
    for digit in digits:
        rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
        crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert noise_level(crop, 0, 127) == 0
        assert NOISE_FLOOR * noise_level(_resized(crop, 3), 0, 127) < 12


BLANK = [np.full((side, side), level, np.uint8) for level in (0, 20, 128, 235, 255) for side in (1, 2, 5, 28, 64, 97)]
BLANK += [np.full((1, 300), 50, np.uint8),
          _noisy(np.full((80, 120), 230), 3),  # a clean scan
          _noisy(np.full((90, 70), 250), 15), _noisy(np.full((80, 120), 128), 12),  # camera noise (the first read as ink)
          np.linspace(200, 230, 64 * 64).reshape(64, 64).astype(np.uint8)]  # uneven lighting


def test_blank_pages_are_all_black_and_read_no_digits(tmp_path):
    for picture in BLANK:
        p = prepare(picture, SIZE)
        assert not p.image.any() and p.digit_height == 0 and not p.warning
    paths = []
    for i, picture in enumerate(BLANK):
        paths.append(tmp_path / f"{i}.{'jpg' if i % 2 else 'png'}")
        Image.fromarray(picture).save(paths[-1])
    result = CliRunner().invoke(main, ["infer", "--threads", "1", *map(str, paths)])  # the shipped model
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.output
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == list(map(str, paths))
    assert all(": no digits (highest " in line for line in lines)


def _corners(digits):
    """White paper 300x300 with a digit in two opposite corners: cannot fit at a readable scale."""
    page = np.zeros((300, 300), np.uint8)
    page[:28, :28], page[-28:, -28:] = digits[0], digits[1]
    return 255 - page


def test_digits_too_small_after_fitting_warn_in_one_line(models, digits, tmp_path):
    path = tmp_path / "corners.png"
    Image.fromarray(_corners(digits)).save(path)
    Image.fromarray(255 - digits[2]).save(tmp_path / "fine.png")
    with pytest.warns(PictureWarning, match=r"corners.png: digits look ~[\d.]+ px tall after fitting to 64x64; "
                                            r"supported 14-24 px: crop the picture or enlarge the digits"):
        load_images([path], SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # users silence it by category; nothing else is raised
        warnings.filterwarnings("ignore", category=PictureWarning)
        load_images([path, tmp_path / "fine.png"], SIZE)
    with warnings.catch_warnings(record=True) as caught:  # a model supporting smaller digits does not warn
        warnings.simplefilter("always")
        load_images([path], SIZE, heights=(3, 24))
    assert not caught
    result = CliRunner().invoke(main, ["infer", "--model", str(models["int8"]), str(path), str(tmp_path / "fine.png")])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
    warning_lines = [line for line in result.stderr.splitlines()  # this test model has no metadata: its own warning
                     if not line.startswith("INFO") and "no mnist-edge metadata" not in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith(f"Warning: {path}: digits look ~")


def test_pictures_are_warned_about_by_the_models_own_digit_heights(digits, tmp_path):
    """The benchmark and load_images read pictures as `infer` does: a model whose metadata supports small
    digits is not warned about."""
    from benchmarks.scale_robustness import _classify

    path = tmp_path / "corners.png"
    Image.fromarray(_corners(digits)).save(path)
    clf = Classifier(None, num_threads=1)  # the shipped int8 model; its metadata says 14-24 px
    assert _classify(clf, [path], choose=False)[1] == 1
    clf.metadata["digit_heights"] = [3, 24]
    assert _classify(clf, [path], choose=False)[1] == 0
    with warnings.catch_warnings(record=True) as caught:  # load_images with a classifier: its range by default
        warnings.simplefilter("always")
        load_images([path], SIZE, classifier=clf)
    assert not caught


def test_pictures_that_do_not_look_like_digits_warn(digits):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)  # nothing but noise
    blocks = (rng.permutation(64).astype(np.uint8).reshape(8, 8) * 3).repeat(8, 0).repeat(8, 1)  # no paper, no pixel noise
    rows, cols = np.mgrid[:64, :64]
    disc = np.where((rows - 32) ** 2 + (cols - 32) ** 2 < 400, 230, 0).astype(np.uint8)  # a solid shape, not strokes
    both = np.full((64, 64), 128, np.int16)  # grey paper with a white digit and a black one
    both[4:32, 4:32] += digits[0] // 2
    both[32:60, 32:60] -= digits[1] // 2
    for picture, reason in ((noise, "pixel noise of sd"), (_noisy(np.full((80, 90), 128), 25), "pixel noise of sd"),
                            (blocks, "no even background"), (disc, "ink covers"),
                            (both.astype(np.uint8), "marks both lighter and darker")):
        with pytest.warns(PictureWarning, match="does not look like light digits on a dark background .*" + reason):
            load_images_of(picture)
    for digit in digits:
        assert not prepare(digit, SIZE).warning


def load_images_of(picture):
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/picture.png"
        Image.fromarray(picture).save(path)
        return load_images([path], SIZE)


def test_supported_heights_come_from_the_metadata_if_there():
    assert supported_heights(None) == supported_heights({}) == DIGIT_HEIGHTS
    assert supported_heights({"digit_heights": [10, 30]}) == (10.0, 30.0)
    for bad in ([10], "12-24", [30, 40], [-1, 24], None):
        assert supported_heights({"digit_heights": bad}) == DIGIT_HEIGHTS


def test_model_sized_arrays_and_classifier_inputs_are_untouched(models, canvases, tmp_path):
    """bench and Classifier feed model-sized arrays straight to the interpreter; load_images too."""
    images = canvases[0].copy()
    images[0, :2] = 200  # even a picture-like array (a light band) is used as it is
    np.save(tmp_path / "set.npy", images)
    for (_, got), want in zip(load_images([tmp_path / "set.npy"], SIZE), images):
        np.testing.assert_array_equal(got, want)
    clf = Classifier(models["int8"], num_threads=1)
    with pytest.raises(MnistEdgeError, match="28x28 but the model takes 64x64.*prepare"):
        clf.scores(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize("picture", [np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8), np.float32), np.zeros(5, np.uint8)])
def test_prepare_refuses_what_is_not_a_gray_picture(picture):
    with pytest.raises(MnistEdgeError, match="a picture must be uint8 \\(h,w\\) gray"):
        prepare(picture, SIZE)


def test_a_scanned_page_with_a_row_of_digits(digits, tmp_path):
    """Grey paper, a black scanner edge, three digits 80 px tall in a corner of an 800x600 JPEG."""
    page = np.full((600, 800), 225, np.uint8)
    page[:, :2] = page[:2, :] = 30
    for i, digit in enumerate(digits[:3]):
        big = _resized(digit, 80 / 28)
        page[40:40 + big.shape[0], 60 + 70 * i:60 + 70 * i + big.shape[1]] = np.minimum(
            page[40:40 + big.shape[0], 60 + 70 * i:60 + 70 * i + big.shape[1]], 225 - big * (200 / 255)).astype(np.uint8)
    Image.fromarray(page).save(tmp_path / "scan.jpg", quality=85)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [(_, image)] = load_images([tmp_path / "scan.jpg"], SIZE)
    heights = [_ink_height(image[:, c0:c1]) for c0, c1 in _columns(image)]
    assert len(heights) == 3 and all(abs(h - TARGET_HEIGHT) <= 3 for h in heights), heights


def _columns(image):
    """(start, end) of the runs of columns holding ink: one per digit side by side."""
    inked = np.r_[False, (image >= 128).any(axis=0), False]
    edges = np.flatnonzero(np.diff(inked.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))
