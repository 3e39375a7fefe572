"""Smoke tests of the benchmark: a tiny problem, one round, real worker processes. Then the
flagging logic on synthetic timings, the table, atomic JSON, the plot and the CLI.

Measurements are never asserted here (the machine may be shared): only that every number is
computed from what the workers measured, that the environment is recorded, and that
impossible numbers are flagged.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minirnn.bench import (NATIVE_UNSET, EngineSpec, Timing, blas_overrides, flops, format_table,
                           load_warnings, make_engines, make_problem, row_flags, run_benchmark,
                           save_json, save_plot)
from minirnn.cells import BUILTIN, get_cell

TINY = {"small": [(4, 1, 3, 5)]}
THREADS = 2                     # numba/numpy and torch@2; torch@1 beside them


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("torch")
    return run_benchmark(cells=list(BUILTIN), backends=["numpy", "numba", "torch"],
                         dtypes=["float64"], regimes=["small"], device="cpu", shapes=TINY,
                         timing=Timing(1, 0.0, 1, warmup=1), rounds=1, threads=THREADS,
                         peak_n=64, peak_timing=Timing(1, 0.0, 1), show_progress=False)


ENGINES = ("numpy", "numba", "torch@1", f"torch@{THREADS}")


def test_every_cell_and_engine_in_its_own_process(result):
    rows = result["rows"]
    assert len(rows) == len(BUILTIN) * len(ENGINES)
    assert {(r["cell"], r["engine"]) for r in rows} == {(c, e) for c in BUILTIN for e in ENGINES}
    engines = {e["name"]: e for e in result["meta"]["engines"]}
    assert set(engines) == set(ENGINES)
    pids = [e["pid"] for e in engines.values()]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert engines["torch@1"]["torch_threads"] == 1
    assert engines[f"torch@{THREADS}"]["torch_threads"] == THREADS
    for name in ("numpy", "numba"):
        blas = [t for t in engines[name]["threadpools"] if t.get("user_api") == "blas"]
        assert blas and all(t["num_threads"] == THREADS for t in blas)
    for name in ("torch@1", f"torch@{THREADS}"):          # NumPy in torch's worker: one thread
        blas = [t for t in engines[name]["threadpools"] if t.get("user_api") == "blas"]
        assert all(t["num_threads"] == 1 for t in blas)


def test_numbers_come_from_the_measured_times(result):
    ref = f"torch@{THREADS}"
    for r in result["rows"]:
        torch_row = next(q for q in result["rows"] if q["engine"] == ref and q["id"] == r["id"])
        for ph, sec in r["seconds"].items():
            assert r["gflops"][ph] == pytest.approx(
                flops(r["cell"], r["T"], r["B"], r["I"], r["H"], ph) / sec / 1e9)
            assert r["peak_fraction"][ph] == pytest.approx(r["gflops"][ph] / r["gemm_peak_gflops"])
        if r["engine"] != ref:
            ratio = r["ratio"][ref]["fwd_bwd"]
            assert ratio["per_round"] == [pytest.approx(torch_row["seconds"]["fwd_bwd"]
                                                        / r["seconds"]["fwd_bwd"])]
            assert ratio["median"] == pytest.approx(ratio["per_round"][0])
            assert r["rel_err"] < 1e-12          # float64: every engine computed the same thing
        if r["engine"] == "numba":               # the split: derived phases from the measured ones
            s = r["seconds"]
            assert s["rec"] == pytest.approx(s["fwd"] - s["proj"])
            assert s["bwd_data"] == pytest.approx(s["bwd"] - s["bwd_weights"])
            assert r["bandwidth_gbs"] > 0 and r["floor_s"]["fwd_bwd"] == pytest.approx(
                2 * r["floor_s"]["fwd"])
        if r["kind"] != "torch":                 # activations: the cache's saved arrays
            assert r["activation_bytes"] > 0 and r["activation_per_TBH"] >= 2
        codes = {f["code"] for f in r["flags"]}
        assert r["valid"] == (not codes & {"order"} and all(
            r["peak_fraction"][ph] <= 1 for ph in ("fwd", "fwd_bwd", "bwd") if ph in r["seconds"]))
        assert r["split_valid"] <= r["valid"]


def test_environment_is_recorded(result):
    meta = result["meta"]
    for key in ("cpu_model", "usable_cores", "logical_cpus", "platform", "overrides",
                "kernel_overrides"):
        assert key in meta["machine"]
    assert meta["machine"]["overrides"] == blas_overrides()      # as set, never changed
    for key in ("numpy", "numba", "torch", "python"):
        assert meta["versions"][key]
    for e in meta["engines"]:
        assert e["threads"] >= 1 and e["gemm_peak_gflops"]["float64"] > 0
        assert any(t.get("user_api") == "blas" for t in e["threadpools"])
    assert set(meta["load"]) >= {"before", "during", "after", "limit_cores", "handovers"}
    assert meta["load"]["handovers"]["count"] == len(BUILTIN) * len(ENGINES)
    assert "2*T*B*G*H*(I+H)" in meta["flop_convention"]
    assert meta["schema"] == result["schema"] == "minirnn-bench/2"


def test_flop_formula_independent():
    T, B, I, H = 3, 2, 5, 7
    for cell in BUILTIN:
        G = get_cell(cell).gates
        naive = sum(2 * (I + H) * H for _ in range(G) for _ in range(T) for _ in range(B))
        assert flops(cell, T, B, I, H) == naive
        assert flops(cell, T, B, I, H, "fwd_bwd") == 3 * naive
        assert flops(cell, T, B, I, H, "proj") + flops(cell, T, B, I, H, "rec") == naive
    if "gru" in BUILTIN:
        assert flops("gru", T, B, I, H) == 2 * T * B * 3 * H * (I + H)


# ---- flags on synthetic timings ----------------------------------------------------------------

def _row(**kw):
    row = dict(seconds=dict(fwd=1.0, fwd_bwd=3.0), peak_fraction=dict(fwd=0.5, fwd_bwd=0.5),
               load=dict(mean=0.0, max=0.0), ratio={})
    row.update(kw)
    return row


def test_validity_of_flagged_rows():
    from minirnn.bench.rows import validity
    flagged = lambda row: dict(row, flags=[dict(code=c, message=m) for c, m in row_flags(row)])  # noqa: E731
    assert validity(flagged(_row())) == (True, True)
    assert validity(flagged(_row(seconds=dict(fwd=2.0, fwd_bwd=1.5)))) == (False, False)
    assert validity(flagged(_row(peak_fraction=dict(fwd=0.5, fwd_bwd=1.2)))) == (False, False)
    # an impossible split hides the split only
    assert validity(flagged(_row(seconds=dict(fwd=1.0, fwd_bwd=3.0, rec=-0.1)))) == (True, False)
    assert validity(flagged(_row(peak_fraction=dict(fwd_bwd=0.5, proj=1.5)))) == (True, False)
    # noisy machine, rounds that disagree: reported, with the flag
    assert validity(flagged(_row(load=dict(mean=0.9, max=1.0)))) == (True, True)


def test_flags_on_synthetic_rows():
    assert row_flags(_row()) == []
    codes = lambda row: [c for c, _ in row_flags(row)]                # noqa: E731
    assert codes(_row(seconds=dict(fwd=2.0, fwd_bwd=1.5))) == ["order"]
    assert codes(_row(peak_fraction=dict(fwd=0.4, fwd_bwd=1.3))) == ["peak"]
    assert codes(_row(load=dict(mean=0.9, max=1.2))) == ["load"]
    assert codes(_row(seconds=dict(fwd=1.0, fwd_bwd=3.0, rec=-0.1))) == ["split"]
    spread = dict(median=1.0, min=0.5, max=2.0, per_round=[0.5, 1.0, 2.0])
    assert codes(_row(ratio={"torch@2": dict(fwd_bwd=spread)})) == ["spread"]
    msg = dict(row_flags(_row(peak_fraction=dict(fwd_bwd=1.3))))["peak"]
    assert "130%" in msg


def test_load_warnings():
    assert load_warnings(dict(foreign=0.0, loadavg=0.1), dict(mean=0.05, max=0.1), cores=2) == []
    w = load_warnings(dict(foreign=1.0, loadavg=1.0), dict(mean=0.9, max=1.1), cores=2)
    assert len(w) == 2 and "before" in w[0] and "during" in w[1]
    w = load_warnings(dict(foreign=None, loadavg=3.0), dict(mean=None, max=None), cores=2)
    assert len(w) == 1 and "load average" in w[0]


def test_flagged_rows_are_not_printed_as_results(result):
    bad = json.loads(json.dumps(result))
    r = next(q for q in bad["rows"] if q["engine"] == "numba")
    r["seconds"]["fwd"] = 2 * r["seconds"]["fwd_bwd"]
    r["flags"] = [dict(code=c, message=m) for c, m in row_flags(r)]
    r["valid"] = False
    line = next(l for l in format_table(bad).splitlines()
                if l.startswith("small") and f" {r['cell']} " in l and " numba " in l)
    assert "!" in line and "order" in line


# ---- outputs --------------------------------------------------------------------------------

def test_table(result):
    text = format_table(result)
    lines = text.splitlines()
    assert lines[0].startswith("minirnn bench") and lines[1].startswith("machine:")
    assert any(l.startswith("engines") for l in lines) and any("overrides set:" in l for l in lines)
    head = next(i for i, l in enumerate(lines) if l.startswith("regime"))
    body = lines[head + 2: head + 2 + len(result["rows"])]
    assert len(body) == len(result["rows"])
    assert lines[head + 1].startswith("------")
    assert len({len(l.rstrip()) for l in [lines[head + 1]]}) == 1
    assert "split time" in text and "FLOPs:" in text


def test_json_written_atomically(result, tmp_path):
    path = tmp_path / "out" / "bench.json"
    save_json(result, path)
    loaded = json.loads(path.read_text())
    assert len(loaded["rows"]) == len(result["rows"]) and loaded["meta"]["engines"]
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_json(dict(result, bad=object()), path)      # fails half-way through
    assert path.read_bytes() == before                   # the old file is intact ...
    assert os.listdir(path.parent) == ["bench.json"]     # ... and no temporary is left


def test_plot(result, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    save_plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- configuration ----------------------------------------------------------------------------

def test_engines_and_worker_environment():
    names = [e.name for e in make_engines(["numba", "torch"], 1)]
    assert names == ["numba", "torch@1"]                       # one torch when N = 1
    eng = make_engines(["numpy", "numba", "torch"], 4, blas="both")
    assert [e.name for e in eng] == ["numpy", "numpy:native", "numba", "numba:native",
                                     "torch@1", "torch@4"]
    base = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin"}
    native = EngineSpec("numba", "numba", 3, native_blas=True).environ(base)
    assert not any(k in native for k in NATIVE_UNSET)
    assert native["OPENBLAS_NUM_THREADS"] == native["MINIRNN_NUM_THREADS"] == "3"
    plain = EngineSpec("numba", "numba", 3).environ(base)
    assert plain["OPENBLAS_CORETYPE"] == "Haswell"            # kept unless asked
    torch_env = EngineSpec("torch@3", "torch", 3).environ(base)
    assert torch_env["OPENBLAS_NUM_THREADS"] == "1" and torch_env["OMP_NUM_THREADS"] == "3"
    assert base == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin"}


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="cells"):
        run_benchmark(cells=["nope"], shapes=TINY)
    with pytest.raises(ValueError, match="regimes"):
        run_benchmark(regimes=["huge"], shapes=TINY)
    with pytest.raises(ValueError, match="device"):
        run_benchmark(device="tpu", regimes=["small"], shapes=TINY)
    with pytest.raises(ValueError, match="blas"):
        run_benchmark(blas="fast", regimes=["small"], shapes=TINY)
    with pytest.raises(ValueError, match="threads"):
        run_benchmark(threads=0, regimes=["small"], shapes=TINY)


def test_problem_is_random_and_nonzero():
    for cell in BUILTIN:
        p = make_problem(cell, 3, 2, 4, 5, "float32")
        arrays = [p["x"], p["d_out"], *p["state"], *p["params"].values()]
        assert len(p["state"]) == len(get_cell(cell).state_names)
        assert p["params"]["weight_ih"].shape == (get_cell(cell).gates * 5, 4)
        for arr in arrays:
            assert arr.dtype == np.float32 and np.all(arr != 0)


def test_cli_help(capsys):
    from minirnn.cli import main
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--threads", "--native-blas", "--quick", "--rounds", "--json", "--plot"):
        assert flag in out


def test_cli_writes_outputs(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from minirnn.bench import problems, rows
    from minirnn.cli import main
    monkeypatch.setattr(problems, "QUICK", {"small": [(3, 1, 2, 3)]})
    # a busy test machine would flag the one row "load", and a run with nothing judged exits 1
    # (tests/test_bench_summary.py): here only the outputs are under test
    monkeypatch.setattr(rows, "LOAD_LIMIT", float("inf"))
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    cell = BUILTIN[0]
    code = main(["bench", "--cells", cell, "--backends", "numba,torch", "--dtypes", "float32",
                 "--regimes", "small", "--device", "cpu", "--quick", "--rounds", "1",
                 "--threads", "1", "--no-progress", "--json", str(js), "--plot", str(png)])
    if code != 0:
        pytest.fail(capsys.readouterr().err)
    assert cell in capsys.readouterr().out
    meta = json.loads(js.read_text())["meta"]
    assert meta["quick"] is True and meta["threads"] == 1
    assert [e["name"] for e in meta["engines"]] == ["numba", "torch@1"]
    assert png.exists()
    assert main(["bench", "--cells", "nope", "--no-progress"]) == 2
    assert "cells" in capsys.readouterr().err
    assert main(["bench", "--threads", "0", "--no-progress"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_fma_peak_beside_the_gemm_peak(result):
    """The numba worker records the single-thread FMA peak of Numba's code per dtype, and each
    numba row with a valid split relates its recurrent phase to it (threads x that peak)."""
    from minirnn.bench import DEFINITIONS, fma_peak
    engines = {e["name"]: e for e in result["meta"]["engines"]}
    fma = engines["numba"]["fma_peak_gflops"]
    assert set(fma) == {"float64"} and fma["float64"] > 0
    assert "fma_peak_gflops" not in engines["numpy"] or not engines["numpy"]["fma_peak_gflops"]
    for r in result["rows"]:
        if r["engine"] == "numba" and r["split_valid"]:
            assert r["rec_fma_fraction"] == pytest.approx(
                r["gflops"]["rec"] / (fma["float64"] * r["threads"]))
    assert "rec_fma_fraction" in DEFINITIONS and "rec %fma" in format_table(result)
    assert fma_peak("float32", seconds=0.02) > 0 and fma_peak("float64") > 0
