"""The online methods (minirnn.grad.online): each one's known answer, and a planted error
that each check catches by a wide margin.

Exact identities are asserted to 1e-12 relative in float64; a planted error (the same method
with one term dropped) must miss by more than 1e-4 relative, eight orders of magnitude
above the tolerance. The unbiasedness of the stochastic methods: _assert_unbiased below (the
criterion tests/test_study_uoro.py applies to UORO)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.grad import online as ol
from minirnn.grad._online_kf import KFRTRL, kronecker_factors
from minirnn.grad._online_trackers import (RFLO, DenseRTRL, EProp, SnAp, UOROTracker,
                                           direct_jacobian, structure)
from minirnn.grad.rtrl import rtrl_gradient, rtrl_online
from minirnn.grad.uoro import UOROEstimates, chi2_quantile, normal_quantile, uoro_gradients
from minirnn.cells import BUILTIN as CELL_NAMES
from minirnn.nn import make_recurrent

EXACT, PLANTED = 1e-12, 1e-4
CONFIGS = [(c, 0) for c in CELL_NAMES] + [("lstm", 2)]        # (cell, proj_size)


def _problem(cell, proj=0, T=6, B=2, I=3, H=4, seed=0, **kw):
    extra = {"proj_size": proj} if proj else {}
    model = make_recurrent(cell, I, H, seed=seed, **extra, **kw)
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal((T, B, I))
    y = rng.standard_normal((T, B, proj or H))
    if kw.get("batch_first"):
        x, y = x.transpose(1, 0, 2), y.transpose(1, 0, 2)
    return model, x, y


def _flat(grads, model):
    return np.concatenate([np.ravel(grads[k]) for k in model.params])


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _run_tracker(tracker_cls, model, x, y, mask=None, **kw):
    """online_gradient's loop with a tracker class of the test's making -> flat gradient."""
    st_ = ol.OnlineState(model, x.shape[1], ol._check_state(model, None, x.shape[1], False),
                         mask)
    tr = tracker_cls(st_, **kw)
    tr.allocate()
    g = np.zeros(st_.N)
    for t in range(x.shape[0]):
        tr.update(st_.advance(x[t]), None)
        g += ol._loss_and_grad(st_, tr, "squared_error", y[t], None)[2]
    return _flat(st_.unflatten(g), model)


def _exact(model, x, y, mask=None):
    """RTRL = BPTT (rtrl_gradient), 0 outside the mask (the masked-out weights are not
    parameters; test_a_mask_gives_... checks this against the dense gradient)."""
    g = rtrl_gradient(model, x, y).grads
    if mask is not None:
        g["weight_hh_l0"] = np.where(mask, g["weight_hh_l0"], 0.0)
    return _flat(g, model)


def _method(model, x, y, method, **kw):
    return _flat(ol.online_gradient(model, x, y, method=method, **kw).grads, model)


def _ring_mask(model):
    """Unit k hears unit k-1 only (every gate block): the reach of θ grows one unit a step."""
    w = model.params["weight_hh_l0"]
    H, G = w.shape[1], w.shape[0] // w.shape[1]
    block = np.roll(np.eye(H, dtype=bool), 1, axis=1)          # [k, k-1]
    return np.tile(block, (G, 1))


def _apply(model, mask):
    model.params["weight_hh_l0"][~mask] = 0.0
    return mask


# ---- RTRL through the online machinery ---------------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_rtrl_method_is_rtrl_gradient(cell, proj):
    """Every argument rtrl_gradient takes, the same numbers (rtrl_gradient = BPTT is
    tests/test_rtrl.py's)."""
    model, x, y = _problem(cell, proj, batch_first=True, bias=False)
    rng = np.random.default_rng(5)
    state = tuple(rng.standard_normal((2, n)) for n in ol.layer_layout(model).sizes)
    kw = dict(state=state, lengths=[6, 3], loss="projection")
    res = ol.online_gradient(model, x, y, method="rtrl", backend="numpy", **kw)
    ref = rtrl_gradient(model, x, y, **kw)
    assert _rel(_flat(res.grads, model), _flat(ref.grads, model)) <= EXACT
    assert res.loss == pytest.approx(ref.loss, rel=1e-12) and res.method == "rtrl"
    np.testing.assert_allclose(res.out, ref.out, rtol=1e-12, atol=1e-14)
    for a, b in zip(res.state, ref.state):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    plain = ol.online_gradient(model, x, y)                      # every optional one absent
    assert _rel(_flat(plain.grads, model), _exact(model, x, y)) <= EXACT


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_mask_gives_bptts_gradient_on_the_masked_weights_and_zero_elsewhere(cell):
    model, x, y = _problem(cell, T=5, H=5)
    mask = _apply(model, ol.recurrent_mask(model, 0.75, seed=2))
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
    model, x, y = _problem(cell, T=T, H=8)
    mask = _apply(model, _ring_mask(model))
    model.params["weight_hh_l0"][mask] *= 4.0                    # paths that carry weight
    exact = _exact(model, x, y, mask)
    st_ = ol.OnlineState(model, 2, ol._check_state(model, None, 2, False), mask)
    nnz = [ol.make_tracker(f"snap-{n}", st_).nnz for n in (1, T - 1, T)]
    assert nnz[0] < nnz[1] < nnz[2] < 0.7 * st_.S * st_.N       # not RTRL in disguise
    for n in (T, T + 3):
        assert _rel(_method(model, x, y, f"snap-{n}", mask=mask), exact) <= EXACT
    assert _rel(_method(model, x, y, f"snap-{T - 1}", mask=mask), exact) > PLANTED


@settings(max_examples=10, deadline=None)
@given(cell=st.sampled_from(CELL_NAMES), T=st.integers(1, 5), sparsity=st.floats(0.5, 0.95),
       seed=st.integers(0, 2**16))
def test_snap_n_at_least_T_is_rtrl_for_random_sparse_masks(cell, T, sparsity, seed):
    model, x, y = _problem(cell, T=T, H=6, seed=seed)
    mask = _apply(model, ol.recurrent_mask(model, sparsity, seed=seed))
    assert _rel(_method(model, x, y, f"snap-{T}", mask=mask), _exact(model, x, y, mask)) <= EXACT


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
    model, x, y = _problem(cell, T=7, H=5)
    mask = _apply(model, _diagonal_mask(model))
    model.params["weight_hh_l0"][mask] *= 3.0                    # a strong self-recurrence
    exact = _exact(model, x, y, mask)
    n = 2 if cell == "lstm" else 1
    assert _rel(_method(model, x, y, f"snap-{n}", mask=mask), exact) <= EXACT
    if cell == "lstm":
        assert _rel(_method(model, x, y, "snap-1", mask=mask), exact) > PLANTED

    class NoMemory(SnAp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    assert _rel(_run_tracker(NoMemory, model, x, y, mask, n=n), exact) > PLANTED


# ---- e-prop and RFLO at W_hh = 0 ---------------------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_eprop_is_rtrl_when_w_hh_is_zero(cell, proj):
    """J_t = Z_h W_hh + J_t^d: with W_hh = 0 the dropped term is 0 and e-prop's recursion is
    RTRL's (EProp's docstring). Planted: with W_hh back, or with J^d dropped on a gated cell
    (the LSTM's c and the GRU's z h), it misses by far."""
    model, x, y = _problem(cell, proj, T=7)
    exact_dense = _exact(model, x, y)
    assert _rel(_method(model, x, y, "e-prop"), exact_dense) > PLANTED
    model.params["weight_hh_l0"][...] = 0.0
    exact = _exact(model, x, y)
    assert _rel(_method(model, x, y, "e-prop"), exact) <= EXACT

    class NoTrace(EProp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    if cell in ("lstm", "gru"):
        assert _rel(_run_tracker(NoTrace, model, x, y), exact) > PLANTED


@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_rflo_is_rtrl_when_w_hh_is_zero_where_the_direct_jacobian_is_diagonal(cell, proj):
    """RFLO keeps diag(J_t^d). With W_hh = 0, J_t = J_t^d: 0 for Elman, diag(z) for the GRU,
    so RFLO is RTRL there; the LSTM's J^d has the c_{t-1} -> h_t entries RFLO drops, so it
    is not (by far), while e-prop is. Planted: a fixed decay instead of the cell's own
    (the published baseline's 0.9), or the GRU's leak dropped, misses by far."""
    model, x, y = _problem(cell, proj, T=7)
    model.params["weight_hh_l0"][...] = 0.0
    exact = _exact(model, x, y)
    err = _rel(_method(model, x, y, "rflo"), exact)
    if cell == "lstm":
        assert err > PLANTED
    else:
        assert err <= EXACT
        assert _rel(_method(model, x, y, "rflo", decay=0.9), exact) > PLANTED
    if cell.startswith("rnn"):                       # no leak: decay 0 is the cell's own
        assert _rel(_method(model, x, y, "rflo", decay=0.0), exact) <= EXACT

    class NoLeak(RFLO):                              # planted: the GRU's z-leak dropped
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    if cell == "gru":
        assert _rel(_run_tracker(NoLeak, model, x, y), exact) > PLANTED


def test_rflo_keeps_the_gru_leak_and_e_prop_the_lstm_cell():
    """What each trace propagates, read off its propagator on one step: RFLO diag(z) for the
    GRU; e-prop the LSTM's c block diag(f) and c -> h block diag(o (1 - tanh² c) f)."""
    from minirnn.cells import gru, lstm
    rng = np.random.default_rng(3)
    for cell, ref in (("gru", gru), ("lstm", lstm)):
        model, x, _ = _problem(cell, T=1, B=2, H=3)
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


# ---- the stochastic methods: unbiased, and a biased variant caught -----------------------------

def _estimates(tracker_cls, model, x, y, n, **kw):
    """n independent estimates of the gradient of one sequence: n copies, one per row."""
    xs, ys = np.repeat(x[:, :1], n, axis=1), np.repeat(y[:, :1], n, axis=1)
    st_ = ol.OnlineState(model, n, ol._check_state(model, None, n, False))
    tr = tracker_cls(st_, **kw)
    tr.allocate()
    est = np.zeros((n, st_.N))
    for t in range(x.shape[0]):
        tr.update(st_.advance(xs[t]), None)
        g_s = np.zeros((n, st_.S))
        g_s[:, :st_.P] = st_.output() - ys[t]
        est += tr.grads(g_s)
    return est


def _assert_unbiased(est, exact):
    """Hotelling's T² of the mean against χ²_r's 99.9% quantile, the error along the exact
    gradient within 3 standard errors, and every component within the Bonferroni bound
    (tests/test_study_uoro.py says why all three)."""
    e = UOROEstimates([], est, exact, exact)
    t2, rank = e.hotelling()
    assert t2 <= chi2_quantile(rank, 0.999), (t2, rank)
    assert abs(e.z_along_exact()) <= 3.0
    assert np.abs(e.z_scores()).max() <= normal_quantile(1 - 0.0005 / exact.size)


def _one_sequence_exact(model, x, y):
    """RTRL's gradient of the first sequence (the one _estimates copies)."""
    return _run_tracker(DenseRTRL, model, x[:, :1], y[:, :1])


@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_kf_rtrl_is_unbiased(cell, proj):
    model, x, y = _problem(cell, proj, T=5, H=3, I=2, seed=1)
    exact = _one_sequence_exact(model, x, y)
    est = _estimates(KFRTRL, model, x, y, 10_000, seed=11)
    _assert_unbiased(est, exact)


def test_kf_rtrl_without_its_memory_term_is_caught():
    """Planted: J_t A_{t-1} dropped (the estimate of Σ_t g_t M̄_t, truncation at one step)."""
    model, x, y = _problem("gru", T=5, H=3, I=2, seed=1)
    exact = _one_sequence_exact(model, x, y)

    class NoMemory(KFRTRL):
        def update(self, jac, keep):
            super().update(jac._replace(J=np.zeros_like(jac.J)), keep)
    with pytest.raises(AssertionError):
        _assert_unbiased(_estimates(NoMemory, model, x, y, 10_000, seed=11), exact)


def test_kf_rtrl_is_mujikas_algorithm_on_an_elman_cell():
    """Their single-A form: u = [x; h_{t-1}; 1; 1] (our two biases), A (H × H), D = diag(φ'),
    written here from the paper, with the same signs: the same estimates to round-off. (From
    a nonzero h_0: at h = 0 the W_hh block's M̄ is 0 and has no direction of its own, so its
    A starts at 0 where theirs starts at D: as unbiased, not the same numbers.)"""
    model, x, y = _problem("rnn_tanh", T=6, B=3, H=4, seed=2)
    B, H = 3, 4
    h = np.random.default_rng(8).standard_normal((B, H))
    got = _method(model, x, y, "kf-rtrl", seed=7, eps=1e-300, state=(h,))
    p = {k: model.params[f"{k}_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    rng = np.random.default_rng(7)
    A, u = np.zeros((B, H, H)), np.zeros((B, 3 + H + 2))
    g = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(6):
        ut = np.concatenate([x[t], h, np.ones((B, 2))], axis=1)
        h = np.tanh(x[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"])
        D = (1 - h * h)[:, :, None] * np.eye(H)
        JA = (D @ p["weight_hh"]) @ A
        c1, c2 = rng.integers(0, 2, size=(2, B)) * 2.0 - 1.0
        r1 = np.sqrt(np.linalg.norm(JA, axis=(1, 2)) / np.linalg.norm(u, axis=1).clip(1e-300))
        r1 = np.where(np.linalg.norm(u, axis=1) > 0, r1, 1.0)
        r2 = np.sqrt(np.linalg.norm(D, axis=(1, 2)) / np.linalg.norm(ut, axis=1))
        u = (c1 * r1)[:, None] * u + (c2 * r2)[:, None] * ut
        A = (c1 / r1)[:, None, None] * JA + (c2 / r2)[:, None, None] * D
        gw = np.einsum("bh,bhk,bm->km", h - y[t], A, u)          # (H, 3 + H + 2)
        g["weight_ih"] += gw[:, :3]
        g["weight_hh"] += gw[:, 3:3 + H]
        g["bias_ih"] += gw[:, 3 + H]
        g["bias_hh"] += gw[:, 4 + H]
    want = np.concatenate([g[k].ravel() for k in p])
    assert _rel(got, want) <= 1e-10


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_uoro_method_is_uoro_gradients_one_estimate(cell):
    model, x, y = _problem(cell, T=5, B=1, H=3, seed=4)
    est = uoro_gradients(model, x, y, n_samples=1, seed=9)           # L = Σ y · out
    got = ol.online_gradient(model, x, y, method="uoro", loss="projection", seed=9, eps=1e-7)
    want = est.as_dict(est.estimates[0])
    for k, v in want.items():
        np.testing.assert_allclose(got.grads[k], v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_uoro_tracker_is_unbiased_too(cell):
    model, x, y = _problem(cell, T=5, H=3, I=2, seed=1)
    exact = _one_sequence_exact(model, x, y)
    _assert_unbiased(_estimates(UOROTracker, model, x, y, 10_000, seed=3),
                     exact)


# ---- the trainer, the helpers and the refusals ---------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_trainer_with_rtrl_is_rtrl_online(cell, proj):
    model, x, y = _problem(cell, proj, T=5)
    twin, _, _ = _problem(cell, proj, T=5)
    ref = rtrl_online(twin, x, y, lr=0.05).losses
    tr = ol.OnlineTrainer(model, lr=0.05, method="rtrl", batch_size=2)
    got = [tr.step(x[t], y[t]) for t in range(5)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    for k in model.params:
        np.testing.assert_allclose(model.params[k], twin.params[k], rtol=1e-12, atol=1e-15)


def test_trainer_optional_arguments_and_each_method_learns_a_little():
    """Each optional argument present (and absent above); every method lowers a squared error
    it is trained on (the same sequence, 40 passes), the valid mask carries a finished row."""
    rng = np.random.default_rng(0)
    for method in ol.METHODS:
        model, x, y = _problem("gru", T=6, B=2, H=4, seed=3)
        y *= 0.3
        mask = _apply(model, ol.recurrent_mask(model, 0.5, seed=1))
        opts = {"uoro": dict(seed=1, eps=1e-6), "kf-rtrl": dict(seed=1, eps=1e-6),
                "rflo": dict(decay=None)}.get(method, {})
        tr = ol.OnlineTrainer(model, 0.02, method=method, loss="squared_error", batch_size=2,
                              state=(rng.standard_normal((2, 4)) * 0.1,), backend="numpy",
                              memory_limit=1 << 26, mask=mask, **opts)
        first = sum(tr.step(x[t], y[t], valid=[True, t < 4]) for t in range(6))
        for _ in range(40):
            last = sum(tr.step(x[t], y[t], valid=np.array([True, t < 4])) for t in range(6))
        assert last < first, method
        assert tr.state[0].shape == (2, 4) and not np.any(model.params["weight_hh_l0"][~mask])


def test_recurrent_mask_is_a_fixed_fraction_in_every_gate_block():
    model = make_recurrent("lstm", 2, 8, seed=0)
    m = ol.recurrent_mask(model, 0.75, seed=3)
    assert m.shape == (32, 8) and m.dtype == bool and m.sum() == 4 * 16
    assert all(np.array_equal(m[:8], m[k * 8:(k + 1) * 8]) for k in range(4))
    assert np.array_equal(m, ol.recurrent_mask(model, 0.75, seed=3))
    assert not np.array_equal(m, ol.recurrent_mask(model, 0.75))
    assert ol.recurrent_mask(model, 0).all()


def test_each_trackers_memory_is_its_pattern():
    """SnAp-1 of an Elman cell or a GRU keeps one entry per parameter (unit k's weights on
    h_k); of the LSTM two (h_u and c_u) for the i, f, g gates' weights and one (h_u) for the
    output gate's: 1.75; e-prop and RFLO keep SnAp-1's pattern; RTRL all S·N."""
    for cell, per_param in (("rnn_tanh", 1), ("gru", 1), ("lstm", 1.75)):
        model, _, _ = _problem(cell, H=5)
        s = ol.OnlineState(model, 3, ol._check_state(model, None, 3, False))
        sizes = {m: ol.make_tracker(m, s).numbers for m in ("rtrl", "snap-1", "rflo", "e-prop")}
        assert sizes["rtrl"] == 3 * s.S * s.N
        assert sizes["snap-1"] == sizes["rflo"] == sizes["e-prop"] == 3 * per_param * s.N
    J = structure(s).J                               # the LSTM's: dense on h, diagonal on c
    eye = np.eye(5, dtype=bool)
    assert J[:, :5].all() and np.array_equal(J[:, 5:], np.vstack([eye, eye]))


def test_refusals_name_the_argument():
    model, x, y = _problem("rnn_tanh")
    cases = [(dict(method="snap-0"), ValueError, "method: expected one of"),
             (dict(method="bptt"), ValueError, "method:"),
             (dict(method="rflo", seed=1), TypeError, "seed: not an option"),
             (dict(method="uoro", seed=-1), ValueError, "seed: expected an int"),
             (dict(method="uoro", eps=0), ValueError, "eps: expected a positive"),
             (dict(method="rflo", decay=1.5), ValueError, "decay: expected None or"),
             (dict(backend="numba"), ValueError, "backend: expected None or 'numpy'"),
             (dict(mask=np.ones((4, 4))), TypeError, "mask: expected a bool array"),
             (dict(mask=np.ones((3, 4), bool)), ValueError, "mask: expected shape"),
             (dict(mask=np.zeros((4, 4), bool)), ValueError, "outside the mask"),
             (dict(method="snap-1", memory_limit=1000), ValueError, "memory_limit=1000")]
    for kw, err, msg in cases:
        with pytest.raises(err, match=msg):
            ol.online_gradient(model, x, y, **kw)
    with pytest.raises(ValueError, match="num_layers=1"):
        ol.online_gradient(make_recurrent("gru", 3, 4, num_layers=2), x, y)
    with pytest.raises(ValueError, match="sparsity: expected"):
        ol.recurrent_mask(model, 1.0)
    with pytest.raises(ValueError, match="lr: expected"):
        ol.OnlineTrainer(model, -1.0)
    with pytest.raises(ValueError, match="backend"):
        ol.OnlineTrainer(model, 0.1, backend="numba")


def test_kf_and_eprop_refuse_a_cell_outside_their_assumption():
    """A weight acting on two vectors has a rank-two M̄: KF-RTRL refuses; a W_hh Jacobian that
    is not Z_h ⊗ h_{t-1}: e-prop/RFLO refuse (both judged on the step's numbers)."""
    rng = np.random.default_rng(0)
    z, v = rng.standard_normal((2, 6)), rng.standard_normal((2, 4))
    Jp = z[:, :, None] * v[:, None, :]
    z1, v1 = kronecker_factors(Jp)
    np.testing.assert_allclose(z1[:, :, None] * v1[:, None, :], Jp, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(z1, axis=1), 1.0)
    with pytest.raises(ValueError, match="KF-RTRL is not defined"):
        kronecker_factors(Jp + rng.standard_normal((2, 6, 1)) * rng.standard_normal((2, 1, 4)))
    model, x, _ = _problem("rnn_tanh", B=2)
    s = ol.OnlineState(model, 2, ol._check_state(model, None, 2, False))
    s.advance(x[0])
    jac = s.advance(x[1])
    bad = dict(jac.per_param, weight_hh=jac.per_param["weight_hh"] * 1.5)
    with pytest.raises(ValueError, match="e-prop and RFLO need W_hh"):
        direct_jacobian(jac._replace(per_param=bad), s.P, check=True)


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
    bptt = _flat(model.grads, model)
    exact = _method(model, x, y, "rtrl")
    assert _rel(exact, bptt) <= EXACT
    assert _rel(_method(model, x, y, "snap-1"), exact) <= EXACT

    class NoMemory(SnAp):
        def propagator(self, jac):
            return np.zeros_like(jac.J)
    assert _rel(_run_tracker(NoMemory, model, x, y, n=1), exact) > PLANTED
    for method in ("uoro", "kf-rtrl"):
        g = _method(model, x, y, method, seed=1)
        assert g.shape == exact.shape and np.all(np.isfinite(g))
    for method in ("e-prop", "rflo"):
        with pytest.raises(ValueError, match="need W_hh to be a matrix"):
            ol.online_gradient(model, x, y, method=method)


def test_kf_rtrl_is_unbiased_on_the_registered_cell(diagonal_cell):
    model = make_recurrent(diagonal_cell.name, 2, 3, seed=4)
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 1, 2)), rng.standard_normal((5, 1, 3))
    exact = _one_sequence_exact(model, x, y)
    _assert_unbiased(_estimates(KFRTRL, model, x, y, 10_000, seed=2), exact)


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
        x, y = _problem("rnn_tanh", I=2, H=3)[1:]
        model.zero_grad()
        model.backward(model.forward(x)[0] - y)
        assert _rel(_method(model, x, y, "rtrl"), _flat(model.grads, model)) <= EXACT
        assert _rel(_method(model, x, y, "snap-3"), _flat(model.grads, model)) <= EXACT
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
    model, x, y = _problem(cell, proj, T=4, B=2)
    for method in ol.METHODS:
        res = ol.online_gradient(model, x[:, :0], y[:, :0], method=method)
        assert res.out.shape == (4, 0, proj or 4) and res.loss == 0.0
        assert all(g.shape == model.params[k].shape and not g.any()
                   for k, g in res.grads.items())
        with pytest.raises(ValueError, match="x: expected at least one time step, got T=0"):
            ol.online_gradient(model, x[:0], y[:0], method=method)
