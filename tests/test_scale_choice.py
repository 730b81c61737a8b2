"""The model picks a picture's digit scale among the size cues (prepare_choices + most_decisive), as
`infer` does: real MNIST test digits at other scales, the shipped model, files read back."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_runtime import Classifier, load_images, prepare
from edge_runtime.preprocess import prepare_choices
from edge_runtime.scale_choice import most_decisive
from models_for_tests import canvases  # noqa: F401 (fixture)
from train.cli import main
from train.mnist import load_mnist

SIZE = (64, 64)
SCALES = (0.5, 1.6, 2.5)  # bare digits 14, 45 and 70 px wide: the rule's size estimate misleads on some


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """40 bare MNIST test digits and their labels."""
    mnist = load_mnist(mnist_dir)
    return mnist.test_images[:40], mnist.test_labels[:40]


@pytest.fixture(scope="module")
def shipped():
    return Classifier(num_threads=1)


def _paper(digit, scale):
    """The digit resized by ``scale``, dark on white paper."""
    side = round(digit.shape[0] * scale)
    return 255 - np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))


def _same(a, b):
    return np.array_equal(a.image, b.image) and a[1:] == b[1:]


def test_choices_start_with_the_rules_and_differ(digits, canvases):
    for digit in digits[0][:10]:
        for scale in SCALES:
            choices = prepare_choices(_paper(digit, scale), SIZE)
            assert _same(choices[0], prepare(_paper(digit, scale), SIZE)) and 1 <= len(choices) <= 4
            assert all(not np.array_equal(a.image, b.image) for i, a in enumerate(choices) for b in choices[i + 1:])
    for canvas in canvases[0]:  # blank or model-sized at MNIST scale: the rule's choice is among them
        assert np.array_equal(prepare_choices(canvas, SIZE, invert=False)[0].image, canvas)
    assert len(prepare_choices(np.full((30, 30), 200, np.uint8), SIZE)) == 1  # blank: one all-black input


@pytest.mark.filterwarnings("ignore::edge_runtime.PictureWarning")  # tiny digits fill their paper
def test_the_model_reads_other_scales_better_than_the_rule_alone(digits, shipped, tmp_path):
    """On 200 test digits the shipped model read 185 -> 196 right at 0.5x, 186 -> 196 at 1.6x, 188 -> 197
    at 2.5x; on these 40, never fewer per scale and 7 more in all."""
    images, labels = digits
    right = {}
    for choose in (False, True):
        paths = []
        for scale in SCALES:
            for i, digit in enumerate(images):
                paths.append(tmp_path / f"{scale}_{i}_{choose}.png")
                Image.fromarray(_paper(digit, scale)).save(paths[-1])
        loaded = load_images(paths, SIZE, classifier=shipped if choose else None)
        read = [p.digits for p in shipped.predict([image for _, image in loaded])]
        right[choose] = np.array([d == (label,) for d, label in zip(read, np.tile(labels, len(SCALES)))])
        right[choose] = right[choose].reshape(len(SCALES), -1).sum(axis=1)
    assert (right[True] >= right[False]).all() and right[True].sum() >= right[False].sum() + 5, right


def test_infer_chooses_the_scale(digits, tmp_path):
    """`infer` reads with the choice: digit 8 of the 40 is misread at 1.6x by the rule alone."""
    images, labels = digits
    path = tmp_path / "big.png"
    Image.fromarray(_paper(images[8], 1.6)).save(path)
    shipped = Classifier(num_threads=1)
    assert shipped.predict([load_images([path], SIZE)[0][1]])[0].digits != (labels[8],)
    result = CliRunner().invoke(main, ["infer", "--threads", "1", str(path)])
    assert result.exit_code == 0 and f": digits {labels[8]} (scores" in result.stdout, result.output


def test_the_rules_choice_stays_unless_another_reads_clearly_surer(digits, shipped):
    """MNIST-scale digits: the rule's fitting is kept on nearly all; another one only where the model
    reads it clearly surer, and then it reads the right digit."""
    overridden = 0
    for digit, label in zip(*digits):
        choices = prepare_choices(_paper(digit, 1.0), SIZE)
        kept = most_decisive(shipped, choices)
        if not _same(kept, choices[0]):
            overridden += 1
            assert shipped.predict([kept.image])[0].digits == (label,)
    assert overridden <= 4  # measured 2 of these 40 (the 48-epoch model: none)


def test_a_wrong_classifier_is_refused_in_one_line(shipped):
    for wrong in ("x", shipped):
        with pytest.raises(TypeError, match="classifier must be an edge_runtime.Classifier whose input is"):
            load_images([], (28, 28) if wrong is shipped else SIZE, classifier=wrong)
