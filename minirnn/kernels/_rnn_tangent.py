"""Elman RNN tangents in Numba: the twin of forward_jvp / backward_jvp in
minirnn/cells/rnn.py (same signatures, same RNNTangentCache; see _tangent.py).

Forward tangent: ȧ_t = [ẋ_t W_ih^T + x_t Ẇ_ih^T + h_{t-1} Ẇ_hh^T + ḃ] (all steps, BLAS)
                       + ḣ_{t-1} W_hh^T (the loop),   ḣ_t = act'(a_t) ȧ_t
Tangent of the backward, per step (the loop): da_t and R{da_t} from dh_t and R{dh_t},
    dh_{t-1} = da_t W_hh,  R{dh_{t-1}} = R{da_t} W_hh + da_t Ẇ_hh;  the rest after the loop.
"""
from __future__ import annotations

import numpy as np

from ..cells import rnn as _reference
from ..cells.rnn import RNNTangentCache
from ._common import (c, carry_back, finish_row, jit, loop_path, matvec_add, upstream_row,
                      valid_or_ones, zero_rows)
from ._tangent import input_side, prev_states, tangent_weight_grads
from ._wcache import transposed


@jit
def _loop_forward_jvp(a_dot, hxd, w_hhT, act_grad, valid, out_dot):
    """a_dot (T, B, H): the non-recurrent part on entry, ȧ_t on exit; hxd (T+1, B, H): ḣ_0
    in row 0 on entry, ḣ_t in row t+1 on exit; act_grad (T, B, H) act'(a_t)."""
    T, B, H = a_dot.shape
    for t in range(T):
        matvec_add(a_dot, t, hxd, t, w_hhT)               # += ḣ_{t-1} W_hh^T
        for b in range(B):
            for j in range(H):
                hxd[t + 1, b, j] = act_grad[t, b, j] * a_dot[t, b, j]
            finish_row(hxd, t, b, valid, out_dot)


@jit
def _loop_backward_jvp(d_out, d_out_dot, dhn, dhn_dot, act_grad, act_grad_dot, w_hh, w_hh_dot,
                       valid, dh, dh_dot, da, da_dot, dhp, dhp_dot):
    """dhn, dhn_dot (1, B, H): dL/dh_T and its tangent on entry, those of h_0 on exit;
    da, da_dot (T, B, H) filled. Scratch: dh, dh_dot (T, B, H), dhp, dhp_dot (1, B, H)."""
    T, B, H = da.shape
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)
            upstream_row(dh_dot, t, b, dhn_dot, d_out_dot, valid)
            for j in range(H):
                da[t, b, j] = dh[t, b, j] * act_grad[t, b, j]
                da_dot[t, b, j] = (dh_dot[t, b, j] * act_grad[t, b, j]
                                   + dh[t, b, j] * act_grad_dot[t, b, j])
        zero_rows(dhp, 0)
        matvec_add(dhp, 0, da, t, w_hh)                   # da_t W_hh
        zero_rows(dhp_dot, 0)
        matvec_add(dhp_dot, 0, da_dot, t, w_hh)           # R{da_t} W_hh + da_t Ẇ_hh
        matvec_add(dhp_dot, 0, da, t, w_hh_dot)
        carry_back(dhn, dhp, t, valid)
        carry_back(dhn_dot, dhp_dot, t, valid)


def _act_grad(cache):
    return 1.0 - cache.h * cache.h if cache.nonlinearity == "tanh" else \
        (cache.a > 0).astype(cache.a.dtype)


def forward_jvp(cache, x_dot=None, h0_dot=None, w_ih_dot=None, w_hh_dot=None, b_ih_dot=None,
                b_hh_dot=None):
    """As the reference: -> ȯut (T, B, H), ḣ_T (B, H), RNNTangentCache."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[0]
    if not loop_path(B, 1, H, H):
        return _reference.forward_jvp(cache, x_dot, h0_dot, w_ih_dot, w_hh_dot, b_ih_dot,
                                      b_hh_dot)
    z = _reference._or_zeros
    x_dot, h0_dot = z(x_dot, cache.x), z(h0_dot, cache.h0)
    w_ih_dot, w_hh_dot = z(w_ih_dot, cache.w_ih), z(w_hh_dot, cache.w_hh)
    b_dot = None
    if cache.has_bias:
        b_dot = z(b_ih_dot, cache.w_hh[:, 0]) + z(b_hh_dot, cache.w_hh[:, 0])
    a_dot = input_side(cache.x, x_dot, cache.w_ih, w_ih_dot, b_dot)
    a_dot += (prev_states(cache.h0, cache.h).reshape(T * B, H) @ w_hh_dot.T).reshape(T, B, H)
    hxd = np.empty((T + 1, B, H), dtype=a_dot.dtype)
    hxd[0] = h0_dot
    out_dot = np.empty((T, B, H), dtype=a_dot.dtype)
    _loop_forward_jvp(a_dot, hxd, transposed(cache.w_hh), c(_act_grad(cache)),
                      valid_or_ones(cache.valid, T, B), out_dot)
    tc = RNNTangentCache(x_dot, h0_dot, a_dot, hxd[1:], w_ih_dot, w_hh_dot)
    return out_dot, hxd[T].copy(), tc


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_hT_dot=None, input_grad=True):
    """As the reference: -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) and their tangents."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[0]
    if not loop_path(B, 1, H, H):
        return _reference.backward_jvp(cache, tcache, d_out, d_out_dot, d_hT, d_hT_dot,
                                       input_grad)
    dt = cache.a.dtype
    act_grad = c(_act_grad(cache))
    act_grad_dot = (-2.0 * cache.h * act_grad * tcache.a_dot if cache.nonlinearity == "tanh"
                    else np.zeros_like(act_grad))
    dhn, dhn_dot = np.zeros((1, B, H), dt), np.zeros((1, B, H), dt)
    if d_hT is not None:
        dhn[0] = d_hT
    if d_hT_dot is not None:
        dhn_dot[0] = d_hT_dot
    d_out_dot = np.zeros_like(d_out) if d_out_dot is None else d_out_dot
    da, da_dot = np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    _loop_backward_jvp(c(d_out), c(d_out_dot), dhn, dhn_dot, act_grad, c(act_grad_dot),
                       c(cache.w_hh), c(tcache.w_hh_dot), valid_or_ones(cache.valid, T, B),
                       np.empty_like(da), np.empty_like(da), da, da_dot, np.empty_like(dhn),
                       np.empty_like(dhn))
    g, g_dot = tangent_weight_grads(da, da_dot, cache, tcache, tcache.h_dot,
                                    input_grad=input_grad)
    return (g[0], dhn[0]) + g[1:], (g_dot[0], dhn_dot[0]) + g_dot[1:]
