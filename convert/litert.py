"""Quantize a float32 .tflite with LiteRT Quantizer (PyPI ``litert-quantizer``), without TensorFlow.

LiteRT's documentation deprecates post-training quantization inside ``TFLiteConverter`` in favour
of this tool: convert to float32, then quantize the flatbuffer. It needs only ai-edge-litert and
numpy, so it also runs on a device (``mnist-edge quantize``).

Calibration goes in as ONE batch of all calibration images. The quantizer merges each tensor's
min/max over calibration steps with a moving average (factor 0.95), so feeding images one at a
time gives a smoothed recent range: on the shipped model the input range came out 0..0.949,
clipping every pixel above 242, and the first layer's SNR fell from 42 to 29 dB. One batch gives
the exact min/max over the set, the TF converter's rule, hence input scale 1/255 and zero point
-128 as there (q = pixel - 128).
"""
import contextlib
import io
import warnings

from edge_runtime.errors import MnistEdgeError, first_line
from edge_runtime.model_contract import to_model_input

from .embed import strip_metadata

# format -> LiteRT Quantizer recipe (functions in litert_quantizer.recipe)
RECIPES = {
    "int8": "static_wi8_ai8",        # int8 weights (per channel) and activations, int8 I/O
    "w8a16": "static_wi8_ai16",      # int8 weights, int16 activations and I/O (symmetric)
    "dynamic": "dynamic_wi8_afp32",  # int8 weights, float activations quantized on the fly
}
INSTALL = "pip install 'litert-quantizer>=0.11'"


def require_quantizer():
    """The litert_quantizer modules (quantizer, recipe), or a one-line error naming the install."""
    try:
        from litert_quantizer import quantizer, recipe
    except ImportError as e:
        raise MnistEdgeError(f"LiteRT Quantizer is not installed ({e}): {INSTALL} "
                             "(or pip install \"mnist-edge[quantize]\")") from None
    return quantizer, recipe


def version():
    from importlib.metadata import version as package_version

    return f"litert-quantizer {package_version('litert-quantizer')}"


def quantize(float_bytes, fmt, calib_images):
    """Quantized .tflite bytes of ``float_bytes`` for ``fmt`` (a RECIPES key).

    ``calib_images``: uint8 (N,H,W), used by the recipes that calibrate activations.
    """
    quantizer, recipe = require_quantizer()
    float_bytes = strip_metadata(float_bytes)  # else the quantized copy would carry "format": "float32"
    signature, input_name = _signature(float_bytes)
    # The quantizer's calibration interpreter warns that keeping every tensor is for debugging,
    # which is what calibration needs; its progress bar would break the convert table.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            qt = quantizer.Quantizer(bytearray(float_bytes))
            qt.load_quantization_recipe(getattr(recipe, RECIPES[fmt])())
            calibration = None
            if qt.need_calibration:
                calibration = qt.calibrate({signature: [{input_name: to_model_input(calib_images)}]})
            result = qt.quantize(calibration, enable_progress_report=False)
        except Exception as e:  # the quantizer raises ValueError, KeyError, RuntimeError... with long texts
            raise MnistEdgeError(f"LiteRT Quantizer failed on this model: {first_line(e)}") from None
    return bytes(result.quantized_model)


def _signature(model_bytes):
    """(signature key, input name) the quantizer's calibration feeds; the model has one of each."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=bytes(model_bytes)).get_signature_list()
    if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
        raise MnistEdgeError(f"LiteRT Quantizer needs a model with one signature and one input, found {signatures}")
    key, signature = next(iter(signatures.items()))
    return key, signature["inputs"][0]

