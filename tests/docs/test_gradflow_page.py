"""The gradient-tools page's gradient-flow table and its exploding-gradient sentence are the
study's own CSVs (docs/gradflow/, written by the command the page names), read back here."""
import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "gradient-tools.md").read_text(encoding="utf-8")
RUN = ROOT / "docs" / "gradflow"


def _rows(name):
    with open(RUN / name, newline="") as f:
        return list(csv.DictReader(f))


def test_decay_table_is_the_study_csv():
    rates = {(r["cell"], float(r["weight_scale"])): float(r["decay_rate"])
             for r in _rows("gradflow.csv")}
    section = PAGE
    head = re.search(r"^\| cell \|(.*)\|$", section, re.M).group(1)
    scales = [float(c.strip().lstrip("×")) for c in head.split("|")]
    body = re.findall(r"^\| (rnn_tanh|rnn_relu|lstm|gru) \|(.*)\|$", section, re.M)
    assert len(body) == 4
    for cell, cells in body:
        shown = [c.strip() for c in cells.split("|")]
        assert shown == [f"{rates[cell, s]:.3f}" for s in scales], cell


def test_exploding_sentence_is_the_demo_csv():
    runs = {}
    for r in _rows("exploding.csv"):
        runs.setdefault(r["run"], []).append(r)
    first = float(runs["no_clip"][0]["grad_norm"])
    diverged = next(int(r["step"]) for r in runs["no_clip"] if r["loss"] == "nan")
    m = re.search(r"first gradient norm is ([\d.]+)e(\d+) and plain SGD gives NaN at step (\d+)",
                  PAGE)
    assert m, "docs/gradient-tools.md's exploding-gradient sentence changed its form"
    assert f"{first:.1e}".replace("+", "") == f"{m.group(1)}e{m.group(2)}"
    assert diverged == int(m.group(3))
    clipped = [float(r["grad_norm"]) for r in runs["clip"]]
    assert len(clipped) == 20 and all(g == g and g < float("inf") for g in clipped)
    assert "all 20 steps stay finite" in PAGE
