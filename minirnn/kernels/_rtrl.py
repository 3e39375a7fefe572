"""RTRL in Numba: the twin of minirnn/grad/rtrl.py's reference step (same math, fused).

One step, for the state s = [h, c] (S wide) and the flat parameter vector θ (N long):
    <family>_step:     s_t, J_s = ∂s_t/∂s_{t-1} (B, S, S), and Z_t = ∂s_t/∂(pre-activations)
                       (B, S, G·H), for the input side (Zi) and the hidden side (Zh); they
                       differ for the GRU only. The reference's step_jacobians docstrings give
                       the equations; here they are written per unit, into zeroed arrays.
    influence_update:  M_t = J_s M_{t-1} (one batched BLAS product through NumPy), then one
                       pass over M_t that adds ∂F/∂θ where it is non-zero (Z ⊗ x_t for W_ih,
                       Z ⊗ h_{t-1} for W_hh, Z for the biases, r_t for W_hr), carries the
                       rows of finished sequences, and accumulates g = Σ_b dL_t/ds_t · M_t.
The dense ∂F/∂θ (B, S, N) of the reference is never formed. numba has no BLAS of its own
here (its np.dot needs SciPy), so the one O(S^2 N) product goes through NumPy; the rest is
O(S N) a step. Z is mostly zeros, but every product is formed (no skipped zeros): an inf or
NaN spreads as in the reference. Settings: minirnn/_config.py.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import c, jit


@jit
def _sigmoid(z):
    # the reference's sign split: exp never overflows
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@jit
def _affine(x, w, b, out):
    """out[b, k] = x[b] · w[k] + b[k] (b: a (G,) array; zeros when there is no bias)."""
    B, K = x.shape
    for n in range(B):
        for g in range(w.shape[0]):
            acc = 0.0
            for k in range(K):
                acc += x[n, k] * w[g, k]
            out[n, g] = acc + b[g]


# ----------------------------------------------------------------------------
# one step per family: state, J_s, Z (arrays zeroed by the caller)

@jit
def _rnn_step(x, h, w_ih, w_hh, b, relu, h_new, J, Z):
    B, H = h.shape
    a = np.empty((B, H), dtype=h.dtype)
    ah = np.empty((B, H), dtype=h.dtype)
    _affine(x, w_ih, b, a)
    _affine(h, w_hh, np.zeros(H, dtype=h.dtype), ah)
    for n in range(B):
        for j in range(H):
            z = a[n, j] + ah[n, j]
            if relu:
                h_new[n, j] = z if z > 0.0 else 0.0
                d = 1.0 if z > 0.0 else 0.0
            else:
                h_new[n, j] = math.tanh(z)
                d = 1.0 - h_new[n, j] * h_new[n, j]
            Z[n, j, j] = d
            for p in range(H):
                J[n, j, p] = d * w_hh[j, p]


@jit
def _lstm_step(x, h, cp, w_ih, w_hh, b, w_hr, proj, h_new, c_new, r, J, Z):
    B, H = cp.shape
    P = h.shape[1]
    G = 4 * H
    zi = np.empty((B, G), dtype=h.dtype)
    zh = np.empty((B, G), dtype=h.dtype)
    _affine(x, w_ih, b, zi)
    _affine(h, w_hh, np.zeros(G, dtype=h.dtype), zh)
    dc = np.zeros((4, H), dtype=h.dtype)             # ∂c_t[j]/∂z_k[j]
    dr = np.zeros((4, H), dtype=h.dtype)             # ∂r_t[j]/∂z_k[j]
    qf = np.empty(H, dtype=h.dtype)                  # ∂r_t[j]/∂c_{t-1}[j]
    for n in range(B):
        for j in range(H):
            i = _sigmoid(zi[n, j] + zh[n, j])
            f = _sigmoid(zi[n, H + j] + zh[n, H + j])
            g = math.tanh(zi[n, 2 * H + j] + zh[n, 2 * H + j])
            o = _sigmoid(zi[n, 3 * H + j] + zh[n, 3 * H + j])
            c_new[n, j] = f * cp[n, j] + i * g
            tc = math.tanh(c_new[n, j])
            r[n, j] = o * tc
            q = o * (1.0 - tc * tc)
            dc[0, j], dc[1, j], dc[2, j] = g * (i * (1.0 - i)), cp[n, j] * (f * (1.0 - f)), \
                i * (1.0 - g * g)
            dr[0, j], dr[1, j], dr[2, j] = q * dc[0, j], q * dc[1, j], q * dc[2, j]
            dr[3, j] = tc * (o * (1.0 - o))
            qf[j] = q * f
            for k in range(3):                       # c rows: Z = ∂c_t/∂z
                Z[n, P + j, k * H + j] = dc[k, j]
            J[n, P + j, P + j] = f                   # ∂c_t/∂c_{t-1} at fixed z
        for p in range(P):                           # h rows: W_hr ∂r/∂z, or ∂r/∂z itself
            acc = 0.0
            for j in range(H):
                w = w_hr[p, j] if proj else (1.0 if p == j else 0.0)
                acc += w * r[n, j]
                for k in range(4):
                    Z[n, p, k * H + j] = w * dr[k, j]
                J[n, p, P + j] = w * qf[j]
            h_new[n, p] = acc if proj else r[n, p]
        for s in range(P + H):                       # ∂s_t/∂h_{t-1} = Z W_hh
            for k in range(G):
                zk = Z[n, s, k]
                for p in range(P):
                    J[n, s, p] += zk * w_hh[k, p]


@jit
def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh, h_new, J, Zi, Zh):
    B, H = h.shape
    gi = np.empty((B, 3 * H), dtype=h.dtype)
    gh = np.empty((B, 3 * H), dtype=h.dtype)
    _affine(x, w_ih, b_ih, gi)
    _affine(h, w_hh, b_hh, gh)
    for n in range(B):
        for j in range(H):
            r = _sigmoid(gi[n, j] + gh[n, j])
            z = _sigmoid(gi[n, H + j] + gh[n, H + j])
            hn = gh[n, 2 * H + j]
            nn = math.tanh(gi[n, 2 * H + j] + r * hn)
            h_new[n, j] = (1.0 - z) * nn + z * h[n, j]
            e = (1.0 - z) * (1.0 - nn * nn)
            Zi[n, j, j] = Zh[n, j, j] = e * hn * (r * (1.0 - r))
            Zi[n, j, H + j] = Zh[n, j, H + j] = (h[n, j] - nn) * (z * (1.0 - z))
            Zi[n, j, 2 * H + j] = e
            Zh[n, j, 2 * H + j] = e * r
            for p in range(H):
                J[n, j, p] = Zh[n, j, j] * w_hh[j, p] + Zh[n, j, H + j] * w_hh[H + j, p] \
                    + Zh[n, j, 2 * H + j] * w_hh[2 * H + j, p]
            J[n, j, j] += z


def _weights(x_t, params):
    w_ih, w_hh = c(params["weight_ih"]), c(params["weight_hh"])
    zero = np.zeros(w_ih.shape[0], dtype=x_t.dtype)
    b_ih, b_hh = params.get("bias_ih"), params.get("bias_hh")
    return (c(x_t), w_ih, w_hh, zero if b_ih is None else c(b_ih),
            zero if b_hh is None else c(b_hh))


# The uniform step, one per family (each Tier's rtrl_step, minirnn/kernels/__init__.py): (x_t, state tuple, params, nonlinearity)
# -> new state tuple, J_s (B, S, S), Zi, Zh (B, S, G*H; one array unless the family is the
# GRU), r_t (B, H) for the projection's Jacobian or None.

def rnn_step(x_t, state, params, nonlinearity="tanh"):
    x_t, w_ih, w_hh, b_ih, b_hh = _weights(x_t, params)
    h = c(state[0])
    (B, H), dt = h.shape, h.dtype
    h_new, J, Z = np.empty_like(h), np.zeros((B, H, H), dt), np.zeros((B, H, H), dt)
    _rnn_step(x_t, h, w_ih, w_hh, b_ih + b_hh, nonlinearity == "relu", h_new, J, Z)
    return (h_new,), J, Z, Z, None


def lstm_step(x_t, state, params, nonlinearity=None):
    x_t, w_ih, w_hh, b_ih, b_hh = _weights(x_t, params)
    h, cp, w_hr = c(state[0]), c(state[1]), params.get("weight_hr")
    (B, P), H, dt = h.shape, cp.shape[1], h.dtype
    h_new, c_new, r = np.empty_like(h), np.empty_like(cp), np.empty_like(cp)
    J, Z = np.zeros((B, P + H, P + H), dt), np.zeros((B, P + H, 4 * H), dt)
    _lstm_step(x_t, h, cp, w_ih, w_hh, b_ih + b_hh,
               np.zeros((1, 1), dt) if w_hr is None else c(w_hr), w_hr is not None,
               h_new, c_new, r, J, Z)
    return (h_new, c_new), J, Z, Z, r


def gru_step(x_t, state, params, nonlinearity=None):
    x_t, w_ih, w_hh, b_ih, b_hh = _weights(x_t, params)
    h = c(state[0])
    (B, H), dt = h.shape, h.dtype
    h_new, J = np.empty_like(h), np.zeros((B, H, H), dt)
    Zi, Zh = np.zeros((B, H, 3 * H), dt), np.zeros((B, H, 3 * H), dt)
    _gru_step(x_t, h, w_ih, w_hh, b_ih, b_hh, h_new, J, Zi, Zh)
    return (h_new,), J, Zi, Zh, None


# the parameter blocks the influence update knows, in the order of its offsets argument
BLOCKS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


# ----------------------------------------------------------------------------
# the influence update: M_t = J_s M_{t-1} + ∂F/∂θ, carried rows, the gradient

@jit
def _direct_and_grad(M, M_prev, keep, Zi, Zh, x, hp, r, offs, dL, g):
    """M (B, S, N) holds J_s M_{t-1}: add ∂F/∂θ, restore finished rows, g += dL · M."""
    B, S, N = M.shape
    G = Zi.shape[2]
    I, P = x.shape[1], hp.shape[1]
    o_ih, o_hh, o_bi, o_bh, o_hr = offs[0], offs[1], offs[2], offs[3], offs[4]
    for n in range(B):
        if not keep[n]:                              # finished: the influence is carried
            for s in range(S):
                for k in range(N):
                    M[n, s, k] = M_prev[n, s, k]
            continue
        for s in range(S):
            for k in range(G):
                zi, zh = Zi[n, s, k], Zh[n, s, k]
                base = o_ih + k * I
                for m in range(I):
                    M[n, s, base + m] += zi * x[n, m]
                base = o_hh + k * P
                for m in range(P):
                    M[n, s, base + m] += zh * hp[n, m]
                if o_bi >= 0:
                    M[n, s, o_bi + k] += zi
                    M[n, s, o_bh + k] += zh
            if o_hr >= 0 and s < P:                  # ∂h_t[s]/∂W_hr[s, j] = r_t[j]
                H = r.shape[1]
                for j in range(H):
                    M[n, s, o_hr + s * H + j] += r[n, j]
            d = dL[n, s]
            for k in range(N):
                g[k] += d * M[n, s, k]


def influence_update(M_prev, M_out, J_state, Zi, Zh, x_t, h_prev, r, keep, offsets, dL_ds):
    """M_out <- J_s M_prev + ∂F/∂θ (M_prev where keep is False); -> g (N,) = Σ dL_ds · M_out.
    offsets: int64 (w_ih, w_hh, b_ih, b_hh, w_hr) into θ, -1 where absent."""
    np.matmul(J_state, M_prev, out=M_out)
    g = np.zeros(M_out.shape[2], dtype=M_out.dtype)
    _direct_and_grad(M_out, M_prev, c(np.asarray(keep, dtype=np.bool_)), Zi, Zh, c(x_t),
                     c(h_prev), np.zeros((1, 1), M_out.dtype) if r is None else r,
                     c(offsets), c(dL_ds), g)
    return g
