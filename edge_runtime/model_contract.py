"""The contract every model of the toolkit follows: what goes in, what comes out.

Out: ``NUM_CLASSES`` independent sigmoid scores, one per digit 0..9. In: float32 pixels/255 with
light digits on dark, as MNIST. Training, conversion and the device runtime all import it from here,
so the scale is written once; it is recorded in every model's metadata, and scale 1/255 makes int8
input quantization exact (q = pixel - 128).
"""
import numpy as np

NUM_CLASSES = 10
MNIST_INK = 20  # px: MNIST size-normalises each digit into a 20x20 box; digit scale 1 means this ink height
PREPROCESSING = {"scale": 1 / 255, "polarity": "light-on-dark"}


def to_model_input(images):
    """uint8 (N,H,W) -> float32 (N,H,W,1) in [0,1], the input every model and converter shares."""
    return np.asarray(images, dtype=np.float32)[..., None] * np.float32(PREPROCESSING["scale"])
