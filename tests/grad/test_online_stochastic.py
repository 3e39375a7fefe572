"""The online methods that estimate (KF-RTRL, UORO): unbiased, and a biased variant caught;
the trainer, the helpers and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.grad import online as ol
from minirnn.grad._online_kf import KFRTRL, kronecker_factors
from minirnn.grad._online_trackers import UOROTracker, direct_jacobian, structure
from minirnn.grad.rtrl import rtrl_online
from minirnn.grad.uoro import uoro_gradients
from minirnn.cells import BUILTIN as CELL_NAMES
from minirnn.nn import make_recurrent

from tests.helpers.online import (CONFIGS, apply_mask, assert_unbiased, estimates, method_gradient,
                                  one_sequence_exact, problem, rel)


@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_kf_rtrl_is_unbiased(cell, proj):
    model, x, y = problem(cell, proj, T=5, H=3, I=2, seed=1)
    exact = one_sequence_exact(model, x, y)
    est = estimates(KFRTRL, model, x, y, 10_000, seed=11)
    assert_unbiased(est, exact)


def test_kf_rtrl_without_its_memory_term_is_caught():
    """Planted: J_t A_{t-1} dropped (the estimate of Σ_t g_t M̄_t, truncation at one step)."""
    model, x, y = problem("gru", T=5, H=3, I=2, seed=1)
    exact = one_sequence_exact(model, x, y)

    class NoMemory(KFRTRL):
        def update(self, jac, keep):
            super().update(jac._replace(J=np.zeros_like(jac.J)), keep)
    with pytest.raises(AssertionError):
        assert_unbiased(estimates(NoMemory, model, x, y, 10_000, seed=11), exact)


def test_kf_rtrl_is_mujikas_algorithm_on_an_elman_cell():
    """Their single-A form: u = [x; h_{t-1}; 1; 1] (our two biases), A (H × H), D = diag(φ'),
    written here from the paper, with the same signs: the same estimates to round-off. (From
    a nonzero h_0: at h = 0 the W_hh block's M̄ is 0 and has no direction of its own, so its
    A starts at 0 where theirs starts at D: as unbiased, not the same numbers.)"""
    model, x, y = problem("rnn_tanh", T=6, B=3, H=4, seed=2)
    B, H = 3, 4
    h = np.random.default_rng(8).standard_normal((B, H))
    got = method_gradient(model, x, y, "kf-rtrl", seed=7, eps=1e-300, state=(h,))
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
    assert rel(got, want) <= 1e-10


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_uoro_method_is_uoro_gradients_one_estimate(cell):
    model, x, y = problem(cell, T=5, B=1, H=3, seed=4)
    est = uoro_gradients(model, x, y, n_samples=1, seed=9)           # L = Σ y · out
    got = ol.online_gradient(model, x, y, method="uoro", loss="projection", seed=9, eps=1e-7)
    want = est.as_dict(est.estimates[0])
    for k, v in want.items():
        np.testing.assert_allclose(got.grads[k], v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_uoro_tracker_is_unbiased_too(cell):
    model, x, y = problem(cell, T=5, H=3, I=2, seed=1)
    exact = one_sequence_exact(model, x, y)
    assert_unbiased(estimates(UOROTracker, model, x, y, 10_000, seed=3),
                     exact)


# ---- the trainer, the helpers and the refusals ---------------------------------------------------

@pytest.mark.parametrize("cell, proj", CONFIGS)
def test_trainer_with_rtrl_is_rtrl_online(cell, proj):
    model, x, y = problem(cell, proj, T=5)
    twin, _, _ = problem(cell, proj, T=5)
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
        model, x, y = problem("gru", T=6, B=2, H=4, seed=3)
        y *= 0.3
        mask = apply_mask(model, ol.recurrent_mask(model, 0.5, seed=1))
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
        model, _, _ = problem(cell, H=5)
        s = ol.OnlineState(model, 3, ol._check_state(model, None, 3, False))
        sizes = {m: ol.make_tracker(m, s).numbers for m in ("rtrl", "snap-1", "rflo", "e-prop")}
        assert sizes["rtrl"] == 3 * s.S * s.N
        assert sizes["snap-1"] == sizes["rflo"] == sizes["e-prop"] == 3 * per_param * s.N
    J = structure(s).J                               # the LSTM's: dense on h, diagonal on c
    eye = np.eye(5, dtype=bool)
    assert J[:, :5].all() and np.array_equal(J[:, 5:], np.vstack([eye, eye]))


def test_refusals_name_the_argument():
    model, x, y = problem("rnn_tanh")
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
    model, x, _ = problem("rnn_tanh", B=2)
    s = ol.OnlineState(model, 2, ol._check_state(model, None, 2, False))
    s.advance(x[0])
    jac = s.advance(x[1])
    bad = dict(jac.per_param, weight_hh=jac.per_param["weight_hh"] * 1.5)
    with pytest.raises(ValueError, match="e-prop and RFLO need W_hh"):
        direct_jacobian(jac._replace(per_param=bad), s.P, check=True)


