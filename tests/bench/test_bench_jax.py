"""The jax peer of `minirnn bench`: a plain JAX layer (jit over lax.scan) on the benchmark's
problems, checked against minirnn's NumPy reference before it is timed, in its own worker.

Skips where jax is not installed (it is the optional extra `jax`), except the test that the
benchmark skips the engine with a message then, which fakes a missing jax.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.bench import Timing, format_table, make_problem, run_benchmark
from minirnn.functional.backends import get_backend
from minirnn.cells import BUILTIN, get_cell

TINY = {"small": [(3, 2, 3, 4)]}


def _reference(p):
    spec = get_cell(p["cell"])
    be = get_backend("numpy")
    out, _, cache = be.forward(spec, p["x"], p["state"], p["params"])
    dx, _, grads, _ = be.backward(spec, cache, p["d_out"], (None,) * len(spec.state_names))
    return out, dx, grads


@settings(max_examples=4, deadline=None)
@given(cell=st.sampled_from(BUILTIN), T=st.integers(1, 5), B=st.integers(1, 3),
       I=st.integers(1, 4), H=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_jax_layer_is_minirnn_reference_float64(cell, T, B, I, H, seed):
    pytest.importorskip("jax")
    from minirnn.bench.jax_engine import jax_engine
    p = make_problem(cell, T, B, I, H, "float64", seed=seed)
    e = jax_engine(p)
    out, dx, grads = _reference(p)
    np.testing.assert_allclose(e.output(), out, rtol=1e-11, atol=1e-13)
    gp, gx = e.grads()
    np.testing.assert_allclose(gx, dx, rtol=1e-11, atol=1e-13)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_allclose(gp[name], grads[name], rtol=1e-11, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("cell", BUILTIN)
def test_check_passes_float32_and_names_a_wrong_peer(cell):
    pytest.importorskip("jax")
    from minirnn.bench.jax_engine import CHECK_RTOL, jax_engine
    p = make_problem(cell, 4, 2, 3, 5, "float32", seed=3)
    e = jax_engine(p, "cpu")
    errs = e.check()
    assert set(errs) >= {"out", "dx", "weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    assert all(0 <= v <= CHECK_RTOL["float32"] for v in errs.values())
    assert e.check(rtol=1e-3).keys() == errs.keys()
    e.params["weight_hh"] = e.params["weight_hh"] * 1.01        # a peer computing something else
    with pytest.raises(AssertionError, match="jax float32"):
        e.check()


def test_gemm_peak_is_positive():
    pytest.importorskip("jax")
    from minirnn.bench.jax_engine import jax_gemm_peak
    t = Timing(1, 0.0, 1)
    assert jax_gemm_peak("float64", 32, t) > 0
    assert jax_gemm_peak("float32", 32, t, device="cpu") > 0


def test_jax_worker_in_the_benchmark():
    pytest.importorskip("jax")
    res = run_benchmark(cells=["lstm", "gru"], backends=["numba", "jax"], dtypes=["float64"],
                        shapes=TINY, timing=Timing(1, 0.0, 1), rounds=1, threads=1, peak_n=32,
                        peak_timing=Timing(1, 0.0, 1), show_progress=False, load_check=False)
    eng = {e["name"]: e for e in res["meta"]["engines"]}
    assert set(eng) == {"numba", "jax@1"}
    assert eng["jax@1"]["jax"] == res["meta"]["versions"]["jax"]
    assert eng["jax@1"]["jax_device"].startswith("cpu") and eng["jax@1"]["jax_x64"]
    assert "intra_op_parallelism_threads=1" in eng["jax@1"]["xla_flags"]
    assert res["meta"]["ratio_references"] == ["jax@1"]
    rows = {(r["cell"], r["engine"]): r for r in res["rows"]}
    for cell in ("lstm", "gru"):
        j, n = rows[cell, "jax@1"], rows[cell, "numba"]
        assert max(j["check_rel_err"].values()) < 1e-10
        assert n["ratio"]["jax@1"]["fwd_bwd"]["median"] == pytest.approx(
            j["seconds"]["fwd_bwd"] / n["seconds"]["fwd_bwd"])
        assert n["rel_err"] < 1e-12                  # numba's output against jax's
    text = format_table(res)
    assert "x jax@1 f+b" in text and "jax 0." in text


def test_missing_jax_is_skipped_with_a_message(tmp_path, monkeypatch):
    fake = tmp_path / "jax"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'jax\'")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    res = run_benchmark(cells=["rnn_tanh"], backends=["numpy", "jax"], dtypes=["float64"],
                        shapes=TINY, timing=Timing(1, 0.0, 1), rounds=1, threads=1, peak_n=32,
                        peak_timing=Timing(1, 0.0, 1), show_progress=False, load_check=False)
    assert {r["engine"] for r in res["rows"]} == {"numpy"}
    assert any("jax is not installed" in n for n in res["meta"]["notes"])


# ---- the benchmark page's jax tables are their JSON files ---------------------------------------
BATCHED_HEAD = ["regime", "cell", "dtype", "shape", "numba ms", "torch@2 ms", "jax@2 ms",
                "numba × torch@2", "numba × jax@2", "numba:native × torch@2", "rec % FMA peak",
                "flags"]
TARGETS_HEAD = ["cell", "dtype", "H", "numba ms", "jax@2 ms", "numba × torch@1",
                "numba × jax@2", "loops × floor", "flags"]
SPLIT_HEAD = ["regime", "cell", "dtype", "shape", "proj ms", "rec fwd ms", "bwd-data ms",
              "bwd-wts ms", "time loops' share"]
SHORT = {"float32": "f32", "float64": "f64"}


def _ms(s):
    return f"{s * 1e3:.3g}"


def _ratio(row, ref):
    r = (row.get("ratio") or {}).get(ref, {}).get("fwd_bwd")
    return "–" if r is None else f"{r['median']:.2f} [{r['min']:.2f}–{r['max']:.2f}]"


def _row(doc, engine, like):
    hits = [r for r in doc["rows"] if r["engine"] == engine and r["id"] == like["id"]]
    assert len(hits) == 1, (engine, like["id"])
    return hits[0]


def _flags(row):
    return ",".join(f["code"] for f in row["flags"]) or "–"


def batched_row_cells(doc, r):
    """The page's cells for one numba row of a batched run with jax (BATCHED_HEAD's order)."""
    fma = r.get("rec_fma_fraction")
    return [r["regime"], r["cell"], SHORT[r["dtype"]], f"{r['T']}×{r['B']}×{r['I']}×{r['H']}",
            _ms(r["seconds"]["fwd_bwd"]), _ms(_row(doc, "torch@2", r)["seconds"]["fwd_bwd"]),
            _ms(_row(doc, "jax@2", r)["seconds"]["fwd_bwd"]), _ratio(r, "torch@2"),
            _ratio(r, "jax@2"), _ratio(_row(doc, "numba:native", r), "torch@2"),
            "–" if fma is None else f"{100 * fma:.0f}%", _flags(r)]


def targets_row_cells(doc, r):
    """The page's cells for one numba row of the targets run with jax (TARGETS_HEAD's order)."""
    sec, floor = r["seconds"], (r.get("floor_s") or {}).get("fwd_bwd")
    loops = (sec["rec"] + sec["bwd_data"]) / floor if floor and "rec" in sec else None
    return [r["cell"], SHORT[r["dtype"]], str(r["H"]), _ms(sec["fwd_bwd"]),
            _ms(_row(doc, "jax@2", r)["seconds"]["fwd_bwd"]), _ratio(r, "torch@1"),
            _ratio(r, "jax@2"), "–" if loops is None else f"{loops:.2f}", _flags(r)]


def split_row_cells(doc, r):
    """The page's cells for one numba row's split (SPLIT_HEAD's order): the phases, and the
    time loops' (recurrent forward + backward-data) share of forward + backward."""
    s = r["seconds"]
    share = (s["rec"] + s["bwd_data"]) / (s["fwd"] + s["bwd"])
    return [r["regime"], r["cell"], SHORT[r["dtype"]], f"{r['T']}×{r['B']}×{r['I']}×{r['H']}",
            _ms(s["proj"]), _ms(s["rec"]), _ms(s["bwd_data"]), _ms(s["bwd_weights"]),
            f"{100 * share:.0f}%"]


def _readme_tables(head):
    import re
    from tests.helpers import ROOT as root
    lines = (root / "docs" / "benchmark-results.md").read_text(encoding="utf-8").splitlines()
    cells = lambda s: [c.strip() for c in s.strip().strip("|").split("|")]  # noqa: E731
    out = []
    for k, line in enumerate(lines):
        if line.startswith("|") and cells(line) == head:
            names = re.findall(r"docs/(bench-[\w-]+\.json)", "\n".join(lines[:k]))
            body, j = [], k + 2
            while j < len(lines) and lines[j].startswith("|"):
                body.append(cells(lines[j]))
                j += 1
            out.append((names[-1], body))
    return root, out


@pytest.mark.parametrize("head, fn", [(BATCHED_HEAD, batched_row_cells),
                                      (SPLIT_HEAD, split_row_cells),
                                      (TARGETS_HEAD, targets_row_cells)],
                         ids=["batched", "split", "targets"])
def test_readme_jax_tables_are_their_json(head, fn):
    import json
    root, found = _readme_tables(head)
    assert found, f"docs/benchmark-results.md has no table headed {head}"
    for name, body in found:
        doc = json.loads((root / "docs" / name).read_text(encoding="utf-8"))
        want = {}
        for r in doc["rows"]:
            if r["engine"] == "numba":
                c = fn(doc, r)
                want[tuple(c[:3] if head is TARGETS_HEAD else c[:4])] = c
        assert len(body) == len(want), name
        for row in body:
            key = tuple(row[:3] if head is TARGETS_HEAD else row[:4])
            assert row == want[key], f"docs/benchmark-results.md row {key} vs docs/{name}"


def test_readme_jax_prose_is_the_files():
    """Every number the benchmark page's prose on the jax runs quotes, recomputed from docs/."""
    import json
    import re
    from tests.helpers import ROOT as root
    flat = " ".join((root / "docs" / "benchmark-results.md").read_text(encoding="utf-8").split())
    load = lambda n: json.loads((root / "docs" / n).read_text(encoding="utf-8"))  # noqa: E731
    from tests.helpers import load_script
    T = load_script("benchmarks/targets.py", "bench_targets")

    def said(pattern):
        m = re.search(pattern, flat)
        assert m, f"docs/benchmark-results.md no longer says anything matching {pattern!r}"
        return m.groups()

    span = lambda v, f="{:.2f}": (f.format(min(v)), f.format(max(v)))  # noqa: E731
    bat, tgt, qk = (load(f"bench-{n}-jax.json") for n in ("batched", "targets", "quick"))
    mb, mt = bat["meta"], tgt["meta"]
    got = said(r"\((\d+) s wall for the batched run, foreign load during it mean ([\d.]+) cores, "
               r"max ([\d.]+), and ([\d.]+) just before it; the batch-1 run (\d+) s, mean "
               r"([\d.]+); the quick run with JAX, `docs/bench-quick-jax.json`, (\d+) s")
    assert got == (f"{mb['wall_s']:.0f}", f"{mb['load']['during']['mean']:.2f}",
                   f"{mb['load']['during']['max']:.2f}", f"{mb['load']['before']['foreign']:.2f}",
                   f"{mt['wall_s']:.0f}", f"{mt['load']['during']['mean']:.2f}",
                   f"{qk['meta']['wall_s']:.0f}")
    assert qk["meta"]["wall_s"] < 180 and any(r["engine"].startswith("jax@") for r in qk["rows"])

    x = lambda r, ref: r["ratio"][ref]["fwd_bwd"]["median"]  # noqa: E731
    nb = [r for r in bat["rows"] if r["engine"] == "numba"]
    nt = [r for r in T.rows_of(tgt, "numba")]
    lstm128 = next(r for r in nt if (r["cell"], r["dtype"], r["H"]) == ("lstm", "float64", 128))
    got = said(r"numba is ahead of JAX on (\d+) of the (\d+) batched rows \(([\d.]+)–([\d.]+)×\) "
               r"and on all (\d+) batch-1 rows \(([\d.]+)–([\d.]+)×; float64 LSTM H=128: "
               r"([\d.]+)×\)")
    ahead = [r for r in nb if x(r, "jax@2") >= 1]
    assert got == (str(len(ahead)), str(len(nb))) + span([x(r, "jax@2") for r in ahead]) + (
        str(len(nt)),) + span([x(r, "jax@2") for r in nt]) + (f"{x(lstm128, 'jax@2'):.2f}",)
    assert all(x(r, "jax@2") >= 1 for r in nt)
    said(r"Every row where numba is ahead of torch@2 it is ahead of JAX too")
    assert all(x(r, "jax@2") >= 1 for r in nb if x(r, "torch@2") >= 1)
    behind = [r for r in nb if x(r, "jax@2") < 1]
    got = said(r"The one batched row behind JAX is the large float32 LSTM \(([\d.]+)×")
    assert len(behind) == 1 and (behind[0]["regime"], behind[0]["cell"], behind[0]["dtype"]) == (
        "large", "lstm", "float32") and got[0] == f"{x(behind[0], 'jax@2'):.2f}"
    jx = lambda dt: [x(r, "torch@2") for r in bat["rows"]  # noqa: E731
                     if r["engine"] == "jax@2" and r["dtype"] == dt]
    got = said(r"JAX itself ran at ([\d.]+)–([\d.]+)× torch@2 in float64 and ([\d.]+)–([\d.]+)× "
               r"in float32")
    assert got == span(jx("float64")) + span(jx("float32"))

    by = lambda dt: [x(r, "torch@2") for r in nb if r["dtype"] == dt]  # noqa: E731
    got = said(r"float32 against torch@2 ([\d.]+)–([\d.]+)× \(target ≥ 1\.2×: met for (\d+) of "
               r"(\d+) rows\), float64 ([\d.]+)–([\d.]+)× \(target ≥ 1\.5×: (\d+) of (\d+)\)")
    assert got == span(by("float32")) + (str(sum(v >= 1.2 for v in by("float32"))),
                                         str(len(by("float32")))) + span(by("float64")) + (
        str(sum(v >= 1.5 for v in by("float64"))), str(len(by("float64"))))
    peaks = {e["name"]: e for e in mb["engines"]}
    got = said(r"torch@2 (\d+) / (\d+) GFLOP/s float32 / float64, NumPy's OpenBLAS (\d+) / (\d+)")
    assert got == tuple(f"{peaks[e]['gemm_peak_gflops'][dt]:.0f}" for e in ("torch@2", "numba")
                        for dt in ("float32", "float64"))
    share = [(r["seconds"]["rec"] + r["seconds"]["bwd_data"])
             / (r["seconds"]["fwd"] + r["seconds"]["bwd"]) for r in nb]
    assert said(r"(\d+)–(\d+)% of numba's time is the two time loops") == span(
        [100 * v for v in share], "{:.0f}")
    fma = [r["rec_fma_fraction"] for r in nb]
    got = said(r"reaches (\d+)–(\d+)% of the FMA peak \(target ≥ 60%: met for (\d+) of (\d+) rows\)")
    assert got == span([100 * v for v in fma], "{:.0f}") + (
        str(sum(round(100 * v) >= 60 for v in fma)), str(len(fma)))
    got = said(r"the header: (\d+) GFLOP/s float32, (\d+) float64, one thread\) is below what "
               r"OpenBLAS's AVX-512 GEMM reaches a thread \((\d+) / 2 and (\d+) / 2\)")
    assert got == tuple(f"{peaks['numba']['fma_peak_gflops'][dt]:.0f}"
                        for dt in ("float32", "float64")) + tuple(
        f"{peaks['numba']['gemm_peak_gflops'][dt]:.0f}" for dt in ("float32", "float64"))

    speed_miss = [r for r in nt if x(r, "torch@1") < T.SPEED[r["dtype"]][r["H"]]]
    big = [r for r in nt if r["H"] >= T.FLOOR_FROM]
    loops = [T._loops_floor(r) for r in big]
    got = said(r"(\d+) of the (\d+) speed targets against torch@1 held \(missed: float64 GRU and "
               r"LSTM at H=128, ([\d.]+)× and ([\d.]+)× against ≥ 5×\); (\d+) of the (\d+) rows "
               r"with H ≥ 64 had their time loops within 1\.2× of the bandwidth floor "
               r"\(([\d.]+)–([\d.]+)×\)")
    assert sorted((r["cell"], r["dtype"], r["H"]) for r in speed_miss) == [
        ("gru", "float64", 128), ("lstm", "float64", 128)]
    assert got == (str(len(nt) - len(speed_miss)), str(len(nt))) + tuple(
        f"{x(r, 'torch@1'):.2f}" for r in sorted(speed_miss, key=lambda r: r["cell"])) + (
        str(sum(v <= 1.2 for v in loops)), str(len(big))) + span(loops)

