"""docs/kernels.md against the files its runs wrote: the phase tables and the end-to-end
table are benchmarks/phases.py's Markdown of docs/phases.json and docs/phases-e2e.json, and
the counts its prose gives (targets met, phases within 1.15x of their floor) are recomputed
from the same files."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "kernels.md").read_text(encoding="utf-8")
FLAT = " ".join(TEXT.split())


sys.path.insert(0, str(ROOT / "benchmarks"))
import phases as PH  # noqa: E402  (benchmarks/phases.py: the Markdown the page shows)

PHASES = json.loads((ROOT / "docs" / "phases.json").read_text(encoding="utf-8"))
E2E = json.loads((ROOT / "docs" / "phases-e2e.json").read_text(encoding="utf-8"))


def said(pattern):
    m = re.search(pattern, FLAT)
    assert m, f"docs/kernels.md no longer says anything matching {pattern!r}"
    return m.groups()


def test_the_tables_are_the_jsons():
    lines = TEXT.splitlines()
    for report in (PHASES, E2E):
        for line in PH.markdown(report):
            assert not line or line in lines, f"docs/kernels.md lacks {line!r}"


def test_the_counts_are_the_jsons():
    rows = [r for p in PHASES["problems"] for r in p["rows"] if r["phase"] in PH.PHASES]
    within = sum(r["ratio"] <= PH.PHASE_TARGET for r in rows)
    assert said(r"(\d+) of the (\d+) phases are within 1\.15× of their floor") == (
        str(within), str(len(rows)))
    judged = [p for p in E2E["problems"] if (p["cell"], p["dtype"]) in PH.TARGETS]
    met = sum(p["ratio"]["median"] >= PH.TARGETS[p["cell"], p["dtype"]] for p in judged)
    assert said(r"(\d+) of the (\d+) end-to-end targets are met") == (str(met), str(len(judged)))


def test_the_commands_are_the_jsons():
    for report in (PHASES, E2E):
        assert f"`{report['command']}`" in TEXT or report["command"] in TEXT


def test_every_ratio_the_prose_gives_is_in_a_table():
    cells = {c.strip() for report in (PHASES, E2E) for line in PH.markdown(report)
             for c in re.split(r"[|\[\]–]", line)}
    targets = {str(t) for t in PH.TARGETS.values()} | {str(PH.PHASE_TARGET)}
    prose = " ".join(l for l in TEXT.splitlines() if not l.startswith("|"))
    for a, b in re.findall(r"(\d+\.\d+)(?:–(\d+\.\d+))?×", prose):
        for v in filter(None, (a, b)):
            assert v in cells or v in targets, f"docs/kernels.md says {v}× and no table has it"
