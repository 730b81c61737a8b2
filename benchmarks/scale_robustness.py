"""How a model reads digits at other scales and on other paper, through ``load_images`` as `infer` does.

    python benchmarks/scale_robustness.py [--model M.tflite] [--limit N] [--scales 1,1.6] SET.npz [SET.npz ...]

Each SET.npz is a labelled set from `mnist-edge data` (test split: digits the model never saw), e.g.

    mnist-edge data d28 --canvas 28 --max-digits 1 --empty-fraction 0 --train 1 --val 0 --test 2000 --seed 7
    mnist-edge data d40 --canvas 40 --max-digits 2 --max-overlap 1 --empty-fraction 0 --train 1 --val 0 --test 2000 --seed 7
    mnist-edge data d96 --canvas 96 --max-digits 4 --empty-fraction 0 --train 1 --val 0 --test 2000 --seed 7

Every image (resized by each of ``--scales``: 1.6 makes MNIST digits 32 px tall) is written as a file
in several forms (a .npy array; PNGs of light ink on black, dark ink on white, dark ink on grey-230
paper, on white paper inside a 2 px black frame, and a "photo": ink 40 on paper 200 with Gaussian
noise of sd 12), read back with ``load_images`` and classified, the model choosing each picture's
digit scale among the size cues as `infer` does (``--rule-only``: the size rule alone). The table
gives the share of images whose digit set is exactly right, the macro-F1 and the share that raised a
warning. Two last rows run blank pages (uniform gray 20..235, and a 1x1 picture; the same with noise
of sd 12): the share answered "no digits". Runs with the device dependencies only.
"""
import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime import Classifier, load_images
from edge_runtime.dataset_file import load_labelled_npz
from edge_runtime.metrics import evaluate
from edge_runtime.preprocess import supported_heights

FRAME = 2     # px of the black frame around white paper
PAPER = 230   # gray level of the grey paper
PHOTO = (200, 40, 12)  # a phone photo: paper level, ink level, sd of the sensor's Gaussian noise


def _forms(image, seed):
    """name -> (suffix, array to write) for one light-on-dark uint8 image (``seed``: its photo noise)."""
    dark_on_white = 255 - image
    paper, ink, noise = PHOTO
    photo = paper + (ink - paper) * (image / 255.0) + np.random.default_rng(seed).normal(0, noise, image.shape)
    framed = np.zeros((image.shape[0] + 2 * FRAME, image.shape[1] + 2 * FRAME), np.uint8)
    framed[FRAME:-FRAME, FRAME:-FRAME] = dark_on_white
    return {"array": (".npy", image), "png light on black": (".png", image),
            "png dark on white": (".png", dark_on_white),
            f"png dark on grey {PAPER}": (".png", np.rint(PAPER * (1 - image / 255.0)).astype(np.uint8)),
            f"png {FRAME} px black frame": (".png", framed),
            f"png photo, noise sd {noise}": (".png", np.clip(np.rint(photo), 0, 255).astype(np.uint8))}


def _write(folder, i, suffix, array):
    path = folder / f"{i:05d}{suffix}"
    np.save(path, array) if suffix == ".npy" else Image.fromarray(array).save(path)
    return path


def _classify(clf, paths, choose):
    """(scores (N,10), number of pictures that raised a warning); ``choose``: the model picks each
    picture's digit scale, as `infer` does."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_images(paths, clf.input_shape, heights=supported_heights(clf.metadata),
                             classifier=clf if choose else None)
        images = np.array([image for _, image in loaded])
    return clf.scores(images), len({str(w.message).split(":")[0] for w in caught})


def _resized(image, scale):
    if scale == 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def run_set(clf, path, limit, folder, scale=1.0, choose=True):
    images, labels = load_labelled_npz(path)
    images, labels = [_resized(image, scale) for image in images[:limit]], labels[:limit]
    shape = "x".join(map(str, images[0].shape)) + (f", digits x{scale:g}" if scale != 1 else "")
    rows = []
    for name in _forms(images[0], 0):
        sub = folder / f"{len(list(folder.iterdir()))}"
        sub.mkdir()
        paths = [_write(sub, i, *_forms(image, i)[name]) for i, image in enumerate(images)]
        scores, warned = _classify(clf, paths, choose)
        m = evaluate(labels, scores, clf.thresholds)
        rows.append((f"{path} ({shape})", name, len(images), m["subset_accuracy"], m["macro_f1"], warned / len(images)))
    return rows


def run_blank(clf, folder, noise=0):
    pages = [np.full((side, side), level, np.uint8) for level in range(20, 236, 5) for side in (28, 64, 96)]
    if noise:
        rng = np.random.default_rng(0)
        pages = [np.clip(np.rint(page + rng.normal(0, noise, page.shape)), 0, 255).astype(np.uint8) for page in pages]
    else:
        pages.append(np.full((1, 1), 128, np.uint8))
    (folder / f"blank{noise}").mkdir()
    paths = [_write(folder / f"blank{noise}", i, ".png", page) for i, page in enumerate(pages)]
    scores, warned = _classify(clf, paths, True)
    none = float((scores < clf.thresholds).all(axis=1).mean())
    name = f"blank pages + noise sd {noise}" if noise else "blank pages (gray 20..235; 28, 64, 96 px; 1x1)"
    return (name, "png", len(pages), none, float("nan"), warned / len(pages))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="labelled .npz sets written by `mnist-edge data`")
    parser.add_argument("--model", help="a .tflite model [default: the shipped int8 model]")
    parser.add_argument("--limit", type=int, default=1000, help="images per set [1000]")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads [1]")
    parser.add_argument("--scales", default="1", help="comma list of factors each image is resized by [1]")
    parser.add_argument("--rule-only", action="store_true",
                        help="the size rule alone decides each picture's scale (no model choice among its cues)")
    args = parser.parse_args()
    clf = Classifier(args.model, num_threads=args.threads)
    print(f"model {clf.model_path} ({clf.model_format}, input {clf.input_shape})")
    print(f"{'set':<48} {'form':<22} {'images':>6} {'exact':>6} {'macroF1':>7} {'warned':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        scales = [float(v) for v in args.scales.split(",")]
        rows = [row for path in args.sets for scale in scales
                for row in run_set(clf, path, args.limit, Path(tmp), scale, not args.rule_only)]
        rows += [run_blank(clf, Path(tmp)), run_blank(clf, Path(tmp), PHOTO[2])]
    for set_name, form, n, exact, f1, warned in rows:
        print(f"{set_name:<48} {form:<22} {n:>6} {exact:>6.3f} {f1:>7.3f} {warned:>6.1%}")
    print("exact: share of images whose digit set is exactly right (blank pages: share answered 'no digits')")


if __name__ == "__main__":
    main()
