"""Elman RNN in Numba: the twin of minirnn/functional/rnn.py (same math, same cache).

Forward:  a_t = (x_t W_ih^T + b_ih + b_hh) + h_{t-1} W_hh^T,   h_t = act(a_t)
Backward: da_t = dh_t * act'(a_t),   dh_{t-1} = da_t W_hh,
          dx = da W_ih, dW_ih = da^T x, dW_hh = da^T h_prev, db = sum da   (after the loop)

The input projection (all steps at once) and the weight gradients (after the loop) are a
few large BLAS products through NumPy. The recurrent product runs either per step through
BLAS ("blas" path, large sizes: the activation is NumPy's SIMD tanh/maximum, the mask and
the backward's act' * dh are small njit kernels), or inside one njit kernel that runs the
whole time loop with a hand-written matrix-vector product ("loop" path, small sizes).
"""
from __future__ import annotations

import numpy as np

from ..functional import rnn as _reference
from ..functional.rnn import RNNCache, RNNGradSteps
from ._common import c, carry, jit, loop_path, mask_grad, select_state, valid_or_ones


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
# kernels: the whole time loop (loop path)

@jit
def _loop_forward(xw, h0, w_hhT, valid, relu, a, h, out):
    """xw (T, B, H) = x W_ih^T + b; w_hhT (H, H) = W_hh^T, contiguous over the output j."""
    T, B, H = xw.shape
    acc = np.empty(H, dtype=xw.dtype)                      # (H,) one row's a_t
    for t in range(T):
        for b in range(B):
            for j in range(H):
                acc[j] = xw[t, b, j]
            for k in range(H):                             # axpy: acc += h_prev[k] * W_hh^T[k]
                hk = h0[b, k] if t == 0 else h[t - 1, b, k]
                for j in range(H):
                    acc[j] += w_hhT[k, j] * hk
            for j in range(H):
                z = acc[j]
                a[t, b, j] = z
                if relu:
                    h_new = z if (z > 0.0 or z != z) else 0.0
                else:
                    h_new = np.tanh(z)
                if valid[t, b]:
                    h[t, b, j] = h_new
                    out[t, b, j] = h_new
                else:
                    h[t, b, j] = h0[b, j] if t == 0 else h[t - 1, b, j]
                    out[t, b, j] = 0.0


@jit
def _loop_backward(d_out, dh_T, a, h, w_hh, valid, relu, dh, da):
    """BPTT over the whole sequence; dh, da (T, B, H) filled; returns dh_0 (B, H)."""
    T, B, H = a.shape
    dh_next = dh_T.copy()                                  # (B, H)
    dh_prev = np.empty(H, dtype=a.dtype)                   # (H,)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            ok = valid[t, b]
            for j in range(H):
                g = dh_next[b, j] + d_out[t, b, j] if ok else 0.0
                dh[t, b, j] = g
                if relu:
                    da[t, b, j] = g * (1.0 if a[t, b, j] > 0.0 else 0.0)
                else:
                    da[t, b, j] = g * (1.0 - h[t, b, j] * h[t, b, j])
            dh_prev[:] = 0.0
            for j in range(H):                             # axpy: dh_prev += da[j] * W_hh[j]
                dj = da[t, b, j]
                for k in range(H):
                    dh_prev[k] += dj * w_hh[j, k]
            for k in range(H):                             # carried state passes straight back
                dh_next[b, k] = dh_prev[k] if ok else dh_prev[k] + dh_next[b, k]
    return dh_next


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", valid=None, path=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), RNNCache (as the reference)."""
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, valid)
    H = w_hh.shape[0]
    relu = nonlinearity == "relu"
    xc, h0c, w_hhc = c(x), c(h0), c(w_hh)
    v = valid_or_ones(valid, T, B)                         # (T, B)
    xw = (xc.reshape(T * B, I) @ c(w_ih).T).reshape(T, B, H)   # (T, B, H) all steps at once
    if b_ih is not None:
        xw += b_ih + b_hh
    a = np.empty((T, B, H), dtype=x.dtype)                 # (T, B, H) pre-activations
    h = np.empty((T, B, H), dtype=x.dtype)                 # (T, B, H) states
    out = np.empty((T, B, H), dtype=x.dtype)               # (T, B, H) outputs (0 past the end)
    if loop_path(B, 1, H, H, path):
        _loop_forward(xw, h0c, c(w_hhc.T), v, relu, a, h, out)
    else:
        w_hhT = w_hhc.T
        h_new = np.empty((B, H), dtype=x.dtype)            # (B, H) act(a_t) before the mask
        h_prev = h0c
        for t in range(T):
            np.matmul(h_prev, w_hhT, out=a[t])
            a[t] += xw[t]
            if relu:
                np.maximum(a[t], 0, out=h_new)
            else:
                np.tanh(a[t], out=h_new)
            select_state(v[t], h_new, h_prev, h[t], out[t])
            h_prev = h[t]
    cache = RNNCache(x, h0, a, h, valid, w_ih, w_hh, b_ih is not None, nonlinearity)
    return out, h[T - 1].copy(), cache


def backward(cache, d_out, d_hT=None, return_steps=False, path=None):
    """BPTT -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh [, RNNGradSteps] (as the reference)."""
    x, a, h = c(cache.x), cache.a, cache.h
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, return_steps)
    H = a.shape[2]
    relu = cache.nonlinearity == "relu"
    h0, w_hh = c(cache.h0), c(cache.w_hh)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh_next = np.zeros_like(h0) if d_hT is None else c(d_hT).copy()   # (B, H)
    dh = np.empty_like(a)                                  # (T, B, H) dL/dh_t
    da = np.empty_like(a)                                  # (T, B, H) dL/da_t
    if loop_path(B, 1, H, H, path):
        dh_next = _loop_backward(d_out, dh_next, a, h, w_hh, v, relu, dh, da)
    else:
        dh_prev = np.empty_like(h0)                        # (B, H)
        for t in range(T - 1, -1, -1):
            mask_grad(v[t], dh_next, d_out[t], dh[t])
            _step_backward(dh[t], a[t], h[t], relu, da[t])
            np.matmul(da[t], w_hh, out=dh_prev)
            dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
    # the rest as a few large products over all steps
    da2 = da.reshape(T * B, H)                             # (T*B, H)
    dx = (da2 @ c(cache.w_ih)).reshape(T, B, I)            # (T, B, I)
    dw_ih = da2.T @ x.reshape(T * B, I)                    # (H, I)
    dw_hh = da[0].T @ h0                                   # (H, H): step 0 sees h0, then h_{t-1}
    if T > 1:
        dw_hh += da[1:].reshape((T - 1) * B, H).T @ h[:-1].reshape((T - 1) * B, H)
    db = da2.sum(axis=0) if cache.has_bias else None
    grads = (dx, dh_next, dw_ih, dw_hh, db, None if db is None else db.copy())
    return grads + (RNNGradSteps(dh, da),) if return_steps else grads
