"""Bad inputs for ``bad_inputs.py``: broken models, pictures and arrays, written into a folder.

Each builder returns {name: path}. Model mutations go through ``edge_runtime.flatbuffer.Reader`` to
the exact field an interpreter divides by or indexes with (a stride, a tensor index, a shape), so the
corpus hits the checks of ``edge_runtime.model_check`` deliberately, not by luck.
"""
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime.flatbuffer import Reader, buffer_span
from edge_runtime.model_check import _builtin_code

CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, STRIDED_SLICE = 3, 4, 17, 45


def field_positions(data):
    """{what: (byte position, struct format)} of the fields the mutations below overwrite."""
    r = Reader(data)
    model = r.root()
    codes = [_builtin_code(r, c) for c in r.tables(model, 1)]
    graph = r.tables(model, 2)[0]
    tensors, ops = r.tables(graph, 0), r.tables(graph, 3)
    found = {"graph input": (r.vector(graph, 1, 4)[0], "<i"), "graph output": (r.vector(graph, 2, 4)[0], "<i")}

    def add(what, pos, fmt):  # the first operator or tensor that stores the field (defaults are not stored)
        if pos is not None and what not in found:
            found[what] = (pos, fmt)
    for k, op in enumerate(ops):
        code = codes[r.value(op, 0, "<I")]
        add("opcode index", r.field(op, 0), "<I")
        add("op input", r.vector(op, 1, 4)[0], "<i")
        add("op output", r.vector(op, 2, 4)[0], "<i")
        add("options type", r.field(op, 3), "<B")
        if code == STRIDED_SLICE:  # its strides: a constant int32 tensor, the 4th input
            strides = tensors[struct.unpack_from("<i", data, r.vector(op, 1, 4)[0] + 12)[0]]
            add("strided_slice stride", buffer_span(r, r.tables(model, 4)[r.value(strides, 2, "<I")])[0], "<i")
        if (pos := r.field(op, 4)) is None:
            continue
        options = r.deref(pos)
        names = {CONV_2D: ("conv", {1: "stride_w", 2: "stride_h", 4: "dilation_w", 5: "dilation_h"}),
                 DEPTHWISE_CONV_2D: ("dwconv", {1: "stride_w", 2: "stride_h", 3: "depth_multiplier"}),
                 MAX_POOL_2D: ("maxpool", {1: "stride_w", 2: "stride_h", 3: "filter_w", 4: "filter_h"})}
        if code in names:
            prefix, fields = names[code]
            for field_id, name in fields.items():
                if (p := r.field(options, field_id)) is not None:
                    add(f"{prefix} {name}", p, "<i")
    for t, tensor in enumerate(tensors):
        shape = r.vector(tensor, 0, 4)
        if shape and shape[1] == 4:
            add("shape dim", shape[0] + 4, "<i")
        if r.field(tensor, 2) is not None and buffer_span(r, r.tables(model, 4)[r.value(tensor, 2, "<I")])[1]:
            add("buffer index", r.field(tensor, 2), "<I")
        if (q := r.field(tensor, 4)) is not None and (scales := r.vector(r.deref(q), 2, 4)) and scales[1] > 1:
            add("per-channel scale", scales[0], "<f")
    return found


MUTATIONS = {  # field -> values that must be refused (each one a model file)
    "conv stride_w": [0, -1, 1 << 30], "conv stride_h": [0, -3], "dwconv stride_w": [0], "dwconv stride_h": [0],
    "dwconv depth_multiplier": [-1], "maxpool stride_w": [0], "maxpool filter_w": [0, -2],
    "maxpool filter_h": [0], "conv dilation_w": [0], "graph input": [9999, -1], "graph output": [9999],
    "opcode index": [200], "op input": [9999, -7], "op output": [9999], "options type": [0, 5, 200],
    "shape dim": [0, -1, 1 << 30], "strided_slice stride": [0], "buffer index": [99999], "per-channel scale": [float("nan"), 0.0, -1.0],
}


def mutated_models(model, folder):
    """One file per (field, value) of MUTATIONS that the model has."""
    data = Path(model).read_bytes()
    out = {}
    for what, (pos, fmt) in field_positions(data).items():
        for value in MUTATIONS.get(what, []):
            bad = bytearray(data)
            struct.pack_into(fmt, bad, pos, value)
            out[f"model {what}={value}"] = _write(folder, f"mut-{what.replace(' ', '_')}-{value}.tflite", bad)
    return out


def metadata_models(model, folder):
    """The model with its metadata JSON replaced in place (same length, so the flatbuffer stays valid)."""
    data = Path(model).read_bytes()
    r = Reader(data)
    root = r.root()
    entry = next(e for e in r.tables(root, 6) if r.string(e, 0) == b"mnist_edge")
    start, size = buffer_span(r, r.tables(root, 4)[r.value(entry, 1, "<I")])
    meta = json.loads(data[start:start + size])
    for bulky in ("verification", "metrics", "dataset"):  # room for the longer values below
        meta.pop(bulky, None)
    depth = size // 2 - 1
    variants = {
        "nested": "[" * depth + "]" * depth, "not json": "{not json", "not object": "[1, 2, 3]",
        "format float32": {**meta, "format": "float32"}, "input 28x28": {**meta, "input_shape": [28, 28, 1]},
        "input scale": {**meta, "quantization": {**meta["quantization"], "input": {"dtype": "int8", "scale": 0.5,
                                                                                   "zero_point": 0}}},
        "output dtype": {**meta, "quantization": {**meta["quantization"], "output": {"dtype": "float32"}}},
        "thresholds 9": {**meta, "thresholds": [0.5] * 9}, "threshold nan": {**meta, "thresholds": "nan"},
        "threshold 2": {**meta, "thresholds": [2] * 10}, "format number": {**meta, "format": 8},
    }
    out = {}
    for name, value in variants.items():
        text = (value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))).encode()
        bad = bytearray(data)
        bad[start:start + size] = text.ljust(size)[:size]
        out[f"metadata {name}"] = _write(folder, f"meta-{name.replace(' ', '_')}.tflite", bad)
    bad = bytearray(data)
    bad[start] = 0xFF
    out["metadata not utf-8"] = _write(folder, "meta-utf8.tflite", bad)
    return out


def broken_models(model, folder):
    """Files that are not models at all, truncated, or not regular files."""
    data = Path(model).read_bytes()
    out = {"model empty": _write(folder, "empty.tflite", b""), "model 7 bytes": _write(folder, "seven.tflite", data[:7]),
           "model text": _write(folder, "text.tflite", b"hello, this is not a model\n" * 10),
           "model random": _write(folder, "random.tflite", np.random.default_rng(0).bytes(5000)),
           "model missing": folder / "missing.tflite", "model folder": _mkdir(folder / "adir.tflite"),
           "model fifo": _fifo(folder / "fifo.tflite"), "model symlink loop": _loop(folder / "loop.tflite"),
           "model dangling link": _link(folder / "dangling.tflite", folder / "nowhere"),
           "model /dev/zero": Path("/dev/zero"), "model /dev/urandom": Path("/dev/urandom"),
           "model /dev/null": Path("/dev/null"), "model png": _write(folder, "picture.tflite", _png_bytes())}
    for cut in (8, 12, 64, 1000, len(data) // 10, len(data) // 2, len(data) - 100, len(data) - 1):
        out[f"model truncated at {cut}"] = _write(folder, f"cut{cut}.tflite", data[:cut])
    for offset in (0, 4):
        out[f"model zeroed at {offset}"] = _write(folder, f"zero{offset}.tflite", data[:offset] + bytes(4) + data[offset + 4:])
    return out


def pictures(folder):
    """Bad or extreme picture files (and a few odd but valid ones, which must simply work)."""
    big = Image.new("RGBA", (9000, 9000))
    out = {"picture 9000x9000 RGBA": _save(big, folder / "big.png"),
           "picture 1x1": _save(Image.new("L", (1, 1), 255), folder / "one.png"),
           "picture 20000x1": _save(Image.new("L", (20000, 1)), folder / "wide.png"),
           "picture 16-bit": _save(Image.new("I;16", (50, 40), 30000), folder / "sixteen.png"),
           "picture palette": _save(Image.new("P", (50, 40)), folder / "palette.png"),
           "picture CMYK jpeg": _save(Image.new("CMYK", (50, 40)), folder / "cmyk.jpg"),
           "picture empty": _write(folder, "empty.png", b""), "picture text": _write(folder, "text.png", b"not a png\n"),
           "picture truncated png": _write(folder, "cut.png", _png_bytes()[:40]),
           "picture truncated jpeg": _write(folder, "cut.jpg", _jpeg_bytes()[:200]),
           "picture png header 100000x100000": _write(folder, "claims.png", _png_header(100000, 100000)),
           "picture fifo": _fifo(folder / "fifo.png"), "picture symlink loop": _loop(folder / "loop.png"),
           "picture missing": folder / "missing.png", "picture /dev/zero": Path("/dev/zero"),
           "picture folder without images": _mkdir(folder / "noimages"),
           "picture newline in name": _save(Image.new("L", (28, 28)), folder / "two\nlines.png"),
           "picture gif": _save(Image.new("L", (30, 30)), folder / "anim.gif")}
    (folder / "noimages" / "notes.txt").write_text("no pictures here")
    folder_with_fifo = _mkdir(folder / "withfifo")
    _fifo(folder_with_fifo / "f.png")
    _save(Image.new("L", (28, 28)), folder_with_fifo / "ok.png")
    out["picture folder with a fifo"] = folder_with_fifo
    return out


def arrays(folder, size=(64, 64)):
    """Bad .npy/.npz files: headers that claim too much, pickles, wrong types, values and shapes."""
    h, w = size
    good = np.zeros((4, h, w), np.uint8)
    labels = np.zeros((4, 10), np.uint8)
    out = {"array header 38 GiB npz": _npz_claiming(folder / "huge.npz", (10**7, 64, 64), "<i8"),
           "array header 38 GiB npy": _npy_claiming(folder / "huge.npy", (10**7, 64, 64), "<i8"),
           "array pickle npy": _npy_claiming(folder / "pickle.npy", (3,), "|O"),
           "array empty file npz": _write(folder, "empty.npz", b""), "array text npz": _write(folder, "text.npz", b"hi"),
           "array fifo npz": _fifo(folder / "fifo.npz"), "array /dev/zero": Path("/dev/zero"),
           "array folder npz": _mkdir(folder / "dir.npz"), "array missing": folder / "missing.npz"}
    variants = {
        "int16": good.astype(np.int16), "uint16": good.astype(np.uint16), "int64": good.astype(np.int64),
        "bool": good.astype(bool), "complex": good.astype(np.complex64), "float nan": np.full((4, h, w), np.nan),
        "float 2": np.full((4, h, w), 2.0), "float -1": np.full((4, h, w), -1.0), "float inf": np.full((4, h, w), np.inf),
        "rgb": np.zeros((4, h, w, 3), np.uint8), "1-d": np.zeros(7, np.uint8), "0-d": np.array(3, np.uint8),
        "28x28": np.zeros((4, 28, 28), np.uint8), "no images": None,
    }
    for name, images in variants.items():
        arrays_ = {"labels": labels} if images is None else {"images": images, "labels": labels[:len(images)]
                                                              if images.ndim else labels}
        out[f"array {name}"] = _savez(folder / f"a-{name.replace(' ', '_')}.npz", arrays_)
    out["array labels 2"] = _savez(folder / "labels2.npz", {"images": good, "labels": labels + 2})
    out["array labels shape"] = _savez(folder / "labels_shape.npz", {"images": good, "labels": labels[:, :3]})
    out["array labels count"] = _savez(folder / "labels_count.npz", {"images": good, "labels": labels[:2]})
    out["array no labels"] = _savez(folder / "nolabels.npz", {"images": good})
    out["array empty set"] = _savez(folder / "emptyset.npz", {"images": good[:0], "labels": labels[:0]})
    full = (folder / "labels_count.npz").read_bytes()
    out["array truncated npz"] = _write(folder, "cut.npz", full[:len(full) // 2])
    out["array truncated npy"] = _write(folder, "cut.npy", _npy_bytes(good)[:200])
    return out


def workstation_files(work):
    """Two tiny data set folders (uint8, and int16 against the dtype contract) and a tiny .keras model."""
    import subprocess
    import sys
    for name, dtype in (("tinyset", np.uint8), ("int16set", np.int16)):
        _mkdir(work / "arrays" / name)
        for split in ("train", "val", "test"):
            images = np.random.default_rng(0).integers(0, 256, (32, 64, 64)).astype(dtype)
            _savez(work / "arrays" / name / f"{split}.npz", {"images": images, "labels": np.eye(32, 10, dtype=np.uint8)})
    keras = ("import sys, keras; m = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Conv2D(4, 3, strides=4), "
             "keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(10, activation='sigmoid')]); m.save(sys.argv[1])")
    subprocess.run([sys.executable, "-c", keras, str(work / "run" / "tiny.keras")], capture_output=True, check=True)


def _npy_bytes(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npy_claiming(path, shape, descr):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64))
    return path


def _npz_claiming(path, shape, descr):
    npy = _npy_claiming(path.with_suffix(".tmpnpy"), shape, descr)
    with zipfile.ZipFile(path, "w") as z:
        z.write(npy, "images.npy")
        z.writestr("labels.npy", _npy_bytes(np.zeros((4, 10), np.uint8)))
    npy.unlink()
    return path


def _savez(path, arrays_):
    np.savez(path, **arrays_)
    return path


def _png_bytes():
    import io
    buf = io.BytesIO()
    Image.new("L", (40, 30), 200).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes():
    import io
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (200, 100, 50)).save(buf, "JPEG")
    return buf.getvalue()


def _png_header(width, height):
    """A PNG whose header claims width x height 8-bit gray, with one short (valid) data chunk."""
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


def _write(folder, name, data):
    path = Path(folder) / name
    path.write_bytes(bytes(data))
    return path


def _save(image, path):
    image.save(path)
    return path


def _mkdir(path):
    path.mkdir(exist_ok=True)
    return path


def _fifo(path):
    if not path.exists():
        os.mkfifo(path)
    return path


def _loop(path):
    if not path.is_symlink():
        os.symlink(path.name, path)
    return path


def _link(path, target):
    if not path.is_symlink():
        os.symlink(target, path)
    return path
