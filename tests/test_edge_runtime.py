"""The device runtime on real models and real MNIST canvases; runs alike in the main and edge venvs."""
import importlib.util
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import edge_runtime.classifier as classifier_module
from edge_runtime import Classifier, Prediction, default_model_path
from edge_runtime.errors import MnistEdgeError
from edge_runtime.interpreter import RUNTIMES, import_runtime
from models_for_tests import GOOD, METADATA, canvases, model, models  # noqa: F401 (fixtures)

from conftest import REPO, needs_tf


def raw_scores(path, images):
    """The reference: the interpreter package used directly, one image per invoke, by the textbook formulas."""
    interpreter_class = import_runtime()[0]
    it = interpreter_class(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for image in images:
        x = image[None, :, :, None].astype(np.float64) / 255
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        rows.append(y)
    return np.array(rows, dtype=np.float32)


@pytest.fixture(scope="module", params=GOOD)
def clf(request, models):
    return Classifier(models[request.param], num_threads=2)


def test_scores_and_predictions_equal_the_raw_interpreter(clf, canvases):
    images, _ = canvases
    expected = raw_scores(clf.model_path, images)
    scores = clf.scores(images)
    assert scores.dtype == np.float32 and scores.shape == (len(images), 10)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    predictions = clf.predict(images)
    assert all(isinstance(p, Prediction) for p in predictions)
    for p, row in zip(predictions, scores):
        assert p.digits == tuple(d for d in range(10) if row[d] >= clf.thresholds[d])
        np.testing.assert_array_equal(p.scores, row)


def test_the_model_sees_digits(clf, canvases):
    """A sanity check that the pipeline feeds the model what it was trained on."""
    images, labels = canvases
    assert ((clf.scores(images) >= clf.thresholds) == labels.astype(bool)).mean() > 0.75


def test_threshold_is_inclusive(models, canvases):
    images, _ = canvases
    path = models["int8"]
    scores = Classifier(path, num_threads=1).scores(images[:1])[0]
    assert Classifier(path, num_threads=1, thresholds=scores).predict(images[0])[0].digits == tuple(range(10))
    above = np.nextafter(scores, np.float32(2))
    assert Classifier(path, num_threads=1, thresholds=np.minimum(above, 1)).predict(images[0])[0].digits == ()
    assert Classifier(path, num_threads=1, thresholds=0).predict(images[0])[0].digits == tuple(range(10))
    one = Classifier(path, num_threads=1, thresholds=0.3)
    assert one.thresholds.tolist() == [pytest.approx(0.3)] * 10
    assert one.predict(images[0])[0].digits == tuple(np.flatnonzero(scores >= np.float32(0.3)))


@pytest.mark.parametrize("bad", [1.5, -0.1, [0.5] * 9, "high"])
def test_bad_thresholds_are_refused(models, bad):
    with pytest.raises(MnistEdgeError, match="thresholds"):
        Classifier(models["int8"], num_threads=1, thresholds=bad)


def test_bad_thread_count_is_refused(models):
    with pytest.raises(MnistEdgeError, match="num_threads must be between 1 and"):
        Classifier(models["int8"], num_threads=0)


def test_every_input_layout_and_type_gives_the_same_scores(clf, canvases):
    images = canvases[0][:5]
    expected = clf.scores(images)
    as_float = images.astype(np.float32) / 255
    same = [clf.scores(images[..., None]), clf.scores(as_float), clf.scores(as_float[..., None]),
            clf.scores(images.astype(np.float64) / 255), clf.scores(list(images)),
            clf.scores(np.asfortranarray(images)), clf.scores(np.asfortranarray(as_float)),
            np.concatenate([clf.scores(image) for image in images]),
            np.concatenate([clf.scores(image.astype(np.float32) / 255) for image in images])]
    for scores in same:
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert clf.scores(images[0]).shape == (1, 10)
    assert clf.scores(images[:0]).shape == (0, 10)


def test_batch_is_one_invoke_resized_only_when_its_size_changes(models, canvases):
    clf = Classifier(models["int8"], num_threads=1)
    calls = {"resize": 0, "invoke": 0}
    for name in calls:
        original = getattr(clf.interpreter, f"{name}_tensor_input" if name == "resize" else name)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)
        setattr(clf.interpreter, f"{name}_tensor_input" if name == "resize" else name, counted)
    images = canvases[0]
    for batch in (images[:5], images[5:10], images[10:11], images[11:12], images[:8]):
        clf.scores(batch)
    assert calls == {"resize": 3, "invoke": 5}  # 1 -> 5, 5 -> 1, 1 -> 8


def test_inputs_larger_than_max_batch_run_in_chunks(models, canvases, monkeypatch):
    clf = Classifier(models["int8"], num_threads=1)
    expected = clf.scores(canvases[0])
    monkeypatch.setattr(classifier_module, "MAX_BATCH", 5)
    np.testing.assert_array_equal(clf.scores(canvases[0]), expected)


@pytest.mark.parametrize("images, message", [
    (np.zeros((28, 28), np.uint8), "28x28 but the model takes 64x64.*load_images"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"\(H,W\), \(N,H,W\) or \(N,H,W,1\)"),
    (np.zeros((64,), np.uint8), r"\(H,W\), \(N,H,W\) or \(N,H,W,1\)"),
    (np.zeros((64, 64), np.int32), "uint8 .* or float"),
    (np.full((64, 64), np.nan, np.float32), "NaN or infinite"),
    (np.full((2, 64, 64), np.inf), "NaN or infinite"),
    (np.full((64, 64), 255.0), r"\[0,1\].*uint8"),
    ([np.zeros((64, 64)), np.zeros((32, 32))], "one array"),
])
def test_bad_arrays_are_one_line_errors(models, images, message):
    with pytest.raises(MnistEdgeError, match=message) as e:
        Classifier(models["int8"], num_threads=1).scores(images)
    assert "\n" not in e.value.message


def test_eight_threads_sharing_one_classifier_match_sequential_results(models, canvases):
    images = canvases[0]
    clf = Classifier(models["int8"], num_threads=1)
    # Single images and batches of several sizes, so threads also race on resizing the input.
    jobs = [images[i % 16] if i % 3 else images[: 1 + i % 7] for i in range(500)]
    expected = [clf.scores(job) for job in jobs]
    results, errors = [None] * 8, []

    def work(t):
        try:
            order = list(range(500))[t:] + list(range(500))[:t]
            results[t] = {i: clf.scores(jobs[i]) for i in order}
        except Exception as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        for i, scores in got.items():
            np.testing.assert_array_equal(scores, expected[i])


def test_runtime_and_xnnpack_options(models, canvases):
    images = canvases[0][:4]
    reference = Classifier(models["float32"], num_threads=1)
    assert reference.runtime_name in ("ai_edge_litert", "tflite_runtime")
    assert reference.runtime_version
    plain = Classifier(models["float32"], num_threads=1, runtime=reference.runtime_name, use_xnnpack=False)
    np.testing.assert_allclose(plain.scores(images), reference.scores(images), rtol=0, atol=1e-4)
    with pytest.raises(MnistEdgeError, match="unknown runtime"):
        Classifier(models["float32"], runtime="onnx")
    for missing in [name for name in RUNTIMES if importlib.util.find_spec(name) is None]:
        with pytest.raises(MnistEdgeError, match=f"{missing} is not installed"):
            Classifier(models["float32"], runtime=missing)


@needs_tf
def test_tensorflow_runtime_when_asked(models, canvases):
    images = canvases[0][:4]
    tf_clf = Classifier(models["int8"], num_threads=1, runtime="tensorflow")
    assert tf_clf.runtime_name == "tensorflow"
    np.testing.assert_allclose(tf_clf.scores(images), Classifier(models["int8"], num_threads=1).scores(images),
                               rtol=0, atol=1e-6)


def test_details_and_defaults(models):
    """Without metadata (the models built here): 0.5 thresholds, format guessed from the input type."""
    for fmt in GOOD:
        clf = Classifier(models[fmt])
        assert clf.model_format == clf.metadata.get("format", fmt)
        np.testing.assert_allclose(clf.thresholds, clf.metadata.get("thresholds", [0.5] * 10))
        assert clf.input_shape == (64, 64) and clf.input_details["shape"].tolist() == [1, 64, 64, 1]
        assert clf.output_details["shape"].tolist() == [1, 10]
        assert clf.num_threads == os.cpu_count()


def test_embedded_metadata_gives_thresholds_and_format(models, canvases):
    clf = Classifier(model(models, "meta"), num_threads=1)
    assert clf.metadata["format"] == "int8"
    np.testing.assert_allclose(clf.thresholds, METADATA["thresholds"])
    scores = clf.scores(canvases[0])
    assert [p.digits for p in clf.predict(canvases[0])] == [
        tuple(np.flatnonzero(row >= clf.thresholds)) for row in scores]
    assert Classifier(model(models, "meta"), num_threads=1, thresholds=0.5).thresholds.tolist() == [0.5] * 10


def _bad_models(models, tmp_path):
    good = models["int8"].read_bytes()
    files = {"missing": (tmp_path / "nope.tflite", "nope.tflite: no such file"),
             "folder": (tmp_path, "folder"),
             "empty": (tmp_path / "empty.tflite", "empty"),
             "text": (tmp_path / "notes.tflite", "not a TFLite model"),
             "tfl3 garbage": (tmp_path / "garbage.tflite", "corrupt or truncated")}
    (tmp_path / "empty.tflite").write_bytes(b"")
    (tmp_path / "notes.tflite").write_text("this is not a model\n" * 10)
    (tmp_path / "garbage.tflite").write_bytes(b"\xff\xff\xff\x7fTFL3" + bytes(range(256)) * 4)
    for cut in (6, 9, 40, 200, len(good) // 2, len(good) - 8, len(good) - 1):
        path = tmp_path / f"cut{cut}.tflite"
        path.write_bytes(good[:cut])
        files[f"truncated at {cut}"] = (path, "not a TFLite model" if cut < 8 else "corrupt or truncated")
    return files


def test_bad_model_files_are_one_line_errors(models, tmp_path):
    for name, (path, message) in _bad_models(models, tmp_path).items():
        with pytest.raises(MnistEdgeError, match=message) as e:
            Classifier(path, num_threads=1)
        assert str(path) in e.value.message and "\n" not in e.value.message, name


@pytest.mark.parametrize("name, message", [("width5", r"10 digit scores \(1,10\), found \(1, 5\)"),
                                           ("rgb", r"\(1,H,W,1\), found \(1, 64, 64, 3\)")])
def test_models_outside_the_contract_are_refused(models, name, message):
    with pytest.raises(MnistEdgeError, match=message):
        Classifier(model(models, name), num_threads=1)


def test_missing_shipped_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_module, "MODELS_DIR", tmp_path)
    with pytest.raises(MnistEdgeError, match="no int8 model ships.*--model"):
        default_model_path("int8")
    with pytest.raises(MnistEdgeError, match="no int8 model ships"):
        Classifier()


def test_importing_and_running_the_runtime_never_imports_tensorflow(models, canvases):
    code = ("import sys, numpy as np\nimport edge_runtime\nfrom edge_runtime import Classifier, load_images\n"
            f"c = Classifier({str(models['int8'])!r}, num_threads=1)\nc.predict(np.zeros((64, 64), np.uint8))\n"
            "import edge_runtime.cli\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')], 'TF imported'\n"
            "print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_bare_import_is_light():
    """`mnist-edge --help` reads __version__: that must not load numpy or an interpreter."""
    code = "import sys, edge_runtime\nprint(sorted(m for m in ('numpy', 'PIL', 'ai_edge_litert', 'tflite_runtime') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.stdout.strip() == "[]", run.stderr


@pytest.mark.skipif(os.environ.get("MNIST_EDGE_EDGE_ONLY") != "1", reason="only in the edge-only venv (.ci/run)")
def test_edge_venv_has_no_tensorflow():
    assert importlib.util.find_spec("tensorflow") is None
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
