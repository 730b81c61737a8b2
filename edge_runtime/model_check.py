"""What the interpreter divides by, indexes with and allocates from, checked before it sees the file.

``flatbuffer.verify`` proves every table lies inside the file; this checks the values. The
interpreters trust them: a convolution with stride 0 is a SIGFPE in tflite-runtime's kernels, a
tensor index past the end reads outside an array, a shape of 2^31 elements asks for gigabytes. So
for every subgraph it checks tensor shapes, types, buffers and quantization, every operator's tensor
indices and arity, and the options of the operators image models use (field ids from
tensorflow/lite/schema/schema.fbs):

    Tensor    { shape:0 [int], type:1 byte, buffer:2 uint, quantization:4 }
    QuantizationParameters { scale:2 [float], zero_point:3 [long], quantized_dimension:6 int }
    Operator  { opcode_index:0 uint, inputs:1 [int], outputs:2 [int], builtin_options_type:3 ubyte,
                builtin_options:4 }
    Conv2DOptions          { padding:0, stride_w:1, stride_h:2, fused_activation:3, dilation_w:4, dilation_h:5 }
    DepthwiseConv2DOptions { padding:0, stride_w:1, stride_h:2, depth_multiplier:3, fused_activation:4,
                             dilation_w:5, dilation_h:6 }
    Pool2DOptions          { padding:0, stride_w:1, stride_h:2, filter_w:3, filter_h:4, fused_activation:5 }
"""
import math
import struct

from .flatbuffer import BadFlatbuffer, Reader, buffer_span, verify

MAX_RANK = 8                  # TFLite kernels handle at most 6 dimensions (reshape 8)
MAX_TENSOR_BYTES = 1 << 28    # 256 MiB: 40x the largest activation a 64x64 classifier needs, far below RAM
MAX_TOTAL_BYTES = 1 << 30     # all tensors together
MAX_WINDOW = 1 << 12          # strides, dilations and pool sizes: larger ones overflow index arithmetic
# TensorType -> bytes per element, for the types whose size is fixed
INT32 = 2
TYPE_SIZES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}

CONV, POOL = "conv", "pool"
# builtin code -> (name, BuiltinOptions type or None, options required, inputs (min, max), most outputs, kind)
OPS = {
    3: ("CONV_2D", 1, True, (2, 3), 1, CONV),
    4: ("DEPTHWISE_CONV_2D", 2, True, (2, 3), 1, CONV),
    1: ("AVERAGE_POOL_2D", 5, True, (1, 1), 1, POOL),
    17: ("MAX_POOL_2D", 5, True, (1, 1), 1, POOL),
    12: ("L2_POOL_2D", 5, True, (1, 1), 1, POOL),
    9: ("FULLY_CONNECTED", 8, False, (2, 3), 2, None),  # a second output: the shuffled-weights workspace
    22: ("RESHAPE", 17, False, (1, 2), 1, None),
    25: ("SOFTMAX", 9, False, (1, 1), 1, None),
    14: ("LOGISTIC", None, False, (1, 1), 1, None),
    114: ("QUANTIZE", None, False, (1, 1), 1, None),
    6: ("DEQUANTIZE", None, False, (1, 1), 1, None),
    40: ("MEAN", 27, False, (2, 2), 1, None),
    74: ("SUM", 27, False, (2, 2), 1, None),
    82: ("REDUCE_MAX", 27, False, (2, 2), 1, None),
    89: ("REDUCE_MIN", 27, False, (2, 2), 1, None),
    77: ("SHAPE", 55, False, (1, 1), 1, None),             # SHAPE, STRIDED_SLICE, PACK: Keras' Reshape
    45: ("STRIDED_SLICE", 32, False, (4, 4), 1, None),     # with a dynamic batch size
    83: ("PACK", 59, False, (1, 1 << 16), 1, None),
}
# Option layouts: field id -> (name, struct format, default, low, high)
_WINDOW = (1, MAX_WINDOW)
_OPTIONS = {
    "CONV_2D": {0: ("padding", "<b", 0, 0, 1), 1: ("stride_w", "<i", 0, *_WINDOW), 2: ("stride_h", "<i", 0, *_WINDOW),
                3: ("activation", "<b", 0, 0, 5), 4: ("dilation_w", "<i", 1, *_WINDOW),
                5: ("dilation_h", "<i", 1, *_WINDOW)},
    "DEPTHWISE_CONV_2D": {0: ("padding", "<b", 0, 0, 1), 1: ("stride_w", "<i", 0, *_WINDOW),
                          2: ("stride_h", "<i", 0, *_WINDOW), 3: ("depth_multiplier", "<i", 0, 0, 1 << 16),
                          4: ("activation", "<b", 0, 0, 5), 5: ("dilation_w", "<i", 1, *_WINDOW),
                          6: ("dilation_h", "<i", 1, *_WINDOW)},
    "POOL": {0: ("padding", "<b", 0, 0, 1), 1: ("stride_w", "<i", 0, *_WINDOW), 2: ("stride_h", "<i", 0, *_WINDOW),
             3: ("filter_w", "<i", 0, *_WINDOW), 4: ("filter_h", "<i", 0, *_WINDOW), 5: ("activation", "<b", 0, 0, 5)},
    "FULLY_CONNECTED": {0: ("activation", "<b", 0, 0, 5), 1: ("weights_format", "<b", 0, 0, 1)},
}


def check_model(data):
    """None if ``data`` is a TFLite file the interpreter can build without crashing, else why not."""
    problem = verify(data)
    if problem:
        return problem
    reader = Reader(data)
    try:
        _check_model(reader, reader.root())
    except BadFlatbuffer as e:
        return str(e)
    return None


def _check_model(reader, model):
    codes = [_builtin_code(reader, code) for code in reader.tables(model, 1)]
    buffers = reader.tables(model, 4)
    subgraphs = reader.tables(model, 2)
    if not subgraphs:
        raise BadFlatbuffer("the model has no subgraph")
    tensor_counts = [_check_subgraph(reader, g, i, codes, buffers) for i, g in enumerate(subgraphs)]
    for signature in reader.tables(model, 7):
        index = reader.value(signature, 4, "<I")
        _index(index, len(subgraphs), "signature subgraph")
        for field in (0, 1):
            for tensor_map in reader.tables(signature, field):
                _index(reader.value(tensor_map, 1, "<I"), tensor_counts[index], "signature tensor")


def _builtin_code(reader, code):
    """The operator's BuiltinOperator: the larger of deprecated_builtin_code (byte) and builtin_code."""
    return max(reader.value(code, 0, "<b"), reader.value(code, 3, "<i"))


def _ints(reader, table, field_id, fmt="i", size=4):
    span = reader.vector(table, field_id, size)
    return list(struct.unpack_from(f"<{span[1]}{fmt}", reader.data, span[0])) if span else []


def _index(value, count, what):
    if not 0 <= value < count:
        raise BadFlatbuffer(f"{what} index {value} is out of range (0..{count - 1})")


def _check_subgraph(reader, graph, number, codes, buffers):
    tensors = reader.tables(graph, 0)
    shapes, constants, total = [], {}, 0
    for t, tensor in enumerate(tensors):
        shape, nbytes, stored = _check_tensor(reader, tensor, f"subgraph {number} tensor {t}", buffers)
        shapes.append(shape)
        if stored[1] and reader.value(tensor, 1, "<b") == INT32:
            constants[t] = struct.unpack_from(f"<{stored[1] // 4}i", reader.data, stored[0])
        total += nbytes
    if total > MAX_TOTAL_BYTES:
        raise BadFlatbuffer(f"subgraph {number}: tensors need {total / 2**30:.1f} GiB")
    for field, what in ((1, "input"), (2, "output")):
        for index in _ints(reader, graph, field):
            _index(index, len(tensors), f"subgraph {number} {what} tensor")
    for k, op in enumerate(reader.tables(graph, 3)):
        _check_operator(reader, op, f"subgraph {number} operator {k}", codes, shapes, constants)
    return len(tensors)


def _check_tensor(reader, tensor, where, buffers):
    """(shape, bytes, stored data span) of one tensor, after checking its shape, type, buffer and quantization."""
    shape = _ints(reader, tensor, 0)
    if len(shape) > MAX_RANK or any(n < 1 for n in shape):
        raise BadFlatbuffer(f"{where} has shape {shape}")
    size = TYPE_SIZES.get(reader.value(tensor, 1, "<b"))
    nbytes = math.prod(shape) * (size or 1)
    if nbytes > MAX_TENSOR_BYTES:
        raise BadFlatbuffer(f"{where} has shape {shape} ({nbytes / 2**20:.0f} MiB)")
    buffer = reader.value(tensor, 2, "<I")
    _index(buffer, len(buffers), f"{where} buffer")
    span = buffer_span(reader, buffers[buffer])
    stored = span[1]
    if stored and size and stored != nbytes:
        raise BadFlatbuffer(f"{where} has shape {shape} but its buffer holds {stored} bytes")
    if (pos := reader.field(tensor, 4)) is not None:
        _check_quantization(reader, reader.deref(pos), shape, where)
    return shape, nbytes, span


def _check_quantization(reader, params, shape, where):
    scales = _ints(reader, params, 2, "f")
    zeros = _ints(reader, params, 3, "q", 8)
    if not scales:
        return
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise BadFlatbuffer(f"{where} has a quantization scale that is not a positive number")
    if zeros and len(zeros) != len(scales):
        raise BadFlatbuffer(f"{where} has {len(scales)} quantization scales but {len(zeros)} zero points")
    if len(scales) > 1:
        axis = reader.value(params, 6, "<i")
        if not 0 <= axis < len(shape) or shape[axis] != len(scales):
            raise BadFlatbuffer(f"{where} has {len(scales)} scales along dimension {axis} of shape {shape}")


def _check_operator(reader, op, where, codes, shapes, constants):
    code_index = reader.value(op, 0, "<I")
    _index(code_index, len(codes), f"{where} operator code")
    inputs, outputs = _ints(reader, op, 1), _ints(reader, op, 2)
    for index in inputs:
        if index != -1:  # -1: an optional input left out
            _index(index, len(shapes), f"{where} input tensor")
    for index in outputs + _ints(reader, op, 8):
        _index(index, len(shapes), f"{where} output tensor")
    if codes[code_index] not in OPS:
        return
    name, options_type, required, (low, high), most_outputs, kind = OPS[codes[code_index]]
    where = f"{where} ({name})"
    if not low <= len(inputs) <= high or not 1 <= len(outputs) <= most_outputs or -1 in inputs[:low]:
        raise BadFlatbuffer(f"{where} has {len(inputs)} inputs and {len(outputs)} outputs")
    actual = reader.value(op, 3, "<B")
    if actual != (options_type or 0) and (required or actual):
        raise BadFlatbuffer(f"{where} has options of type {actual}, expected {options_type}")
    if kind:  # image and filter are NHWC / OHWI
        for index in inputs[:1 if kind == POOL else 2]:
            if len(shapes[index]) != 4:
                raise BadFlatbuffer(f"{where} needs 4-d tensors, tensor {index} has shape {shapes[index]}")
    layout = _OPTIONS.get("POOL" if kind == POOL else name)
    if layout and (pos := reader.field(op, 4)) is not None:
        table = reader.deref(pos)
        for field_id, (option, fmt, default, lo, hi) in layout.items():
            value = default if reader.field(table, field_id) is None else reader.value(table, field_id, fmt)
            if not lo <= value <= hi:
                raise BadFlatbuffer(f"{where} has {option} {value} (expected {lo}..{hi})")
    if name == "STRIDED_SLICE" and 0 in constants.get(inputs[3], ()):
        raise BadFlatbuffer(f"{where} has a stride of 0")
    if name == "SOFTMAX" and (pos := reader.field(op, 4)) is not None:
        beta = reader.value(reader.deref(pos), 0, "<f")
        if not math.isfinite(beta):
            raise BadFlatbuffer(f"{where} has softmax beta {beta}")
