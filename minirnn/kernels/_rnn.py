"""Elman RNN in Numba: the twin of minirnn/cells/rnn.py (same math, same cache).

Forward:  a_t = (x_t W_ih^T + b_ih + b_hh) + h_{t-1} W_hh^T,   h_t = act(a_t)
Backward: da_t = dh_t * act'(a_t),   dh_{t-1} = da_t W_hh,
          dx = da W_ih, dW_ih = da^T x, dW_hh = da^T h_prev, db = sum da   (after the loop)

The input projection (all steps at once) and the weight gradients (after the loop) are a
few large BLAS products through NumPy. The recurrent product runs either per step through
BLAS ("blas" path, large sizes: the activation is NumPy's SIMD tanh/maximum, the mask and
the backward's act' * dh are small njit kernels, one call for a block of rows), or inside one
njit kernel that runs the whole time loop ("loop" path,
small sizes, B <= 4): _common.matvec_add, _vmath's vectorisable tanh; W_hh^T kept between
calls by _wcache. States are kept as (T+1, B, H) with h0 in row 0 on both paths; the
activation's derivative is written once (_cell_backward).
"""
from __future__ import annotations

import numpy as np

from ..cells import rnn as _reference
from ..cells.rnn import RNNCache, RNNGradSteps
from ._common import (c, carry_back, carry_back_row, carry_rows, finish_row, finish_rows, ijit,
                      input_projection, jit, loop_path, matvec_add, upstream_row, valid_or_ones,
                      weight_grads, zero_rows)
from ._vmath import vtanh
from ._wcache import transposed


# ----------------------------------------------------------------------------
# the activation's derivative, once (both paths' backward kernels inline it)

@ijit
def _cell_backward(dh, a, h, t, b, relu, da):
    """da[t, b] = dh[t, b] * act'(a_t);  tanh' = 1 - h_t^2 (from the output), relu' = [a_t > 0]."""
    zero, one = a.dtype.type(0.0), a.dtype.type(1.0)
    if relu:
        for j in range(a.shape[2]):
            da[t, b, j] = dh[t, b, j] * (one if a[t, b, j] > zero else zero)
    else:
        for j in range(a.shape[2]):
            da[t, b, j] = dh[t, b, j] * (one - h[t, b, j] * h[t, b, j])


# ----------------------------------------------------------------------------
# the blas path: per step one BLAS product and the activation (NumPy's SIMD tanh / maximum,
# the reference's calls) from Python, one kernel call for a block of rows

@jit
def _step_backward(d_out, dhn, dhp, a, h, relu, valid, dh, da, t, b0, b1):
    """Rows b0 .. b1-1 of step t: dL/dh_t (step t+1's product dhp carried back into dhn unless
    t is the last step), then da_t."""
    T = a.shape[0]
    for b in range(b0, b1):
        if t < T - 1:
            carry_back_row(dhn, dhp, t + 1, b, valid)
        upstream_row(dh, t, b, dhn, d_out, valid)
        _cell_backward(dh, a, h, t, b, relu, da)


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
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)     # dL/dh_t
            _cell_backward(dh, a, h, t, b, relu, da)
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
    hx = np.empty((T + 1, B, H), dtype=dt)                 # (T+1, B, H) h0, h_1 .. h_T
    hx[0] = h0
    if loop_path(B, 1, H, H, path):
        _loop_forward(a, hx, transposed(w_hh, w_hhT, "w_hhT"), v, relu, out)
    else:
        _blas_forward(a, hx, c(w_hh), v, relu, out)
    h = hx[1:]                                             # (T, B, H) view
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
        _blas_backward(d_out, dh_next, a, h, w_hh, v, relu, dh, da)
        dh_next = dh_next[0]
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(da, x, cache.w_ih, h0, h, cache.has_bias,
                                                  input_grad=input_grad)
    grads = (dx, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (RNNGradSteps(dh, da),) if return_steps else grads


def _blas_forward(a, hx, w_hh, v, relu, out):
    """The blas path's time loop (arrays as _loop_forward's), one block of rows."""
    T, B, H = a.shape
    h_new = np.empty((B, H), dtype=a.dtype)                # (B, H) act(a_t) before the mask
    w_hhT = w_hh.T

    def rows(b0, b1):
        for t in range(T):
            a[t, b0:b1] += np.matmul(hx[t, b0:b1], w_hhT, out=h_new[b0:b1])
            if relu:
                np.maximum(a[t, b0:b1], 0, out=hx[t + 1, b0:b1])
            else:
                np.tanh(a[t, b0:b1], out=hx[t + 1, b0:b1])
            finish_rows(hx, t, v, out, b0, b1)

    rows(0, B)


def _blas_backward(d_out, dhn, a, h, w_hh, v, relu, dh, da):
    """The blas path's BPTT (arrays as _loop_backward's), one block of rows."""
    T, B, H = a.shape
    dhp = np.empty_like(dhn)                               # (1, B, H) da_t W_hh

    def rows(b0, b1):
        for t in range(T - 1, -1, -1):
            _step_backward(d_out, dhn, dhp, a, h, relu, v, dh, da, t, b0, b1)
            np.matmul(da[t, b0:b1], w_hh, out=dhp[0, b0:b1])
        carry_rows(dhn, dhp, 0, v, b0, b1)                 # dL/dh_0

    rows(0, B)
