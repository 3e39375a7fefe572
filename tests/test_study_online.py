"""`minirnn study online` and its library (minirnn.studies.online, online_tasks): the streams
are the tasks they claim, the alignment it reports is a real cosine against the exact
gradient (1 for a method that is RTRL, below for one that is not), the CLI writes its files
and refuses bad flags, and benchmarks/online_cost.py reports every row."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from minirnn.cli import main
from minirnn.studies.seqtask import dependency_floors
from minirnn.studies.online import train_online
from minirnn.studies.online_tasks import (CHAOTIC, adding_stream, chaotic_stream,
                                          two_dependency_stream)

ROOT = Path(__file__).resolve().parents[1]


def test_two_dependency_stream_is_the_task():
    s = two_dependency_stream(4, 300, seed=3)
    assert s.x.shape == (300, 4, 2) and s.y.shape == (300, 4) and s.kind == "ce"
    assert np.array_equal(s.x.sum(-1), np.ones((300, 4)))            # one-hot
    f = dependency_floors()
    assert (s.nothing, s.floor) == (f.nothing, f.both)
    assert s.has_target.all() and s.reset.sum() == 1 and s.reset[0]
    X = s.x[..., 1]                                                   # X_t
    p = 0.5 + 0.5 * X[5:-3] - 0.25 * X[:-8]                           # P(Y_t = 1), t >= 8
    y = s.y[8:]
    assert abs(y.mean() - p.mean()) < 0.05 and np.all(y[p == 0] == 0)  # p = 0: never 1


def test_adding_stream_sums_the_two_marked_values():
    s = adding_stream(3, 50, seed=1, length=8)                        # 6 whole episodes
    assert s.x.shape == (48, 3, 2) and s.y.shape == (48, 3, 1) and s.kind == "mse"
    ep = s.x.reshape(6, 8, 3, 2)
    marks = ep[..., 1]
    assert np.array_equal(marks[:, :4].sum(1), np.ones((6, 3)))       # one in each half
    assert np.array_equal(marks[:, 4:].sum(1), np.ones((6, 3)))
    want = (ep[..., 0] * marks).sum(1)
    np.testing.assert_allclose(s.y.reshape(6, 8, 3)[:, -1], want)
    assert np.array_equal(np.flatnonzero(s.has_target), np.arange(7, 48, 8))
    assert np.array_equal(np.flatnonzero(s.reset), np.arange(0, 48, 8))
    assert s.nothing == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="length"):
        adding_stream(3, 50, length=1)


@pytest.mark.parametrize("name", CHAOTIC)
def test_chaotic_streams_are_normalised_next_step_prediction(name):
    s = chaotic_stream(name, 3, 500, seed=2, washout=100)
    assert s.x.shape == (500, 3, 1) and s.y.shape == (500, 3, 1)
    np.testing.assert_array_equal(s.x[1:], s.y[:-1])                  # the target is the next
    full = np.concatenate([s.x, s.y[-1:]])
    np.testing.assert_allclose(full.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(full.std(0), 1, rtol=1e-12)
    assert np.array_equal(np.flatnonzero(s.reset), [0, 100, 200, 300, 400])
    assert not np.allclose(s.x[:, 0], s.x[:, 1])                     # lanes differ
    with pytest.raises(ValueError, match="name: expected one of"):
        chaotic_stream("rossler", 2, 10)


def test_henon_stream_is_the_henon_map():
    """x_{t+1} = 1 - 1.4 x_t^2 + 0.3 x_{t-1} for the raw series; after normalising, s_{t+1} is
    exactly a quadratic in s_t plus 0.3 s_{t-1} (the sd and mean change the other terms)."""
    s = chaotic_stream("henon", 1, 300, seed=0)
    z = np.concatenate([s.x[:, 0, 0], s.y[-1:, 0, 0]])
    A = np.stack([z[1:-1] ** 2, z[1:-1], z[:-2], np.ones(len(z) - 2)], axis=1)
    coef, res, *_ = np.linalg.lstsq(A, z[2:], rcond=None)
    assert coef[2] == pytest.approx(0.3, rel=1e-9) and res[0] < 1e-18


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_alignment_is_one_for_a_method_that_is_rtrl_and_below_for_one_that_is_not(cell):
    """SnAp-2 on a dense W_hh is RTRL (full pattern), and the shadow's cosine says so at
    every step; SnAp-1 is not, and the cosine says that too."""
    s = two_dependency_stream(2, 60, seed=1)
    snap2 = train_online(s, cell, "snap-2", hidden=4, lr=0.01, seed=2)
    rtrl = train_online(s, cell, "rtrl", hidden=4, lr=0.01, seed=2)
    assert np.all(np.abs(snap2.cosines - 1) < 1e-12) and np.all(rtrl.cosines == 1)
    np.testing.assert_allclose(snap2.losses, rtrl.losses, rtol=1e-10)
    snap1 = train_online(s, cell, "snap-1", hidden=4, lr=0.01, seed=2,
                         watch={"exact": ("rtrl", {}), "s2": ("snap-2", {})})
    assert snap1.alignment() < 0.999 and np.all(np.abs(snap1.cosines) <= 1 + 1e-12)
    assert snap1.numbers < rtrl.numbers
    for label in ("exact", "s2"):                     # watched beside: not steering, measured
        assert np.all(np.abs(snap1.watched[label] - 1) < 1e-12)
    on_rtrl = train_online(s, cell, "rtrl", hidden=4, lr=0.01, seed=2,
                           watch={"s1": ("snap-1", {})})
    np.testing.assert_array_equal(on_rtrl.losses, rtrl.losses)     # watching changes nothing
    assert on_rtrl.watched["s1"].shape == rtrl.losses.shape and on_rtrl.watched["s1"].mean() < 1


def test_train_online_options_mask_progress_and_no_shadow():
    s = adding_stream(2, 160, seed=0, length=8)
    done = []
    mask = np.tile(np.eye(4, dtype=bool), (3, 1))
    r = train_online(s, "gru", "rflo", hidden=4, lr=0.02, seed=1, shadow=False,
                     options={"decay": 0.5}, mask=mask, progress=done.append)
    assert sum(done) == 160 and np.all(np.isnan(r.cosines)) and np.isnan(r.alignment())
    assert len(r.losses) == 20 and np.array_equal(r.steps, np.arange(7, 160, 8))
    assert r.final_loss() == pytest.approx(r.losses[-5:].mean())
    assert r.final_loss(0.5) == pytest.approx(r.losses[-10:].mean())
    bins = r.binned(4)
    assert [b[0] for b in bins] == [39, 79, 119, 159] and np.isnan(bins[0][1])
    a = train_online(s, "rnn_tanh", "e-prop", hidden=4)                # defaults otherwise
    b = train_online(s, "rnn_tanh", "rflo", hidden=4)
    np.testing.assert_array_equal(a.losses, b.losses)                 # the same on Elman
    np.testing.assert_array_equal(a.cosines, b.cosines)


def test_cli_writes_csv_curves_png_and_a_table(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["study", "online", "--cells", "gru,rnn_relu", "--methods", "rtrl,snap-1,rflo:0.5",
               "--tasks", "twodep,add", "--steps", "200", "--add-steps", "160", "--add-length",
               "8", "--hidden", "4", "--batch", "2", "--lr", "0.02", "--sparsity", "0.5",
               "--seed", "1", "--common", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "rflo(decay 0.5)" in text and "twodep: 200 steps" in text and "add: 160" in text
    rows = (out / "online.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 3 and rows[0].startswith("task,cell,method")
    rec = dict(zip(rows[0].split(","), rows[1].split(",")))
    assert rec["sparsity"] == "0.5" and float(rec["alignment"]) == 1.0
    curves = (out / "online_curves.csv").read_text().splitlines()
    assert len(curves) == 1 + 12 * 10
    assert (out / "online.png").stat().st_size > 10_000
    common = (out / "online_common.csv").read_text().splitlines()
    assert len(common) == 1 + 2 * 2 * 2 and "on exact RTRL's own run" in text
    by = {tuple(r.split(",")[:3]): float(r.split(",")[3]) for r in common[1:]}
    assert by["add", "gru", "snap-1"] < 1.0
    assert max(len(line) for line in text.splitlines() if not line.startswith("wrote")) <= 120


def test_cli_anchor_settings_and_refusals(tmp_path, capsys):
    rc = main(["study", "online", "--anchor", "--tasks", "henon", "--methods", "snap-1",
               "--steps", "3", "--out", str(tmp_path / "a")])
    assert rc == 0
    rec = (tmp_path / "a" / "online.csv").read_text().splitlines()[1].split(",")
    assert rec[:5] == ["henon", "rnn_tanh", "snap-1", "64", "8"] and rec[6] == "0.001"
    capsys.readouterr()
    bad = [(["--methods", "bptt"], "--methods: method"), (["--methods", "rflo:2"], "decay"),
           (["--tasks", "copy"], "--tasks: expected"), (["--sparsity", "1"], "--sparsity"),
           (["--lr", "0"], "--lr"), (["--cells", "elman"], "--cells"),
           (["--add-length", "1"], "--add-length"),
           (["--methods", "snap-1", "--common"], "--common: measures the methods")]
    for flags, msg in bad:
        assert main(["study", "online", "--steps", "5", *flags,
                     "--out", str(tmp_path / "b")]) == 2
        assert msg in capsys.readouterr().err


def test_cost_benchmark_reports_every_row(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("online_cost",
                                                  ROOT / "benchmarks" / "online_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "cost.json"
    bench.main(["--cells", "gru", "--hidden", "4,6", "--steps", "1", "--rounds", "1",
                "--json", str(path)])
    text = capsys.readouterr().out
    labels = [r[0] for r in bench.METHODS]
    for label in labels:
        assert f" {label} " in text
    rows = json.loads(path.read_text())["rows"]
    assert len(rows) == 2 * len(labels)
    assert all(r["jac_us"] > 0 and r["method_us"] > 0 and r["floats"] > 0 for r in rows)
    by = {(r["method"], r["H"]): r["floats"] for r in rows}
    assert by["snap-1", 6] < by["uoro", 6] < by["rtrl", 6]           # what each one holds
    assert by["snap-2 90%", 6] < by["rtrl 90%", 6] < by["rtrl", 6]
