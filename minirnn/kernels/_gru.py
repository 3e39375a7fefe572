"""GRU in Numba: the twin of minirnn/functional/gru.py (same math, same cache).

Forward (gate order r, z, n):
    gi_t = x_t W_ih^T + b_ih                (all steps at once, before the loop)
    gh_t = h_{t-1} W_hh^T + b_hh,   hn = gh_t's n block
    r = sigmoid(gi_r + gh_r),   z = sigmoid(gi_z + gh_z),   n = tanh(gi_n + r hn)
    h_t = (1 - z) n + z h_{t-1}
Backward:
    da_n = dh (1 - z)(1 - n^2),   da_z = dh (h_{t-1} - n) z(1 - z),   da_r = da_n hn r(1 - r)
    dgi = [da_r, da_z, da_n],   dgh = [da_r, da_z, da_n r],   dh_{t-1} = dh z + dgh W_hh;
    after the loop: dx = dgi W_ih, dW_ih = dgi^T x, dW_hh = dgh^T h_prev,
    db_ih = sum dgi, db_hh = sum dgh

b_hh is kept apart from b_ih (b_hn sits inside r * (...)), so the hidden side carries its own
bias. Large products go through NumPy BLAS. "blas" path (large sizes): per step one BLAS
product and one fused njit kernel for the gates and the state update, with _vmath's
vectorisable sigmoid/tanh (backward: one fused kernel for the gate derivatives). "loop" path
(small sizes, B <= 4): the whole time loop is one njit kernel -- _common.matvec_add for the
products, _vmath's vectorisable sigmoid/tanh, states kept as (T+1, B, H) with h0 in row 0;
W_hh^T kept between calls by _wcache. The input projection and the weight gradients are
_common's, shared with every cell.
"""
from __future__ import annotations

import numpy as np

from ..functional import gru as _reference
from ..functional.gru import GRUCache, GRUGradSteps
from ._common import (c, carry, carry_back, finish_row, input_projection, jit, loop_path,
                      mask_grad, matvec_add, select_state, upstream_row,
                      valid_or_ones, weight_grads)
from ._vmath import vsigmoid, vtanh
from ._wcache import transposed


@jit
def _cell_backward(dh, h_prev, gates, hn, dgi, dgh, dh_prev):
    """One row: the gate derivatives, in the reference's order of operations.
    dh, h_prev, hn (H,), gates (3H,) -> dgi, dgh (3H,), dh_prev (H,) = dh * z (the direct
    path; the caller adds dgh W_hh)."""
    H = dh.shape[0]
    for j in range(H):
        r, z, n = gates[j], gates[H + j], gates[2 * H + j]
        d = dh[j]
        dn = d * (1.0 - z)
        dz = d * (h_prev[j] - n)
        da_n = dn * (1.0 - n * n)
        da_r = da_n * hn[j] * r * (1.0 - r)
        da_z = dz * z * (1.0 - z)
        dgi[j] = da_r
        dgi[H + j] = da_z
        dgi[2 * H + j] = da_n
        dgh[j] = da_r
        dgh[H + j] = da_z
        dgh[2 * H + j] = da_n * r
        dh_prev[j] = d * z


# ----------------------------------------------------------------------------
# one step (blas path): the BLAS product from Python, the rest in one fused kernel with
# _vmath's vectorisable sigmoid/tanh, one short loop per stage (see _lstm._step_forward)

@jit
def _step_forward(g, gh, h_prev, hn_t, h_new):
    """g (B, 3H): gi = x_t W_ih^T + b_ih on entry, the activated r, z, n on exit; gh (B, 3H):
    h_{t-1} W_hh^T + b_hh. -> hn_t (B, H) the hidden side of n, h_new (B, H) =
    (1 - z) n + z h_{t-1} before the mask."""
    B, G = g.shape
    H = G // 3
    one = g.dtype.type(1.0)
    for b in range(B):
        for j in range(2 * H):
            g[b, j] = vsigmoid(g[b, j] + gh[b, j])                        # r, z
        for j in range(H):
            hn_t[b, j] = gh[b, 2 * H + j]
        # r * hn goes through h_new as scratch: a loop writing g's n block while reading its
        # r block stays scalar (LLVM cannot rule out the overlap; measured
        # at B=32, H=256 float32: 59 us a step, 15 us so)
        for j in range(H):
            h_new[b, j] = g[b, j] * hn_t[b, j]
        for j in range(H):
            g[b, 2 * H + j] = vtanh(g[b, 2 * H + j] + h_new[b, j])       # n
        for j in range(H):
            z = g[b, H + j]
            h_new[b, j] = (one - z) * g[b, 2 * H + j] + z * h_prev[b, j]


@jit
def _step_backward(dh_t, h_prev, gates_t, hn_t, dgi_t, dgh_t, dhz):
    for b in range(dh_t.shape[0]):
        _cell_backward(dh_t[b], h_prev[b], gates_t[b], hn_t[b], dgi_t[b], dgh_t[b], dhz[b])


# ----------------------------------------------------------------------------
# the whole time loop (loop path), written as _lstm.py's (see the notes there): no views or
# calls in the loop, vsigmoid/vtanh, short loops, finished sequences fixed up afterwards

@jit
def _loop_forward(gates, hx, w_hhT, b_hh, valid, gh, hn, out):
    """gates (T, B, 3H): gi = x W_ih^T + b_ih on entry, the activated r, z, n on exit.
    hx (T+1, B, H): h0 in row 0 on entry, h_t in row t. w_hhT (H, 3H); b_hh (3H,) (zeros
    without bias). gh (1, B, 3H) scratch: h_{t-1} W_hh^T + b_hh. hn, out (T, B, H) filled."""
    T, B, G = gates.shape
    H = G // 3
    one = gates.dtype.type(1.0)
    for t in range(T):
        for b in range(B):
            for j in range(G):
                gh[0, b, j] = b_hh[j]
        matvec_add(gh, 0, hx, t, w_hhT)                   # gh = b_hh + h_{t-1} W_hh^T
        for b in range(B):
            for j in range(H):
                r = vsigmoid(gates[t, b, j] + gh[0, b, j])
                z = vsigmoid(gates[t, b, H + j] + gh[0, b, H + j])
                hnj = gh[0, b, 2 * H + j]
                n = vtanh(gates[t, b, 2 * H + j] + r * hnj)
                gates[t, b, j] = r
                gates[t, b, H + j] = z
                gates[t, b, 2 * H + j] = n
                hn[t, b, j] = hnj
                hx[t + 1, b, j] = (one - z) * n + z * hx[t, b, j]
            finish_row(hx, t, b, valid, out)              # out_t, or carry a finished state


@jit
def _loop_backward(d_out, dhn, h0, gates, hn, h, w_hh, valid, dh, dgi, dgh, dhp):
    """BPTT. dhn (1, B, H): dL/dh_T on entry, dL/dh_0 on exit. h0 (1, B, H); gates (T, B, 3H),
    hn, h (T, B, H) from the forward. dh (T, B, H), dgi, dgh (T, B, 3H) filled.
    Scratch: dhp (1, B, H) dh_t z + dgh_t W_hh."""
    T, B, G = gates.shape
    H = G // 3
    one = gates.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        hp, tp = (h0, 0) if t == 0 else (h, t - 1)        # h_{t-1}
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)     # dL/dh_t
            for j in range(H):                            # the reference's order of operations
                r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                d = dh[t, b, j]
                da_n = d * (one - z) * (one - n * n)
                da_r = da_n * hn[t, b, j] * r * (one - r)
                da_z = d * (hp[tp, b, j] - n) * z * (one - z)
                dgi[t, b, j] = da_r
                dgi[t, b, H + j] = da_z
                dgi[t, b, 2 * H + j] = da_n
                dgh[t, b, j] = da_r
                dgh[t, b, H + j] = da_z
                dgh[t, b, 2 * H + j] = da_n * r
                dhp[0, b, j] = d * z                      # the direct path
        matvec_add(dhp, 0, dgh, t, w_hh)                  # dh_{t-1} = dh z + dgh W_hh
        carry_back(dhn, dhp, t, valid)


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, valid=None, path=None, *, w_hhT=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), GRUCache (as the reference).

    w_hhT: optional precomputed C-contiguous W_hh^T (H, 3H) for the loop path;
    None: _wcache's kept copy, rebuilt only when the weights changed.
    """
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)
    H = h0.shape[1]
    dt = x.dtype
    bias = b_ih is not None
    v = valid_or_ones(valid, T, B)                         # (T, B)
    gates = input_projection(x, w_ih, b_ih)                # (T, B, 3H) gi, then r, z, n in place
    hn = np.empty((T, B, H), dtype=dt)                     # (T, B, H) hidden product of n
    out = np.empty((T, B, H), dtype=dt)                    # (T, B, H) outputs (0 past the end)
    if loop_path(B, 3, H, H, path):
        hx = np.empty((T + 1, B, H), dtype=dt)             # (T+1, B, H) h0, h_1 .. h_T
        hx[0] = h0
        b_hhc = c(b_hh) if bias else np.zeros(3 * H, dtype=dt)   # (3H,) adding 0 is exact
        _loop_forward(gates, hx, transposed(w_hh, w_hhT, "w_hhT"), b_hhc, v,
                      np.empty((1, B, 3 * H), dtype=dt), hn, out)
        h = hx[1:]                                         # (T, B, H) view
    else:
        h = _blas_forward(gates, c(h0), c(w_hh), b_hh if bias else None, v, hn, out)
    cache = GRUCache(x, h0, gates, hn, h, valid, w_ih, w_hh, bias)
    return out, h[T - 1].copy(), cache


def _blas_forward(gates, h0, w_hh, b_hh, v, hn, out):
    """The blas path's time loop: gates (T, B, 3H) as in _loop_forward; fills hn, out -> h."""
    T, B, G = gates.shape
    H, dt = G // 3, gates.dtype
    h = np.empty((T, B, H), dtype=dt)                      # (T, B, H) states
    gh = np.empty((B, G), dtype=dt)                        # (B, 3H) h_{t-1} W_hh^T + b_hh
    h_new = np.empty((B, H), dtype=dt)                     # (B, H) h_t before the mask
    h_prev = h0
    for t in range(T):
        np.matmul(h_prev, w_hh.T, out=gh)
        if b_hh is not None:
            gh += b_hh
        _step_forward(gates[t], gh, h_prev, hn[t], h_new)
        select_state(v[t], h_new, h_prev, h[t], out[t])
        h_prev = h[t]
    return h


def backward(cache, d_out, d_hT=None, return_steps=False, path=None, input_grad=True):
    """BPTT -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh [, GRUGradSteps] (as the reference)."""
    x, gates, hn, h = cache.x, c(cache.gates), c(cache.hn), c(cache.h)
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, return_steps, input_grad)
    H = h.shape[2]
    h0, w_hh = c(cache.h0), c(cache.w_hh)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh_next = np.zeros((1, B, H), dtype=h.dtype)           # (1, B, H) dL/dh_T, then dL/dh_0
    if d_hT is not None:
        dh_next[0] = d_hT
    dh = np.empty_like(h)                                  # (T, B, H)  dL/dh_t
    dgi = np.empty_like(gates)                             # (T, B, 3H) dL/dgi_t (input side)
    dgh = np.empty_like(gates)                             # (T, B, 3H) dL/dgh_t (hidden side)
    if loop_path(B, 3, H, H, path):
        _loop_backward(d_out, dh_next, h0[None], gates, hn, h, w_hh, v, dh, dgi, dgh,
                       np.empty_like(dh_next))
        dh_next = dh_next[0]
    else:
        dh_next = dh_next[0]
        dhz = np.empty_like(h0)                            # (B, H) dh * z, the direct path
        dh_prev = np.empty_like(h0)                        # (B, H)
        for t in range(T - 1, -1, -1):
            mask_grad(v[t], dh_next, d_out[t], dh[t])
            _step_backward(dh[t], h[t - 1] if t > 0 else h0, gates[t], hn[t],
                           dgi[t], dgh[t], dhz)
            np.matmul(dgh[t], w_hh, out=dh_prev)
            dh_prev += dhz
            dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(dgi, x, cache.w_ih, h0, h, cache.has_bias,
                                                  dz_hh=dgh, input_grad=input_grad)
    grads = (dx, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (GRUGradSteps(dh, dgi),) if return_steps else grads
