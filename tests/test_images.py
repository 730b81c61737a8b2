"""load_images: real MNIST canvases written as files of many kinds come back as the model's input.

How pictures of other scales, papers and frames are prepared is tested in test_preprocess.py.
"""
import numpy as np
import pytest
from PIL import Image

from edge_runtime import Classifier, load_images
from edge_runtime.errors import MnistEdgeError
from models_for_tests import canvases, models  # noqa: F401 (fixtures)
from train.mnist import load_mnist

SIZE = (64, 64)


def _save(array, path, mode="L", **kwargs):
    Image.fromarray(array).convert(mode).save(path, **kwargs)
    return path


def _palette(canvas, path):
    im = Image.fromarray(canvas, "L").convert("P")  # exact: every gray level gets its own palette entry
    im.putpalette([v for g in range(256) for v in (g, g, g)])
    im.putdata(canvas.ravel().tolist())
    im.save(path)
    return path


def _rgba(canvas, path, ink):
    """``ink`` colour drawn with the canvas as alpha over a fully transparent background."""
    rgba = np.zeros(canvas.shape + (4,), np.uint8)
    rgba[..., :3], rgba[..., 3] = ink, canvas
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def _pgm16(canvas, path):
    path.write_bytes(b"P5\n64 64\n65535\n" + (canvas.astype(">u2") * 257).tobytes())
    return path


def _16bit(canvas, path):
    Image.fromarray(canvas.astype(np.uint16) * 257).save(path)  # mode I;16
    return path


def _resized(array, path, size, **kwargs):
    Image.fromarray(array).resize(size, Image.Resampling.BICUBIC).save(path, **kwargs)
    return path


def _exif_rotated(canvas, path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": store the picture turned the other way
    Image.fromarray(canvas).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    return path


# name -> writer; all of these are lossless, so the image must come back exactly
EXACT = {
    "gray.png": lambda c, p: _save(c, p),
    "rgb.png": lambda c, p: _save(c, p, "RGB"),
    "palette.png": _palette,
    "16bit.png": _16bit,
    "light-ink-alpha.png": lambda c, p: _rgba(c, p, 255),
    "dark-ink-alpha.png": lambda c, p: _rgba(c, p, 0),
    "dark-on-light.png": lambda c, p: _save(255 - c, p),
    "dark-on-light.bmp": lambda c, p: _save(255 - c, p),
    "gray.pgm": lambda c, p: _save(c, p),
    "16bit.pgm": _pgm16,
    "exif-rotated.png": _exif_rotated,
}
# name -> writer; lossy compression, so the image comes back close
CLOSE = {
    "dark-on-light.jpg": lambda c, p: _save(255 - c, p, quality=95),
    "cmyk.jpg": lambda c, p: _save(c, p, "CMYK", quality=95),
}
# name -> writer; larger pictures, so the digits come back at the model's scale, cropped and centred
RESIZED = {
    "300px.png": lambda c, p: _resized(c, p, (300, 300)),
    "dark-on-light-900px.png": lambda c, p: _resized(255 - c, p, (900, 900)),  # box-averaged to 300 on reading
    "dark-on-light-200px.jpg": lambda c, p: _resized(255 - c, p, (200, 200), quality=95),
    "rgb-1000px.jpg": lambda c, p: _resized(np.stack([c] * 3, axis=-1), p, (1000, 1000), quality=90),
}


@pytest.mark.parametrize("name", EXACT)
def test_lossless_files_of_any_mode_and_polarity_come_back_exactly(canvases, tmp_path, name):
    for i, canvas in enumerate(canvases[0][:4]):
        path = EXACT[name](canvas, tmp_path / f"{i}-{name}")
        [(got_name, image)] = load_images([path], SIZE)
        assert got_name == str(path) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, canvas)


@pytest.mark.parametrize("name", CLOSE)
def test_lossy_files_come_back_close(canvases, tmp_path, name):
    for i, canvas in enumerate(canvases[0][:4]):
        [(_, image)] = load_images([CLOSE[name](canvas, tmp_path / f"{i}-{name}")], SIZE)
        assert image.shape == SIZE
        assert np.abs(image.astype(int) - canvas).mean() < 6


def _ink_box(image):
    rows, cols = np.nonzero(image >= 128)
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


@pytest.mark.parametrize("name", RESIZED)
def test_larger_files_come_back_at_the_model_scale(canvases, tmp_path, name):
    """The inked part, brought back to the canvas' own scale (MNIST's) and centred: same ink box size."""
    for i, canvas in enumerate(canvases[0][:4]):
        [(_, image)] = load_images([RESIZED[name](canvas, tmp_path / f"{i}-{name}")], SIZE)
        top, left, bottom, right = _ink_box(canvas)
        got_top, got_left, got_bottom, got_right = _ink_box(image)
        assert abs((got_bottom - got_top) - (bottom - top)) <= 4 and abs((got_right - got_left) - (right - left)) <= 4
        assert abs((got_top + got_bottom) - SIZE[0]) <= 4 and abs((got_left + got_right) - SIZE[1]) <= 4


def _strips(mnist_dir):
    """Two digits side by side in rows 18..45 of a 64x64 canvas (wide), and stacked in columns 18..45 (tall)."""
    mnist = load_mnist(mnist_dir)
    wide, tall = [], []
    for k in range(4):
        a, b = mnist.test_images[2 * k], mnist.test_images[2 * k + 1]
        w = np.zeros((64, 64), np.uint8)
        w[18:46, 4:32], w[18:46, 34:62] = a, b
        t = np.zeros((64, 64), np.uint8)
        t[4:32, 18:46], t[34:62, 18:46] = a, b
        wide.append(w)
        tall.append(t)
    return np.array(wide), np.array(tall)


def test_other_aspect_ratios_are_fitted_and_padded_not_stretched(mnist_dir, tmp_path):
    wide, tall = _strips(mnist_dir)
    for i, (w, t) in enumerate(zip(wide, tall)):
        # 100x62 and 62x100 pictures (digits ~1.55x MNIST's) of the strip's middle 40 rows / columns, on paper
        wide_file = _save(255 - np.asarray(Image.fromarray(w[12:52]).resize((100, 62))), tmp_path / f"w{i}.png")
        tall_file = _save(255 - np.asarray(Image.fromarray(t[:, 12:52]).resize((62, 100))), tmp_path / f"t{i}.png")
        [(_, got_wide), (_, got_tall)] = load_images([wide_file, tall_file], SIZE)
        for got, strip in ((got_wide, w), (got_tall, t)):
            top, left, bottom, right = _ink_box(got)
            want_top, want_left, want_bottom, want_right = _ink_box(strip)
            # back to MNIST scale, not stretched: the ink box has the strip's own height and width
            assert abs((bottom - top) - (want_bottom - want_top)) <= 4
            assert abs((right - left) - (want_right - want_left)) <= 4


def _same_decisions(clf, got, expected, margin=0.15):
    """Digits present/absent agree wherever the array's own score is clear of the threshold."""
    s_got, s_exp = clf.scores(np.array(got)), clf.scores(np.array(expected))
    clear = np.abs(s_exp - clf.thresholds) > margin
    assert clear.mean() > 0.5
    np.testing.assert_array_equal((s_got >= clf.thresholds)[clear], (s_exp >= clf.thresholds)[clear])


def test_files_give_the_same_digits_as_the_arrays(models, canvases, tmp_path):
    clf = Classifier(models["int8"], num_threads=1)
    arrays = canvases[0][:4]
    for name, writer in {**EXACT, **CLOSE}.items():
        paths = [writer(c, tmp_path / f"{i}-{name}") for i, c in enumerate(arrays)]
        got = [image for _, image in load_images(paths, clf.input_shape)]
        if name in EXACT:
            assert [p.digits for p in clf.predict(np.array(got))] == [p.digits for p in clf.predict(arrays)]
        _same_decisions(clf, got, arrays)


def test_arrays_from_npy_and_npz(canvases, mnist_dir, tmp_path):
    images = canvases[0][:3]
    np.save(tmp_path / "batch.npy", images)
    np.save(tmp_path / "one.npy", images[0])
    np.savez(tmp_path / "set.npz", images=images, labels=canvases[1][:3])
    np.save(tmp_path / "float.npy", images.astype(np.float32) / 255)
    np.save(tmp_path / "blank.npy", np.zeros((2, 28, 28), np.uint8) + 200)
    np.save(tmp_path / "digits.npy", load_mnist(mnist_dir).test_images[:2])
    loaded = load_images([tmp_path / "batch.npy", tmp_path / "one.npy", tmp_path / "set.npz", tmp_path / "float.npy"], SIZE)
    assert [name for name, _ in loaded][:4] == [f"{tmp_path / 'batch.npy'}#{i}" for i in range(3)] + [f"{tmp_path / 'one.npy'}#0"]
    expected = [*images, images[0], *images, *images]
    assert len(loaded) == len(expected)
    for (_, got), want in zip(loaded, expected):
        np.testing.assert_array_equal(got, want)
    # other sizes are prepared like pictures, never inverted: a uniform array is blank, MNIST
    # digits (already at the model's scale) are pasted as they are in the middle
    [(_, a), (_, b)] = load_images([tmp_path / "blank.npy"], SIZE)
    assert not a.any() and not b.any()
    digits = load_mnist(mnist_dir).test_images[:2]
    for (_, got), digit in zip(load_images([tmp_path / "digits.npy"], SIZE), digits):
        np.testing.assert_array_equal(got[18:46, 18:46], digit)
        assert got.sum() == digit.sum()


@pytest.mark.parametrize("array, message", [
    (np.full((1, 64, 64), np.nan, np.float32), "NaN or infinite"),
    (np.full((64, 64), np.inf), "NaN or infinite"),
    (np.full((64, 64), 2.0), r"\[0,1\]"),
    (np.zeros((64, 64), np.int64), "uint8"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"\(N,H,W\) or \(H,W\)"),
])
def test_bad_arrays_are_one_line_errors(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(MnistEdgeError, match=message) as e:
        load_images([tmp_path / "bad.npy"], SIZE)
    assert str(tmp_path / "bad.npy") in e.value.message and "\n" not in e.value.message


def test_bad_array_files(tmp_path):
    np.savez(tmp_path / "nokey.npz", pictures=np.zeros((1, 64, 64), np.uint8))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    for name, message in (("nokey.npz", "no 'images' array.*pictures"), ("objects.npy", "not a readable"),
                          ("junk.npz", "not a readable")):
        with pytest.raises(MnistEdgeError, match=message):
            load_images([tmp_path / name], SIZE)


def test_unreadable_files_are_collected_and_the_rest_loaded(canvases, tmp_path):
    good = [_save(c, tmp_path / f"good{i}.png") for i, c in enumerate(canvases[0][:2])]
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(good[0].read_bytes()[:100])
    inputs = [good[0], tmp_path / "notes.png", tmp_path / "missing.png", tmp_path / "cut.png", good[1]]
    errors = []
    loaded = load_images(inputs, SIZE, errors=errors)
    assert [name for name, _ in loaded] == [str(good[0]), str(good[1])]
    assert [e.message.split(":")[0] for e in errors] == [str(tmp_path / n) for n in ("notes.png", "missing.png", "cut.png")]
    assert all("\n" not in e.message for e in errors)
    with pytest.raises(MnistEdgeError, match="notes.png: not a readable image"):
        load_images(inputs, SIZE)


def test_decompression_bombs_are_refused(canvases, tmp_path, monkeypatch):
    path = _save(canvases[0][0], tmp_path / "bomb.png")  # 4096 pixels
    for limit in (3000, 1000):  # over the limit Pillow warns; over twice the limit it raises
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(MnistEdgeError, match="bomb.png: image too large, refused as a possible decompression bomb"):
            load_images([path], SIZE)


def test_folders_expand_to_their_image_files_sorted(canvases, tmp_path):
    for name in ("b.png", "a.PNG", "c.jpg", ".hidden.png"):
        _save(canvases[0][0], tmp_path / name)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _save(canvases[0][0], tmp_path / "sub" / "d.png")
    assert [n for n, _ in load_images(tmp_path, SIZE)] == [str(tmp_path / n) for n in ("a.PNG", "b.png", "c.jpg")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MnistEdgeError, match="folder has no image files"):
        load_images([tmp_path / "empty"], SIZE)
