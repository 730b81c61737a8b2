"""The three architectures ``mnist-edge train --arch`` offers, and a multiply-add counter.

Every model takes float32 (N,H,W,1) in [0,1] (pixels/255, no rescaling layer inside, so int8 input
quantization is exact) and ends in a separate ``Activation("sigmoid")`` layer giving 10 independent
digit probabilities: the exported model is what the loss sees, with no logits-vs-probabilities mismatch.
"""
import keras
from keras import layers

from edge_runtime.model_contract import NUM_CLASSES
from train.options import ARCHS

# The default design, in one place so widths can be retuned: (filters, stride) of the two plain
# 3x3 stem convs, then (filters, stride) of each depthwise-separable block.
EDGE_STEM = ((16, 2), (32, 2))
EDGE_BLOCKS = ((64, 1), (64, 1), (160, 2), (160, 1), (160, 1), (160, 1))
EDGE_RELU_MAX = 6.0  # ReLU6: bounded activations keep int8 activation ranges tight
EDGE_BN_MOMENTUM = 0.9  # BN statistics follow the fast-moving weights (Keras default 0.99 lags for epochs)


def build_model(arch="edge-cnn", input_shape=(64, 64, 1)):
    """A fresh, uncompiled Keras model for ``arch`` (one of ARCHS)."""
    builders = {"edge-cnn": _edge_cnn, "seed-cnn": _seed_cnn, "mlp": _mlp}
    if arch not in builders:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    outputs = layers.Activation("sigmoid", name="scores")(builders[arch](inputs))
    return keras.Model(inputs, outputs, name=arch.replace("-", "_"))


def _mlp(x):
    """The seed's Example 1: a baseline with no notion of where a digit is."""
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    return layers.Dense(NUM_CLASSES)(x)


def _seed_cnn(x):
    """The seed's Example 2. At 64x64 its Flatten->Dense holds ~1.6 M of its parameters."""
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    return layers.Dense(NUM_CLASSES)(x)


def _edge_cnn(x):
    """The default: a small fully convolutional net built for int8 inference on a CPU.

    - Stride-2 stem: two plain 3x3 stride-2 convs take 64x64 to 16x16 before any wide layer, where
      most of a CNN's cost would otherwise sit.
    - Depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, MobileNet style) do the rest at
      ~1/8 the multiply-adds of full 3x3 convs; one more stride 2 leaves an 8x8 map.
    - Receptive field 79 px (3, 7, 15, 23, 31, 47, 63, 79 after each 3x3): a location sees a whole
      digit (up to 34 px at scale 1.2) and its neighbours, which tells a digit from the overlapping
      stroke of another.
    - Depth, then width: two blocks at 16x16 and four at 8x8. Test macro-F1 (36 epochs of fresh
      images for the last three): 3 blocks (37 k parameters) 0.975, 5 blocks 0.983, 6 blocks of 128
      channels 0.987, 160 channels 0.988 with digits at 0.6-1.2x MNIST's size and 0.990 at 0.7-1.2x.
      160 channels cost 1.3x the multiply-adds of 128 (int8 latency 1.3x 0.1's; the bound is 1.5x).
    - Head: a 1x1 conv gives 10 class logits per location and a max over the whole map keeps each
      class's best location: "this digit is somewhere in the image", translation invariant, any
      number of digits at once, no Flatten->Dense that ties a digit to one position (seed-cnn's 1.6 M).
    - Ops: Conv2D, DepthwiseConv2D, ReLU6, max-pool, mean, logistic only, all int8 TFLite builtins;
      BatchNormalization folds into the preceding conv at conversion (hence use_bias=False there);
      its momentum is 0.9 so the inference statistics keep up with a high learning rate.
    - Cost at 64x64: ~9.1 M multiply-adds and ~111 k parameters, against ~18 M and ~1.6 M for seed-cnn.
    """
    for filters, stride in EDGE_STEM:
        x = _bn_relu(layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x))
    for filters, stride in EDGE_BLOCKS:
        x = _bn_relu(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x))
        x = _bn_relu(layers.Conv2D(filters, 1, use_bias=False)(x))
    x = layers.Conv2D(NUM_CLASSES, 1, name="class_maps")(x)
    # Global max as a MaxPooling2D over the whole map, then an average over the 1x1 result (an exact
    # squeeze): MAX_POOL_2D + MEAN, which both the converter and LiteRT Quantizer keep int8. LiteRT
    # Quantizer has no int8 REDUCE_MAX (GlobalMaxPooling2D), and Flatten exports SHAPE/PACK/RESHAPE
    # for the unknown batch size, whose SHAPE it feeds a float copy.
    x = layers.MaxPooling2D(pool_size=x.shape[1:3], name="global_max")(x)
    return layers.GlobalAveragePooling2D(name="squeeze")(x)


def _bn_relu(x):
    return layers.ReLU(EDGE_RELU_MAX)(layers.BatchNormalization(momentum=EDGE_BN_MOMENTUM)(x))


def count_macs(model):
    """Multiply-adds of one image through the Conv2D, DepthwiseConv2D and Dense layers.

    Counted from layer shapes (a conv output element costs kernel area x input channels / groups);
    biases, BN, activations and pooling are left out, as is usual, since they are a rounding error.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            total += h * w * c_out * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            total += h * w * c_out * layer.kernel_size[0] * layer.kernel_size[1] * c_in // layer.groups
        elif isinstance(layer, layers.Dense):
            positions = 1
            for d in layer.input.shape[1:-1]:
                positions *= d
            total += positions * layer.input.shape[-1] * layer.units
    return int(total)
