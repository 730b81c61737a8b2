"""The small labelled sample shipped inside the package: a demo right after install, without MNIST or a network.

``sample_data/sample.npz`` holds a few hundred images composed from MNIST's *test* digits (which the
shipped models never trained on), in the labelled format of ``edge_runtime.dataset_file``;
``sample_data/digits_*.png`` are a few pictures whose names give their digits. ``mnist-edge bench``
without arguments and ``mnist-edge infer --example`` use them. ``python -m train.sample`` writes
them (train/sample.py). Figures on so few images are a demo, not a benchmark.
"""
from pathlib import Path

from .errors import MnistEdgeError

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
SAMPLE_NPZ = "sample.npz"
SAMPLE_INFO = "sample.json"        # how the sample was made (seed, size, MNIST digest)
PICTURE_PATTERN = "digits_{}.png"  # {} = the picture's digits joined by "_", e.g. digits_0_4_6.png


def sample_path():
    """The shipped labelled sample (.npz with images and labels)."""
    path = SAMPLE_DIR / SAMPLE_NPZ
    if not path.is_file():
        raise MnistEdgeError(f"the demo sample is missing from this installation ({path}); "
                             "pass a labelled .npz such as test.npz from `mnist-edge data`")
    return path


def example_pictures():
    """The shipped example pictures, sorted by name."""
    pictures = sorted(SAMPLE_DIR.glob(PICTURE_PATTERN.format("*")))
    if not pictures:
        raise MnistEdgeError(f"no example pictures in this installation ({SAMPLE_DIR}); pass image files instead")
    return pictures
