"""What the tangent kernels (_rnn_tangent.py, _lstm_tangent.py, _gru_tangent.py) share.

The tangent twins keep the reference's signatures (forward_jvp, backward_jvp) and tangent
caches. Everything that does not depend on the recurrence is formed for all steps at once
by BLAS outside the time loop (the input side ẋ W_ih^T + x Ẇ_ih^T, the known states' part
h_{t-1} Ẇ_hh^T, and after the loop every weight gradient and its tangent); the loop itself,
one njit kernel, does only the recurrent products (_common.matvec_add) and the elementwise
rules. Large batches take the reference instead (its per-step BLAS products win there, as
the main kernels' blas path does).
"""
from __future__ import annotations

import numpy as np

from ._common import c


def input_side(x, x_dot, w_ih, w_ih_dot, bias_dot):
    """ẋ_t W_ih^T + x_t Ẇ_ih^T + ḃ for every step: (T, B, G), a new C-contiguous array."""
    T, B, I = x.shape
    xs = np.concatenate([c(x_dot).reshape(T * B, I), c(x).reshape(T * B, I)], axis=1)
    ws = np.concatenate([w_ih, w_ih_dot], axis=1)                   # (G, 2I): one product
    out = (xs @ ws.T).reshape(T, B, w_ih.shape[0])
    if bias_dot is not None:
        out += bias_dot
    return out


def prev_states(s0, s):
    """s_{t-1} for every step: (T, B, N) from s0 (B, N) and s (T, B, N)."""
    return np.concatenate([s0[None], s[:-1]], axis=0)


def tangent_weight_grads(dz, dz_dot, cache, tc, h_dot_states, dz_hh=None, dz_hh_dot=None,
                         input_grad=True):
    """The gradients after the loop and their tangents, as _common.weight_grads forms them, by
    the product rule: R{dz^T x} = dz_dot^T x + dz^T ẋ, R{dz W} = dz_dot W + dz Ẇ, and so on.
    dz_hh (GRU): the hidden side's gradient where it differs from dz. A tangent that is all
    zero (ẋ at the first layer of an HVP, Ẇ_ih along a direction without it) costs no product.
    -> (dx, dw_ih, dw_hh, db_ih, db_hh), the same five tangents."""
    x, h0 = cache.x, cache.h0
    T, B, I = x.shape
    G, P, n = dz.shape[2], h0.shape[1], x.shape[0] * x.shape[1]
    a, a_dot = dz.reshape(n, G), dz_dot.reshape(n, G)
    ah = a if dz_hh is None else dz_hh.reshape(n, G)
    ah_dot = a_dot if dz_hh_dot is None else dz_hh_dot.reshape(n, G)
    x2 = c(x).reshape(n, I)
    h_prev = prev_states(h0, cache.h).reshape(n, P)
    h_prev_dot = prev_states(tc.h0_dot, h_dot_states).reshape(n, P)
    dw_ih, dw_ih_dot = a.T @ x2, a_dot.T @ x2
    if tc.x_dot.any():
        dw_ih_dot += a.T @ c(tc.x_dot).reshape(n, I)
    dw_hh, dw_hh_dot = ah.T @ h_prev, ah_dot.T @ h_prev + ah.T @ h_prev_dot
    dx = dx_dot = None
    if input_grad:
        w_ih = c(cache.w_ih)
        dx, dx_dot = (a @ w_ih).reshape(T, B, I), a_dot @ w_ih
        if tc.w_ih_dot.any():
            dx_dot += a @ c(tc.w_ih_dot)
        dx_dot = dx_dot.reshape(T, B, I)
    db = db_dot = (None, None)
    if cache.has_bias:
        db_ih, db_ih_dot = a.sum(axis=0), a_dot.sum(axis=0)
        db = (db_ih, db_ih.copy() if dz_hh is None else ah.sum(axis=0))
        db_dot = (db_ih_dot, db_ih_dot.copy() if dz_hh is None else ah_dot.sum(axis=0))
    return (dx, dw_ih, dw_hh) + db, (dx_dot, dw_ih_dot, dw_hh_dot) + db_dot
