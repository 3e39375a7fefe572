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

Large products go through NumPy BLAS. "blas" path (large sizes): per step one BLAS product,
NumPy's SIMD exp/tanh over the whole (B, 4H) block, and one fused njit kernel for the gates
and the state update (backward: one fused kernel for the gate derivatives). "loop" path
(small sizes): the whole time loop is one njit kernel with hand-written products.
"""
from __future__ import annotations

import numpy as np

from ..functional import lstm as _reference
from ..functional.lstm import LSTMCache, LSTMGradSteps
from ._common import c, carry, jit, loop_path, mask_grad, select_state, valid_or_ones


@jit
def _sigmoid(z):
    # split by sign as the reference does, so that exp never overflows
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    ez = np.exp(z)
    return ez / (1.0 + ez)


@jit
def _cell_forward(z, c_prev, valid, gates, c_t, r):
    """One row: z (4H,) pre-activations -> gates (4H,) activated, c_t (H,) masked, r (H,)."""
    H = c_prev.shape[0]
    for j in range(H):
        i = _sigmoid(z[j])
        f = _sigmoid(z[H + j])
        g = np.tanh(z[2 * H + j])
        o = _sigmoid(z[3 * H + j])
        gates[j] = i
        gates[H + j] = f
        gates[2 * H + j] = g
        gates[3 * H + j] = o
        c_new = f * c_prev[j] + i * g
        r[j] = o * np.tanh(c_new)
        c_t[j] = c_new if valid else c_prev[j]          # finished: keep the last state


@jit
def _cell_backward(dr, dc_next, valid, gates, tanh_ct, c_prev, dz, dc, dc_prev):
    """One row: the gate derivatives. dr, dc_next, tanh(c_t) (H,) -> dz (4H,), dc (H,) total,
    dc_prev (H,)."""
    H = tanh_ct.shape[0]
    for j in range(H):
        i, f, g, o = gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]
        tanh_c = tanh_ct[j]
        d_o = dr[j] * tanh_c
        dcj = (dc_next[j] if valid else 0.0) + dr[j] * o * (1.0 - tanh_c * tanh_c)
        dc[j] = dcj
        dz[j] = dcj * g * i * (1.0 - i)
        dz[H + j] = dcj * c_prev[j] * f * (1.0 - f)
        dz[2 * H + j] = dcj * i * (1.0 - g * g)
        dz[3 * H + j] = d_o * o * (1.0 - o)
        # carried cell state passes its gradient straight back
        dc_prev[j] = dcj * f if valid else dcj * f + dc_next[j]


# ----------------------------------------------------------------------------
# one step (blas path): NumPy's SIMD exp/tanh over whole blocks (about 10x faster than
# scalar libm calls in a loop without fastmath, measured at B=64, H=512), the rest fused

@jit
def _sigmoid_from_exp(z, e):
    # the reference's sign split with e = exp(-|z|): exp(-z) for z >= 0, exp(z) below
    return 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)


@jit
def _step_forward(gates_t, e, c_prev, valid_t, c_new, c_t):
    """gates_t (B, 4H): z_t on entry except the g block, already tanh(z_g); e = exp(-|z_t|).
    -> activated gates in place, c_new (B, H) unmasked, c_t (B, H) masked."""
    B, G = gates_t.shape
    H = G // 4
    for b in range(B):
        for j in range(H):
            i = _sigmoid_from_exp(gates_t[b, j], e[b, j])
            f = _sigmoid_from_exp(gates_t[b, H + j], e[b, H + j])
            o = _sigmoid_from_exp(gates_t[b, 3 * H + j], e[b, 3 * H + j])
            gates_t[b, j] = i
            gates_t[b, H + j] = f
            gates_t[b, 3 * H + j] = o
            cn = f * c_prev[b, j] + i * gates_t[b, 2 * H + j]
            c_new[b, j] = cn
            c_t[b, j] = cn if valid_t[b] else c_prev[b, j]     # finished: keep the last state


@jit
def _step_backward(dr, dc_next, valid_t, gates_t, tanh_ct, c_prev, dz_t, dc_t, dc_prev):
    for b in range(dr.shape[0]):
        _cell_backward(dr[b], dc_next[b], valid_t[b], gates_t[b], tanh_ct[b], c_prev[b],
                       dz_t[b], dc_t[b], dc_prev[b])


# ----------------------------------------------------------------------------
# the whole time loop (loop path)

@jit
def _loop_forward(xw, h0, c0, w_hhT, w_hrT, proj, valid, gates, c, h, out):
    """xw (T, B, 4H); w_hhT (P, 4H); w_hrT (H, P) (unused without proj)."""
    T, B, G = xw.shape
    H = G // 4
    P = h0.shape[1]
    z = np.empty(G, dtype=xw.dtype)                        # (4H,)
    r = np.empty(H, dtype=xw.dtype)                        # (H,)
    h_new = np.empty(P, dtype=xw.dtype)                    # (P,)
    for t in range(T):
        for b in range(B):
            h_prev = h0[b] if t == 0 else h[t - 1, b]      # (P,)
            c_prev = c0[b] if t == 0 else c[t - 1, b]      # (H,)
            z[:] = xw[t, b]
            for k in range(P):                             # axpy: z += h_prev[k] * W_hh^T[k]
                hk = h_prev[k]
                for j in range(G):
                    z[j] += w_hhT[k, j] * hk
            _cell_forward(z, c_prev, valid[t, b], gates[t, b], c[t, b], r)
            if proj:
                h_new[:] = 0.0
                for j in range(H):                         # axpy: h_new += r[j] * W_hr^T[j]
                    rj = r[j]
                    for p in range(P):
                        h_new[p] += w_hrT[j, p] * rj
            else:
                h_new[:] = r
            if valid[t, b]:
                h[t, b] = h_new
                out[t, b] = h_new
            else:
                h[t, b] = h_prev
                out[t, b] = 0.0


@jit
def _loop_backward(d_out, dh_T, dc_T, c0, gates, c, w_hh, w_hr, proj, valid, dh, dc, dz):
    """BPTT over the whole sequence; dh, dc, dz filled; returns dh_0 (B, P), dc_0 (B, H)."""
    T, B, G = gates.shape
    H = G // 4
    P = dh_T.shape[1]
    dh_next = dh_T.copy()                                  # (B, P)
    dc_next = dc_T.copy()                                  # (B, H)
    dr = np.empty(H, dtype=gates.dtype)                    # (H,)
    dh_prev = np.empty(P, dtype=gates.dtype)               # (P,)
    dc_prev = np.empty(H, dtype=gates.dtype)               # (H,)
    tanh_c = np.empty(H, dtype=gates.dtype)                # (H,)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            ok = valid[t, b]
            for p in range(P):
                dh[t, b, p] = dh_next[b, p] + d_out[t, b, p] if ok else 0.0
            if proj:
                dr[:] = 0.0
                for p in range(P):                         # axpy: dr += dh[p] * W_hr[p]
                    dp = dh[t, b, p]
                    for j in range(H):
                        dr[j] += dp * w_hr[p, j]
            else:
                dr[:] = dh[t, b]
            c_prev = c0[b] if t == 0 else c[t - 1, b]
            for j in range(H):
                tanh_c[j] = np.tanh(c[t, b, j])
            _cell_backward(dr, dc_next[b], ok, gates[t, b], tanh_c, c_prev,
                           dz[t, b], dc[t, b], dc_prev)
            dh_prev[:] = 0.0
            for g in range(G):                             # axpy: dh_prev += dz[g] * W_hh[g]
                dg = dz[t, b, g]
                for p in range(P):
                    dh_prev[p] += dg * w_hh[g, p]
            for p in range(P):
                dh_next[b, p] = dh_prev[p] if ok else dh_prev[p] + dh_next[b, p]
            dc_next[b] = dc_prev
    return dh_next, dc_next


# ----------------------------------------------------------------------------
# the reference signatures

def forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, valid=None, path=None):
    """x (T, B, I), h0 (B, P), c0 (B, H) -> out (T, B, P), h_T, c_T, LSTMCache (as the reference)."""
    T, B, I = x.shape
    if T == 0:                                             # nothing to fuse: the reference
        return _reference.forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid)
    H, P = c0.shape[1], h0.shape[1]
    dt = x.dtype
    xc, h0c, c0c, w_hhc = c(x), c(h0), c(c0), c(w_hh)
    proj = w_hr is not None
    w_hrc = c(w_hr) if proj else np.zeros((0, 0), dtype=dt)
    v = valid_or_ones(valid, T, B)                         # (T, B)
    xw = (xc.reshape(T * B, I) @ c(w_ih).T).reshape(T, B, 4 * H)   # (T, B, 4H) all steps
    if b_ih is not None:
        xw += b_ih + b_hh
    gates = xw                                             # (T, B, 4H) z_t, then i, f, g, o in place
    cs = np.empty((T, B, H), dtype=dt)                     # (T, B, H) cell states
    h = np.empty((T, B, P), dtype=dt)                      # (T, B, P) hidden states
    out = np.empty((T, B, P), dtype=dt)                    # (T, B, P) outputs (0 past the end)
    if loop_path(B, 4, H, P, path):
        _loop_forward(xw, h0c, c0c, c(w_hhc.T), c(w_hrc.T), proj, v, gates, cs, h, out)
    else:
        w_hhT, w_hrT = w_hhc.T, w_hrc.T
        r = np.empty((B, H), dtype=dt)                     # (B, H) o * tanh(c_t)
        c_new = np.empty((B, H), dtype=dt)                 # (B, H) c_t before the mask
        h_new = np.empty((B, P), dtype=dt)                 # (B, P)
        zh = np.empty((B, 4 * H), dtype=dt)                # (B, 4H) h_{t-1} W_hh^T
        e = np.empty((B, 4 * H), dtype=dt)                 # (B, 4H) exp(-|z_t|)
        h_prev, c_prev = h0c, c0c
        for t in range(T):
            z = gates[t]
            np.matmul(h_prev, w_hhT, out=zh)
            z += zh
            np.exp(np.negative(np.abs(z, out=e), out=e), out=e)
            np.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])
            _step_forward(z, e, c_prev, v[t], c_new, cs[t])
            np.multiply(z[:, 3 * H:], np.tanh(c_new, out=r), out=r)
            if proj:
                np.matmul(r, w_hrT, out=h_new)
                select_state(v[t], h_new, h_prev, h[t], out[t])
            else:
                select_state(v[t], r, h_prev, h[t], out[t])
            h_prev, c_prev = h[t], cs[t]
    cache = LSTMCache(x, h0, c0, gates, cs, h, valid, w_ih, w_hh, w_hr, b_ih is not None)
    return out, h[T - 1].copy(), cs[T - 1].copy(), cache


def backward(cache, d_out, d_hT=None, d_cT=None, return_steps=False, path=None):
    """BPTT -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr [, LSTMGradSteps] (as the reference)."""
    x, gates, cs, h = c(cache.x), cache.gates, cache.c, cache.h
    T, B, I = x.shape
    if T == 0:
        return _reference.backward(cache, d_out, d_hT, d_cT, return_steps)
    H, P = cs.shape[2], h.shape[2]
    dt = x.dtype
    h0, c0, w_hh = c(cache.h0), c(cache.c0), c(cache.w_hh)
    proj = cache.w_hr is not None
    w_hr = c(cache.w_hr) if proj else np.zeros((0, 0), dtype=dt)
    v = valid_or_ones(cache.valid, T, B)
    d_out = c(d_out)
    dh_next = np.zeros_like(h0) if d_hT is None else c(d_hT).copy()   # (B, P)
    dc_next = np.zeros_like(c0) if d_cT is None else c(d_cT).copy()   # (B, H)
    dh = np.empty_like(h)                                  # (T, B, P)  dL/dh_t
    dc = np.empty_like(cs)                                 # (T, B, H)  dL/dc_t
    dz = np.empty_like(gates)                              # (T, B, 4H) dL/dz_t
    loop = loop_path(B, 4, H, P, path)
    tanh_c = np.tanh(cs) if proj or not loop else None    # (T, B, H) all steps at once (SIMD)
    if loop:
        dh_next, dc_next = _loop_backward(d_out, dh_next, dc_next, c0, gates, cs, w_hh, w_hr,
                                          proj, v, dh, dc, dz)
    else:
        dr = np.empty((B, H), dtype=dt)                    # (B, H)
        dh_prev = np.empty_like(h0)                        # (B, P)
        dc_prev = np.empty_like(c0)                        # (B, H)
        for t in range(T - 1, -1, -1):
            mask_grad(v[t], dh_next, d_out[t], dh[t])
            if proj:
                np.matmul(dh[t], w_hr, out=dr)
            _step_backward(dr if proj else dh[t], dc_next, v[t], gates[t], tanh_c[t],
                           cs[t - 1] if t > 0 else c0, dz[t], dc[t], dc_prev)
            np.matmul(dz[t], w_hh, out=dh_prev)
            dh_next, dh_prev = carry(v[t], dh_prev, dh_next), dh_next
            dc_next, dc_prev = dc_prev, dc_next
    # the rest as a few large products over all steps
    dz2 = dz.reshape(T * B, 4 * H)                         # (T*B, 4H)
    dx = (dz2 @ c(cache.w_ih)).reshape(T, B, I)            # (T, B, I)
    dw_ih = dz2.T @ x.reshape(T * B, I)                    # (4H, I)
    dw_hh = dz[0].T @ h0                                   # (4H, P): step 0 sees h0, then h_{t-1}
    if T > 1:
        dw_hh += dz[1:].reshape((T - 1) * B, 4 * H).T @ h[:-1].reshape((T - 1) * B, P)
    db = dz2.sum(axis=0) if cache.has_bias else None
    dw_hr = None
    if proj:
        r = gates[..., 3 * H:] * tanh_c                     # (T, B, H) o * tanh(c_t), recomputed
        dw_hr = dh.reshape(T * B, P).T @ r.reshape(T * B, H)   # (P, H)
    grads = (dx, dh_next, dc_next, dw_ih, dw_hh, db, None if db is None else db.copy(), dw_hr)
    return grads + (LSTMGradSteps(dh, dc, dz),) if return_steps else grads
