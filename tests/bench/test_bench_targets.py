"""benchmarks/targets.py: a verdict counts what it judged, and judging nothing is no success.

Rows `minirnn bench` flagged (order, load, peak), and rows whose ratio to torch@1 spread over
the rounds, are left out of every verdict and counted; a run where too few rows can be judged says so and exits non-zero; a missing or
malformed JSON is a one-line error. The documents are synthetic bench JSONs built here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import pytest

from tests.helpers import ROOT, load_script

SCRIPT = ROOT / "benchmarks" / "targets.py"


T = load_script("benchmarks/targets.py", "bench_targets_t")
SIZES = [(c, dt, H) for c in ("lstm", "gru", "rnn_tanh", "rnn_relu")
         for dt in ("float32", "float64") for H in (32, 64, 128, 256)]       # 32 rows, as bench


def _row(cell, dtype, H, ratio, flags=(), loops=1.0, engine="numba"):
    """A row as the bench writes it; "spread" in flags: the ratio's rounds span 0.2-1.8x."""
    floor = 1e-3
    lo, hi = (0.2, 1.8) if "spread" in flags else (0.9, 1.1)
    return dict(regime="targets", engine=engine, cell=cell, dtype=dtype, H=H, T=20, B=1, I=64,
                ratio={"torch@1": {"fwd_bwd": dict(median=ratio, min=lo * ratio, max=hi * ratio,
                                                   per_round=[lo * ratio, ratio, hi * ratio])}},
                seconds=dict(fwd=1e-3, fwd_bwd=3e-3, rec=0.5 * loops * floor,
                             bwd_data=0.5 * loops * floor),
                floor_s=dict(fwd=floor / 2, fwd_bwd=floor), floor_ratio=dict(fwd_bwd=3.0),
                flags=[dict(code=c, message=c) for c in flags])


def _doc(flagged=None, ratio=50.0):
    """32 numba rows, each meeting its speed target by far (x50) unless said otherwise;
    flagged: {row index: flag codes}."""
    flagged = flagged or {}
    rows = [_row(c, dt, H, ratio, flagged.get(k, ())) for k, (c, dt, H) in enumerate(SIZES)]
    return dict(schema="minirnn-bench/2", meta=dict(ratio_references=["torch@1"]), rows=rows)


def _run(tmp_path, doc, *args, raw=None):
    path = tmp_path / "t.json"
    path.write_text(raw if raw is not None else json.dumps(doc))
    return subprocess.run([sys.executable, str(SCRIPT), str(path), *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def test_a_clean_run_counts_what_it_judged(tmp_path):
    res = _run(tmp_path, _doc())
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "32 of 32 rows judged" in out
    # 32 speed targets, and a floor target for each of the 24 rows with H >= 64
    assert "0 target(s) missed of 56 judged" in out


def test_flagged_rows_are_left_out_and_counted(tmp_path):
    # three rows the bench flagged: their (impossible) ratios must not be judged "met"
    doc = _doc({0: ["load"], 5: ["load"], 9: ["order", "load"]})
    for k in (0, 5, 9):
        doc["rows"][k]["ratio"]["torch@1"]["fwd_bwd"]["median"] = 700.32
    res = _run(tmp_path, doc)
    assert res.returncode == 0, res.stderr
    assert "3 of 32 rows not judged: 3 load, 1 order" in res.stdout
    assert "700.32" not in res.stdout                      # shown as "!", never as a result
    first = next(ln for ln in res.stdout.splitlines() if ln.startswith("lstm      float32    32"))
    assert "!" in first and "not judged: load" in first and " met" not in first
    assert "29 of 32 rows judged" in res.stdout


def test_a_flagged_row_that_misses_is_not_counted_as_missed(tmp_path):
    doc = _doc({3: ["spread"]})
    doc["rows"][3]["ratio"]["torch@1"]["fwd_bwd"].update(median=0.1, min=0.02, max=0.18)  # a miss
    res = _run(tmp_path, doc)
    assert "0 target(s) missed" in res.stdout and "MISSED" not in res.stdout


def test_every_row_flagged_is_no_success(tmp_path):
    res = _run(tmp_path, _doc({k: ["load"] for k in range(32)}))
    assert res.returncode != 0
    assert "0 of 32 rows judged" in res.stdout + res.stderr
    assert "0 target(s) missed" not in res.stdout          # nothing judged is never "0 missed"


def test_too_few_rows_judged_says_so_and_fails(tmp_path):
    res = _run(tmp_path, _doc({k: ["spread"] for k in range(20)}))   # 12 of 32 judged
    assert res.returncode != 0
    assert "too few rows judged: 12 of 32" in res.stderr
    ok = _run(tmp_path, _doc({k: ["spread"] for k in range(20)}), "--min-judged", "0.3")
    assert ok.returncode == 0, ok.stderr


def test_no_rows_of_the_engine_is_no_success(tmp_path):
    doc = _doc()
    for r in doc["rows"]:
        r["engine"] = "numba:native"
    res = _run(tmp_path, doc)
    assert res.returncode != 0 and "no 'numba' rows" in res.stderr


def test_the_jax_verdict_skips_a_flagged_jax_row(tmp_path):
    doc = _doc()
    doc["meta"]["ratio_references"] = ["torch@1", "jax@2"]
    for r in doc["rows"]:
        r["ratio"]["jax@2"] = {"fwd_bwd": dict(median=0.5, min=0.4, max=0.6)}   # behind jax
    jax_rows = [dict(r, engine="jax@2", flags=[dict(code="order", message="x")])
                for r in doc["rows"]]
    doc["rows"] += jax_rows
    res = _run(tmp_path, doc)
    # numba's ratio to a jax row that jax's own row flags is not judged
    assert "jax MISSED" not in res.stdout
    assert "0 target(s) missed of 56 judged" in res.stdout


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ("[1, 2]", "not a `minirnn bench` JSON"),
    ('{"rows": 3}', "not a `minirnn bench` JSON"),
])
def test_a_missing_or_malformed_json_is_one_line(tmp_path, content, says):
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    res = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and str(path) in lines[0], res.stderr


def test_table_function_reports_its_counts():
    """The table() the README tests import: (lines, missed) kept, and judge() counts."""
    doc = _doc({1: ["peak"]})
    lines, missed = T.table(doc, "numba")
    assert missed == 0 and len(lines) == 1 + 32
    j = T.judge(doc, "numba")
    assert (j.rows, j.rows_judged, j.judged, j.missed) == (32, 31, 54, 0)
    assert j.not_judged == {"peak": 1}


def test_a_spread_against_another_engine_does_not_keep_the_torch1_verdict_out(tmp_path):
    """The bench flags spread per ratio; targets.py judges the ratio to torch@1, so a row whose
    ratio to torch@2 wandered (its flag) but whose ratio to torch@1 held is judged."""
    doc = _doc()
    doc["rows"][3]["flags"] = [dict(code="spread", message="per-round ratio to torch@2 spans")]
    res = _run(tmp_path, doc)
    assert res.returncode == 0, res.stderr
    assert "32 of 32 rows judged" in res.stdout
