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
product, NumPy's SIMD exp/tanh over whole blocks, and small fused njit kernels for the gates
and the state update (backward: one fused kernel for the gate derivatives). "loop" path
(small sizes): the whole time loop is one njit kernel with hand-written products.
"""
from __future__ import annotations

import numpy as np

from ..functional import gru as _reference
from ..functional.gru import GRUCache, GRUGradSteps
from ._common import c, carry, jit, loop_path, mask_grad, select_state, valid_or_ones


@jit
def _sigmoid(z):
    # split by sign as the reference does, so that exp never overflows
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    ez = np.exp(z)
    return ez / (1.0 + ez)


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
# one step (blas path): NumPy's SIMD exp/tanh over whole blocks (scalar libm calls in a
# loop without fastmath are several times slower), the rest fused

@jit
def _sigmoid_from_exp(a, e):
    # the reference's sign split with e = exp(-|a|): exp(-a) for a >= 0, exp(a) below
    return 1.0 / (1.0 + e) if a >= 0.0 else e / (1.0 + e)


@jit
def _step_gates(gates_t, e, gh, hn_t):
    """gates_t (B, 3H): r, z pre-activations (gi + gh) and gi_n on entry; e (B, 2H) =
    exp(-|a_rz|); gh (B, 3H) hidden side incl. b_hh.
    -> r, z activated in place, the n block = gi_n + r * hn (tanh still to come), hn_t (B, H)."""
    B, G = gates_t.shape
    H = G // 3
    for b in range(B):
        for j in range(H):
            r = _sigmoid_from_exp(gates_t[b, j], e[b, j])
            gates_t[b, j] = r
            gates_t[b, H + j] = _sigmoid_from_exp(gates_t[b, H + j], e[b, H + j])
            hn = gh[b, 2 * H + j]
            hn_t[b, j] = hn
            gates_t[b, 2 * H + j] = gates_t[b, 2 * H + j] + r * hn


@jit
def _step_state(gates_t, h_prev, h_new):
    """h_new (B, H) = (1 - z) n + z h_prev, before the mask."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            z, n = gates_t[b, H + j], gates_t[b, 2 * H + j]
            h_new[b, j] = (1.0 - z) * n + z * h_prev[b, j]


@jit
def _step_backward(dh_t, h_prev, gates_t, hn_t, dgi_t, dgh_t, dhz):
    for b in range(dh_t.shape[0]):
        _cell_backward(dh_t[b], h_prev[b], gates_t[b], hn_t[b], dgi_t[b], dgh_t[b], dhz[b])


# ----------------------------------------------------------------------------
# the whole time loop (loop path)

@jit
def _loop_forward(xw, h0, w_hhT, b_hh, valid, gates, hn, h, out):
    """xw (T, B, 3H) = x W_ih^T + b_ih; w_hhT (H, 3H); b_hh (3H,) (zeros without bias).
    gates may be xw itself: each j reads its three entries of a row before writing them."""
    T, B, G = xw.shape
    H = G // 3
    gh = np.empty(G, dtype=xw.dtype)                       # (3H,) one row's hidden side
    for t in range(T):
        for b in range(B):
            h_prev = h0[b] if t == 0 else h[t - 1, b]      # (H,)
            gh[:] = b_hh
            for k in range(H):                             # axpy: gh += h_prev[k] * W_hh^T[k]
                hk = h_prev[k]
                for j in range(G):
                    gh[j] += w_hhT[k, j] * hk
            gi, g = xw[t, b], gates[t, b]                  # (3H,) each
            ok = valid[t, b]
            for j in range(H):
                r = _sigmoid(gi[j] + gh[j])
                z = _sigmoid(gi[H + j] + gh[H + j])
                n = np.tanh(gi[2 * H + j] + r * gh[2 * H + j])
                g[j] = r
                g[H + j] = z
                g[2 * H + j] = n
                hn[t, b, j] = gh[2 * H + j]
                h_new = (1.0 - z) * n + z * h_prev[j]
                if ok:
                    h[t, b, j] = h_new
                    out[t, b, j] = h_new
                else:                                      # finished: keep the last state
                    h[t, b, j] = h_prev[j]
                    out[t, b, j] = 0.0


@jit
def _loop_backward(d_out, dh_T, h0, gates, hn, h, w_hh, valid, dh, dgi, dgh):
    """BPTT over the whole sequence; dh, dgi, dgh filled; returns dh_0 (B, H)."""
    T, B, G = gates.shape
    H = G // 3
    dh_next = dh_T.copy()                                  # (B, H)
    dh_prev = np.empty(H, dtype=gates.dtype)               # (H,)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            ok = valid[t, b]
            for j in range(H):
                dh[t, b, j] = dh_next[b, j] + d_out[t, b, j] if ok else 0.0
            h_prev = h0[b] if t == 0 else h[t - 1, b]
            _cell_backward(dh[t, b], h_prev, gates[t, b], hn[t, b], dgi[t, b], dgh[t, b],
                           dh_prev)
            for g in range(G):                             # axpy: dh_prev += dgh[g] * W_hh[g]
                dg = dgh[t, b, g]
                for k in range(H):
                    dh_prev[k] += dg * w_hh[g, k]
            for k in range(H):                             # carried state passes straight back
                dh_next[b, k] = dh_prev[k] if ok else dh_prev[k] + dh_next[b, k]
    return dh_next


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, valid=None, path=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), GRUCache (as the reference)."""
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)
    H = h0.shape[1]
    dt = x.dtype
    xc, h0c, w_hhc = c(x), c(h0), c(w_hh)
    bias = b_ih is not None
    v = valid_or_ones(valid, T, B)                         # (T, B)
    xw = (xc.reshape(T * B, I) @ c(w_ih).T).reshape(T, B, 3 * H)   # (T, B, 3H) gi, all steps
    if bias:
        xw += b_ih                                         # b_hh stays on the hidden side
    gates = xw                                             # (T, B, 3H) gi, then r, z, n in place
    hn = np.empty((T, B, H), dtype=dt)                     # (T, B, H) hidden product of n
    h = np.empty((T, B, H), dtype=dt)                      # (T, B, H) states
    out = np.empty((T, B, H), dtype=dt)                    # (T, B, H) outputs (0 past the end)
    if loop_path(B, 3, H, H, path):
        b_hhc = c(b_hh) if bias else np.zeros(3 * H, dtype=dt)   # (3H,) adding 0 is exact
        _loop_forward(xw, h0c, c(w_hhc.T), b_hhc, v, gates, hn, h, out)
    else:
        w_hhT = w_hhc.T
        gh = np.empty((B, 3 * H), dtype=dt)                # (B, 3H) h_{t-1} W_hh^T + b_hh
        e = np.empty((B, 2 * H), dtype=dt)                 # (B, 2H) exp(-|a_r|), exp(-|a_z|)
        h_new = np.empty((B, H), dtype=dt)                 # (B, H) h_t before the mask
        h_prev = h0c
        for t in range(T):
            g = gates[t]
            np.matmul(h_prev, w_hhT, out=gh)
            if bias:
                gh += b_hh
            rz, n_block = g[:, :2 * H], g[:, 2 * H:]      # views into gates[t]
            rz += gh[:, :2 * H]
            np.exp(np.negative(np.abs(rz, out=e), out=e), out=e)
            _step_gates(g, e, gh, hn[t])
            np.tanh(n_block, out=n_block)
            _step_state(g, h_prev, h_new)
            select_state(v[t], h_new, h_prev, h[t], out[t])
            h_prev = h[t]
    cache = GRUCache(x, h0, gates, hn, h, valid, w_ih, w_hh, bias)
    return out, h[T - 1].copy(), cache


def backward(cache, d_out, d_hT=None, return_steps=False, path=None):
    """BPTT -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh [, GRUGradSteps] (as the reference)."""
    x, gates, hn, h = c(cache.x), cache.gates, cache.hn, cache.h
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, return_steps)
    H = h.shape[2]
    h0, w_hh = c(cache.h0), c(cache.w_hh)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh_next = np.zeros_like(h0) if d_hT is None else c(d_hT).copy()   # (B, H)
    dh = np.empty_like(h)                                  # (T, B, H)  dL/dh_t
    dgi = np.empty_like(gates)                             # (T, B, 3H) dL/dgi_t (input side)
    dgh = np.empty_like(gates)                             # (T, B, 3H) dL/dgh_t (hidden side)
    if loop_path(B, 3, H, H, path):
        dh_next = _loop_backward(d_out, dh_next, h0, gates, hn, h, w_hh, v, dh, dgi, dgh)
    else:
        dhz = np.empty_like(h0)                            # (B, H) dh * z, the direct path
        dh_prev = np.empty_like(h0)                        # (B, H)
        for t in range(T - 1, -1, -1):
            mask_grad(v[t], dh_next, d_out[t], dh[t])
            _step_backward(dh[t], h[t - 1] if t > 0 else h0, gates[t], hn[t],
                           dgi[t], dgh[t], dhz)
            np.matmul(dgh[t], w_hh, out=dh_prev)
            dh_prev += dhz
            dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
    # the rest as a few large products over all steps
    dgi2 = dgi.reshape(T * B, 3 * H)                       # (T*B, 3H)
    dgh2 = dgh.reshape(T * B, 3 * H)                       # (T*B, 3H)
    dx = (dgi2 @ c(cache.w_ih)).reshape(T, B, I)           # (T, B, I)
    dw_ih = dgi2.T @ x.reshape(T * B, I)                   # (3H, I)
    dw_hh = dgh[0].T @ h0                                  # (3H, H): step 0 sees h0, then h_{t-1}
    if T > 1:
        dw_hh += dgh2[B:].T @ h[:-1].reshape((T - 1) * B, H)
    db_ih = dgi2.sum(axis=0) if cache.has_bias else None
    db_hh = dgh2.sum(axis=0) if cache.has_bias else None
    grads = (dx, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (GRUGradSteps(dh, dgi),) if return_steps else grads
