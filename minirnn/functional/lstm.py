"""LSTM, one layer, one direction — the NumPy reference (the spec; never optimised).

Forward, per step t (gate order i, f, g, o as torch):
    z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          split into z_i, z_f, z_g, z_o
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    r_t = o * tanh(c_t)
    h_t = r_t W_hr^T   with proj_size (W_hr is (P, H)),   else h_t = r_t

Backward, per step t (dh = dL/dh_t, dc = dL/dc_t from step t+1):
    dr  = dh W_hr (proj) else dh;    dW_hr += dh^T r_t
    do  = dr * tanh(c_t)
    dc  = dc + dr * o * (1 - tanh(c_t)^2)
    di  = dc * g     df = dc * c_{t-1}     dg = dc * i     dc_{t-1} = dc * f
    dz  = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
    dx_t = dz W_ih   dh_{t-1} = dz W_hh   dW_ih += dz^T x_t   dW_hh += dz^T h_{t-1}

Variable lengths: past a sequence's end both states are carried unchanged and its output is zero.

Shapes: T = time, B = batch, I = input size, H = hidden size, P = proj_size (or H).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class LSTMCache(NamedTuple):
    """Everything the backward needs, and everything a debugger wants to show."""
    x: np.ndarray                 # (T, B, I)  inputs
    h0: np.ndarray                # (B, P)     initial hidden state
    c0: np.ndarray                # (B, H)     initial cell state
    gates: np.ndarray             # (T, B, 4H) activated gates i, f, g, o
    c: np.ndarray                 # (T, B, H)  cell states c_t (carried past a sequence's end)
    h: np.ndarray                 # (T, B, P)  hidden states h_t (carried likewise)
    valid: Optional[np.ndarray]   # (T, B) bool: step t lies inside sequence b; None = all do
    w_ih: np.ndarray              # (4H, I)
    w_hh: np.ndarray              # (4H, P)
    w_hr: Optional[np.ndarray]    # (P, H) projection, or None
    has_bias: bool


def sigmoid(z):
    # split by sign so that exp never overflows: IEEE-clean for gradient studies
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def split_gates(gates):
    """(..., 4H) -> i, f, g, o, each (..., H)."""
    return np.split(gates, 4, axis=-1)


# ----------------------------------------------------------------------------
# one time step

def step_forward(x_t, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """x_t (B, I), h_prev (B, P), c_prev (B, H) -> h_t (B, P), c_t (B, H), gates (B, 4H)."""
    z = x_t @ w_ih.T + h_prev @ w_hh.T
    if b_ih is not None:
        z = z + b_ih + b_hh
    z_i, z_f, z_g, z_o = split_gates(z)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)
    c_t = f * c_prev + i * g
    r_t = o * np.tanh(c_t)
    h_t = r_t @ w_hr.T if w_hr is not None else r_t
    return h_t, c_t, np.concatenate([i, f, g, o], axis=-1)


def step_backward(dh_t, dc_t, c_prev, gates_t, c_t, w_ih, w_hh, w_hr=None):
    """dL/dh_t (B, P), dL/dc_t from step t+1 (B, H)
    -> dx_t (B, I), dh_prev (B, P), dc_prev (B, H), dz_t (B, 4H), dc (B, H) total, dw_hr.

    The step's weight gradients are dz_t^T x_t and dz_t^T h_{t-1}; the sequence backward
    forms them for all steps at once, as one large product after the loop.
    """
    i, f, g, o = split_gates(gates_t)
    tanh_c = np.tanh(c_t)
    if w_hr is not None:
        dw_hr = dh_t.T @ (o * tanh_c)                  # (P, H)
        dr = dh_t @ w_hr                               # (B, H)
    else:
        dw_hr, dr = None, dh_t
    do = dr * tanh_c
    dc = dc_t + dr * o * (1.0 - tanh_c * tanh_c)
    di, df, dg = dc * g, dc * c_prev, dc * i
    dz = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f),
                         dg * (1.0 - g * g), do * o * (1.0 - o)], axis=-1)
    return dz @ w_ih, dz @ w_hh, dc * f, dz, dc, dw_hr


# ----------------------------------------------------------------------------
# the whole sequence

def forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, valid=None):
    """x (T, B, I), h0 (B, P), c0 (B, H) -> out (T, B, P), h_T, c_T, cache.

    valid (T, B) bool marks the steps inside each sequence (None: every step).
    """
    T, B, _ = x.shape
    H = c0.shape[1]
    P = h0.shape[1]
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)
    c = np.empty((T, B, H), dtype=x.dtype)
    h = np.empty((T, B, P), dtype=x.dtype)
    out = np.zeros((T, B, P), dtype=x.dtype)
    h_prev, c_prev = h0, c0
    for t in range(T):
        h_new, c_new, gates[t] = step_forward(x[t], h_prev, c_prev, w_ih, w_hh, b_ih, b_hh, w_hr)
        if valid is None:
            c[t], h[t], out[t] = c_new, h_new, h_new
        else:
            v = valid[t][:, None]
            c[t] = np.where(v, c_new, c_prev)    # finished sequences keep their last state
            h[t] = np.where(v, h_new, h_prev)
            out[t] = np.where(v, h_new, 0.0)
        h_prev, c_prev = h[t], c[t]
    cache = LSTMCache(x, h0, c0, gates, c, h, valid, w_ih, w_hh, w_hr, b_ih is not None)
    return out, h_prev, c_prev, cache


class LSTMGradSteps(NamedTuple):
    """Per-step gradients of a backward pass (for debuggers and gradient-flow studies)."""
    dh: np.ndarray                # (T, B, P)  dL/dh_t entering step t (zero past a sequence's end)
    dc: np.ndarray                # (T, B, H)  dL/dc_t, through both h_t and c_{t+1}
    dz: np.ndarray                # (T, B, 4H) dL/dz_t, the gate pre-activations


def backward(cache, d_out, d_hT=None, d_cT=None, return_steps=False, input_grad=True):
    """BPTT. d_out (T, B, P), d_hT (B, P), d_cT (B, H) (None = zeros)
    -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr (None where absent).

    return_steps=True appends an LSTMGradSteps with every step's dh_t, dc_t and dz_t.
    input_grad=False: dx is None (x needs no gradient: the fused kernels then skip it).
    """
    x, valid = cache.x, cache.valid
    T = x.shape[0]
    dx = np.zeros_like(x)
    dh = np.zeros_like(cache.h)                        # (T, B, P)
    dc = np.zeros_like(cache.c)                        # (T, B, H)
    dz = np.zeros_like(cache.gates)                    # (T, B, 4H)
    dw_hr = None if cache.w_hr is None else np.zeros_like(cache.w_hr)
    dh_next = np.zeros_like(cache.h0) if d_hT is None else d_hT
    dc_next = np.zeros_like(cache.c0) if d_cT is None else d_cT
    for t in reversed(range(T)):
        c_prev = cache.c[t - 1] if t > 0 else cache.c0
        if valid is None:
            dh[t], dc_t = dh_next + d_out[t], dc_next
        else:
            v = valid[t][:, None]
            dh[t] = np.where(v, dh_next + d_out[t], 0.0)   # padded outputs are constants
            dc_t = np.where(v, dc_next, 0.0)
        dx[t], dh_prev, dc_prev, dz[t], dc[t], dw_hr_t = step_backward(
            dh[t], dc_t, c_prev, cache.gates[t], cache.c[t], cache.w_ih, cache.w_hh, cache.w_hr)
        if dw_hr is not None:
            dw_hr += dw_hr_t
        if valid is not None:                              # carried states pass straight back
            dh_prev = dh_prev + np.where(v, 0.0, dh_next)
            dc_prev = dc_prev + np.where(v, 0.0, dc_next)
        dh_next, dc_next = dh_prev, dc_prev
    # weight gradients: sum over steps of dz_t^T x_t and dz_t^T h_{t-1}
    h_prevs = np.concatenate([cache.h0[None], cache.h[:-1]], axis=0)   # (T, B, P)
    dw_ih = np.einsum("tbg,tbi->gi", dz, x, optimize=True)
    dw_hh = np.einsum("tbg,tbp->gp", dz, h_prevs, optimize=True)
    db = dz.sum(axis=(0, 1)) if cache.has_bias else None
    grads = (dx if input_grad else None, dh_next, dc_next, dw_ih, dw_hh, db,
             None if db is None else db.copy(), dw_hr)
    return grads + (LSTMGradSteps(dh, dc, dz),) if return_steps else grads
