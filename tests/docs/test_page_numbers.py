"""The numbers the pages quote for the benchmarks (docs/benchmark-results.md), the module
overhead (the same page) and the explore pages (docs/debugger.md) agree with the files the runs
wrote.

  * docs/bench-quick.json, docs/bench-batched.json, docs/bench-targets.json: `minirnn bench
    --json` output; docs/bench-tutorial-rnn.json: benchmarks/tutorial_rnn.py's;
  * docs/readme-numbers.json: what the rest printed or measured (module_overhead.py's output,
    explore page sizes, the busy reruns of the targets command), each with its command.

Every table row is recomputed from its JSON with the formatting the page uses; the prose
numbers (ranges, counts) are recomputed from the same files. A number a page changes without
its file, or a file refreshed without the page, fails here, naming both values.
"""
from __future__ import annotations

import json
import re

import pytest

from minirnn.bench.rows import spreads
from minirnn.bench.summary import ROW_FLAGS
from tests.helpers import ROOT, load_script

PAGE = "docs/benchmark-results.md"
TEXT = (ROOT / PAGE).read_text(encoding="utf-8")
FLAT = " ".join(TEXT.split())                     # prose with line breaks as single spaces
DEBUGGER = " ".join((ROOT / "docs" / "debugger.md").read_text(encoding="utf-8").split())
DTYPE = {"f32": "float32", "f64": "float64"}


def _load(name):
    return json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))


def _targets_module():
    """benchmarks/targets.py: the targets and the floor measure the page's table uses."""
    return load_script("benchmarks/targets.py", "bench_targets")


TARGETS = _targets_module()


def said(pattern, flat=FLAT, page=PAGE):
    """The groups of the page's one phrase matching `pattern` (whitespace-insensitive)."""
    m = re.search(pattern, flat)
    assert m, f"{page} no longer says anything matching {pattern!r}: update it or this test"
    return m.groups()


def tables():
    """The page's tables: (line index of the header, header cells, body rows as cell lists)."""
    lines, out, k = TEXT.splitlines(), [], 0
    while k < len(lines):
        if lines[k].startswith("|") and k + 1 < len(lines) and lines[k + 1].startswith("|---"):
            cells = lambda s: [c.strip() for c in s.strip().strip("|").split("|")]  # noqa: E731
            body, j = [], k + 2
            while j < len(lines) and lines[j].startswith("|"):
                body.append(cells(lines[j]))
                j += 1
            out.append((k, cells(lines[k]), body))
            k = j
        k += 1
    return out


def source_of(line_index):
    """The docs/bench-*.json the page names last before a line: the file a table comes from."""
    before = "\n".join(TEXT.splitlines()[:line_index])
    names = re.findall(r"docs/(bench-[\w-]+\.json)", before)
    assert names, f"no docs/bench-*.json named before {PAGE} line {line_index + 1}"
    return names[-1]


def ms(seconds):
    return f"{seconds * 1e3:.3g}"


def ratio(r, digits=2):
    return f"{r['median']:.{digits}f} [{r['min']:.{digits}f}–{r['max']:.{digits}f}]"


def row_of(rows, engine, regime, cell, dtype, T, B, I, H):
    hits = [r for r in rows if (r["engine"], r["regime"], r["cell"], r["dtype"], r["T"], r["B"],
                                r["I"], r["H"]) == (engine, regime, cell, dtype, T, B, I, H)]
    assert len(hits) == 1, (engine, regime, cell, dtype, T, B, I, H, len(hits))
    return hits[0]


# ---- the speed tables ----------------------------------------------------------------------------
BENCH_TABLES = [t for t in tables() if t[1][:4] == ["regime", "cell", "dtype", "T×B×I×H"]]


def test_readme_has_the_bench_tables():
    assert len(BENCH_TABLES) >= 2
    assert {source_of(k) for k, _, _ in BENCH_TABLES} >= {"bench-quick.json", "bench-batched.json"}


@pytest.mark.parametrize("k, header, body", BENCH_TABLES,
                         ids=[f"line{k + 1}" for k, _, _ in BENCH_TABLES])
def test_bench_table_rows_are_their_json(k, header, body):
    rows = _load(source_of(k))["rows"]
    assert header[4:] == ["numba ms", "torch@1 ms", "torch@2 ms", "numba × torch@1",
                          "numba × torch@2", "native BLAS × torch@2", "numba % peak"]
    for cells in body:
        regime, cell, dt, shape = cells[:4]
        key = (regime, cell, DTYPE[dt], *map(int, shape.split("×")))
        n = row_of(rows, "numba", *key)
        spread = any(f["code"] == "spread" for f in n["flags"])
        want = [ms(n["seconds"]["fwd_bwd"]),
                ms(row_of(rows, "torch@1", *key)["seconds"]["fwd_bwd"]),
                ms(row_of(rows, "torch@2", *key)["seconds"]["fwd_bwd"]),
                ratio(n["ratio"]["torch@1"]["fwd_bwd"]), ratio(n["ratio"]["torch@2"]["fwd_bwd"]),
                ratio(row_of(rows, "numba:native", *key)["ratio"]["torch@2"]["fwd_bwd"]),
                f"{100 * n['peak_fraction']['fwd_bwd']:.0f}%" + (" (spread)" if spread else "")]
        assert cells[4:] == want, f"{PAGE} row {cells[:4]} vs {source_of(k)}"


def test_wall_times_and_loads_are_their_json():
    for name, wall in (("bench-quick.json", r"\((\d+) s wall; JSON and plot"),
                       ("bench-batched.json",
                        r"\((\d+) s wall; foreign load mean ([\d.]+), max ([\d.]+) cores")):
        meta = _load(name)["meta"]
        got = said(wall)
        assert int(got[0]) == round(meta["wall_s"]), (name, got, meta["wall_s"])
        if len(got) > 1:
            load = meta["load"]["during"]
            assert (got[1], got[2]) == (f"{load['mean']:.2f}", f"{load['max']:.2f}"), name


# ---- the batch-1 targets -----------------------------------------------------------------------
TARGET_TABLE = next(t for t in tables()
                    if t[1][:3] == ["cell", "dtype", "H=32 × torch@1 (target)"])


def _target_rows(doc, engine):
    return {(r["cell"], r["dtype"], r["H"]): r for r in TARGETS.rows_of(doc, engine)}


def test_targets_table_is_its_json():
    k, header, body = TARGET_TABLE
    assert source_of(k) == "bench-targets.json"
    rows = _target_rows(_load("bench-targets.json"), "numba")
    sizes = [int(re.match(r"H=(\d+)", h).group(1)) for h in header[2:6]]
    for cells in body:
        cell, dtype = cells[0], DTYPE[cells[1]]
        want = []
        for H in sizes:
            d = rows[cell, dtype, H]["ratio"]["torch@1"]["fwd_bwd"]
            want.append(f"{ratio(d, 1)}{' !' if spreads(d) else ''} (≥{TARGETS.SPEED[dtype][H]:g})")
        want.append(" / ".join(f"{TARGETS._loops_floor(rows[cell, dtype, H]):.2f}"
                               for H in (64, 128, 256)))
        assert cells[2:] == want, f"{PAGE} row {cells[:2]} vs bench-targets.json"


def _speed_misses(rows):
    return [r for r in rows if r["ratio"] < TARGETS.SPEED[r["dtype"]][r["H"]]]


def _all_runs():
    """[(name, {engine: [{cell, dtype, H, ratio, loops, flags}]})]: the table's run, then the
    busy reruns of docs/readme-numbers.json."""
    doc = _load("bench-targets.json")
    runs = [("bench-targets.json", {
        e: [{"cell": r["cell"], "dtype": r["dtype"], "H": r["H"],
             "ratio": r["ratio"]["torch@1"]["fwd_bwd"]["median"],
             "loops": TARGETS._loops_floor(r), "flags": [f["code"] for f in r["flags"]]}
            for r in TARGETS.rows_of(doc, e)] for e in ("numba", "numba:native")})]
    for k, run in enumerate(_load("readme-numbers.json")["targets_reruns"]["runs"]):
        runs.append((f"rerun {k + 1}", {
            e: [{"cell": r["cell"], "dtype": r["dtype"], "H": r["H"],
                 "ratio": r["x_torch1"]["median"], "loops": r["loops_x_floor"],
                 "flags": r["flags"]} for r in run["rows"] if r["engine"] == e]
            for e in ("numba", "numba:native")}))
    return runs


def test_targets_prose_is_the_files():
    runs = _all_runs()
    table_run, reruns = runs[0][1], [r for _, r in runs[1:]]
    doc = _load("bench-targets.json")
    got = said(r"In this run \(the table; an AMD EPYC host with a foreign load of ([\d.]+) cores\) "
               r"the rounds agreed on (\d+) of the (\d+) ratios to torch@1 \((\d+) of (\d+) with "
               r"native BLAS\)")
    judged = {e: TARGETS.judge(doc, e) for e in ("numba", "numba:native")}
    assert [int(g) for g in got[1:]] == [judged["numba"].rows_judged, judged["numba"].rows,
                                         judged["numba:native"].rows_judged,
                                         judged["numba:native"].rows]
    said(r"Every judged speed target was met, in both BLAS modes")
    for j in judged.values():           # every line that judged a speed target says "met"
        assert not [line for line in j.lines if "speed MISSED" in line]
        assert sum("speed met" in line for line in j.lines) == j.rows_judged
    unjudged_misses = _speed_misses(table_run["numba"]) + _speed_misses(table_run["numba:native"])
    (m,) = unjudged_misses                               # the one the page names, not judged
    got = said(r"one is below its target \(native BLAS, LSTM float32, H=(\d+): ([\d.]+) against "
               r"(\d+), its rounds between ([\d.]+) and ([\d.]+)\)")
    row = _target_rows(doc, "numba:native")[m["cell"], m["dtype"], m["H"]]
    d = row["ratio"]["torch@1"]["fwd_bwd"]
    assert (m["cell"], m["dtype"]) == ("lstm", "float32") and spreads(d)
    assert got == (str(m["H"]), f"{d['median']:.2f}", f"{TARGETS.SPEED['float32'][m['H']]:g}",
                   f"{d['min']:.2f}", f"{d['max']:.2f}")
    load = doc["meta"]["load"]["during"]["mean"]
    assert said(r"foreign load of ([\d.]+) cores")[0] == f"{load:.2f}"

    n = len(table_run["numba"])
    got = said(r"other jobs using ([\d.]+) and ([\d.]+) cores on average")
    assert list(got) == [f"{r['load']['mean']:.2f}"
                         for r in _load("readme-numbers.json")["targets_reruns"]["runs"]]
    got = said(r"missed (\d+) and (\d+) of the (\d+) speed targets "
               r"\((\d+) and (\d+) with native BLAS\)")
    want = [len(_speed_misses(r["numba"])) for r in reruns] + [n] + \
        [len(_speed_misses(r["numba:native"])) for r in reruns]
    assert [int(g) for g in got] == want
    misses = [m for r in reruns for e in r.values() for m in _speed_misses(e)]
    assert int(said(r"all of them at H ≥ (\d+)")[0]) == min(m["H"] for m in misses)
    assert "most of them LSTM rows" in FLAT and \
        2 * sum(m["cell"] == "lstm" for m in misses) > len(misses)
    said(r"every target at H ≤ 64 held in both reruns")
    assert len(runs) == 3
    for _, run in runs[1:]:
        assert not [m for e in run.values() for m in _speed_misses(e) if m["H"] <= 64]


def test_floor_prose_is_the_files():
    runs = _all_runs()
    doc = _load("bench-targets.json")
    ok = {(r["cell"], r["dtype"], r["H"]) for r in TARGETS.rows_of(doc, "numba")
          if not spreads(r["ratio"]["torch@1"]["fwd_bwd"])
          and not any(f["code"] in ROW_FLAGS for f in r["flags"])}
    big = [r for r in runs[0][1]["numba"] if r["H"] >= TARGETS.FLOOR_FROM
           and (r["cell"], r["dtype"], r["H"]) in ok]
    over = [r for r in big if r["loops"] > TARGETS.FLOOR]
    got = said(r"within 1\.3× of it for (\d+) of the (\d+) judged rows with H ≥ 64; the other "
               r"(\d+) were at ([\d.]+)–([\d.]+)×")
    assert list(got) == [str(len(big) - len(over)), str(len(big)), str(len(over)),
                         f"{min(r['loops'] for r in over):.2f}",
                         f"{max(r['loops'] for r in over):.2f}"]
    got = said(r"in the busy reruns, (\d+) and (\d+) of (\d+) missed it")
    want = [sum(1 for r in run["numba"] if r["H"] >= TARGETS.FLOOR_FROM
                and r["loops"] is not None and r["loops"] > TARGETS.FLOOR) for _, run in runs[1:]]
    assert [int(g) for g in got] == want + [sum(r["H"] >= TARGETS.FLOOR_FROM
                                                for r in runs[1][1]["numba"])]


# ---- the batched prose (derived from the two speed tables' files) --------------------------------
def _rows(engine, pred):
    return [r for name in ("bench-quick.json", "bench-batched.json")
            for r in _load(name)["rows"] if r["engine"] == engine and pred(r)]


def _span(values, fmt="{:.2f}"):
    return fmt.format(min(values)), fmt.format(max(values))


def test_batched_prose_is_the_files():
    def lstm32(r):
        return r["cell"] == "lstm" and r["dtype"] == "float32" and r["B"] >= 32

    got = said(r"the same 2 threads: ([\d.]+)–([\d.]+)× "
               r"\(([\d.]+)–([\d.]+)× with native BLAS\)")
    want = _span([r["ratio"]["torch@2"]["fwd_bwd"]["median"] for r in _rows("numba", lstm32)]) + \
        _span([r["ratio"]["torch@2"]["fwd_bwd"]["median"] for r in _rows("numba:native", lstm32)])
    assert got == want

    medium = lambda r: lstm32(r) and r["regime"] == "medium"  # noqa: E731
    got = said(r"torch takes (\d+)–(\d+) ms")
    assert got == _span([1e3 * r["seconds"]["fwd_bwd"] for r in _rows("torch@2", medium)], "{:.0f}")
    got = said(r"its phase reaches (\d+)–(\d+)% of peak there")
    assert got == _span([100 * r["peak_fraction"]["rec"] for r in _rows("numba:native", medium)],
                        "{:.0f}")
    engines = {e["name"]: e["gemm_peak_gflops"]
               for e in _load("bench-quick.json")["meta"]["engines"]}
    got = said(r"NumPy's OpenBLAS peaks at (\d+) GFLOP/s against torch's MKL at (\d+)")
    assert got == (f"{engines['numba']['float32']:.0f}", f"{engines['torch@2']['float32']:.0f}")
    flops = 3 * 2 * 100 * 32 * 4 * 256 * (128 + 256)            # fwd+bwd = 3 fwd, the page's rule
    at_peak_ms = 1e3 * flops / (engines["numba"]["float32"] * 1e9)
    assert said(r"LSTM would take (\d+) ms")[0] == f"{at_peak_ms:.0f}"

    batched = _load("bench-batched.json")["rows"]
    f64 = [r for r in batched if r["engine"] == "numba" and r["dtype"] == "float64"]
    got = said(r"Elman ([\d.]+)–([\d.]+), LSTM ([\d.]+)–([\d.]+), GRU ([\d.]+)–([\d.]+): "
               r"met for (\d+) of (\d+) rows")
    x2 = lambda r: r["ratio"]["torch@2"]["fwd_bwd"]["median"]  # noqa: E731
    want = ()
    for family in (("rnn_tanh", "rnn_relu"), ("lstm",), ("gru",)):
        want += _span([x2(r) for r in f64 if r["cell"] in family])
    want += (str(sum(x2(r) >= 1.5 for r in f64)), str(len(f64)))
    assert got == want
    got = said(r"float32 ≥ ([\d.]+)×, float64 ≥ ([\d.]+)×\)")
    x1 = {dt: min(r["ratio"]["torch@1"]["fwd_bwd"]["median"] for r in batched
                  if r["engine"] == "numba" and r["dtype"] == dt) for dt in ("float32", "float64")}
    assert got == (f"{x1['float32']:.2f}", f"{x1['float64']:.2f}")

    def peak(engine, dtype):
        return [100 * r["peak_fraction"]["fwd_bwd"] for r in batched
                if r["engine"] == engine and r["regime"] == "large"
                and dtype in (None, r["dtype"])]

    quick = {r["regime"]: r for r in _load("bench-quick.json")["rows"]
             if r["engine"] == "numba" and r["cell"] == "lstm" and r["dtype"] == "float32"}
    got = said(r"float32 (\d+)–(\d+)% \(fastrnns (\d+)%, DeepBench B=32 (\d+)%\), "
               r"float64 (\d+)–(\d+)%; with native BLAS (\d+)–(\d+)% of its own peak, which is "
               r"([\d.]+)× higher in float32 and ([\d.]+)× in float64")
    meta = {e["name"]: e["gemm_peak_gflops"]
            for e in _load("bench-batched.json")["meta"]["engines"]}
    want = _span(peak("numba", "float32"), "{:.0f}") + tuple(
        f"{100 * quick[g]['peak_fraction']['fwd_bwd']:.0f}" for g in ("fastrnns", "deepbench")) + \
        _span(peak("numba", "float64"), "{:.0f}") + _span(peak("numba:native", None), "{:.0f}") + \
        tuple(f"{meta['numba:native'][dt] / meta['numba'][dt]:.1f}"
              for dt in ("float32", "float64"))
    assert got == want


def test_tutorial_rnn_numbers_are_their_json():
    doc = _load("bench-tutorial-rnn.json")
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    us = {k: f"{1e6 * med(v) / doc['steps']:.0f}" for k, v in doc["seconds"].items()}
    got = said(r"--steps (\d+) --rounds (\d+)`\): minirnn (\d+) µs a name; torch (\d+) µs as "
               r"the tutorial writes it \(float32, output layer at every step\): "
               r"([\d.]+)× \[([\d.]+)–([\d.]+)\]; (\d+) µs with the output at the last step "
               r"only \(([\d.]+)×\); (\d+) µs in float64, minirnn's dtype "
               r"\(([\d.]+)× \[([\d.]+)–([\d.]+)\]\)")
    r = doc["ratio"]
    want = (str(doc["steps"]), str(doc["rounds"]), us["minirnn"], us["torch"],
            f"{med(r['torch']):.2f}", f"{min(r['torch']):.2f}", f"{max(r['torch']):.2f}",
            us["torch-last"], f"{med(r['torch-last']):.2f}", us["torch-f64"],
            f"{med(r['torch-f64']):.2f}", f"{min(r['torch-f64']):.2f}",
            f"{max(r['torch-f64']):.2f}")
    assert got == want


# ---- module overhead and explore pages (docs/readme-numbers.json) -------------------------------
def _overhead_rows():
    """module_overhead.py's printed tables, all runs -> [(cell, H, overhead us, accum us)]."""
    rows = []
    for run in _load("readme-numbers.json")["module_overhead"]["runs"]:
        for line in run["output"]:
            m = re.fullmatch(r"(\w+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", line.strip())
            if m:
                rows.append((m[1], int(m[2]), float(m[3]), float(m[4])))
    return rows


def test_module_overhead_is_its_output():
    doc = _load("readme-numbers.json")["module_overhead"]
    rows = _overhead_rows()
    assert len(doc["runs"]) >= 3 and len(rows) == 6 * len(doc["runs"])
    assert doc["command"] in FLAT.replace("`", "")
    got = said(r"(\w+) runs on [\d-]+ on a quiet moment .*?\): (\d+)–(\d+) µs per "
               r"forward\+backward in float32 \(LSTM, GRU, Elman; (\d+)–(\d+) µs at H=32, "
               r"(\d+)–(\d+) µs at H=128, the LSTM the most\), of which ([\d.]+)–([\d.]+) µs is "
               r"the gradient accumulation")
    words = {"three": 3, "four": 4, "five": 5}
    over = lambda h=None: [o for _, H, o, _ in rows if h is None or H == h]  # noqa: E731
    want = (got[0],) + _span(over(), "{:.0f}") + _span(over(32), "{:.0f}") + \
        _span(over(128), "{:.0f}") + _span([a for *_, a in rows], "{:.1f}")
    assert got == want and words[got[0]] == len(doc["runs"])
    worst = max(rows, key=lambda r: r[2])
    assert worst[0] == "lstm"


def test_explore_page_sizes_are_the_measured_ones():
    pages = {p["what"]: p["bytes"] for p in _load("readme-numbers.json")["explore_pages"]["pages"]}
    got = said(r"the names page for \"Nguyen\" is (\d+) KB .*?, the char example ([\d.]+) MB, "
               r"a 2-layer LSTM\(128\) over 300 characters ([\d.]+) MB",
               DEBUGGER, "docs/debugger.md")
    assert got == (f"{pages['names'] / 1e3:.0f}", f"{pages['char example'] / 1e6:.1f}",
                   f"{pages['2-layer LSTM(128) over 300 characters'] / 1e6:.2f}")
