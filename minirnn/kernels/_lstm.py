"""LSTM in Numba: the twin of minirnn/functional/lstm.py (same math, same cache).

Forward (gate order i, f, g, o):
    z_t = (x_t W_ih^T + b_ih + b_hh) + h_{t-1} W_hh^T
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of z_t's four blocks
    c_t = f c_{t-1} + i g,   r_t = o tanh(c_t),   h_t = r_t W_hr^T (proj) else r_t
Backward:
    dr = dh W_hr (proj) else dh,   do = dr tanh(c_t),   dc = dc + dr o (1 - tanh(c_t)^2)
    dz = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), do o(1-o)],   dc_{t-1} = dc f
    dh_{t-1} = dz W_hh;   after the loop: dx = dz W_ih, dW_ih = dz^T x, dW_hh = dz^T h_prev,
    db = sum dz, dW_hr = dh^T r

Large products go through NumPy BLAS. "blas" path (large sizes): per step one BLAS product
and one fused njit kernel for the gates and the state update, with _vmath's vectorisable
sigmoid/tanh (backward: one fused kernel for the gate derivatives). "loop" path
(small sizes, B <= 4): the whole time loop is one njit kernel -- _common.matvec_add for the
products, _vmath's vectorisable sigmoid/tanh, states kept as (T+1, B, .) with h0/c0 in row 0;
W_hh^T (and W_hr^T) kept between calls by _wcache. The input projection and the weight
gradients are _common's, shared with every cell.
"""
from __future__ import annotations

import numpy as np

from ..functional import lstm as _reference
from ..functional.lstm import LSTMCache, LSTMGradSteps
from ._common import (c, carry, carry_back, finish_row, input_projection, jit, loop_path,
                      mask_grad, matvec_add, select_state, upstream_row,
                      valid_or_ones, weight_grads, zero_rows)
from ._vmath import vsigmoid, vtanh
from ._wcache import transposed


# ----------------------------------------------------------------------------
# one step (blas path): the BLAS product from Python, everything else in one fused pass per
# step with _vmath's vectorisable sigmoid/tanh (measured at B=32, H=256 float32: NumPy's
# exp/abs/negative/tanh passes plus a scalar gate loop took ~140 us a step)

@jit
def _step_forward(z, zh, c_prev, valid_t, c_t, r):
    """z (B, 4H): x_t W_ih^T + b on entry, the activated i, f, g, o on exit; zh (B, 4H):
    h_{t-1} W_hh^T. -> c_t (B, H), carried where the sequence has ended; r (B, H) =
    o tanh(c_t) before the mask (the caller selects h_t). One short loop per stage: written
    as one loop over j, the four activations and five arrays kept LLVM from vectorising it
    (measured at B=32, H=256 float32: 248 us a step as one loop, 16 us split; a range
    starting past 0 also stayed scalar, hence the offsets written into the index)."""
    B, G = z.shape
    H = G // 4
    for b in range(B):
        for j in range(G):
            z[b, j] += zh[b, j]                           # z_t
        for j in range(2 * H):
            z[b, j] = vsigmoid(z[b, j])                   # i, f
        for j in range(H):
            z[b, 2 * H + j] = vtanh(z[b, 2 * H + j])      # g
        for j in range(H):
            z[b, 3 * H + j] = vsigmoid(z[b, 3 * H + j])   # o
        for j in range(H):
            c_t[b, j] = z[b, H + j] * c_prev[b, j] + z[b, j] * z[b, 2 * H + j]
        for j in range(H):
            r[b, j] = z[b, 3 * H + j] * vtanh(c_t[b, j])
        if not valid_t[b]:                                # finished: keep the last state
            for j in range(H):
                c_t[b, j] = c_prev[b, j]


@jit
def _step_backward(dr, dc_next, valid_t, gates_t, tanh_ct, c_prev, dz_t, dc_t, dc_prev):
    """The gate derivatives of one step, all rows. dr (B, H) dL/d(o tanh c_t), dc_next (B, H)
    dL/dc_t from step t+1, tanh_ct (B, H) -> dz_t (B, 4H), dc_t (B, H) the total, dc_prev
    (B, H) dL/dc_{t-1}. Short loops over few arrays, the mask outside them (as _loop_backward)."""
    B, G = gates_t.shape
    H = G // 4
    zero, one = gates_t.dtype.type(0.0), gates_t.dtype.type(1.0)
    for b in range(B):
        for j in range(H):
            tanh_c = tanh_ct[b, j]
            o = gates_t[b, 3 * H + j]
            d = dr[b, j]
            dc_t[b, j] = dc_next[b, j] + d * o * (one - tanh_c * tanh_c)
            dz_t[b, 3 * H + j] = d * tanh_c * o * (one - o)
        if not valid_t[b]:                                # dL/dc_t from step t+1 is cut here
            for j in range(H):
                tanh_c = tanh_ct[b, j]
                dc_t[b, j] = zero + dr[b, j] * gates_t[b, 3 * H + j] * (one - tanh_c * tanh_c)
        for j in range(H):
            i, f, g = gates_t[b, j], gates_t[b, H + j], gates_t[b, 2 * H + j]
            dcj = dc_t[b, j]
            dz_t[b, j] = dcj * g * i * (one - i)
            dz_t[b, H + j] = dcj * c_prev[b, j] * f * (one - f)
            dz_t[b, 2 * H + j] = dcj * i * (one - g * g)
        if valid_t[b]:
            for j in range(H):
                dc_prev[b, j] = dc_t[b, j] * gates_t[b, H + j]
        else:                                             # carried state: its gradient passes
            for j in range(H):
                dc_prev[b, j] = dc_t[b, j] * gates_t[b, H + j] + dc_next[b, j]


# ----------------------------------------------------------------------------
# the whole time loop (loop path): lessons from a measured prototype
# (shared/design/small-batch-kernels): no array views and no helper calls inside the loop
# (each view costs an NRT incref/decref pair; inlined helpers are fine), transcendentals from
# _vmath (vectorisable; libm calls would keep every loop scalar), short inner loops over a few
# arrays with no mask inside (LLVM gives up its runtime alias checks past ~8 arrays, and a
# select on the mask stopped it vectorising): finished sequences are fixed up afterwards.

@jit
def _loop_forward(gates, hx, cx, w_hhT, w_hrT, proj, valid, r, out):
    """gates (T, B, 4H): x W_ih^T + b on entry, the activated i, f, g, o on exit.
    hx (T+1, B, P), cx (T+1, B, H): h0, c0 in row 0 on entry, so step t reads row t and
    writes row t+1 (no t == 0 case). w_hhT (P, 4H); w_hrT (H, P), unused without proj.
    r (1, B, H) scratch: o tanh(c_t) before the projection. out (T, B, P) filled."""
    T, B, G = gates.shape
    H = G // 4
    for t in range(T):
        matvec_add(gates, t, hx, t, w_hhT)                # z_t += h_{t-1} W_hh^T
        rr, tr = (r, 0) if proj else (hx, t + 1)          # where o tanh(c_t) goes
        for b in range(B):
            for j in range(H):
                i = vsigmoid(gates[t, b, j])
                f = vsigmoid(gates[t, b, H + j])
                g = vtanh(gates[t, b, 2 * H + j])
                o = vsigmoid(gates[t, b, 3 * H + j])
                gates[t, b, j] = i
                gates[t, b, H + j] = f
                gates[t, b, 2 * H + j] = g
                gates[t, b, 3 * H + j] = o
                cn = f * cx[t, b, j] + i * g
                cx[t + 1, b, j] = cn
                rr[tr, b, j] = o * vtanh(cn)
        if proj:                                          # h_t = r_t W_hr^T
            zero_rows(hx, t + 1)
            matvec_add(hx, t + 1, r, 0, w_hrT)
        for b in range(B):
            if not valid[t, b]:                           # finished: carry c (h below)
                for j in range(H):
                    cx[t + 1, b, j] = cx[t, b, j]
            finish_row(hx, t, b, valid, out)


@jit
def _loop_backward(d_out, dhn, dcn, c0, gates, cs, w_hh, w_hr, proj, valid, dh, dc, dz,
                   dr, dhp):
    """BPTT. d_out (T, B, P); dhn (1, B, P), dcn (1, B, H): dL/dh_T, dL/dc_T on entry,
    dL/dh_0, dL/dc_0 on exit. c0 (1, B, H), cs (T, B, H), gates (T, B, 4H) from the forward.
    dh (T, B, P), dc (T, B, H), dz (T, B, 4H) filled. Scratch: dr (1, B, H) dh_t W_hr (proj),
    dhp (1, B, P) dz_t W_hh."""
    T, B, G = gates.shape
    H = G // 4
    zero, one = gates.dtype.type(0.0), gates.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)     # dL/dh_t
        if proj:                                          # dr = dh_t W_hr
            zero_rows(dr, 0)
            matvec_add(dr, 0, dh, t, w_hr)
        src, ts = (dr, 0) if proj else (dh, t)            # dL/dr_t
        cp, tp = (c0, 0) if t == 0 else (cs, t - 1)       # c_{t-1}
        for b in range(B):
            for j in range(H):
                tanh_c = vtanh(cs[t, b, j])
                o = gates[t, b, 3 * H + j]
                d = src[ts, b, j]
                dc[t, b, j] = dcn[0, b, j] + d * o * (one - tanh_c * tanh_c)
                dz[t, b, 3 * H + j] = d * tanh_c * o * (one - o)
            if not valid[t, b]:                           # dL/dc_t from step t+1 is cut here
                for j in range(H):
                    tanh_c = vtanh(cs[t, b, j])
                    o = gates[t, b, 3 * H + j]
                    dc[t, b, j] = zero + src[ts, b, j] * o * (one - tanh_c * tanh_c)
            for j in range(H):
                i, f, g = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                dcj = dc[t, b, j]
                dz[t, b, j] = dcj * g * i * (one - i)
                dz[t, b, H + j] = dcj * cp[tp, b, j] * f * (one - f)
                dz[t, b, 2 * H + j] = dcj * i * (one - g * g)
            if valid[t, b]:
                for j in range(H):
                    dcn[0, b, j] = dc[t, b, j] * gates[t, b, H + j]
            else:                                         # carried state: its gradient passes
                for j in range(H):
                    dcn[0, b, j] = dc[t, b, j] * gates[t, b, H + j] + dcn[0, b, j]
        zero_rows(dhp, 0)                                 # dh_{t-1} = dz_t W_hh
        matvec_add(dhp, 0, dz, t, w_hh)
        carry_back(dhn, dhp, t, valid)


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, valid=None, path=None,
            *, w_hhT=None, w_hrT=None):
    """x (T, B, I), h0 (B, P), c0 (B, H) -> out (T, B, P), h_T, c_T, LSTMCache (as the reference).

    w_hhT, w_hrT: optional precomputed C-contiguous W_hh^T (P, 4H), W_hr^T (H, P) for the loop
    path; None: _wcache's kept copies, rebuilt only when the weights changed.
    """
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid)
    H, P = c0.shape[1], h0.shape[1]
    dt = x.dtype
    proj = w_hr is not None
    v = valid_or_ones(valid, T, B)                         # (T, B)
    gates = input_projection(x, w_ih, b_ih, b_hh)          # (T, B, 4H) z_t, then i, f, g, o
    if loop_path(B, 4, H, P, path):
        hx = np.empty((T + 1, B, P), dtype=dt)             # (T+1, B, P) h0, h_1 .. h_T
        cx = np.empty((T + 1, B, H), dtype=dt)             # (T+1, B, H) c0, c_1 .. c_T
        hx[0], cx[0] = h0, c0
        out = np.empty((T, B, P), dtype=dt)                # (T, B, P) outputs (0 past the end)
        r = np.empty((1, B, H), dtype=dt)                  # (1, B, H) scratch
        w_hrT = transposed(w_hr, w_hrT, "w_hrT") if proj else np.zeros((0, 0), dtype=dt)
        _loop_forward(gates, hx, cx, transposed(w_hh, w_hhT, "w_hhT"), w_hrT, proj, v, r, out)
        cs, h = cx[1:], hx[1:]                             # (T, B, H), (T, B, P) views
    else:
        cs, h, out = _blas_forward(gates, c(h0), c(c0), c(w_hh), w_hr, v)
    cache = LSTMCache(x, h0, c0, gates, cs, h, valid, w_ih, w_hh, w_hr, b_ih is not None)
    return out, h[T - 1].copy(), cs[T - 1].copy(), cache


def _blas_forward(gates, h0, c0, w_hh, w_hr, v):
    """The blas path's time loop: gates (T, B, 4H) as in _loop_forward -> c, h, out."""
    T, B, G = gates.shape
    H, P, dt = G // 4, h0.shape[1], gates.dtype
    cs = np.empty((T, B, H), dtype=dt)                     # (T, B, H) cell states
    h = np.empty((T, B, P), dtype=dt)                      # (T, B, P) hidden states
    out = np.empty((T, B, P), dtype=dt)                    # (T, B, P) outputs (0 past the end)
    r = np.empty((B, H), dtype=dt)                         # (B, H) o * tanh(c_t)
    h_new = np.empty((B, P), dtype=dt)                     # (B, P)
    zh = np.empty((B, G), dtype=dt)                        # (B, 4H) h_{t-1} W_hh^T
    h_prev, c_prev = h0, c0
    for t in range(T):
        np.matmul(h_prev, w_hh.T, out=zh)
        _step_forward(gates[t], zh, c_prev, v[t], cs[t], r)
        if w_hr is not None:
            np.matmul(r, w_hr.T, out=h_new)
            select_state(v[t], h_new, h_prev, h[t], out[t])
        else:
            select_state(v[t], r, h_prev, h[t], out[t])
        h_prev, c_prev = h[t], cs[t]
    return cs, h, out


def backward(cache, d_out, d_hT=None, d_cT=None, return_steps=False, path=None, input_grad=True):
    """BPTT -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr [, LSTMGradSteps] (as the reference)."""
    x, gates, cs, h = cache.x, c(cache.gates), c(cache.c), c(cache.h)
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, d_cT, return_steps, input_grad)
    H, P = cs.shape[2], h.shape[2]
    dt = x.dtype
    h0, c0, w_hh = c(cache.h0), c(cache.c0), c(cache.w_hh)
    proj = cache.w_hr is not None
    w_hr = c(cache.w_hr) if proj else np.zeros((0, 0), dtype=dt)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh = np.empty_like(h)                                  # (T, B, P)  dL/dh_t
    dc = np.empty_like(cs)                                 # (T, B, H)  dL/dc_t
    dz = np.empty_like(gates)                              # (T, B, 4H) dL/dz_t
    dh_next = np.zeros((1, B, P), dtype=dt)                # (1, B, P) dL/dh_T, then dL/dh_0
    dc_next = np.zeros((1, B, H), dtype=dt)                # (1, B, H) likewise for c
    if d_hT is not None:
        dh_next[0] = d_hT
    if d_cT is not None:
        dc_next[0] = d_cT
    if loop_path(B, 4, H, P, path):
        _loop_backward(d_out, dh_next, dc_next, c0[None], gates, cs, w_hh, w_hr, proj,
                       v, dh, dc, dz, np.empty((1, B, H), dtype=dt), np.empty((1, B, P), dtype=dt))
        dh_next, dc_next = dh_next[0], dc_next[0]
    else:
        dh_next, dc_next = _blas_backward(d_out, dh_next[0], dc_next[0], c0, gates, cs, w_hh,
                                          w_hr if proj else None, v, dh, dc, dz)
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(dz, x, cache.w_ih, h0, h, cache.has_bias,
                                                  input_grad=input_grad)
    dw_hr = None
    if proj:
        r = gates[..., 3 * H:] * np.tanh(cs)               # (T, B, H) o * tanh(c_t), recomputed
        dw_hr = dh.reshape(T * B, P).T @ r.reshape(T * B, H)   # (P, H)
    grads = (dx, dh_next, dc_next, dw_ih, dw_hh, db_ih, db_hh, dw_hr)
    return grads + (LSTMGradSteps(dh, dc, dz),) if return_steps else grads


def _blas_backward(d_out, dh_next, dc_next, c0, gates, cs, w_hh, w_hr, v, dh, dc, dz):
    """The blas path's BPTT: fills dh, dc, dz; returns dL/dh_0 (B, P), dL/dc_0 (B, H)."""
    T, B, G = gates.shape
    H, P, dt = G // 4, dh.shape[2], gates.dtype
    tanh_c = np.tanh(cs)                                   # (T, B, H) all steps at once (SIMD)
    dr = np.empty((B, H), dtype=dt)                        # (B, H)
    dh_prev = np.empty((B, P), dtype=dt)                   # (B, P)
    dc_prev = np.empty((B, H), dtype=dt)                   # (B, H)
    for t in range(T - 1, -1, -1):
        mask_grad(v[t], dh_next, d_out[t], dh[t])
        if w_hr is not None:
            np.matmul(dh[t], w_hr, out=dr)
        _step_backward(dr if w_hr is not None else dh[t], dc_next, v[t], gates[t], tanh_c[t],
                       cs[t - 1] if t > 0 else c0, dz[t], dc[t], dc_prev)
        np.matmul(dz[t], w_hh, out=dh_prev)
        dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
        dc_next, dc_prev = dc_prev, dc_next
    return dh_next, dc_next
