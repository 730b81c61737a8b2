"""Classifier: which digits are in an image, from any .tflite file that follows the toolkit's contract.

Everything that does not depend on the images (tensor indices, quantization, thresholds, the pixel
conversion) is worked out once in ``__init__``, so a call adds only a few microseconds to the
interpreter's own ``set_tensor`` + ``invoke`` + ``get_tensor``.
"""
import os
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import MnistEdgeError
from .interpreter import load_interpreter, read_model_bytes
from .metadata import read_metadata
from .metrics import DEFAULT_THRESHOLD
from .model_contract import NUM_CLASSES, PREPROCESSING

MODELS_DIR = Path(__file__).resolve().parent / "models"  # where the package's own models ship
SHIPPED_FORMATS = ("float32", "int8")  # the formats shipped there (model_<format>.tflite)
MAX_BATCH = 256  # images per invoke; larger inputs run in chunks so activations stay small on a device


class Prediction(NamedTuple):
    digits: tuple       # the digits whose score >= their threshold, ascending
    scores: np.ndarray  # float32 (10,), the model's probability for each digit 0..9


def default_model_path(fmt="int8"):
    """The model shipped inside the package, so ``infer`` works without ``--model``."""
    path = MODELS_DIR / f"model_{fmt}.tflite"
    if not path.is_file():
        raise MnistEdgeError(f"no {fmt} model ships with this installation (looked for {path}); "
                             "pass a .tflite file (--model), e.g. one written by `mnist-edge convert`")
    return path


class Classifier:
    """Digit scores and predictions for one image or a batch, in one invoke per batch.

    Images are uint8 (0..255) or float ([0,1]), shaped (H,W), (N,H,W) or (N,H,W,1) with the model's
    own H,W, used as they are (no per-image preprocessing on this hot path, which ``bench`` times);
    other sizes are refused rather than silently stretched: ``load_images`` and ``prepare`` fit any
    picture to the model. Thresholds come from ``thresholds`` (one number or ten), else the model's
    embedded metadata, else 0.5.

    Thread safe: threads share the one interpreter under a lock (an interpreter must not be used
    while it invokes). Measured with 8 threads on 2 cores (benchmarks/runtime_overhead.py), one
    interpreter per thread is up to 2x faster with ``num_threads=1`` but 10-25x slower with
    tflite-runtime once threads x ``num_threads`` exceeds the cores (the default uses every core),
    so the lock stays: for parallel throughput give each thread its own ``Classifier(num_threads=1)``.
    """

    def __init__(self, model=None, num_threads=None, runtime="auto", use_xnnpack=True, thresholds=None):
        self.model_path = Path(model) if model is not None else default_model_path("int8")
        self.num_threads = int(os.cpu_count() or 1) if num_threads is None else int(num_threads)
        if self.num_threads < 1:
            raise MnistEdgeError(f"num_threads must be at least 1, got {num_threads}")
        content = read_model_bytes(self.model_path)  # read once: the interpreter and the metadata share it
        self.interpreter, self.runtime_name, self.runtime_version = load_interpreter(
            self.model_path, self.num_threads, runtime, use_xnnpack, model_content=content)
        self.input_details = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()[0]
        self.metadata = read_metadata(content, source=self.model_path) or {}
        self.input_shape = tuple(int(n) for n in self.input_details["shape"][1:3])
        self.thresholds = _thresholds(self.metadata.get("thresholds") if thresholds is None else thresholds)
        in_type = np.dtype(self.input_details["dtype"])
        self.model_format = self.metadata.get("format") or ("float32" if in_type == np.float32 else in_type.name)
        # Pre-computed for the hot path.
        self._in_index, self._out_index = self.input_details["index"], self.output_details["index"]
        self._from_uint8 = _uint8_converter(self.input_details)
        self._to_float = _output_converter(self.output_details)
        self._batch = 1
        self._lock = threading.Lock()

    def scores(self, images):
        """float32 (N,10) probabilities; a single (H,W) image gives (1,10)."""
        x = self._prepare(images)
        if len(x) <= MAX_BATCH:
            return self._run(x)
        return np.concatenate([self._run(x[i:i + MAX_BATCH]) for i in range(0, len(x), MAX_BATCH)])

    def predict(self, images):
        """A Prediction per image: digits with score >= threshold (ascending) and the 10 scores."""
        scores = self.scores(images)
        thresholds = self.thresholds.tolist()  # float32 values, so comparing Python floats is exact
        return [Prediction(tuple(d for d, (s, t) in enumerate(zip(row, thresholds)) if s >= t), scores[i])
                for i, row in enumerate(scores.tolist())]

    def _run(self, x):
        """One invoke over the batch ``x``; the tensor is resized only when the batch size changes."""
        if not len(x):
            return np.zeros((0, NUM_CLASSES), np.float32)
        with self._lock:
            if len(x) != self._batch:
                self.interpreter.resize_tensor_input(self._in_index, x.shape)
                self.interpreter.allocate_tensors()
                self._batch = len(x)
            self.interpreter.set_tensor(self._in_index, x)
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self._out_index)
        return self._to_float(out)

    def _prepare(self, images):
        """Any accepted layout and type -> (N,H,W,1) in the input tensor's type."""
        try:
            a = np.asarray(images)
        except ValueError as e:  # e.g. a list of images of different sizes
            raise MnistEdgeError(f"images must form one array ({e})") from None
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 4 and a.shape[3] == 1:
            a = a[..., 0]
        if a.ndim != 3:
            raise MnistEdgeError(f"images must be shaped (H,W), (N,H,W) or (N,H,W,1), got {a.shape}")
        if a.shape[1:] != self.input_shape:
            raise MnistEdgeError(f"images are {a.shape[1]}x{a.shape[2]} but the model takes "
                                 f"{self.input_shape[0]}x{self.input_shape[1]}; "
                                 "edge_runtime.load_images or edge_runtime.prepare fits pictures of any size to the model")
        if a.dtype == np.uint8:
            x = self._from_uint8(a)
        elif a.dtype.kind == "f":
            x = _quantize(_checked_float(a), self.input_details)
        else:
            raise MnistEdgeError(f"images must be uint8 (0..255) or float (0..1), got {a.dtype}")
        return x[..., None]


def _thresholds(value):
    """One threshold per digit from None (0.5), one number, or ten numbers, each in [0,1]."""
    try:
        t = np.array(DEFAULT_THRESHOLD if value is None else value, dtype=np.float32)
    except (TypeError, ValueError):
        t = None
    if t is not None and t.ndim == 0:
        t = np.full(NUM_CLASSES, t)
    if t is None or t.shape != (NUM_CLASSES,) or not np.all((t >= 0) & (t <= 1)):
        raise MnistEdgeError(f"thresholds must be one number or {NUM_CLASSES} numbers in [0,1], got {value!r}")
    return t


def _checked_float(a):
    if not np.isfinite(a).all():
        raise MnistEdgeError("images contain NaN or infinite values")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise MnistEdgeError(f"float images must lie in [0,1] (pixels/255), got {a.min():g}..{a.max():g}; "
                             "pass uint8 arrays for 0..255 pixels")
    return a


def _quantize(x, detail):
    """Floats in [0,1] -> the tensor's type, with the tensor's own scale and zero point."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale + zero), info.min, info.max).astype(dtype)


def _uint8_converter(detail):
    """The cheapest map from uint8 pixels to the input tensor: the model contract's pixels/255, quantized
    exactly like _quantize."""
    scale = PREPROCESSING["scale"]
    table = _quantize(np.arange(256) * scale, detail)
    if detail["dtype"] == np.float32:
        return lambda a: a * np.float32(scale)
    if np.array_equal(table, np.arange(256) - 128):  # int8 with scale 1/255, zero -128: q = p - 128
        return lambda a: (a ^ np.uint8(0x80)).view(np.int8)
    if np.array_equal(table, np.arange(256)):  # uint8 with scale 1/255, zero 0: q = p
        return lambda a: a
    return table.take


def _output_converter(detail):
    """Output tensor -> float32 scores: a 256-entry table for int8/uint8 (indexed by the raw byte)."""
    if detail["dtype"] == np.float32:
        return lambda out: out
    scale, zero = detail["quantization"]
    table = ((np.arange(256, dtype=np.uint8).view(detail["dtype"]).astype(np.float64) - zero) * scale).astype(np.float32)
    return lambda out: table.take(out.view(np.uint8))
