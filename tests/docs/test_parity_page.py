"""The parity page's table is the two runs it cites (docs/parity-numpy.json, parity-numba.json).

The numbers are read back from the files the command wrote, so prose and measurement cannot
drift apart; and each file's worst errors are checked against the documented CPU tolerances
(float64 1e-12, float32 1e-5) and the page's "read float64 as <= 1e-15", which README repeats.
"""
import json
import re
from pathlib import Path

import pytest

from minirnn.cells import BUILTIN

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "parity.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUNS = {"numpy": ROOT / "docs" / "parity-numpy.json", "numba": ROOT / "docs" / "parity-numba.json"}


def _worst(run, cell, dtype):
    doc = json.loads(RUNS[run].read_text())
    return next(r["worst_rel"] for r in doc["summary"] if r["cell"] == cell and r["dtype"] == dtype)


def _row(cell):
    """The parity page's table row for `cell` -> its four numbers as printed."""
    m = re.search(rf"^\| {cell} \| (\S+) \| (\S+) \| (\S+) / (\S+) \|$", PAGE, re.M)
    assert m, f"docs/parity.md's table has no row for {cell}"
    return m.groups()


@pytest.mark.parametrize("cell", BUILTIN)
def test_parity_row_is_the_cited_runs(cell):
    want = (_worst("numpy", cell, "float64"), _worst("numpy", cell, "float32"),
            _worst("numba", cell, "float64"), _worst("numba", cell, "float32"))
    assert _row(cell) == tuple(f"{w:.2e}" for w in want)


@pytest.mark.parametrize("run", sorted(RUNS))
def test_cited_runs_passed_within_the_documented_tolerances(run):
    doc = json.loads(RUNS[run].read_text())
    assert doc["passed"] and doc["backend"] == run and not doc["frozen"]
    assert len(doc["cases"]) == 108 and "108/108 pass each" in PAGE
    assert 'read float64 as "≤ 1e-15"' in PAGE
    assert "in float64 every output and gradient agrees to ≤ 1e-15 relative" in " ".join(
        README.split())
    for r in doc["summary"]:
        bound = 1e-15 if r["dtype"] == "float64" else 1e-5
        assert 0 < r["worst_rel"] <= bound, r
