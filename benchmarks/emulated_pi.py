"""Helpers for ``benchmarks/emulated_pi.sh``: test images, scores on each platform, the summary.

``images`` and ``scores`` run with the device dependencies only (numpy, Pillow, an interpreter), on
x86 and under qemu on the emulated Pi; ``summary`` needs nothing but the standard library, so any
``python3`` on the host can print the table. Emulated timings are meaningless, so none are reported.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

STEP = 1 / 256  # an int8 sigmoid output moves in steps of 1/256 (scale 1/256, zero point -128)
STEPS = ("install", "tests", "infer", "bench", "scores", "stock-qemu")


def write_images(data, out_dir, count):
    """The first ``count`` test images as PNG files, the inputs `mnist-edge infer` reads on every platform."""
    import numpy as np
    from PIL import Image
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(data, allow_pickle=False) as npz:
        images = npz["images"][:count]
    for i, image in enumerate(images):
        Image.fromarray(image).save(out / f"image_{i:02d}.png")


def write_scores(out_json, models, data, count, runtime):
    """Each model's scores and digit sets for the test images, with what produced them."""
    import numpy as np
    from edge_runtime import Classifier
    with np.load(data, allow_pickle=False) as npz:
        images = npz["images"][:count]
    result = {"machine": platform.machine(), "python": platform.python_version(),
              "numpy": np.__version__, "models": {}}
    for model in models:
        clf = Classifier(model, num_threads=1, runtime=runtime)
        predictions = clf.predict(images)
        result["runtime"] = f"{clf.runtime_name} {clf.runtime_version}"
        result["models"][Path(model).name] = {
            "format": clf.model_format,
            "scores": [[float(s) for s in p.scores] for p in predictions],
            "digits": [list(p.digits) for p in predictions]}
    Path(out_json).write_text(json.dumps(result))


def compare(arm, x86):
    """Per model: images compared, max |Δscore| (and in int8 output steps), identical digit sets."""
    out = {}
    for name, a in arm["models"].items():
        b = x86["models"].get(name)
        if b is None or len(a["scores"]) != len(b["scores"]):
            continue
        delta = max(abs(p - q) for ra, rb in zip(a["scores"], b["scores"]) for p, q in zip(ra, rb))
        same = sum(da == db for da, db in zip(a["digits"], b["digits"]))
        out[name] = {"format": a["format"], "images": len(a["digits"]), "max_abs_delta": delta,
                     "max_delta_steps": round(delta / STEP, 2) if a["format"] == "int8" else None,
                     "same_digit_sets": same, "x86_runtime": x86.get("runtime")}
    return out


def read_steps(folder):
    """steps.tsv lines written by the shell script: step, status, seconds, note."""
    steps = {}
    path = folder / "steps.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        step, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        steps[step] = {"status": status, "seconds": float(seconds or 0), "note": note}
    return steps


def infer_digits(path):
    """{file name: digits} from `mnist-edge infer --json` output (other lines are the interpreter's notes)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return {Path(r["input"]).name: r["digits"] for r in map(json.loads, (s for s in lines if s.startswith("{")))}


def summarize(out_dir, x86_dir):
    """One record per configuration (from steps.tsv, config.json, scores.json), numerics against x86."""
    references = {p.stem: json.loads(p.read_text()) for p in Path(x86_dir).glob("*.json")}
    records = []
    for folder in sorted(p for p in Path(out_dir).iterdir() if (p / "config.json").exists()):
        record = json.loads((folder / "config.json").read_text())
        record["steps"] = read_steps(folder)
        infer = record["steps"].get("infer")
        if infer and infer["status"] == "ok":
            arm, x86 = infer_digits(folder / "infer.log"), infer_digits(Path(x86_dir) / "infer.jsonl")
            same = sum(arm.get(name) == digits for name, digits in x86.items())
            infer["note"] = f"{same}/{len(x86)} digit sets as x86"
        scores = folder / "scores.json"
        if scores.exists():
            arm = json.loads(scores.read_text())
            record.update(machine=arm["machine"], python=arm["python"], numpy=arm["numpy"], runtime=arm["runtime"])
            x86 = references.get(arm["runtime"].split()[0])
            record["numerics"] = compare(arm, x86) if x86 else {}
        records.append(record)
    return records


def numerics_cell(numerics, fmt):
    for n in (numerics or {}).values():
        if n["format"] == fmt:
            delta = f"{n['max_delta_steps']:g} steps" if fmt == "int8" else f"{n['max_abs_delta']:.1e}"
            return f"{delta}, {n['same_digit_sets']}/{n['images']} same"
    return "-"


def print_table(records):
    rows = [("configuration", "Python", "interpreter", *STEPS, "int8 vs x86", "float32 vs x86")]
    for r in records:
        steps = r["steps"]
        cells = [steps.get(s, {}).get("status", "-") for s in STEPS]
        for i, name in enumerate(STEPS[:3]):
            if steps.get(name, {}).get("note"):
                cells[i] += f" ({steps[name]['note']})"
        rows.append((r["name"], r.get("python", "-"), r.get("runtime", r.get("interpreter", "-")), *cells,
                     numerics_cell(r.get("numerics"), "int8"), numerics_cell(r.get("numerics"), "float32")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("images", help="write test images as PNG files")
    p.add_argument("data"), p.add_argument("out_dir"), p.add_argument("--count", type=int, default=4)
    p = sub.add_parser("scores", help="scores and digit sets of MODELS on the test images, as JSON")
    p.add_argument("out_json"), p.add_argument("models", nargs="+"), p.add_argument("--data", required=True)
    p.add_argument("--count", type=int, default=200), p.add_argument("--runtime", default="auto")
    p = sub.add_parser("summary", help="print the table and write the JSON of every configuration")
    p.add_argument("out_dir"), p.add_argument("--x86", required=True), p.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if args.command == "images":
        write_images(args.data, args.out_dir, args.count)
    elif args.command == "scores":
        write_scores(args.out_json, args.models, args.data, args.count, args.runtime)
    else:
        records = summarize(args.out_dir, args.x86)
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
        print_table(records)
        failed = [r["name"] for r in records if any(s["status"] == "FAIL" for s in r["steps"].values())]
        print(f"\nJSON: {args.json}" + (f"\nFAILED: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
