"""The online methods on a cell registered at run time through the public contract, and on
degenerate input as the other derivative tools."""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn.grad import online as ol
from minirnn.grad._online_kf import KFRTRL
from minirnn.grad._online_trackers import SnAp
from minirnn.nn import make_recurrent

from tests.helpers.online import (CONFIGS, EXACT, PLANTED, assert_unbiased, estimates, flat,
                                  method_gradient, one_sequence_exact, problem, rel, run_tracker)


# ---- a cell registered at run time (the public contract) -----------------------------------------

class DiagonalLinear(minirnn.CellSpec):
    """A cell minirnn does not ship, registered through minirnn.register_cell: a diagonal
    linear recurrence (as in LRU- and RTU-like cells; u = weight_hh is a vector),
        h_t = u ⊙ h_{t-1} + tanh(x_t W_ih^T + b_ih + b_hh).
    It brings no step_jacobians: the contract derives them from step_backward, and the online
    methods read them through cell_step like any cell's."""
    name = "diagonal_linear_online_test"
    gate_names = ("a",)

    def param_shapes(self, input_size, hidden_size, proj_size=0):
        return dict(weight_ih=(hidden_size, input_size), weight_hh=(hidden_size,),
                    bias_ih=(hidden_size,), bias_hh=(hidden_size,))

    def step_forward(self, x_t, state, p):
        drive = x_t @ p["weight_ih"].T
        if p.get("bias_ih") is not None:
            drive = drive + (p["bias_ih"] + p["bias_hh"])
        g = np.tanh(drive)                                              # (B, H)
        return (p["weight_hh"] * state[0] + g,), (x_t, state[0], g)

    def step_backward(self, cache_t, d_state, p, per_sample=False):
        x_t, h_prev, g = cache_t
        dh = d_state[0]
        da = dh * (1.0 - g * g)                                         # (B, H)
        per = dict(weight_ih=da[:, :, None] * x_t[:, None, :], weight_hh=dh * h_prev,
                   bias_ih=da, bias_hh=da)
        grads = {n: (v.copy() if per_sample else v.sum(0)) for n, v in per.items()}
        if p.get("bias_ih") is None:
            grads["bias_ih"] = grads["bias_hh"] = None
        return da @ p["weight_ih"], (dh * p["weight_hh"],), grads


@pytest.fixture(scope="module")
def diagonal_cell():
    spec = minirnn.register_cell(DiagonalLinear())
    yield spec
    minirnn.cells.unregister_cell(spec.name)


def test_a_registered_diagonal_cell_gets_every_method_and_snap1_is_rtrl(diagonal_cell):
    """RTRL through the derived step Jacobians is BPTT (the cell's own backward); SnAp-1 is
    RTRL, since J_t is diagonal and never leaves the pattern; planted: without J_t M_{t-1} it
    misses by far. UORO and KF-RTRL run on it (u's Jacobian is a (H × 1) block), e-prop and
    RFLO refuse it, naming what they need (a W_hh matrix on h_{t-1})."""
    model = make_recurrent(diagonal_cell.name, 3, 4, seed=2)
    model.params["weight_hh_l0"][...] = [0.95, -0.9, 0.7, 0.99]      # long self-loops
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((7, 2, 3)), rng.standard_normal((7, 2, 4))
    model.zero_grad()
    out = model.forward(x)[0]
    model.backward(out - y)                                          # L = ½ Σ |out - y|²
    bptt = flat(model.grads, model)
    exact = method_gradient(model, x, y, "rtrl")
    assert rel(exact, bptt) <= EXACT
    assert rel(method_gradient(model, x, y, "snap-1"), exact) <= EXACT

    class NoMemory(SnAp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    assert rel(run_tracker(NoMemory, model, x, y, n=1), exact) > PLANTED
    for method in ("uoro", "kf-rtrl"):
        g = method_gradient(model, x, y, method, seed=1)
        assert g.shape == exact.shape and np.all(np.isfinite(g))
    for method in ("e-prop", "rflo"):
        with pytest.raises(ValueError, match="need W_hh to be a matrix"):
            ol.online_gradient(model, x, y, method=method)


def test_kf_rtrl_is_unbiased_on_the_registered_cell(diagonal_cell):
    model = make_recurrent(diagonal_cell.name, 2, 3, seed=4)
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 1, 2)), rng.standard_normal((5, 1, 3))
    exact = one_sequence_exact(model, x, y)
    assert_unbiased(estimates(KFRTRL, model, x, y, 10_000, seed=2), exact)


class TiedTwice(minirnn.CellSpec):
    """A registered cell whose W_hh meets two vectors in a step (h and h²), no biases:
        h_t = tanh(x W_ih^T + h W_hh^T) ⊙ σ(h² W_hh^T).
    Its M̄ for W_hh is Z1 ⊗ h + Z2 ⊗ h², of rank two: KF-RTRL is not defined for it."""
    name = "tied_twice_online_test"
    gate_names = ("a",)
    param_names = ("weight_ih", "weight_hh")

    def step_forward(self, x_t, state, p):
        h = state[0]
        g, s = np.tanh(x_t @ p["weight_ih"].T + h @ p["weight_hh"].T), \
            1.0 / (1.0 + np.exp(-(h * h) @ p["weight_hh"].T))
        return (g * s,), (x_t, h, g, s)

    def step_backward(self, cache_t, d_state, p):
        x_t, h, g, s = cache_t
        d1 = d_state[0] * s * (1.0 - g * g)                              # at x W_ih^T + h W_hh^T
        d2 = d_state[0] * g * s * (1.0 - s)                              # at h² W_hh^T
        grads = {"weight_ih": d1.T @ x_t, "weight_hh": d1.T @ h + d2.T @ (h * h)}
        return d1 @ p["weight_ih"], (d1 @ p["weight_hh"] + 2 * h * (d2 @ p["weight_hh"]),), grads


def test_kf_rtrl_and_e_prop_refuse_a_weight_that_meets_two_vectors():
    spec = minirnn.register_cell(TiedTwice())
    try:
        model = make_recurrent(spec.name, 2, 3, seed=1)
        x, y = problem("rnn_tanh", I=2, H=3)[1:]
        model.zero_grad()
        model.backward(model.forward(x)[0] - y)
        assert rel(method_gradient(model, x, y, "rtrl"), flat(model.grads, model)) <= EXACT
        assert rel(method_gradient(model, x, y, "snap-3"), flat(model.grads, model)) <= EXACT
        with pytest.raises(ValueError, match="KF-RTRL is not defined for this cell: "
                                             "∂s_t/∂weight_hh is not a Kronecker product"):
            ol.online_gradient(model, x, y, method="kf-rtrl")
        with pytest.raises(ValueError, match="e-prop and RFLO need W_hh"):
            ol.online_gradient(model, x, y, method="e-prop")
    finally:
        minirnn.cells.unregister_cell(spec.name)


@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_degenerate_input_as_the_other_derivative_tools(cell, proj):
    """An empty batch gives zero gradients and empty outputs with every method; T = 0 is
    refused with the modules' own message (tests/grad/test_degenerate.py's rules)."""
    model, x, y = problem(cell, proj, T=4, B=2)
    for method in ol.METHODS:
        res = ol.online_gradient(model, x[:, :0], y[:, :0], method=method)
        assert res.out.shape == (4, 0, proj or 4) and res.loss == 0.0
        assert all(g.shape == model.params[k].shape and not g.any()
                   for k, g in res.grads.items())
        with pytest.raises(ValueError, match="x: expected at least one time step, got T=0"):
            ol.online_gradient(model, x[:0], y[:0], method=method)
