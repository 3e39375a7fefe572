"""README's benchmark section is read back from the files its runs wrote: the bench summary and
table rows from docs/bench-quick-summary.json (through the same report the command prints),
the thread numbers from docs/thread-policy.json, the phase table from docs/kernels.md (itself
checked against docs/phases.json by test_kernels_page.py), and the end-to-end ranges from
docs/phases-e2e.json."""
from __future__ import annotations

import json
import re

from minirnn.bench import format_report
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## For the benchmark user"):README.index("## For the learner")]
FLAT = " ".join(SECTION.split())


def _load(name):
    return json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))


def test_the_printed_block_is_what_the_run_prints():
    run = _load("bench-quick-summary.json")
    printed = format_report(run).splitlines()
    block = SECTION[SECTION.index("```text") + len("```text\n"):]
    block = block[:block.index("```")].splitlines()
    assert len([ln for ln in block if ln.strip()]) >= 8
    for line in block:
        if line.strip():
            assert line in printed, line            # verbatim, summary and table rows alike
    summary = [ln for ln in printed if re.match(r"  \w+ +numba vs ", ln)]
    assert summary == [ln for ln in block if re.match(r"  \w+ +numba vs ", ln)]   # all of it
    assert f"the command took {round(run['meta']['wall_s'])} s" in FLAT


def test_the_thread_numbers_are_the_files():
    b1 = _load("thread-policy.json")["results"]["b1"]
    tail = lambda m: f"{b1[m]['p90'] / b1[m]['median']:.2f}"                   # noqa: E731
    assert f"p90 was {tail('default')}× its median ({tail('pool')}× with the full pool)" in FLAT


def _table_rows(text):
    return [ln for ln in text.splitlines() if ln.startswith("| ") and " | " in ln]


def test_the_phase_table_is_the_kernels_page():
    page = (ROOT / "docs" / "kernels.md").read_text(encoding="utf-8")
    start = page.index("**lstm float32 T=100 B=64 I=512 H=512**")
    page_rows = _table_rows(page[start:page.index("\n\n", page.index("| phase", start))])
    ours = [r for r in _table_rows(SECTION) if not r.startswith("| phase")]
    assert ours and ours == [r for r in page_rows if not r.startswith("| phase")]


def test_the_end_to_end_ranges_are_the_files():
    e2e = _load("phases-e2e.json")
    ratios = {}
    for prob in e2e["problems"]:
        key = (prob["cell"], prob["dtype"])
        ratios.setdefault(key, []).append(prob["ratio"]["median"])
    for (cell, dtype), label in ((("lstm", "float32"), "float32 LSTM"),
                                 (("lstm", "float64"), "float64 LSTM"),
                                 (("gru", "float32"), "float32 GRU")):
        lo, hi = min(ratios[cell, dtype]), max(ratios[cell, dtype])
        assert f"{label} {lo:.2f}–{hi:.2f}×" in FLAT, label
