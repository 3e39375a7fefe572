"""Elman RNN in Numba: the twin of minirnn/functional/rnn.py (same math, same cache).

Forward:  a_t = (x_t W_ih^T + b_ih + b_hh) + h_{t-1} W_hh^T,   h_t = act(a_t)
Backward: da_t = dh_t * act'(a_t),   dh_{t-1} = da_t W_hh,
          dx = da W_ih, dW_ih = da^T x, dW_hh = da^T h_prev, db = sum da   (after the loop)

The input projection (all steps at once) and the weight gradients (after the loop) are a
few large BLAS products through NumPy. The recurrent product runs either per step through
BLAS ("blas" path, large sizes: the activation is NumPy's SIMD tanh/maximum, the mask and
the backward's act' * dh are small njit kernels), or inside one njit kernel that runs the
whole time loop ("loop" path, small sizes, B <= 4): _common.matvec_add, _vmath's vectorisable
tanh, states kept as (T+1, B, H) with h0 in row 0; W_hh^T kept between calls by _wcache.
"""
from __future__ import annotations

import numpy as np

from ..functional import rnn as _reference
from ..functional.rnn import RNNCache, RNNGradSteps
from ._common import (c, carry, carry_back, finish_row, input_projection, jit, loop_path,
                      mask_grad, matvec_add, select_state, upstream_row,
                      valid_or_ones, weight_grads, zero_rows)
from ._vmath import vtanh
from ._wcache import transposed


# ----------------------------------------------------------------------------
# kernels: one step (blas path); the forward's activation is one NumPy ufunc (SIMD tanh),
# the same call as the reference's, then select_state applies the mask

@jit
def _step_backward(dh_t, a_t, h_t, relu, da_t):
    """da_t = dh_t * act'(a_t);  tanh' = 1 - h_t^2 (from the output), relu' = [a_t > 0]."""
    B, H = dh_t.shape
    for b in range(B):
        for j in range(H):
            if relu:
                da_t[b, j] = dh_t[b, j] * (1.0 if a_t[b, j] > 0.0 else 0.0)
            else:
                da_t[b, j] = dh_t[b, j] * (1.0 - h_t[b, j] * h_t[b, j])


# ----------------------------------------------------------------------------
# kernels: the whole time loop (loop path), written as _lstm.py's (see the notes there):
# no views or calls in the loop, vtanh, short loops, finished sequences fixed up afterwards

@jit
def _loop_forward(a, hx, w_hhT, valid, relu, out):
    """a (T, B, H): x W_ih^T + b on entry, the pre-activations a_t on exit. hx (T+1, B, H):
    h0 in row 0 on entry, h_t in row t (no t == 0 case). w_hhT (H, H). out (T, B, H) filled."""
    T, B, H = a.shape
    zero = a.dtype.type(0.0)
    for t in range(T):
        matvec_add(a, t, hx, t, w_hhT)                    # a_t += h_{t-1} W_hh^T
        for b in range(B):
            if relu:                                      # np.maximum(a, 0): NaN stays NaN
                for j in range(H):
                    z = a[t, b, j]
                    hx[t + 1, b, j] = z if (z > zero or z != z) else zero
            else:
                for j in range(H):
                    hx[t + 1, b, j] = vtanh(a[t, b, j])
            finish_row(hx, t, b, valid, out)              # out_t, or carry a finished state


@jit
def _loop_backward(d_out, dhn, a, h, w_hh, valid, relu, dh, da, dhp):
    """BPTT. dhn (1, B, H): dL/dh_T on entry, dL/dh_0 on exit. a, h (T, B, H) from the
    forward; dh, da (T, B, H) filled. Scratch: dhp (1, B, H) da_t W_hh."""
    T, B, H = a.shape
    zero, one = a.dtype.type(0.0), a.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)     # dL/dh_t
            if relu:
                for j in range(H):
                    da[t, b, j] = dh[t, b, j] * (one if a[t, b, j] > zero else zero)
            else:
                for j in range(H):
                    da[t, b, j] = dh[t, b, j] * (one - h[t, b, j] * h[t, b, j])
        zero_rows(dhp, 0)                                 # dh_{t-1} = da_t W_hh
        matvec_add(dhp, 0, da, t, w_hh)
        carry_back(dhn, dhp, t, valid)


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", valid=None, path=None,
            *, w_hhT=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), RNNCache (as the reference).

    w_hhT: optional precomputed C-contiguous W_hh^T (H, H) for the loop path;
    None: _wcache's kept copy, rebuilt only when the weights changed.
    """
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, valid)
    H = w_hh.shape[0]
    dt = x.dtype
    relu = nonlinearity == "relu"
    v = valid_or_ones(valid, T, B)                         # (T, B)
    a = input_projection(x, w_ih, b_ih, b_hh)              # (T, B, H) x W_ih^T + b, then a_t
    out = np.empty((T, B, H), dtype=dt)                    # (T, B, H) outputs (0 past the end)
    if loop_path(B, 1, H, H, path):
        hx = np.empty((T + 1, B, H), dtype=dt)             # (T+1, B, H) h0, h_1 .. h_T
        hx[0] = h0
        _loop_forward(a, hx, transposed(w_hh, w_hhT, "w_hhT"), v, relu, out)
        h = hx[1:]                                         # (T, B, H) view
    else:
        h = np.empty((T, B, H), dtype=dt)                  # (T, B, H) states
        h_new = np.empty((B, H), dtype=dt)                 # (B, H) act(a_t) before the mask
        h_prev, w_hhT = c(h0), c(w_hh).T
        for t in range(T):
            a[t] += np.matmul(h_prev, w_hhT, out=h_new)
            if relu:
                np.maximum(a[t], 0, out=h_new)
            else:
                np.tanh(a[t], out=h_new)
            select_state(v[t], h_new, h_prev, h[t], out[t])
            h_prev = h[t]
    cache = RNNCache(x, h0, a, h, valid, w_ih, w_hh, b_ih is not None, nonlinearity)
    return out, h[T - 1].copy(), cache


def backward(cache, d_out, d_hT=None, return_steps=False, path=None, input_grad=True):
    """BPTT -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh [, RNNGradSteps] (as the reference)."""
    x, a, h = cache.x, c(cache.a), c(cache.h)
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, return_steps, input_grad)
    H = a.shape[2]
    relu = cache.nonlinearity == "relu"
    h0, w_hh = c(cache.h0), c(cache.w_hh)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh_next = np.zeros((1, B, H), dtype=a.dtype)           # (1, B, H) dL/dh_T, then dL/dh_0
    if d_hT is not None:
        dh_next[0] = d_hT
    dh = np.empty_like(a)                                  # (T, B, H) dL/dh_t
    da = np.empty_like(a)                                  # (T, B, H) dL/da_t
    if loop_path(B, 1, H, H, path):
        _loop_backward(d_out, dh_next, a, h, w_hh, v, relu, dh, da, np.empty_like(dh_next))
        dh_next = dh_next[0]
    else:
        dh_next = dh_next[0]
        dh_prev = np.empty_like(h0)                        # (B, H)
        for t in range(T - 1, -1, -1):
            mask_grad(v[t], dh_next, d_out[t], dh[t])
            _step_backward(dh[t], a[t], h[t], relu, da[t])
            np.matmul(da[t], w_hh, out=dh_prev)
            dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(da, x, cache.w_ih, h0, h, cache.has_bias,
                                                  input_grad=input_grad)
    grads = (dx, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (RNNGradSteps(dh, da),) if return_steps else grads
