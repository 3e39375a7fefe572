"""GRU in Numba: the twin of minirnn/cells/gru.py (same math, same cache).

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
bias. The gate math of one row is written once (_cell_forward, _cell_backward) and inlined
into both paths' kernels; states are kept as (T+1, B, H) with h0 in row 0 on both. "blas"
path (large sizes): per step one BLAS product from Python and one njit kernel call for the
gates, the state update and the mask (backward: the upstream gradient and the gate
derivatives), on a block of rows (all of them; the kernels take any block). "loop" path
(small sizes, B <= 4): the whole time loop is one njit kernel -- _common.matvec_add for the
products; W_hh^T kept between calls by _wcache. The input projection and the weight
gradients are _common's, shared with every cell.
"""
from __future__ import annotations

import numpy as np

from ..cells import gru as _reference
from ..cells.gru import GRUCache, GRUGradSteps
from ._common import (c, carry_back, carry_back_row, finish_row, ijit, input_projection, jit,
                      loop_path, matvec_add, product_buffers, recurrent_product, untranspose, upstream_row,
                      valid_or_ones, weight_grads)
from ._vmath import vsigmoid, vtanh
from ._wcache import transposed


# ----------------------------------------------------------------------------
# the gate math, once: one row of one step, inlined into both paths' kernels (short loops,
# _vmath's sigmoid/tanh, the mask outside: see _lstm.py)

@ijit
def _cell_forward(gates, t, b, gh, hx, hn, rh):
    """gates[t, b] (3H,): gi_t on entry, the activated r, z, n on exit; gh[0, b] (3H,):
    h_{t-1} W_hh^T + b_hh -> hn[t, b] (H,) its n block, h_t into hx[t+1, b] (hx (T+1, ., H),
    h_{t-1} in row t; not yet carried past the end). rh (1, ., H) scratch: r * hn goes
    through it, as a loop writing gates' n block while reading its r block stays scalar
    (LLVM cannot rule out the overlap; measured at B=32, H=256 float32: 59 us a step, 15 us
    so)."""
    H = gates.shape[2] // 3
    one = gates.dtype.type(1.0)
    for j in range(2 * H):
        gates[t, b, j] = vsigmoid(gates[t, b, j] + gh[0, b, j])                 # r, z
    for j in range(H):
        hn[t, b, j] = gh[0, b, 2 * H + j]
    for j in range(H):
        rh[0, b, j] = gates[t, b, j] * hn[t, b, j]
    for j in range(H):
        gates[t, b, 2 * H + j] = vtanh(gates[t, b, 2 * H + j] + rh[0, b, j])   # n
    for j in range(H):
        z = gates[t, b, H + j]
        hx[t + 1, b, j] = (one - z) * gates[t, b, 2 * H + j] + z * hx[t, b, j]


@ijit
def _cell_backward(dh, t, b, hp, tp, gates, hn, dgi, dgh, dhz):
    """The gate derivatives of row b at step t, in the reference's order of operations.
    dh[t, b] (H,): dL/dh_t; hp[tp, b]: h_{t-1} -> dgi[t, b], dgh[t, b] (3H,), dhz[0, b] (H,) =
    dh_t z (the direct path to h_{t-1}; the caller adds dgh_t W_hh)."""
    H = gates.shape[2] // 3
    one = gates.dtype.type(1.0)
    for j in range(H):
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
        dhz[0, b, j] = d * z


# ----------------------------------------------------------------------------
# the blas path: per step one BLAS product from Python, and one kernel call for a block of
# rows

@jit
def _step_forward(gates, ghT, gh, b_ih, b_hh, bias, hx, hn, rh, valid, out, t, b0, b1):
    """Rows b0 .. b1-1 of step t. gates (T, B, 3H): x W_ih^T on entry (+ b_ih here, when
    bias: while the row is in cache, instead of a pass over all steps), the activated r, z, n
    on exit; gh (1, B, 3H): h_{t-1} W_hh^T on entry, or turned round here from ghT (3H, B) =
    W_hh h_{t-1}^T when ghT has rows (_common.transposed_product); + b_hh when bias; the rest
    as _cell_forward's, then the rows finished (_common.finish_row)."""
    G = gates.shape[2]
    if ghT.shape[0]:
        untranspose(ghT, gh, b0, b1)
    for b in range(b0, b1):
        if bias:
            for j in range(G):
                gates[t, b, j] += b_ih[j]
            for j in range(G):
                gh[0, b, j] += b_hh[j]
        _cell_forward(gates, t, b, gh, hx, hn, rh)
        finish_row(hx, t, b, valid, out)


@jit
def _step_backward(d_out, dhn, dhp, dhz, h0, h, gates, hn, valid, dh, dgi, dgh, t, b0, b1):
    """Rows b0 .. b1-1 of step t: dL/dh_t = dz_{t+1}... carried back (dhp: dgh_{t+1} W_hh, plus
    dhz = dh_{t+1} z_{t+1}) unless t is the last step, then the gate derivatives."""
    T = gates.shape[0]
    H = gates.shape[2] // 3
    hp, tp = (h0, 0) if t == 0 else (h, t - 1)            # h_{t-1}
    for b in range(b0, b1):
        if t < T - 1:
            _direct_and_carry(dhn, dhp, dhz, t + 1, b, valid, H)
        upstream_row(dh, t, b, dhn, d_out, valid)
        _cell_backward(dh, t, b, hp, tp, gates, hn, dgi, dgh, dhz)


@ijit
def _direct_and_carry(dhn, dhp, dhz, t, b, valid, H):
    """dhn[0, b] <- dL/dh_{t-1} = (dgh_t W_hh + dh_t z_t) (carried past the end)."""
    for j in range(H):
        dhp[0, b, j] += dhz[0, b, j]
    carry_back_row(dhn, dhp, t, b, valid)


@jit
def _carry_rows(dhn, dhp, dhz, t, valid, b0, b1):
    for b in range(b0, b1):
        _direct_and_carry(dhn, dhp, dhz, t, b, valid, dhn.shape[2])


# ----------------------------------------------------------------------------
# the whole time loop (loop path), written as _lstm.py's (see the notes there): no views or
# calls in the loop, short loops, finished sequences fixed up afterwards

@jit
def _loop_forward(gates, hx, w_hhT, b_hh, valid, gh, rh, hn, out):
    """gates (T, B, 3H): gi = x W_ih^T + b_ih on entry, the activated r, z, n on exit.
    hx (T+1, B, H): h0 in row 0 on entry, h_t in row t. w_hhT (H, 3H); b_hh (3H,) (zeros
    without bias). gh (1, B, 3H) scratch: h_{t-1} W_hh^T + b_hh; rh (1, B, H) scratch.
    hn, out (T, B, H) filled."""
    T, B, G = gates.shape
    for t in range(T):
        for b in range(B):
            for j in range(G):
                gh[0, b, j] = b_hh[j]
        matvec_add(gh, 0, hx, t, w_hhT)                   # gh = b_hh + h_{t-1} W_hh^T
        for b in range(B):
            _cell_forward(gates, t, b, gh, hx, hn, rh)
            finish_row(hx, t, b, valid, out)              # out_t, or carry a finished state


@jit
def _loop_backward(d_out, dhn, h0, gates, hn, h, w_hh, valid, dh, dgi, dgh, dhp):
    """BPTT. dhn (1, B, H): dL/dh_T on entry, dL/dh_0 on exit. h0 (1, B, H); gates (T, B, 3H),
    hn, h (T, B, H) from the forward. dh (T, B, H), dgi, dgh (T, B, 3H) filled.
    Scratch: dhp (1, B, H) dh_t z + dgh_t W_hh."""
    T, B, G = gates.shape
    for t in range(T - 1, -1, -1):
        hp, tp = (h0, 0) if t == 0 else (h, t - 1)        # h_{t-1}
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)     # dL/dh_t
            _cell_backward(dh, t, b, hp, tp, gates, hn, dgi, dgh, dhp)   # dhp = dh z
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
    blas = not loop_path(B, 3, H, H, path)
    gates = input_projection(x, w_ih, None if blas else b_ih)   # (T, B, 3H) gi, then r, z, n
    hn = np.empty((T, B, H), dtype=dt)                     # (T, B, H) hidden product of n
    out = np.empty((T, B, H), dtype=dt)                    # (T, B, H) outputs (0 past the end)
    hx = np.empty((T + 1, B, H), dtype=dt)                 # (T+1, B, H) h0, h_1 .. h_T
    hx[0] = h0
    gh = np.empty((1, B, 3 * H), dtype=dt)                 # (1, B, 3H) h_{t-1} W_hh^T + b_hh
    rh = np.empty((1, B, H), dtype=dt)                     # (1, B, H) scratch: r * hn
    if not blas:
        b_hhc = c(b_hh) if bias else np.zeros(3 * H, dtype=dt)   # (3H,) adding 0 is exact
        _loop_forward(gates, hx, transposed(w_hh, w_hhT, "w_hhT"), b_hhc, v, gh, rh, hn, out)
    else:
        _blas_forward(gates, hx, c(w_hh), (c(b_ih), c(b_hh)) if bias else None, v, gh, rh, hn,
                      out)
    h = hx[1:]                                             # (T, B, H) view
    cache = GRUCache(x, h0, gates, hn, h, valid, w_ih, w_hh, bias)
    return out, h[T - 1].copy(), cache


def _blas_forward(gates, hx, w_hh, biases, v, gh, rh, hn, out):
    """The blas path's time loop (arrays as _loop_forward's, gates without b_ih; biases:
    (b_ih, b_hh), or None without bias)."""
    T, B, G = gates.shape
    bias = biases is not None
    none = np.zeros(0, dtype=gates.dtype)
    b_ih, b_hh = biases if bias else (none, none)          # b_hh added after the product,
    ghT = product_buffers(G, B, gates.dtype)[0]            # as the reference does;
    for t in range(T):                                     # (3H, B) or (0, 0)
        recurrent_product(w_hh, hx[t], ghT, gh)
        _step_forward(gates, ghT, gh, b_ih, b_hh, bias, hx, hn, rh, v, out, t, 0, B)


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
        _blas_backward(d_out, dh_next, h0[None], h, gates, hn, w_hh, v, dh, dgi, dgh)
        dh_next = dh_next[0]
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_grads(dgi, x, cache.w_ih, h0, h, cache.has_bias,
                                                  dz_hh=dgh, input_grad=input_grad)
    grads = (dx, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (GRUGradSteps(dh, dgi),) if return_steps else grads


def _blas_backward(d_out, dhn, h0, h, gates, hn, w_hh, v, dh, dgi, dgh):
    """The blas path's BPTT (arrays as _loop_backward's), one block of rows."""
    T, B, G = gates.shape
    dhp = np.empty_like(dhn)                               # (1, B, H) dgh_t W_hh
    dhz = np.empty_like(dhn)                               # (1, B, H) dh_t z_t, the direct path

    def rows(b0, b1):
        for t in range(T - 1, -1, -1):
            _step_backward(d_out, dhn, dhp, dhz, h0, h, gates, hn, v, dh, dgi, dgh, t, b0, b1)
            np.matmul(dgh[t, b0:b1], w_hh, out=dhp[0, b0:b1])
        _carry_rows(dhn, dhp, dhz, 0, v, b0, b1)           # dL/dh_0

    rows(0, B)
