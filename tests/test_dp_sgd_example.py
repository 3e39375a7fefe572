"""examples/dp_sgd_names.py: its per-example gradients against the classifier's own backward
run on each example alone, its flat clipping against a known answer, the accountant's two
paths, and the --quick run's printout (what it reports, counted)."""
from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.nn.layers import Linear
from minirnn.nn.models import SequenceClassifier
from minirnn.testing import assert_close

_path = Path(__file__).resolve().parents[1] / "examples" / "dp_sgd_names.py"
_spec = importlib.util.spec_from_file_location("dp_sgd_names", _path)
dp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dp)


def _one_alone(model, tokens, n, y):
    """Example's cross-entropy gradient by the classifier's own forward and backward, the
    example run alone at its own length (no padding) -> {name: gradient}, loss."""
    model.zero_grad()
    logits = model.forward(tokens[None, :n], np.array([n]))[0]            # (C,)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    d = p.copy()
    d[y] -= 1.0
    model.backward(d[None])
    return {k: g.copy() for k, _, g in model.named_parameters()}, -np.log(p[y])


@settings(max_examples=12, deadline=None)
@given(cell=st.sampled_from(["lstm", "gru", "rnn_tanh", "rnn_relu"]), layers=st.integers(1, 2),
       bidirectional=st.booleans(), backend=st.sampled_from(["numpy", "numba"]),
       B=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_each_example_is_its_own_backward(cell, layers, bidirectional, backend, B, seed):
    """g_b of every parameter (recurrent layer and head) equals the model's backward of
    example b alone, float64, within 1e-12; and the losses are each example's."""
    rng = np.random.default_rng(seed)
    V, C, T = 7, 4, 6
    m = SequenceClassifier(V, C, 5, cell=cell, num_layers=layers, bidirectional=bidirectional,
                           seed=seed, backend=backend)
    lengths = rng.integers(1, T + 1, size=B)
    tokens = rng.integers(0, V, size=(B, T))
    y = rng.integers(0, C, size=B)
    grads, losses = dp.per_example_gradients(m, tokens, lengths, y)
    names = [k for k, _, _ in m.named_parameters()]
    assert sorted(grads) == sorted(names)
    for b in range(B):
        want, loss = _one_alone(m, tokens[b], int(lengths[b]), int(y[b]))
        assert_close(losses[b], loss, rtol=1e-12, name=f"loss[{b}]")
        for k in names:
            assert grads[k].shape == (B,) + want[k].shape
            assert_close(grads[k][b], want[k], rtol=1e-12, atol=1e-14, name=f"{k}[{b}]")


def test_the_head_is_linear_backward_row_by_row():
    rng = np.random.default_rng(1)
    lin = Linear(5, 3, seed=2)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    got = dp.linear_per_sample_grads(x, dy)
    for b in range(4):
        lin.zero_grad()
        lin.forward(x[b:b + 1])
        lin.backward(dy[b:b + 1])
        assert_close(got["weight"][b], lin.grads["weight"], rtol=1e-14, name=f"weight[{b}]")
        assert_close(got["bias"][b], lin.grads["bias"], rtol=1e-14, name=f"bias[{b}]")


def test_flat_clipping_scales_each_whole_gradient():
    """Known answer: example 0 has norm 5 over both parameters (3 in one, 4 in the other), so
    with C = 1 both its parts are scaled by 1/5 -- clipping each parameter on its own would
    give 1 + 1 instead. Example 1 (norm 0.5) is left as it is."""
    grads = {"a": np.array([[3.0, 0.0], [0.3, 0.0]]),      # (B=2, 2)
             "b": np.array([[4.0], [0.4]])}                 # (B=2, 1)
    summed, norms = dp.clip_and_sum(grads, 1.0)
    assert_close(norms, np.array([5.0, 0.5]), rtol=1e-15, name="norms")
    scale = 1.0 / (5.0 + dp.EPS_NORM)
    assert_close(summed["a"], np.array([3.0 * scale + 0.3, 0.0]), rtol=1e-15, name="a")
    assert_close(summed["b"], np.array([4.0 * scale + 0.4]), rtol=1e-15, name="b")


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 6), clip=st.floats(0.01, 10.0), seed=st.integers(0, 2**31 - 1))
def test_every_clipped_gradient_is_within_the_bound(B, clip, seed):
    rng = np.random.default_rng(seed)
    grads = {"w": rng.standard_normal((B, 3, 2)) * rng.exponential(3.0, (B, 1, 1)),
             "v": rng.standard_normal((B, 4))}
    for b in range(B):                       # each example alone: its clipped vector
        one = {k: g[b:b + 1] for k, g in grads.items()}
        summed, norms = dp.clip_and_sum(one, clip)
        flat = np.concatenate([s.ravel() for s in summed.values()])
        assert np.linalg.norm(flat) <= clip * (1 + 1e-12)
        if norms[0] <= clip:                 # within the bound: untouched (up to 1e-6 / C)
            assert_close(flat, np.concatenate([one[k][0].ravel() for k in one]), rtol=1e-5,
                         name="unclipped")


def test_epsilon_without_the_accountant_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)          # import opacus -> ImportError
    monkeypatch.setitem(sys.modules, "opacus.accountants", None)
    assert dp.epsilon(1.0, 0.01, 100, 1e-5) is None


def test_epsilon_is_the_accountants_step_by_step():
    """The history set at once is what stepping the accountant records; more noise, less ε."""
    pytest.importorskip("opacus")
    import warnings
    from opacus.accountants import RDPAccountant
    acc = RDPAccountant()
    for _ in range(40):
        acc.step(noise_multiplier=1.1, sample_rate=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = acc.get_epsilon(1e-5)
    assert_close(dp.epsilon(1.1, 0.02, 40, 1e-5), want, rtol=1e-12, name="epsilon")
    assert dp.epsilon(2.0, 0.02, 40, 1e-5) < want < dp.epsilon(0.7, 0.02, 40, 1e-5)


def read_report(text):
    """The numbers the run prints -> dict; refuses a printout that lacks any of them."""
    pats = {"n_train": r"names: (\d+) training names",
            "steps": r"(\d+) steps per epoch, (\d+) epochs = (\d+) steps",
            "public": r"test accuracy non-private ([\d.]+)",
            "private": r"test accuracy DP-SGD\s+([\d.]+)",
            "clipped": r"(\d+) of (\d+) per-example gradients clipped",
            "privacy": r"privacy: (?:ε = ([\d.]+) at δ = ([\de.-]+)|noise multiplier σ = "
                       r"([\d.]+))"}
    found = {k: re.search(p, text) for k, p in pats.items()}
    missing = [k for k, f in found.items() if f is None]
    if missing:
        raise AssertionError(f"the run printed no {missing}:\n{text}")
    return {k: f.groups() for k, f in found.items()}


def test_the_report_reader_fails_on_an_empty_printout():
    with pytest.raises(AssertionError, match="printed no"):
        read_report("")


@pytest.mark.slow
def test_quick_run_reports_both_accuracies_and_the_privacy(capsys):
    dp.main(["--quick", "--no-progress"])
    text = capsys.readouterr().out
    r = read_report(text)
    from minirnn.tutorials.data import load_names, split_names
    n = len(split_names(load_names()[1], seed=0)["train"][::8])
    assert int(r["n_train"][0]) == n
    per_epoch, epochs, steps = map(int, r["steps"])
    assert epochs == 2 and steps == per_epoch * epochs and per_epoch == round(n / 64)
    assert len(re.findall(r"\[non-private\] epoch", text)) == len(
        re.findall(r"\[dp-sgd\] epoch", text)) == epochs
    for acc in (r["public"][0], r["private"][0]):
        assert 0.0 <= float(acc) <= 1.0
    clipped, seen = map(int, r["clipped"])
    assert 0 <= clipped <= seen and abs(seen - epochs * n) < 0.2 * epochs * n   # Poisson
    eps, delta, sigma = r["privacy"]
    if importlib.util.find_spec("opacus") is not None:
        assert eps is not None and 0 < float(eps) < math.inf and float(delta) == 1e-5
    else:
        assert float(sigma) == 0.8
