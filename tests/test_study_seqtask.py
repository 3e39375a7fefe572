"""The two-dependency task: its floors against the closed forms derived by hand and against
Monte Carlo; the data's conditional frequencies; the memory probe on a hand-built shift
register; the task cross-entropy of a constant predictor; training with truncation learns the
X(t-3) dependency exactly when a window reaches lag 3; `minirnn study twodep`, `truncation`
and `lags` from the command line."""
import csv
import math

import numpy as np
import pytest

from minirnn.cli import main
from minirnn.studies.seqtask import (bernoulli_entropy, cross_entropy_on_task, dependency_floors,
                                  memory_probe, monte_carlo_floors, task_model,
                                  train_two_dependency, two_dependency_data)


def H(p):
    """The Bernoulli entropy in nats, written out again (0 log 0 = 0)."""
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def test_floors_equal_the_closed_forms():
    f = dependency_floors()
    # E p = 1/2 + 1/4 - 1/8 = 5/8; given X3: 1 - 1/8 = 7/8 or 1/2 - 1/8 = 3/8; given both:
    # 1/2, 1, 1/4, 3/4 with probability 1/4 each (H(1) = 0, H(3/4) = H(1/4))
    assert f.nothing == pytest.approx(H(5 / 8), abs=1e-15)
    assert f.first == pytest.approx((H(7 / 8) + H(3 / 8)) / 2, abs=1e-15)
    assert f.both == pytest.approx(math.log(2) / 4 + H(1 / 4) / 2, abs=1e-15)
    # the values quoted with the task (Pitis 2016): 0.66, 0.52, 0.45
    assert (round(f.nothing, 2), round(f.first, 2), round(f.both, 2)) == (0.66, 0.52, 0.45)


def test_floors_of_another_task_by_enumeration():
    f = dependency_floors(lags=(1, 5), effects=(0.3, 0.2), base=0.1)
    p = {(a, b): 0.1 + 0.3 * a + 0.2 * b for a in (0, 1) for b in (0, 1)}
    assert f.nothing == pytest.approx(H(sum(p.values()) / 4), abs=1e-15)
    assert f.first == pytest.approx((H((p[0, 0] + p[0, 1]) / 2) + H((p[1, 0] + p[1, 1]) / 2)) / 2,
                                    abs=1e-15)
    assert f.both == pytest.approx(sum(H(v) for v in p.values()) / 4, abs=1e-15)


def test_floors_against_monte_carlo():
    exact = dependency_floors()
    means, errs = monte_carlo_floors(200_000, seed=4)
    for name in exact._fields:
        z = (getattr(means, name) - getattr(exact, name)) / getattr(errs, name)
        assert abs(z) < 4, f"{name}: Monte Carlo {getattr(means, name)} is {z:.1f} SE off"
    # and from the task's own data, scored here by the exact predictors
    x, y, _ = two_dependency_data(20, 10_000, seed=5)
    x3, x8, y = x[:, 5:-3].ravel(), x[:, :-8].ravel(), y[:, 8:].ravel()
    preds = (np.full(y.shape, 5 / 8), 0.5 + 0.5 * x3 - 0.125, 0.5 + 0.5 * x3 - 0.25 * x8)
    for name, q in zip(exact._fields, preds):
        loss = -np.log(np.where(y == 1, q, 1 - q))
        z = (loss.mean() - getattr(exact, name)) / (loss.std() / np.sqrt(loss.size))
        assert abs(z) < 4, f"{name} from the data: {z:.1f} SE off"


def test_data():
    x, y, p = two_dependency_data(50, 400, seed=1)
    assert x.shape == y.shape == p.shape == (50, 400) and x.dtype == y.dtype == np.int64
    assert np.array_equal(p[:, :3], np.full((50, 3), 0.5))          # no history yet
    assert np.allclose(p[:, 8:], 0.5 + 0.5 * x[:, 5:-3] - 0.25 * x[:, :-8])
    for a in (0, 1):
        for b in (0, 1):
            sel = (x[:, 5:-3] == a) & (x[:, :-8] == b)
            want = 0.5 + 0.5 * a - 0.25 * b
            n = sel.sum()
            assert abs(y[:, 8:][sel].mean() - want) < 4 * math.sqrt(want * (1 - want) / n) + 1e-12
    assert abs(x.mean() - 0.5) < 0.02
    again = two_dependency_data(50, 400, seed=1)
    assert all(np.array_equal(u, v) for u, v in zip((x, y, p), again))
    assert two_dependency_data(2, 5)[0].shape == (2, 5)               # seed omitted: fresh


def test_another_task_data_and_monte_carlo():
    x, y, p = two_dependency_data(40, 300, seed=2, lags=(1, 5), effects=(0.3, 0.2), base=0.1)
    assert np.allclose(p[:, 5:], 0.1 + 0.3 * x[:, 4:-1] + 0.2 * x[:, :-5])
    exact = dependency_floors(lags=(1, 5), effects=(0.3, 0.2), base=0.1)
    means, errs = monte_carlo_floors(100_000, lags=(1, 5), effects=(0.3, 0.2), base=0.1)
    for name in exact._fields:                                      # seed omitted: 0
        assert abs(getattr(means, name) - getattr(exact, name)) < 4 * getattr(errs, name)


def test_entropy_and_refusals():
    assert bernoulli_entropy(0.0) == 0.0 and bernoulli_entropy(1.0) == 0.0
    assert bernoulli_entropy(0.5) == pytest.approx(math.log(2), abs=1e-15)
    assert np.allclose(bernoulli_entropy([0.25, 0.75]), [H(0.25)] * 2, atol=1e-15)
    with pytest.raises(ValueError, match="effects: base \\+ effects must stay a probability"):
        dependency_floors(effects=(0.6, -0.25))
    with pytest.raises(ValueError, match="lags, effects: expected two different lags"):
        two_dependency_data(2, 10, lags=(3, 3))
    with pytest.raises(TypeError, match="batch: expected an int"):
        two_dependency_data(2.0, 10)


def _shift_register():
    """rnn_relu, H = 4: h_t = (x_t, x_{t-1}, x_{t-2}, x_{t-3}) exactly."""
    m = task_model(hidden=4, cell="rnn_relu", seed=0)
    sd = {k: np.zeros_like(v) for k, v in m.state_dict().items()}
    sd["embedding.weight"][1] = [1.0, 0.0]                 # token 1 -> (1, 0), token 0 -> 0
    sd["fc.weight"][:] = m.state_dict()["fc.weight"]
    sd["rnn.weight_ih_l0"][0, 0] = 1.0
    sd["rnn.weight_hh_l0"][[1, 2, 3], [0, 1, 2]] = 1.0      # unit i takes unit i-1's value
    m.load_state_dict(sd)
    return m


def test_memory_probe_on_a_shift_register():
    acc = memory_probe(_shift_register(), lags=range(7), batch=32, steps=300, seed=2)
    assert all(acc[j] == 1.0 for j in range(4))             # held exactly
    assert all(abs(acc[j] - 0.5) < 0.04 for j in range(4, 7))   # gone: chance
    default = memory_probe(_shift_register())               # lags (3, 8), 64 x 1000
    assert default[3] == 1.0 and abs(default[8] - 0.5) < 0.02
    with pytest.raises(ValueError, match="steps, batch: expected steps > max"):
        memory_probe(_shift_register(), lags=(3, 8), steps=8)


def test_cross_entropy_of_a_constant_predictor_is_the_nothing_floor():
    m = task_model(hidden=3, seed=1)
    m.fc.params["weight"][:] = 0.0
    m.fc.params["bias"][:] = [0.0, math.log(5 / 3)]         # softmax -> P(y = 1) = 5/8
    ce = cross_entropy_on_task(m, batch=64, steps=2000, seed=3)
    se = 0.66 / math.sqrt(64 * 1992)                        # the loss's sd is below 0.66
    assert abs(ce - H(5 / 8)) < 4 * se
    assert cross_entropy_on_task(m, backend="numba") == pytest.approx(
        cross_entropy_on_task(m), rel=1e-12)
    trained = train_two_dependency(4, hidden=3, steps=60, eval_steps=100, eval_batch=4).model
    whole = cross_entropy_on_task(trained, batch=4, steps=100, seed=1, chunk=100)
    pieces = cross_entropy_on_task(trained, batch=4, steps=100, seed=1, chunk=7)  # state carried
    assert pieces == pytest.approx(whole, rel=1e-13)


def test_train_with_every_setting():
    done = []
    r = train_two_dependency(3, hidden=5, k1=2, cell="gru", steps=130, batch=4, lr=0.02, seed=3,
                             backend="numba", stretch=50, eval_batch=4, eval_steps=60,
                             progress=done.append)
    assert sum(done) == 130 and list(r.seen) == [50, 100, 130]   # stretches of 50 (k1 | 50)
    assert (r.cell, r.hidden, r.k1, r.k2, r.steps) == ("gru", 5, 2, 3, 130)
    assert r.model.backend == "numba" and r.model.rnn.hidden_size == 5
    assert set(r.memory) == {3, 8} and all(0 <= v <= 1 for v in r.memory.values())
    again = train_two_dependency(3, hidden=5, k1=2, cell="gru", steps=130, batch=4, lr=0.02,
                                 seed=3, backend="numpy", stretch=50, eval_batch=4, eval_steps=60)
    assert again.test_ce == pytest.approx(r.test_ce, rel=1e-10)  # numba == numpy
    m = task_model()                                               # every default
    assert (m.cell, m.rnn.hidden_size, m.vocab_size, m.rnn.num_layers) == ("rnn_tanh", 16, 2, 1)


def test_windows_that_reach_lag_3_learn_it():
    f = dependency_floors()
    mid = (f.nothing + f.first) / 2
    short = train_two_dependency(2, hidden=4, steps=3000, eval_steps=500, eval_batch=32)
    long = train_two_dependency(6, hidden=4, k1=3, steps=3000, eval_steps=500, eval_batch=32)
    assert short.test_ce > mid and long.test_ce < mid       # lag 3 reachable only in the second
    assert long.test_ce > f.both - 0.01                     # nothing beats the Bayes floor
    assert long.memory[3] > 0.95 and short.memory[3] < 0.8
    assert (short.k1, short.k2, long.k1, long.k2) == (2, 2, 3, 6)
    assert long.seen[-1] == 3000 and len(long.train_ce) == len(long.seen)


@pytest.mark.parametrize("study, flags, files", [
    ("twodep", ["--hidden", "3", "--windows", "2,4", "--steps", "120", "--eval-steps", "60",
                "--seeds", "0,1"], ["twodep.csv", "twodep_curves.csv", "twodep.png"]),
    ("truncation", ["--cells", "gru,rnn_tanh", "--T", "6", "--hidden", "3", "--batch", "2",
                    "--weight-scale", "1"], ["truncation.csv", "truncation.png"]),
    ("lags", ["--cells", "lstm", "--T", "7", "--hidden", "3", "--batch", "2",
              "--train-steps", "32", "--window", "4"], ["lags.csv", "lags.png"]),
])
def test_cli(tmp_path, capsys, study, flags, files):
    pytest.importorskip("matplotlib")
    assert main(["study", study, *flags, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in files:
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(tmp_path / files[0])))
    if study == "twodep":
        assert len(rows) == 4 and "learned" in out
        assert {r["verdict"] for r in rows} <= {"nothing", "t-3", "t-3, part of t-8",
                                                "t-3 and t-8"}
    elif study == "truncation":
        full = [r for r in rows if r["k2"] == "6"]          # k = T: the full gradient
        assert len(full) == 4 and all(abs(float(r["cosine"]) - 1) < 1e-12 for r in full)
    else:
        assert "parts sum to the BPTT gradient" in out and {r["phase"] for r in rows} == {
            "init", "trained"}


@pytest.mark.parametrize("study, flags, match", [
    ("twodep", ["--windows", "0,3"], "--windows: expected comma-separated ints >= 1"),
    ("twodep", ["--windows", "3,5", "--k1", "4"], "--k1: expected 1 <= k1 <= the smallest"),
    ("truncation", ["--weight-scale", "1,-2"], "--weight-scale: expected positive numbers"),
    ("lags", ["--cells", "lstm,nope"], "--cells: expected some of"),
])
def test_cli_refuses(tmp_path, capsys, study, flags, match):
    assert main(["study", study, *flags, "--out", str(tmp_path)]) == 2
    assert match in capsys.readouterr().err
