"""LSTM in Numba: the twin of minirnn/cells/lstm.py (same math, same cache).

Forward (gate order i, f, g, o):
    z_t = (x_t W_ih^T + b_ih + b_hh) + h_{t-1} W_hh^T
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of z_t's four blocks
    c_t = f c_{t-1} + i g,   r_t = o tanh(c_t),   h_t = r_t W_hr^T (proj) else r_t
Backward:
    dr = dh W_hr (proj) else dh,   do = dr tanh(c_t),   dc = dc + dr o (1 - tanh(c_t)^2)
    dz = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), do o(1-o)],   dc_{t-1} = dc f
    dh_{t-1} = dz W_hh;   after the loop: dx = dz W_ih, dW_ih = dz^T x, dW_hh = dz^T h_prev,
    db = sum dz, dW_hr = dh^T r

The gate math of one row is written once (_cell_forward, _cell_backward) and inlined into
both paths' kernels; states are kept as (T+1, B, .) with h0/c0 in row 0 on both. "blas" path
(large sizes): per step one BLAS product from Python and one njit kernel call for the gates,
the state update and the mask (backward: the upstream gradient and the gate derivatives),
on a block of rows (all of them; the kernels take any block). "loop" path
(small sizes, B <= 4): the whole time loop is one njit kernel -- _common.matvec_add for the
products; W_hh^T (and W_hr^T) kept between calls by _wcache. The input projection and the
weight gradients are _common's, shared with every cell.
"""
from __future__ import annotations

import numpy as np

from ..cells import lstm as _reference
from ..cells.lstm import LSTMCache, LSTMGradSteps
from ._common import (c, carry_back, carry_back_row, carry_rows, finish_row, finish_rows, ijit,
                      input_projection, jit, loop_path, matvec_add, product_buffers,
                      recurrent_product, untranspose, upstream_row, valid_or_ones, weight_grads,
                      zero_rows)
from ._vmath import vsigmoid, vtanh
from ._wcache import transposed


# ----------------------------------------------------------------------------
# the gate math, once: one row of one step, inlined into both paths' kernels. One short loop
# per stage over few arrays (measured at B=32, H=256 float32: the forward written as one loop
# over j took 248 us a step -- the four activations and five arrays kept LLVM from
# vectorising it -- and 16 us split; a range starting past 0 also stayed scalar, hence the
# offsets written into the index); _vmath's vectorisable sigmoid/tanh (libm calls would keep
# every loop scalar); the mask outside the loops (a select on it stopped vectorisation).

@ijit
def _cell_forward(gates, t, b, cx, r, tr):
    """gates[t, b] (4H,): z_t on entry, the activated i, f, g, o on exit; cx (T+1, ., H):
    c_{t-1} in row t -> c_t in row t+1 (not yet carried past the end); r[tr, b] (H,) =
    o tanh(c_t)."""
    H = gates.shape[2] // 4
    for j in range(2 * H):
        gates[t, b, j] = vsigmoid(gates[t, b, j])                        # i, f
    for j in range(H):
        gates[t, b, 2 * H + j] = vtanh(gates[t, b, 2 * H + j])           # g
    for j in range(H):
        gates[t, b, 3 * H + j] = vsigmoid(gates[t, b, 3 * H + j])        # o
    for j in range(H):
        cx[t + 1, b, j] = gates[t, b, H + j] * cx[t, b, j] + gates[t, b, j] * gates[t, b, 2 * H + j]
    for j in range(H):
        r[tr, b, j] = gates[t, b, 3 * H + j] * vtanh(cx[t + 1, b, j])


@ijit
def _cell_backward(src, ts, dcn, tc, ttc, gates, t, b, cp, tp, valid, dz, dc):
    """The gate derivatives of row b at step t. src[ts, b] (H,): dL/dr_t (r = o tanh c_t);
    dcn[0, b] (H,): dL/dc_t from step t+1 on entry, dL/dc_{t-1} on exit; tc[ttc, b]: tanh(c_t);
    cp[tp, b]: c_{t-1} -> dz[t, b] (4H,), dc[t, b] (H,) the total dL/dc_t."""
    H = gates.shape[2] // 4
    zero, one = gates.dtype.type(0.0), gates.dtype.type(1.0)
    for j in range(H):
        tanh_c = tc[ttc, b, j]
        o = gates[t, b, 3 * H + j]
        d = src[ts, b, j]
        dc[t, b, j] = dcn[0, b, j] + d * o * (one - tanh_c * tanh_c)
        dz[t, b, 3 * H + j] = d * tanh_c * o * (one - o)
    if not valid[t, b]:                                   # dL/dc_t from step t+1 is cut here
        for j in range(H):
            tanh_c = tc[ttc, b, j]
            dc[t, b, j] = zero + src[ts, b, j] * gates[t, b, 3 * H + j] * (one - tanh_c * tanh_c)
    for j in range(H):
        i, f, g = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
        dcj = dc[t, b, j]
        dz[t, b, j] = dcj * g * i * (one - i)
        dz[t, b, H + j] = dcj * cp[tp, b, j] * f * (one - f)
        dz[t, b, 2 * H + j] = dcj * i * (one - g * g)
    if valid[t, b]:
        for j in range(H):
            dcn[0, b, j] = dc[t, b, j] * gates[t, b, H + j]
    else:                                                 # carried state: its gradient passes
        for j in range(H):
            dcn[0, b, j] = dc[t, b, j] * gates[t, b, H + j] + dcn[0, b, j]


@ijit
def _carry_c(cx, t, b, valid):
    """Past a sequence's end c_t = c_{t-1} (h: _common.finish_row)."""
    if not valid[t, b]:
        for j in range(cx.shape[2]):
            cx[t + 1, b, j] = cx[t, b, j]


# ----------------------------------------------------------------------------
# the blas path: per step one BLAS product from Python, and one kernel call for a block of
# rows

@jit
def _step_forward(gates, zhT, zh, bsum, bias, hx, cx, r, proj, valid, out, t, b0, b1):
    """Rows b0 .. b1-1 of step t. gates (T, B, 4H): x W_ih^T on entry, the activated
    i, f, g, o on exit; zh (1, B, 4H): h_{t-1} W_hh^T, or turned round here from zhT (4H, B)
    = W_hh h_{t-1}^T when zhT has rows (_common.transposed_product); bsum (4H,): b_ih + b_hh,
    added when bias (here, while the row is in cache, instead of a pass over all steps: the
    same sums as _common.input_projection's); hx (T+1, B, P), cx (T+1, B, H): row t read, row t+1 written;
    r (1, B, H) scratch: o tanh(c_t) with a projection (the caller forms h_t = r W_hr^T and
    finishes the rows), else h_t straight into hx. out (T, B, P)."""
    G = gates.shape[2]
    if zhT.shape[0]:
        untranspose(zhT, zh, b0, b1)
    for b in range(b0, b1):
        if bias:
            for j in range(G):
                gates[t, b, j] += bsum[j]                 # x_t W_ih^T + b
        for j in range(G):
            gates[t, b, j] += zh[0, b, j]                 # z_t
        if proj:
            _cell_forward(gates, t, b, cx, r, 0)
        else:
            _cell_forward(gates, t, b, cx, hx, t + 1)
        _carry_c(cx, t, b, valid)
        if not proj:
            finish_row(hx, t, b, valid, out)


@jit
def _step_backward(d_out, dhn, dhp, dcn, tc, gates, cs, c0, valid, dh, dc, dz, src, ts, t,
                   b0, b1, upstream, cell):
    """Rows b0 .. b1-1 of step t, in two stages the caller may run apart (a projection's
    product dr = dh_t W_hr sits between them). upstream: dL/dh_t into dh (from dhn, after
    carrying step t+1's product dhp back into it unless t is the last step). cell: the gate
    derivatives from src[ts] = dL/dr_t -> dz[t], dc[t], dcn = dL/dc_{t-1}. tc (T, B, H):
    tanh(c_t); cs (T, B, H), c0 (1, B, H): the cell states."""
    T = gates.shape[0]
    cp, tp = (c0, 0) if t == 0 else (cs, t - 1)          # c_{t-1}
    for b in range(b0, b1):
        if upstream:
            if t < T - 1:
                carry_back_row(dhn, dhp, t + 1, b, valid)
            upstream_row(dh, t, b, dhn, d_out, valid)
        if cell:
            _cell_backward(src, ts, dcn, tc, t, gates, t, b, cp, tp, valid, dz, dc)


# ----------------------------------------------------------------------------
# the whole time loop (loop path), as timing a prototype of it showed it must be: no array
# views and no helper calls inside the loop (each view costs an NRT incref/decref pair;
# inlined helpers are fine), short inner loops over a few arrays with no mask inside (LLVM
# gives up its runtime alias checks past ~8 arrays): finished sequences are fixed up afterwards.

@jit
def _loop_forward(gates, hx, cx, w_hhT, w_hrT, proj, valid, r, out):
    """gates (T, B, 4H): x W_ih^T + b on entry, the activated i, f, g, o on exit.
    hx (T+1, B, P), cx (T+1, B, H): h0, c0 in row 0 on entry, so step t reads row t and
    writes row t+1 (no t == 0 case). w_hhT (P, 4H); w_hrT (H, P), unused without proj.
    r (1, B, H) scratch: o tanh(c_t) before the projection. out (T, B, P) filled."""
    T, B, G = gates.shape
    for t in range(T):
        matvec_add(gates, t, hx, t, w_hhT)                # z_t += h_{t-1} W_hh^T
        for b in range(B):
            if proj:
                _cell_forward(gates, t, b, cx, r, 0)
            else:
                _cell_forward(gates, t, b, cx, hx, t + 1)
        if proj:                                          # h_t = r_t W_hr^T
            zero_rows(hx, t + 1)
            matvec_add(hx, t + 1, r, 0, w_hrT)
        for b in range(B):
            _carry_c(cx, t, b, valid)                     # finished: carry c and h
            finish_row(hx, t, b, valid, out)


@jit
def _loop_backward(d_out, dhn, dcn, c0, gates, cs, w_hh, w_hr, proj, valid, dh, dc, dz,
                   dr, dhp, tc):
    """BPTT. d_out (T, B, P); dhn (1, B, P), dcn (1, B, H): dL/dh_T, dL/dc_T on entry,
    dL/dh_0, dL/dc_0 on exit. c0 (1, B, H), cs (T, B, H), gates (T, B, 4H) from the forward.
    dh (T, B, P), dc (T, B, H), dz (T, B, 4H) filled. Scratch: dr (1, B, H) dh_t W_hr (proj),
    dhp (1, B, P) dz_t W_hh, tc (1, B, H) tanh(c_t)."""
    T, B, G = gates.shape
    H = G // 4
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
                tc[0, b, j] = vtanh(cs[t, b, j])
            _cell_backward(src, ts, dcn, tc, 0, gates, t, b, cp, tp, valid, dz, dc)
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
    blas = not loop_path(B, 4, H, P, path)
    bias = (None, None) if blas else (b_ih, b_hh)          # blas: added a step, in the kernel
    gates = input_projection(x, w_ih, *bias)               # (T, B, 4H) z_t, then i, f, g, o
    hx = np.empty((T + 1, B, P), dtype=dt)                 # (T+1, B, P) h0, h_1 .. h_T
    cx = np.empty((T + 1, B, H), dtype=dt)                 # (T+1, B, H) c0, c_1 .. c_T
    hx[0], cx[0] = h0, c0
    out = np.empty((T, B, P), dtype=dt)                    # (T, B, P) outputs (0 past the end)
    r = np.empty((1, B, H), dtype=dt)                      # (1, B, H) scratch: o tanh(c_t)
    if not blas:
        w_hrT = transposed(w_hr, w_hrT, "w_hrT") if proj else np.zeros((0, 0), dtype=dt)
        _loop_forward(gates, hx, cx, transposed(w_hh, w_hhT, "w_hhT"), w_hrT, proj, v, r, out)
    else:
        bsum = (b_ih + b_hh) if b_ih is not None else None   # (4H,)
        _blas_forward(gates, hx, cx, c(w_hh), c(w_hr) if proj else None, bsum, v, r, out)
    cs, h = cx[1:], hx[1:]                                 # (T, B, H), (T, B, P) views
    cache = LSTMCache(x, h0, c0, gates, cs, h, valid, w_ih, w_hh, w_hr, b_ih is not None)
    return out, h[T - 1].copy(), cs[T - 1].copy(), cache


def _blas_forward(gates, hx, cx, w_hh, w_hr, bsum, v, r, out):
    """The blas path's time loop (arrays as _loop_forward's, gates without the biases; bsum:
    b_ih + b_hh, or None without bias)."""
    T, B, G = gates.shape
    proj = w_hr is not None
    bias = bsum is not None
    bsum = c(bsum) if bias else np.zeros(0, dtype=gates.dtype)
    zhT, zh = product_buffers(G, B, gates.dtype)           # (4H, B) or (0, 0); (1, B, 4H)
    w_hrT = w_hr.T if proj else None
    for t in range(T):
        recurrent_product(w_hh, hx[t], zhT, zh)
        _step_forward(gates, zhT, zh, bsum, bias, hx, cx, r, proj, v, out, t, 0, B)
        if proj:                                           # h_t = r_t W_hr^T
            np.matmul(r[0], w_hrT, out=hx[t + 1])
            finish_rows(hx, t, v, out, 0, B)


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
    dr = np.empty((1, B, H), dtype=dt)                     # (1, B, H) dL/dr_t = dh_t W_hr (proj)
    dhp = np.empty((1, B, P), dtype=dt)                    # (1, B, P) dz_t W_hh
    if loop_path(B, 4, H, P, path):
        _loop_backward(d_out, dh_next, dc_next, c0[None], gates, cs, w_hh, w_hr, proj, v, dh,
                       dc, dz, dr, dhp, np.empty((1, B, H), dtype=dt))
    else:
        _blas_backward(d_out, dh_next, dc_next, c0[None], gates, cs, w_hh,
                       w_hr if proj else None, v, dh, dc, dz, dr, dhp)
    dh_next, dc_next = dh_next[0], dc_next[0]
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(dz, x, cache.w_ih, h0, h, cache.has_bias,
                                                  input_grad=input_grad)
    dw_hr = None
    if proj:
        r = gates[..., 3 * H:] * np.tanh(cs)               # (T, B, H) o * tanh(c_t), recomputed
        dw_hr = dh.reshape(T * B, P).T @ r.reshape(T * B, H)   # (P, H)
    grads = (dx, dh_next, dc_next, dw_ih, dw_hh, db_ih, db_hh, dw_hr)
    return grads + (LSTMGradSteps(dh, dc, dz),) if return_steps else grads


def _blas_backward(d_out, dhn, dcn, c0, gates, cs, w_hh, w_hr, v, dh, dc, dz, dr, dhp):
    """The blas path's BPTT (arrays as _loop_backward's), one block of rows."""
    T, B, G = gates.shape
    proj = w_hr is not None
    tc = np.empty_like(cs)                                 # (T, B, H) tanh(c_t)
    src = dr if proj else dh                               # dL/dr_t

    def rows(b0, b1):
        np.tanh(cs[:, b0:b1], out=tc[:, b0:b1])            # all steps at once (SIMD)
        for t in range(T - 1, -1, -1):
            ts = 0 if proj else t
            _step_backward(d_out, dhn, dhp, dcn, tc, gates, cs, c0, v, dh, dc, dz, src, ts, t,
                           b0, b1, True, not proj)
            if proj:                                       # dr = dh_t W_hr
                np.matmul(dh[t, b0:b1], w_hr, out=dr[0, b0:b1])
                _step_backward(d_out, dhn, dhp, dcn, tc, gates, cs, c0, v, dh, dc, dz, src, ts,
                               t, b0, b1, False, True)
            np.matmul(dz[t, b0:b1], w_hh, out=dhp[0, b0:b1])   # dz_t W_hh
        carry_rows(dhn, dhp, 0, v, b0, b1)                 # dL/dh_0

    rows(0, B)
