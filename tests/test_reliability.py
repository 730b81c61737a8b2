"""Issue 17, device side: broken models, hostile files and bad arguments give one-line errors, never
a crash, a hang or a traceback. Real files (the shipped models, mutated; FIFOs; crafted headers);
runs alike in the main and edge venvs."""
import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmarks import bad_corpus
from benchmarks.fuzz_model import fuzz
from edge_runtime import Classifier, load_images
from edge_runtime.classifier import default_model_path
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.errors import MnistEdgeError
from edge_runtime.images import read_gray
from edge_runtime.interpreter import MAX_THREADS, read_model_bytes
from edge_runtime.model_check import check_model
from models_for_tests import models  # noqa: F401 (fixture)
from train.cli import main

SHIPPED = default_model_path("int8")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_shipped_and_test_models_pass_the_check(models):
    for path in [SHIPPED, default_model_path("float32"), *models.values()]:
        assert check_model(path.read_bytes()) is None, path


@pytest.mark.parametrize("field,value", [("conv stride_w", 0), ("conv stride_h", 0), ("dwconv stride_w", 0),
                                         ("dwconv depth_multiplier", -1), ("op input", 9999), ("op output", 9999),
                                         ("graph input", 9999), ("graph output", -1), ("opcode index", 200),
                                         ("options type", 0), ("shape dim", 0), ("shape dim", -1),
                                         ("shape dim", 1 << 30), ("buffer index", 99999),
                                         ("per-channel scale", float("nan")), ("maxpool stride_w", 0),
                                         ("maxpool filter_h", 0), ("strided_slice stride", 0)])
def test_mutated_models_are_refused_before_the_interpreter(tmp_path, field, value):
    data = bytearray(SHIPPED.read_bytes())
    fields = bad_corpus.field_positions(bytes(data))
    if field not in fields:
        pytest.skip(f"the shipped model has no {field}")
    pos, fmt = fields[field]
    struct.pack_into(fmt, data, pos, value)
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(MnistEdgeError, match=r"bad\.tflite: corrupt or truncated TFLite model \(subgraph 0"):
        read_model_bytes(path)
    with pytest.raises(MnistEdgeError, match="bad.tflite"):  # through the Classifier, on this venv's runtime
        Classifier(path, num_threads=1)


def test_one_byte_mutations_never_crash():
    """A small sample of the 6,000-mutation fuzz of benchmarks/bad_inputs.py --fuzz (each in a child)."""
    counts, bad = fuzz(SHIPPED, count=100, seed=7, timeout=60, jobs=2, say=lambda m: None)
    assert bad == [], bad
    assert counts["scored"] + counts["refused"] == 100 and counts["refused"] > 0


@pytest.mark.parametrize("variant,needle", [("nested", "nested too deeply"), ("not utf-8", "not UTF-8"),
                                            ("format float32", "format 'float32' but the input tensor is int8"),
                                            ("input 28x28", "input shape"), ("input scale", "input scale"),
                                            ("output dtype", "output quantization"),
                                            ("thresholds 9", "thresholds")])
def test_metadata_that_contradicts_the_model_is_refused(tmp_path, variant, needle):
    path = bad_corpus.metadata_models(SHIPPED, tmp_path)[f"metadata {variant}"]
    with pytest.raises(MnistEdgeError, match=needle) as error:
        Classifier(path, num_threads=1)
    assert str(path) in error.value.message and "\n" not in error.value.message


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for call, what in ((lambda: Classifier(fifo), ".tflite model file"), (lambda: read_gray(fifo), "picture file"),
                       (lambda: load_labelled_npz(fifo), "NumPy .npz or .npy file")):
        with pytest.raises(MnistEdgeError, match=f"pipe.png: not a regular file \\(a FIFO\\); expected a {what}"):
            call()
    with pytest.raises(MnistEdgeError, match="/dev/zero: not a regular file"):
        Classifier("/dev/zero")
    loop = tmp_path / "loop.tflite"
    os.symlink(loop.name, loop)
    with pytest.raises(MnistEdgeError, match="loop.tflite: symbolic link loop"):
        Classifier(loop)
    with pytest.raises(MnistEdgeError, match="empty model file name"):
        Classifier("")


def test_pictures_too_large_to_decode_are_refused_from_the_header(tmp_path):
    claims = tmp_path / "claims.png"
    claims.write_bytes(bad_corpus._png_header(10000, 5000))  # 50 megapixels in a 1 KB file
    big = tmp_path / "rgba.png"
    Image.new("RGBA", (6000, 6000)).save(big)  # 36 MP, but 144 MB decoded
    for path in (claims, big):
        with pytest.raises(MnistEdgeError, match=f"{path.name}: .* picture is too large to decode"):
            read_gray(path)
    ok = tmp_path / "ok.png"
    Image.new("L", (3000, 2000), 255).save(ok)
    assert load_images([ok], (64, 64))[0][1].shape == (64, 64)


def test_array_headers_are_checked_before_loading(tmp_path):
    huge = bad_corpus._npz_claiming(tmp_path / "huge.npz", (10**7, 64, 64), "<i8")
    with pytest.raises(MnistEdgeError, match=r"huge.npz: images \(10000000, 64, 64\) int64 would need 305.2 GiB"):
        load_labelled_npz(huge)
    pickled = bad_corpus._npy_claiming(tmp_path / "objects.npy", (3,), "|O")
    errors = []
    assert load_images([pickled], (64, 64), errors) == []
    assert "objects.npy: array holds Python objects" in errors[0].message


def test_one_image_dtype_contract(tmp_path):
    labels = np.eye(3, 10, dtype=np.uint8)
    for dtype in (np.int16, np.uint16, np.int64, bool):
        path = tmp_path / f"{np.dtype(dtype).name}.npz"
        np.savez(path, images=np.zeros((3, 8, 8), dtype), labels=labels)
        with pytest.raises(MnistEdgeError, match=f"images must be uint8 .* or float in \\[0,1\\], got {np.dtype(dtype).name}"):
            load_labelled_npz(path)
    path = tmp_path / "float.npz"
    np.savez(path, images=np.full((3, 8, 8), 0.5, np.float32), labels=labels)
    images, _ = load_labelled_npz(path)
    assert images.dtype == np.uint8 and (images == 128).all()


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(num_threads="abc"), TypeError, "num_threads must be an integer"),
    (dict(num_threads=2.7), TypeError, "num_threads must be an integer"),
    (dict(num_threads=True), TypeError, "num_threads must be an integer"),
    (dict(num_threads=10**12), MnistEdgeError, f"num_threads must be between 1 and {MAX_THREADS}"),
    (dict(num_threads=0), MnistEdgeError, "num_threads must be between 1"),
    (dict(use_xnnpack="no"), TypeError, "use_xnnpack must be True or False"),
])
def test_classifier_argument_errors(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        Classifier(SHIPPED, **kwargs)


@pytest.mark.parametrize("args,option", [
    (["infer", "--threads", "100000", "x.png"], "--threads"), (["infer", "--threshold", "nan", "x.png"], "--threshold"),
    (["bench", "m.tflite", "--data", "d.npz", "--threads", "5000"], "--threads"),
    (["bench", "m.tflite", "--data", "d.npz", "--batch", "1000000000"], "--batch"),
    (["bench", "m.tflite", "--data", "d.npz", "--max-f1-drop", "nan"], "--max-f1-drop"),
    (["bench", "m.tflite", "--data", "d.npz", "--min-macro-f1", "nan"], "--min-macro-f1"),
    (["bench", "m.tflite", "--data", "d.npz", "--max-f1-drop", "inf"], "--max-f1-drop"),
])
def test_bad_options_are_usage_errors_before_any_work(args, option):
    result = run(*args)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output


def test_file_names_with_newlines_stay_on_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    Image.new("L", (64, 64)).save(path)
    result = run("infer", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{tmp_path}/two\\nlines.png: " + result.stdout.split(": ", 1)[1].strip()]


def test_size_check_is_thread_safe(tmp_path):
    """The check reads the header; no process-global warning filter is touched while other threads decode."""
    import threading
    import warnings
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.new("L", (300, 200), 255).save(small)
    large.write_bytes(bad_corpus._png_header(10000, 5000))
    filters = list(warnings.filters)
    outcomes = []

    def work(path):
        for _ in range(5):
            try:
                outcomes.append((path.name, read_gray(path).shape))
            except MnistEdgeError as e:
                outcomes.append((path.name, "too large" in e.message))
    threads = [threading.Thread(target=work, args=(p,)) for p in (small, large) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(outcomes)) == [("large.png", True), ("small.png", (200, 300))] and len(outcomes) == 30
    assert warnings.filters == filters
