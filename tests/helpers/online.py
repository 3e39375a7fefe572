"""The online-method tests' shared pieces (tests/grad/test_online*.py): a problem, the exact
gradient, a tracker run by hand, n estimates of one sequence's gradient and the test that they
are unbiased, flat gradients and the masks."""
from __future__ import annotations

import numpy as np

from minirnn.cells import BUILTIN as CELL_NAMES
from minirnn.grad import online as ol
from minirnn.grad._online_trackers import DenseRTRL
from minirnn.grad.rtrl import rtrl_gradient
from minirnn.grad.uoro import UOROEstimates, chi2_quantile, normal_quantile
from minirnn.nn import make_recurrent

EXACT, PLANTED = 1e-12, 1e-4
CONFIGS = [(c, 0) for c in CELL_NAMES] + [("lstm", 2)]        # (cell, proj_size)


def problem(cell, proj=0, T=6, B=2, I=3, H=4, seed=0, **kw):
    extra = {"proj_size": proj} if proj else {}
    model = make_recurrent(cell, I, H, seed=seed, **extra, **kw)
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal((T, B, I))
    y = rng.standard_normal((T, B, proj or H))
    if kw.get("batch_first"):
        x, y = x.transpose(1, 0, 2), y.transpose(1, 0, 2)
    return model, x, y


def flat(grads, model):
    return np.concatenate([np.ravel(grads[k]) for k in model.params])


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def run_tracker(tracker_cls, model, x, y, mask=None, **kw):
    """online_gradient's loop with a tracker class of the test's making -> flat gradient."""
    st_ = ol.OnlineState(model, x.shape[1], ol._check_state(model, None, x.shape[1], False),
                         mask)
    tr = tracker_cls(st_, **kw)
    tr.allocate()
    g = np.zeros(st_.N)
    for t in range(x.shape[0]):
        tr.update(st_.advance(x[t]), None)
        g += ol._loss_and_grad(st_, tr, "squared_error", y[t], None)[2]
    return flat(st_.unflatten(g), model)


def exact_gradient(model, x, y, mask=None):
    """RTRL = BPTT (rtrl_gradient), 0 outside the mask (the masked-out weights are not
    parameters; test_a_mask_gives_... checks this against the dense gradient)."""
    g = rtrl_gradient(model, x, y).grads
    if mask is not None:
        g["weight_hh_l0"] = np.where(mask, g["weight_hh_l0"], 0.0)
    return flat(g, model)


def method_gradient(model, x, y, method, **kw):
    return flat(ol.online_gradient(model, x, y, method=method, **kw).grads, model)


def ring_mask(model):
    """Unit k hears unit k-1 only (every gate block): the reach of θ grows one unit a step."""
    w = model.params["weight_hh_l0"]
    H, G = w.shape[1], w.shape[0] // w.shape[1]
    block = np.roll(np.eye(H, dtype=bool), 1, axis=1)          # [k, k-1]
    return np.tile(block, (G, 1))


def apply_mask(model, mask):
    model.params["weight_hh_l0"][~mask] = 0.0
    return mask


def estimates(tracker_cls, model, x, y, n, **kw):
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


def assert_unbiased(est, exact):
    """Hotelling's T² of the mean against χ²_r's 99.9% quantile, the error along the exact
    gradient within 3 standard errors, and every component within the Bonferroni bound
    (tests/studies/test_study_uoro.py says why all three)."""
    e = UOROEstimates([], est, exact, exact)
    t2, rank = e.hotelling()
    assert t2 <= chi2_quantile(rank, 0.999), (t2, rank)
    assert abs(e.z_along_exact()) <= 3.0
    assert np.abs(e.z_scores()).max() <= normal_quantile(1 - 0.0005 / exact.size)


def one_sequence_exact(model, x, y):
    """RTRL's gradient of the first sequence (the one estimates copies)."""
    return run_tracker(DenseRTRL, model, x[:, :1], y[:, :1])
