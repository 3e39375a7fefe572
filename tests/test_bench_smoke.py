"""A tiny run of the benchmark runner: the table, JSON and PNG come out, and every ratio is
computed from times measured in the same run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minirnn.bench import (Timing, flops, format_table, make_problem, run_benchmark, save_json,
                           save_plot)

TINY = {"small": [(4, 1, 3, 5)], "medium": [(3, 2, 4, 6)]}


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("torch")
    return run_benchmark(cells=["rnn_tanh", "lstm"], backends=["numpy", "numba", "torch"],
                         dtypes=["float64"], regimes=["small", "medium"], device="cpu",
                         shapes=TINY, timing=Timing(1, 0.0, 1), peak_n=64, show_progress=False)


def test_rows_and_ratios_from_the_same_run(result):
    rows = result["rows"]
    # 2 shapes x 2 cells x 1 dtype x 3 engines x 2 passes
    assert len(rows) == 24
    for r in rows:
        torch_row = [q for q in rows if q["backend"] == "torch" and q["passes"] == r["passes"]
                     and all(q[k] == r[k] for k in ("cell", "T", "B", "I", "H", "dtype"))]
        assert len(torch_row) == 1
        assert r["speedup_vs_torch"] == pytest.approx(torch_row[0]["seconds"] / r["seconds"])
        expected_flops = flops(r["cell"], r["T"], r["B"], r["I"], r["H"], r["passes"])
        assert r["gflops"] == pytest.approx(expected_flops / r["seconds"] / 1e9)
        peak = result["meta"]["matmul_peak_gflops"][r["dtype"]]
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / peak)
        assert r["rel_err_vs_torch"] < 1e-12          # float64: every engine computed the same thing
        if r["backend"] in ("numpy", "numba") and r["passes"] == "fwd+bwd":
            assert r["cache_values"] <= r["cache_bound_values"]
    assert set(result["meta"]["numba_first_call_s"]) == {"rnn_tanh/float64", "lstm/float64"}


def test_flop_formula_independent():
    # LSTM fwd: 4 gates, each an (I + H) -> H product per row and step, 2 FLOPs per multiply-add
    T, B, I, H = 3, 2, 5, 7
    naive = sum(2 * (I + H) * H for _ in range(4) for _ in range(T) for _ in range(B))
    assert flops("lstm", T, B, I, H) == naive
    assert flops("rnn_tanh", T, B, I, H, "fwd+bwd") == 3 * naive // 4


def test_table_json_plot(result, tmp_path):
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["cell", "regime", "T"]
    assert len({len(l) for l in lines[2:26]}) == 1                  # aligned columns
    path = tmp_path / "out" / "bench.json"
    save_json(result, path)
    loaded = json.loads(path.read_text())
    assert len(loaded["rows"]) == len(result["rows"]) and "flop_formula" in loaded["meta"]
    pytest.importorskip("matplotlib")
    png = tmp_path / "speedup.png"
    save_plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="cells"):
        run_benchmark(cells=["gru"], shapes=TINY)
    with pytest.raises(ValueError, match="regimes"):
        run_benchmark(regimes=["huge"], shapes=TINY)
    with pytest.raises(ValueError, match="device"):
        run_benchmark(device="tpu", regimes=["small"], shapes=TINY)


def test_problem_is_random_and_nonzero():
    p = make_problem("lstm", 3, 2, 4, 5, "float32")
    for name, arr in p.items():
        assert arr.dtype == np.float32 and np.all(arr != 0), name


def test_cli_writes_outputs(tmp_path, capsys, monkeypatch):
    from minirnn.cli import main
    import minirnn.bench.runner as runner
    monkeypatch.setattr(runner, "REGIMES", {"small": [(3, 1, 2, 3)]})
    monkeypatch.setattr(runner, "QUICK_SMALL", [(3, 1, 2, 3)])
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    code = main(["bench", "--cells", "rnn_relu", "--backends", "numba,torch", "--dtypes", "float32",
                 "--regimes", "small", "--device", "cpu", "--quick", "--no-progress",
                 "--json", str(js), "--plot", str(png)])
    if code != 0:
        pytest.fail(capsys.readouterr().err)
    assert "rnn_relu" in capsys.readouterr().out
    assert json.loads(js.read_text())["meta"]["quick"] is True
    assert main(["bench", "--cells", "gru", "--no-progress"]) == 2
