"""Bad options and API arguments for ``bad_inputs.py``: (name, argv, names the message should contain)."""
CLI = "from train.cli import main; main()"


def cli(*args):
    return ["-c", CLI, *map(str, args)]


def option_cases(model, picture, data, work):
    """infer and bench options: out of range, not numbers, NaN, and --out where it cannot be written."""
    a_file = work / "arrays" / "good.npz"
    cases = []
    for value in ("0", "-1", "100000", "abc", "2.5", "1e3", ""):
        cases.append((f"option infer --threads {value!r}", cli("infer", "--threads", value, picture), ("--threads",)))
    for value in ("nan", "inf", "-inf", "-1", "2", "abc", "NaN"):
        cases.append((f"option infer --threshold {value!r}", cli("infer", "--threshold", value, picture), ("--threshold",)))
    cases.append(("option infer --runtime bogus", cli("infer", "--runtime", "bogus", picture), ("--runtime",)))
    cases.append(("option infer --model ''", cli("infer", "--model", "", picture), ("model",)))
    cases.append(("option infer no input", cli("infer"), ("INPUT",)))
    bench = ("bench", model, model, "--data", data, "--no-memory", "--runs", 2, "--warmup", 0)
    for option, values in {"--threads": ("5000", "100000", "0", "1,,0", "a", "1.5", ""),
                           "--batch": ("0", "1000000000", "x"),
                           "--runs": ("0", "-1", "abc"), "--warmup": ("-1",), "--rounds": ("0",),
                           "--max-f1-drop": ("nan", "inf", "-1", "NaN", "abc"),
                           "--min-macro-f1": ("nan", "-inf", "2", "-0.5")}.items():
        for value in values:
            cases.append((f"option bench {option} {value!r}", cli(*bench, option, value), (option,)))
    cases += [
        ("option bench --out under a file", cli(*bench, "--out", a_file / "sub"), ("good.npz", "--out")),
        ("option bench --out is a file", cli(*bench, "--out", a_file), ("good.npz", "--out")),
        ("option bench --out /proc", cli(*bench, "--out", "/proc/bench"), ("/proc", "--out")),
        ("option bench no --data", cli("bench", model), ("--data",)),
        ("option bench --data folder", cli("bench", model, "--data", work), (work.name, "--data")),
        ("option bench --runtime bogus", cli(*bench, "--runtime", "bogus"), ("--runtime",)),
        ("option bench model is a folder", cli("bench", work, "--data", data), (work.name,)),
    ]
    return cases


def api_cases(model):
    """Classifier and load_images arguments of the wrong type or range: one clear exception each."""
    head = ("import numpy as np\nfrom edge_runtime import Classifier, load_images\nfrom edge_runtime.errors import MnistEdgeError\n"
            "try:\n    ")
    tail = "\nexcept (MnistEdgeError, TypeError, ValueError) as e:\n    print(type(e).__name__ + ': ' + str(e)); raise SystemExit(1)"
    m = repr(str(model))
    calls = {
        "num_threads='abc'": (f"Classifier({m}, num_threads='abc')", "num_threads"),
        "num_threads=2.7": (f"Classifier({m}, num_threads=2.7)", "num_threads"),
        "num_threads=10**12": (f"Classifier({m}, num_threads=10**12)", "num_threads"),
        "num_threads=0": (f"Classifier({m}, num_threads=0)", "num_threads"),
        "num_threads=-4": (f"Classifier({m}, num_threads=-4)", "num_threads"),
        "num_threads=True": (f"Classifier({m}, num_threads=True)", "num_threads"),
        "num_threads=[2]": (f"Classifier({m}, num_threads=[2])", "num_threads"),
        "use_xnnpack='no'": (f"Classifier({m}, use_xnnpack='no')", "use_xnnpack"),
        "use_xnnpack=None": (f"Classifier({m}, use_xnnpack=None)", "use_xnnpack"),
        "runtime='x'": (f"Classifier({m}, runtime='x')", "runtime"),
        "runtime=3": (f"Classifier({m}, runtime=3)", "runtime"),
        "thresholds=nan": (f"Classifier({m}, thresholds=float('nan'))", "thresholds"),
        "thresholds 9": (f"Classifier({m}, thresholds=[0.5] * 9)", "thresholds"),
        "thresholds 'abc'": (f"Classifier({m}, thresholds='abc')", "thresholds"),
        "model=''": ("Classifier('')", "model"),
        "model=3": ("Classifier(3)", "str"),
        "predict int16": (f"Classifier({m}).predict(np.zeros((2, 64, 64), np.int16))", "int16"),
        "predict NaN": (f"Classifier({m}).predict(np.full((2, 64, 64), np.nan))", "NaN"),
        "predict 2.0": (f"Classifier({m}).predict(np.full((2, 64, 64), 2.0))", "[0,1]"),
        "predict 28x28": (f"Classifier({m}).predict(np.zeros((2, 28, 28), np.uint8))", "28x28"),
        "predict ragged": (f"Classifier({m}).predict([np.zeros((64, 64)), np.zeros((3, 3))])", "images"),
        "predict strings": (f"Classifier({m}).predict(['a', 'b'])", "images"),
        "predict 5-d": (f"Classifier({m}).predict(np.zeros((1, 1, 64, 64, 1), np.uint8))", "images"),
        "predict None": (f"Classifier({m}).predict(None)", "images"),
        "load_images /dev/zero": ("load_images(['/dev/zero'], (64, 64))", "/dev/zero"),
        "load_images classifier='x'": ("load_images([], (64, 64), classifier='x')", "classifier"),
    }
    return [(f"api {name}", ["-c", head + code + tail], (needle,)) for name, (code, needle) in calls.items()]


def workstation_cases(model, data, work):
    """The training-side commands on bad options and files (owned by the workstation items of issue 17;
    kept few and fast: each should fail before training or converting)."""
    run, file_, arrays = work / "run", work / "arrays" / "good.npz", work / "arrays"
    tiny, keras = arrays / "tinyset", run / "tiny.keras"
    convert = ("convert", keras, "--val", tiny / "val.npz", "--formats", "int8")
    return [
        ("workstation data --train 100000000", cli("data", work / "d1", "--train", 100000000), ("--train",)),
        ("workstation data --canvas 100000", cli("data", work / "d2", "--canvas", 100000), ("--canvas",)),
        ("workstation data --seed -1", cli("data", work / "d3", "--seed", -1), ("--seed",)),
        ("workstation data out under a file", cli("data", file_ / "x", "--train", 10), ("good.npz",)),
        ("workstation data --class-prior nan", cli("data", work / "d4", "--class-prior", "nan,1,1,1,1,1,1,1,1,1"),
         ("--class-prior",)),
        ("workstation train --lr nan", cli("train", "--data", tiny, "--out", run / "t1", "--lr", "nan"), ("--lr",)),
        ("workstation train --lr inf", cli("train", "--data", tiny, "--out", run / "t2", "--lr", "inf"), ("--lr",)),
        ("workstation train int16 images", cli("train", "--data", arrays / "int16set", "--out", run / "t3"), ("int16",)),
        ("workstation train --out under a file", cli("train", "--data", tiny, "--out", file_ / "x"), ("good.npz",)),
        ("workstation convert --seed -1", cli(*convert, "--out", run / "c1", "--seed", -1), ("--seed",)),
        ("workstation convert --out under a file", cli(*convert, "--out", file_ / "x"), ("good.npz",)),
        ("workstation convert calib fifo", cli(*convert, "--out", run / "c3", "--calib", arrays / "fifo.npz"),
         ("fifo.npz",)),
        ("workstation convert calib 0 images", cli(*convert, "--out", run / "c4", "--calib", arrays / "emptyset.npz"),
         ("emptyset.npz", "--calib")),
        ("workstation convert calib 38 GiB header", cli(*convert, "--out", run / "c5", "--calib", arrays / "huge.npz"),
         ("huge.npz",)),
        ("workstation convert val int16", cli("convert", keras, "--val", arrays / "int16set" / "val.npz", "--out",
                                              run / "c6"), ("int16",)),
        ("workstation pipeline --out under a file", cli("pipeline", "--out", file_ / "x", "--quick"), ("good.npz",)),
        ("workstation pipeline --max-f1-drop nan", cli("pipeline", "--out", run / "p1", "--max-f1-drop", "nan"),
         ("--max-f1-drop",)),
    ]
