"""`minirnn bench`'s default output: a summary read in ten seconds, a table within 120 columns,
flagged rows shown as "!" and kept out of every summary, ratio and plot (a ratio whose rounds
disagree, too), and a run that could judge too few rows says so and exits 1.

The results are bench JSONs from docs/ (real runs), changed here where a test needs a flag; the
expected counts are recomputed from the rows, not taken from the code under test.
"""
from __future__ import annotations

import copy
import json
import re
import statistics
import pytest

from minirnn.bench import format_report, format_table, judged, save_plot, summarise, too_few
from tests.helpers import ROOT

FLAGS = ("order", "load", "peak")           # row flags: the whole row is out
SPREAD = 0.5                                # (max - min) / median of one ratio's rounds


def _wide(d):
    """Do one ratio's rounds disagree (counted here, not by the code under test)?"""
    return len(d.get("per_round", ())) > 1 and (d["max"] - d["min"]) / d["median"] > SPREAD


def _doc(name):
    return json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))


def _clean(doc):
    """Every row unflagged and valid, every ratio's rounds in agreement: what a quiet, steady
    run gives."""
    doc = copy.deepcopy(doc)
    for r in doc["rows"]:
        r["flags"], r["valid"], r["split_valid"] = [], True, True
        for passes in (r.get("ratio") or {}).values():
            for d in passes.values():
                if d and d.get("median"):
                    d.update(min=d["median"], max=d["median"])
    return doc


def _flag(doc, pred, code="load"):
    doc = copy.deepcopy(doc)
    for r in doc["rows"]:
        if pred(r):
            r["flags"] = r["flags"] + [dict(code=code, message=code)]
    return doc


def _expected_lines(doc, ref):
    """'<regime> numba vs <ref>: faster in N of M rows' per regime, counted here."""
    rows = doc["rows"]
    bad = lambda r: any(f["code"] in FLAGS for f in r["flags"]) or not r["valid"]  # noqa: E731
    out = {}
    for reg in dict.fromkeys(r["regime"] for r in rows):
        vals = []
        for r in rows:
            if r["engine"] != "numba" or r["regime"] != reg:
                continue
            other = next(q for q in rows if q["id"] == r["id"] and q["engine"] == ref)
            if not bad(r) and not bad(other) and not _wide(r["ratio"][ref]["fwd_bwd"]):
                vals.append(r["ratio"][ref]["fwd_bwd"]["median"])
        out[reg] = vals
    return out


@pytest.mark.parametrize("name, refs", [("bench-quick.json", ["torch@2"]),
                                        ("bench-quick-jax.json", ["torch@2", "jax@2"])])
def test_the_summary_comes_first_and_counts_what_it_judged(name, refs):
    doc = _doc(name)
    text = format_report(doc)
    lines = text.splitlines()
    assert lines[0].startswith("minirnn bench --quick:")
    first_summary = next(i for i, ln in enumerate(lines) if ln.startswith("summary"))
    table = next(i for i, ln in enumerate(lines) if ln.startswith("regime "))
    assert first_summary < table and first_summary <= 2
    flat = " ".join(text.split())
    for ref in refs:
        for reg, vals in _expected_lines(doc, ref).items():
            if vals:
                faster = sum(v > 1 for v in vals)
                want = (f"{reg} numba vs {ref}: faster in {faster} of {len(vals)} rows, median "
                        f"{statistics.median(vals):.2f}x, range {min(vals):.2f}-{max(vals):.2f}x")
            else:
                want = f"{reg} numba vs {ref}: no row judged"
            assert want in flat, want
    if len(refs) == 1:
        assert "vs jax" not in text


@pytest.mark.parametrize("name", ["bench-quick.json", "bench-quick-jax.json",
                                  "bench-batched-jax.json", "bench-targets-jax.json"])
def test_the_default_output_fits_120_columns_and_wide_has_the_detail(name):
    doc = _doc(name)
    narrow = format_report(doc)
    assert max(len(ln) for ln in narrow.splitlines()) <= 120
    assert "split time (" not in narrow and "act MB" not in narrow
    wide = format_report(doc, wide=True)
    assert "split time (" in wide and "act MB" in wide and "machine:" in wide
    assert wide.splitlines()[0] == narrow.splitlines()[0]          # the summary first, too


def test_a_flagged_row_shows_bang_and_stays_out_of_everything(tmp_path, monkeypatch):
    doc = _clean(_doc("bench-quick.json"))
    row = next(r for r in doc["rows"] if r["engine"] == "numba" and r["regime"] == "medium"
               and r["cell"] == "lstm")
    row["ratio"]["torch@2"]["fwd_bwd"].update(median=700.32, min=699.0, max=701.0)
    clean_text = format_report(doc)
    assert "700.32" in clean_text                          # unflagged: it is a result
    for code in FLAGS + ("spread",):
        bad = copy.deepcopy(doc)
        r = next(q for q in bad["rows"] if q["id"] == row["id"] and q["engine"] == "numba")
        r["flags"] = [dict(code=code, message=code)]
        if code == "spread":                 # the ratio's own rounds disagree
            r["ratio"]["torch@2"]["fwd_bwd"].update(min=100.0, max=1400.0,
                                                    per_round=[100.0, 700.32, 1400.0])
        for text in (format_report(bad), format_table(bad)):
            assert "700.32" not in text, code
        line = next(ln for ln in format_report(bad).splitlines()
                    if ln.startswith("medium") and " lstm " in ln and " numba " in ln)
        assert "!" in line and code in line
        s = next(x for x in summarise(bad) if x["regime"] == "medium" and x["engine"] == "numba")
        assert s["max"] < 700 and s["judged"] == s["rows"] - 1 and code in s["not_judged"]
        heights = _plotted_heights(bad, tmp_path, monkeypatch)
        assert heights and 700.32 not in [round(h, 2) for h in heights]


def test_a_ratio_to_a_flagged_reference_row_is_not_judged():
    doc = _clean(_doc("bench-quick.json"))
    target = next(r for r in doc["rows"] if r["engine"] == "torch@2" and r["regime"] == "medium")
    bad = _flag(doc, lambda r: r is not None and r["id"] == target["id"]
                and r["engine"] == "torch@2", "load")
    s = {(x["regime"], x["engine"]): x for x in summarise(bad)}
    assert s["medium", "numba"]["judged"] == s["medium", "numba"]["rows"] - 1


def test_a_run_with_every_row_flagged_reports_no_result():
    doc = _flag(_doc("bench-quick-jax.json"), lambda r: True)
    text = format_report(doc)
    assert "faster in" not in text
    assert "no row judged" in text
    done = sum(x["judged"] for x in summarise(doc))
    total = sum(x["rows"] for x in summarise(doc))
    assert done == 0 and total > 0
    assert f"too few rows judged: 0 of {total} ratios" in " ".join(text.split())
    assert too_few(doc)
    assert too_few(_clean(doc)) is None


def test_too_few_is_half_of_the_ratios():
    doc = _clean(_doc("bench-quick.json"))
    numba = [r for r in doc["rows"] if r["engine"] == "numba"]
    for k in (len(numba) // 2 - 1, len(numba) // 2 + 1):
        ids = {r["id"] for r in numba[:k]}
        d = _flag(doc, lambda r: r["id"] in ids and r["engine"].startswith("numba"))
        assert bool(too_few(d)) == (k > len(numba) / 2), k


def _plotted_heights(doc, tmp_path, monkeypatch, texts=None):
    pytest.importorskip("matplotlib")
    from minirnn.bench import report
    seen = {}

    def keep(fig, path, **kw):
        seen["heights"] = [p.get_height() for ax in fig.axes for p in ax.patches]
        seen["texts"] = [t.get_text() for t in fig.texts]
    monkeypatch.setattr(report, "savefig", keep)
    save_plot(doc, tmp_path / "p.png")
    if texts is not None:
        texts.extend(seen["texts"])
    return seen["heights"]


def test_the_plot_carries_the_load_warning_when_rows_were_flagged(tmp_path, monkeypatch):
    doc = _clean(_doc("bench-quick.json"))
    texts = []
    _plotted_heights(doc, tmp_path, monkeypatch, texts)
    assert not any("WARNING" in t for t in texts)
    doc["meta"]["load"]["during"].update(mean=0.9, max=1.2)
    bad = _flag(doc, lambda r: r["regime"] == "small")
    texts = []
    _plotted_heights(bad, tmp_path, monkeypatch, texts)
    warn = [t for t in texts if "WARNING" in t]
    ref = bad["meta"]["ratio_references"][0]              # the plot's bars: every other engine
    shown = [r for r in bad["rows"] if r["engine"] != ref]
    n = sum(r["regime"] == "small" for r in shown)
    assert warn and f"{n} of {len(shown)} rows flagged" in warn[0] and "load" in warn[0]
    assert "mean 0.90" in warn[0]
    everything = _flag(doc, lambda r: True)                  # the empty picture says it too
    texts = []
    _plotted_heights(everything, tmp_path, monkeypatch, texts)
    assert any("WARNING" in t for t in texts)


def test_the_cli_exits_1_when_too_few_rows_were_judged(tmp_path, capsys, monkeypatch):
    import minirnn.bench as B
    from minirnn.cli import main
    flagged = _flag(_doc("bench-quick.json"), lambda r: True)
    monkeypatch.setattr(B, "run_benchmark", lambda **kw: flagged)
    js = tmp_path / "b.json"
    assert main(["bench", "--quick", "--no-progress", "--json", str(js)]) == 1
    out, err = capsys.readouterr()
    assert "too few rows judged" in err and "faster in" not in out
    assert json.loads(js.read_text())["rows"]                    # the run is kept, flagged
    monkeypatch.setattr(B, "run_benchmark", lambda **kw: _clean(flagged))
    assert main(["bench", "--quick", "--no-progress", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "faster in" in out and "machine:" in out and re.search(r"split time", out)


def test_judged_follows_the_flags():
    row = dict(valid=True, flags=[])
    assert judged(row)
    for code in FLAGS:
        assert not judged(dict(row, flags=[dict(code=code, message="")]))
    assert judged(dict(row, flags=[dict(code="split", message="")]))      # its split only
    assert judged(dict(row, flags=[dict(code="spread", message="")]))     # one ratio only
    assert not judged(dict(row, valid=False))
