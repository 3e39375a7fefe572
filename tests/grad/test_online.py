"""The online methods (minirnn.grad.online): each one's known answer, and a planted error
that each check catches by a wide margin.

Exact identities are asserted to 1e-12 relative in float64; a planted error (the same method
with one term dropped) must miss by more than 1e-4 relative, eight orders of magnitude
above the tolerance. The unbiasedness of the stochastic methods: assert_unbiased in tests/helpers/online.py (the
criterion tests/studies/test_study_uoro.py applies to UORO)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.grad import online as ol
from minirnn.grad._online_trackers import RFLO, EProp, SnAp
from minirnn.grad.rtrl import rtrl_gradient
from minirnn.cells import BUILTIN as CELL_NAMES

from tests.helpers.online import (CONFIGS, EXACT, PLANTED, apply_mask, exact_gradient, flat,
                                  method_gradient, problem, rel, ring_mask, run_tracker)


# ---- RTRL through the online machinery ---------------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_rtrl_method_is_rtrl_gradient(cell, proj):
    """Every argument rtrl_gradient takes, the same numbers (rtrl_gradient = BPTT is
    tests/grad/test_rtrl.py's)."""
    model, x, y = problem(cell, proj, batch_first=True, bias=False)
    rng = np.random.default_rng(5)
    state = tuple(rng.standard_normal((2, n)) for n in ol.layer_layout(model).sizes)
    kw = dict(state=state, lengths=[6, 3], loss="projection")
    res = ol.online_gradient(model, x, y, method="rtrl", backend="numpy", **kw)
    ref = rtrl_gradient(model, x, y, **kw)
    assert rel(flat(res.grads, model), flat(ref.grads, model)) <= EXACT
    assert res.loss == pytest.approx(ref.loss, rel=1e-12) and res.method == "rtrl"
    np.testing.assert_allclose(res.out, ref.out, rtol=1e-12, atol=1e-14)
    for a, b in zip(res.state, ref.state):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    plain = ol.online_gradient(model, x, y)                      # every optional one absent
    assert rel(flat(plain.grads, model), exact_gradient(model, x, y)) <= EXACT


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_mask_gives_bptts_gradient_on_the_masked_weights_and_zero_elsewhere(cell):
    model, x, y = problem(cell, T=5, H=5)
    mask = apply_mask(model, ol.recurrent_mask(model, 0.75, seed=2))
    res = ol.online_gradient(model, x, y, method="rtrl", mask=mask).grads
    full = rtrl_gradient(model, x, y).grads                      # the dense gradient (= BPTT)
    np.testing.assert_allclose(res["weight_hh_l0"][mask], full["weight_hh_l0"][mask],
                               rtol=1e-12, atol=1e-15)
    assert not np.any(res["weight_hh_l0"][~mask]) and np.any(full["weight_hh_l0"][~mask])
    for method in ("snap-1", "uoro", "kf-rtrl", "rflo", "e-prop"):
        g = ol.online_gradient(model, x, y, method=method, mask=mask).grads["weight_hh_l0"]
        assert not np.any(g[~mask]), method


# ---- SnAp ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELL_NAMES)
def test_snap_n_with_n_at_least_T_is_rtrl_and_n_below_T_is_not(cell):
    """On a ring of units the reach of a parameter grows one unit a step, so P_n is far from
    full: SnAp-T keeps every entry RTRL has after T steps, SnAp-(T-1) drops the last step's."""
    T = 4
    model, x, y = problem(cell, T=T, H=8)
    mask = apply_mask(model, ring_mask(model))
    model.params["weight_hh_l0"][mask] *= 4.0                    # paths that carry weight
    exact = exact_gradient(model, x, y, mask)
    st_ = ol.OnlineState(model, 2, ol._check_state(model, None, 2, False), mask)
    nnz = [ol.make_tracker(f"snap-{n}", st_).nnz for n in (1, T - 1, T)]
    assert nnz[0] < nnz[1] < nnz[2] < 0.7 * st_.S * st_.N       # not RTRL in disguise
    for n in (T, T + 3):
        assert rel(method_gradient(model, x, y, f"snap-{n}", mask=mask), exact) <= EXACT
    assert rel(method_gradient(model, x, y, f"snap-{T - 1}", mask=mask), exact) > PLANTED


@settings(max_examples=10, deadline=None)
@given(cell=st.sampled_from(CELL_NAMES), T=st.integers(1, 5), sparsity=st.floats(0.5, 0.95),
       seed=st.integers(0, 2**16))
def test_snap_n_at_least_T_is_rtrl_for_random_sparse_masks(cell, T, sparsity, seed):
    model, x, y = problem(cell, T=T, H=6, seed=seed)
    mask = apply_mask(model, ol.recurrent_mask(model, sparsity, seed=seed))
    assert rel(method_gradient(model, x, y, f"snap-{T}", mask=mask), exact_gradient(model, x, y, mask)) <= EXACT


def _diagonal_mask(model):
    w = model.params["weight_hh_l0"]
    return np.tile(np.eye(w.shape[1], dtype=bool), (w.shape[0] // w.shape[1], 1))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_snap1_is_rtrl_for_a_diagonal_recurrence(cell):
    """W_hh = diag per gate block (IndRNN-like). Elman and GRU: J_t is diagonal, so it never
    leaves SnAp-1's pattern and SnAp-1 is RTRL. The LSTM's state is (h_u, c_u) per unit and
    its J_t is 2 × 2 per unit: an output-gate weight touches only h_u at once and reaches c_u
    a step later, so SnAp-1 misses that and SnAp-2 (closed per unit) is RTRL. Planted: SnAp
    without J_t M_{t-1} (the immediate Jacobian alone) misses by far."""
    model, x, y = problem(cell, T=7, H=5)
    mask = apply_mask(model, _diagonal_mask(model))
    model.params["weight_hh_l0"][mask] *= 3.0                    # a strong self-recurrence
    exact = exact_gradient(model, x, y, mask)
    n = 2 if cell == "lstm" else 1
    assert rel(method_gradient(model, x, y, f"snap-{n}", mask=mask), exact) <= EXACT
    if cell == "lstm":
        assert rel(method_gradient(model, x, y, "snap-1", mask=mask), exact) > PLANTED

    class NoMemory(SnAp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    assert rel(run_tracker(NoMemory, model, x, y, mask, n=n), exact) > PLANTED


# ---- e-prop and RFLO at W_hh = 0 ---------------------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_eprop_is_rtrl_when_w_hh_is_zero(cell, proj):
    """J_t = Z_h W_hh + J_t^d: with W_hh = 0 the dropped term is 0 and e-prop's recursion is
    RTRL's (EProp's docstring). Planted: with W_hh back, or with J^d dropped on a gated cell
    (the LSTM's c and the GRU's z h), it misses by far."""
    model, x, y = problem(cell, proj, T=7)
    exact_dense = exact_gradient(model, x, y)
    assert rel(method_gradient(model, x, y, "e-prop"), exact_dense) > PLANTED
    model.params["weight_hh_l0"][...] = 0.0
    exact = exact_gradient(model, x, y)
    assert rel(method_gradient(model, x, y, "e-prop"), exact) <= EXACT

    class NoTrace(EProp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    if cell in ("lstm", "gru"):
        assert rel(run_tracker(NoTrace, model, x, y), exact) > PLANTED


@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_rflo_is_rtrl_when_w_hh_is_zero_where_the_direct_jacobian_is_diagonal(cell, proj):
    """RFLO keeps diag(J_t^d). With W_hh = 0, J_t = J_t^d: 0 for Elman, diag(z) for the GRU,
    so RFLO is RTRL there; the LSTM's J^d has the c_{t-1} -> h_t entries RFLO drops, so it
    is not (by far), while e-prop is. Planted: a fixed decay instead of the cell's own
    (the published baseline's 0.9), or the GRU's leak dropped, misses by far."""
    model, x, y = problem(cell, proj, T=7)
    model.params["weight_hh_l0"][...] = 0.0
    exact = exact_gradient(model, x, y)
    err = rel(method_gradient(model, x, y, "rflo"), exact)
    if cell == "lstm":
        assert err > PLANTED
    else:
        assert err <= EXACT
        assert rel(method_gradient(model, x, y, "rflo", decay=0.9), exact) > PLANTED
    if cell.startswith("rnn"):                       # no leak: decay 0 is the cell's own
        assert rel(method_gradient(model, x, y, "rflo", decay=0.0), exact) <= EXACT

    class NoLeak(RFLO):                              # planted: the GRU's z-leak dropped
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    if cell == "gru":
        assert rel(run_tracker(NoLeak, model, x, y), exact) > PLANTED


def test_rflo_keeps_the_gru_leak_and_e_prop_the_lstm_cell():
    """What each trace propagates, read off its propagator on one step: RFLO diag(z) for the
    GRU; e-prop the LSTM's c block diag(f) and c -> h block diag(o (1 - tanh² c) f)."""
    from minirnn.cells import gru, lstm
    rng = np.random.default_rng(3)
    for cell, ref in (("gru", gru), ("lstm", lstm)):
        model, x, _ = problem(cell, T=1, B=2, H=3)
        s = ol.OnlineState(model, 2, tuple(rng.standard_normal((2, 3))
                                           for _ in model.spec.state_names))
        p = s.layer_params()
        h0 = s.state
        jac = s.advance(x[0])
        if cell == "gru":
            z = ref.split_gates(ref.step_forward(x[0], *h0, *p.values())[1])[1]
            got = RFLO(s).propagator(jac)
            np.testing.assert_allclose(got, z[:, :, None] * np.eye(3), rtol=1e-12, atol=1e-15)
        else:
            _, c, gates = ref.step_forward(x[0], *h0, *[p[k] for k in ("weight_ih", "weight_hh",
                                                                      "bias_ih", "bias_hh")])
            i, f, g, o = ref.split_gates(gates)
            Jd = EProp(s).propagator(jac)
            np.testing.assert_allclose(Jd[:, 3:, 3:], f[:, :, None] * np.eye(3), rtol=1e-12)
            np.testing.assert_allclose(Jd[:, :3, 3:], (o * (1 - np.tanh(c) ** 2) * f)[:, :, None]
                                       * np.eye(3), rtol=1e-12)
            assert not np.any(Jd[:, :, :3])


