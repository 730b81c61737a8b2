"""`bench`'s trust sections end to end: paired statistics, difficulty, acceleration check, conformance,
the confidence-interval gate, on real tiny models and a composed set carrying difficulty arrays."""
import csv
import importlib.util
import json

import numpy as np
import pytest

from benchmarks.gate import check_gate
from edge_runtime.dataset_file import load_labelled_npz, save_labelled_npz
from test_bench import FAST, NUM_TEST, bench, models, test_npz  # noqa: F401  (pytest fixtures)

HERE = next(n for n in ("ai_edge_litert", "tflite_runtime", "tensorflow") if importlib.util.find_spec(n))
MISSING = next((n for n in ("ai_edge_litert", "tflite_runtime", "tensorflow") if not importlib.util.find_spec(n)), None)


@pytest.fixture(scope="module")
def run(models, test_npz, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("bench_trust")
    runtimes = f"{HERE},{MISSING or HERE}"
    result = bench(models["float32"], models["int8"], "--data", test_npz, *FAST, "--bootstrap", "200",
                   "--seed", "3", "--runtimes", runtimes, "--out", out)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "report.json").read_text())


def test_paired_statistics_in_the_report(run, test_npz):  # noqa: F811
    out, report = run
    base, int8 = report["models"]
    assert base["paired"] is None
    boot = int8["paired"]["bootstrap"]
    assert boot["resamples"] == 200 and boot["seed"] == 3
    assert boot["per_digit"]["delta"] == pytest.approx(int8["delta_f1"])
    assert boot["macro"]["low"] <= boot["macro"]["delta"] <= boot["macro"]["high"]
    assert len(int8["paired"]["mcnemar"]["per_digit"]) == 10 and len(int8["paired"]["flips"]) == 10
    md = (out / "report.md").read_text()
    for heading in ("## Is the difference real?", "95% CI", "McNemar", "## Results by difficulty",
                    "## Acceleration check", "## Runtime conformance"):
        assert heading in md, heading
    row = list(csv.DictReader((out / "report.csv").open()))[1]
    assert float(row["delta_macro_f1_ci_low"]) == pytest.approx(boot["macro"]["low"], abs=1e-6)
    assert row["mcnemar_p_0"] != ""


def test_difficulty_strata_in_the_report(run, test_npz):  # noqa: F811
    out, report = run
    assert report["difficulty"]["available"] == ["digits", "overlap"]
    with np.load(test_npz) as npz:
        counts = np.bincount(npz["digits_per_image"])
    for m in report["models"]:
        by = m["by_difficulty"]
        assert {int(s["stratum"]): s["images"] for s in by["digits"]} == {k: int(n) for k, n in enumerate(counts) if n}
        assert sum(s["images"] for s in by["overlap"]) == NUM_TEST
    rows = list(csv.DictReader((out / "strata.csv").open()))
    assert {r["grouping"] for r in rows} == {"digits", "overlap"}
    assert sum(int(r["images"]) for r in rows if r["grouping"] == "digits") == 2 * NUM_TEST


def test_acceleration_and_conformance_in_the_report(run):
    _, report = run
    acc = report["acceleration"]
    assert [m["name"] for m in acc["models"]] == [m["name"] for m in report["models"]]
    assert all(m["status"] in ("accelerated", "not accelerated", "slower than float") for m in acc["models"])
    conf = report["conformance"]
    assert conf["runtimes"][0]["name"] == HERE and conf["runtimes"][0]["version"]
    if MISSING:
        assert conf["runtimes"][1]["note"].startswith("not installed in this Python")
    else:  # the same runtime twice agrees with itself exactly
        assert all(c["max_abs_diff"] == 0 for m in conf["models"] for c in m["comparisons"])


def test_data_without_difficulty_says_so(models, test_npz, tmp_path):  # noqa: F811
    images, labels = load_labelled_npz(test_npz)
    plain = tmp_path / "plain.npz"
    save_labelled_npz(plain, images, labels)
    result = bench(models["float32"], models["int8"], "--data", plain, *FAST, "--bootstrap", "100", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["difficulty"]["available"] == [] and report["models"][1]["by_difficulty"]["confused_pairs"] is not None
    assert "has no per-image difficulty arrays" in (tmp_path / "o" / "report.md").read_text()
    assert not (tmp_path / "o" / "strata.csv").exists()


def test_gate_on_ci_is_stricter_than_on_point(run):
    _, report = run
    int8 = report["models"][1]
    low = min(int8["paired"]["bootstrap"]["per_digit"]["low"])
    point_drop = max(0.0, -min(int8["delta_f1"]))
    limit = (point_drop + -low) / 2 if -low > point_drop else None
    if limit is None:
        pytest.skip("the interval's lower end is not below the point estimate here")
    assert check_gate(report, max_f1_drop=limit, on="point")["passed"]
    ci = check_gate(report, max_f1_drop=limit, on="ci")
    assert not ci["passed"] and "--gate-on ci" in ci["failures"][0] and "lower end" in ci["judged_on"]


def test_gate_on_ci_from_the_command_line(models, test_npz, tmp_path):  # noqa: F811
    result = bench(models["float32"], models["int8"], "--data", test_npz, *FAST, "--bootstrap", "100",
                   "--out", tmp_path, "--max-f1-drop", "0.5", "--gate-on", "ci")
    assert result.exit_code == 0, result.output
    gate = json.loads((tmp_path / "report.json").read_text())["gate"]
    assert gate["on"] == "ci" and gate["passed"]
    assert "Judged on the lower end" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("value", ["nonsense,ai_edge_litert", "ai_edge_litert"])
def test_bad_runtimes_are_usage_errors(models, test_npz, value):  # noqa: F811
    result = bench(models["float32"], "--data", test_npz, "--runtimes", value)
    assert result.exit_code == 2 and "--runtimes" in result.output and "Traceback" not in result.output
