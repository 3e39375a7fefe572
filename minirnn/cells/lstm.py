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

Tangents (forward mode: a dot is the derivative along the given tangents ẋ, ḣ_0, ċ_0, Ẇ, ḃ):
    ż   = ẋ_t W_ih^T + x_t Ẇ_ih^T + ḣ_{t-1} W_hh^T + h_{t-1} Ẇ_hh^T + ḃ_ih + ḃ_hh
    i̇ = i(1-i) ż_i   ḟ = f(1-f) ż_f   ġ = (1-g^2) ż_g   ȯ = o(1-o) ż_o
    ċ_t = ḟ c_{t-1} + f ċ_{t-1} + i̇ g + i ġ
    ṙ_t = ȯ tanh(c_t) + o (1 - tanh(c_t)^2) ċ_t
    ḣ_t = ṙ_t W_hr^T + r_t Ẇ_hr^T  (proj)  else ṙ_t

Tangent of the backward (R-operator, R{q} = q's dot), per step t, τ = tanh(c_t), τ̇ = (1-τ^2) ċ_t:
    R{dr} = R{dh} W_hr + dh Ẇ_hr (proj) else R{dh};   R{dW_hr} += R{dh}^T r_t + dh^T ṙ_t
    R{do} = R{dr} τ + dr τ̇
    R{dc} = R{dc from t+1} + R{dr} o (1-τ^2) + dr ȯ (1-τ^2) - 2 dr o τ τ̇
    R{di} = R{dc} g + dc ġ   R{df} = R{dc} c_{t-1} + dc ċ_{t-1}   R{dg} = R{dc} i + dc i̇
    R{dc_{t-1}} = R{dc} f + dc ḟ
    R{dz} = [R{di} i(1-i) + di (1-2i) i̇,  R{df} f(1-f) + df (1-2f) ḟ,
             R{dg} (1-g^2) - 2 dg g ġ,     R{do} o(1-o) + do (1-2o) ȯ]
    R{dx_t} = R{dz} W_ih + dz Ẇ_ih       R{dh_{t-1}} = R{dz} W_hh + dz Ẇ_hh
    R{dW_ih} += R{dz}^T x_t + dz^T ẋ_t   R{dW_hh} += R{dz}^T h_{t-1} + dz^T ḣ_{t-1}

Variable lengths: past a sequence's end both states are carried unchanged and its output is zero.

Shapes: T = time, B = batch, I = input size, H = hidden size, P = proj_size (or H).
"""
from __future__ import annotations

import sys
from typing import NamedTuple, Optional

import numpy as np

from .family import FamilySpec, linear_step_grads
from .spec import CORE_PARAMS


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


# ----------------------------------------------------------------------------
# tangents (forward mode): the JVP through time, from the forward's cache

class LSTMTangentCache(NamedTuple):
    """The tangents of the forward pass, which the tangent of the backward needs."""
    x_dot: np.ndarray             # (T, B, I)
    h0_dot: np.ndarray            # (B, P)
    c0_dot: np.ndarray            # (B, H)
    gates_dot: np.ndarray         # (T, B, 4H) i̇, ḟ, ġ, ȯ (of the activated gates)
    c_dot: np.ndarray             # (T, B, H)  ċ_t (carried past a sequence's end)
    h_dot: np.ndarray             # (T, B, P)  ḣ_t (carried likewise)
    w_ih_dot: np.ndarray          # (4H, I)
    w_hh_dot: np.ndarray          # (4H, P)
    w_hr_dot: Optional[np.ndarray]  # (P, H), or None without projection


def _or_zeros(dot, like):
    return np.zeros_like(like) if dot is None else dot     # a missing tangent is zero


def step_jvp(x_t, h_prev, c_prev, gates_t, c_t, x_dot_t, h_prev_dot, c_prev_dot, w_ih, w_hh,
             w_ih_dot, w_hh_dot, b_dot, w_hr=None, w_hr_dot=None):
    """The tangent of step_forward -> ḣ_t (B, P), ċ_t (B, H), gate tangents (B, 4H)."""
    z_dot = x_dot_t @ w_ih.T + x_t @ w_ih_dot.T + h_prev_dot @ w_hh.T + h_prev @ w_hh_dot.T + b_dot
    zi_dot, zf_dot, zg_dot, zo_dot = split_gates(z_dot)
    i, f, g, o = split_gates(gates_t)
    i_dot, f_dot = i * (1.0 - i) * zi_dot, f * (1.0 - f) * zf_dot
    g_dot, o_dot = (1.0 - g * g) * zg_dot, o * (1.0 - o) * zo_dot
    c_dot = f_dot * c_prev + f * c_prev_dot + i_dot * g + i * g_dot
    tanh_c = np.tanh(c_t)
    r_dot = o_dot * tanh_c + o * (1.0 - tanh_c * tanh_c) * c_dot
    h_dot = r_dot if w_hr is None else r_dot @ w_hr.T + (o * tanh_c) @ w_hr_dot.T
    return h_dot, c_dot, np.concatenate([i_dot, f_dot, g_dot, o_dot], axis=-1)


def forward_jvp(cache, x_dot=None, h0_dot=None, c0_dot=None, w_ih_dot=None, w_hh_dot=None,
                b_ih_dot=None, b_hh_dot=None, w_hr_dot=None):
    """Tangents of forward's results along the given input tangents (None = zero)
    -> ȯut (T, B, P), ḣ_T (B, P), ċ_T (B, H), LSTMTangentCache."""
    x, c, h, valid, w_hr = cache.x, cache.c, cache.h, cache.valid, cache.w_hr
    x_dot, h0_dot, c0_dot = _or_zeros(x_dot, x), _or_zeros(h0_dot, cache.h0), \
        _or_zeros(c0_dot, cache.c0)
    w_ih_dot, w_hh_dot = _or_zeros(w_ih_dot, cache.w_ih), _or_zeros(w_hh_dot, cache.w_hh)
    w_hr_dot = None if w_hr is None else _or_zeros(w_hr_dot, w_hr)
    like = cache.w_hh[:, 0]                                 # (G*H,): a bias's shape
    b_dot = _or_zeros(b_ih_dot, like) + _or_zeros(b_hh_dot, like) if cache.has_bias else 0.0
    gates_dot, c_dot, h_dot = (np.empty_like(cache.gates), np.empty_like(c), np.empty_like(h))
    out_dot = np.zeros_like(h)
    h_prev, c_prev, h_prev_dot, c_prev_dot = cache.h0, cache.c0, h0_dot, c0_dot
    for t in range(x.shape[0]):
        h_new_dot, c_new_dot, gates_dot[t] = step_jvp(
            x[t], h_prev, c_prev, cache.gates[t], c[t], x_dot[t], h_prev_dot, c_prev_dot,
            cache.w_ih, cache.w_hh, w_ih_dot, w_hh_dot, b_dot, w_hr, w_hr_dot)
        if valid is None:
            c_dot[t], h_dot[t], out_dot[t] = c_new_dot, h_new_dot, h_new_dot
        else:
            v = valid[t][:, None]
            c_dot[t] = np.where(v, c_new_dot, c_prev_dot)
            h_dot[t] = np.where(v, h_new_dot, h_prev_dot)
            out_dot[t] = np.where(v, h_new_dot, 0.0)
        h_prev, c_prev, h_prev_dot, c_prev_dot = h[t], c[t], h_dot[t], c_dot[t]
    tcache = LSTMTangentCache(x_dot, h0_dot, c0_dot, gates_dot, c_dot, h_dot, w_ih_dot,
                              w_hh_dot, w_hr_dot)
    return out_dot, h_prev_dot, c_prev_dot, tcache


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


# ----------------------------------------------------------------------------
# the tangent of the backward (R-operator): second order, forward over reverse

def step_backward_jvp(dh_t, dc_t, dh_t_dot, dc_t_dot, c_prev, c_prev_dot, gates_t, gates_dot_t,
                      c_t, c_dot_t, w_ih, w_hh, w_ih_dot, w_hh_dot, w_hr=None, w_hr_dot=None):
    """The tangent of step_backward -> (dx_t, dh_prev, dc_prev, dz_t, dw_hr) and their dots."""
    i, f, g, o = split_gates(gates_t)
    i_dot, f_dot, g_dot, o_dot = split_gates(gates_dot_t)
    tanh_c = np.tanh(c_t)
    tanh_c_dot = (1.0 - tanh_c * tanh_c) * c_dot_t
    if w_hr is not None:
        r_dot = o_dot * tanh_c + o * tanh_c_dot
        dw_hr, dw_hr_dot = dh_t.T @ (o * tanh_c), dh_t_dot.T @ (o * tanh_c) + dh_t.T @ r_dot
        dr, dr_dot = dh_t @ w_hr, dh_t_dot @ w_hr + dh_t @ w_hr_dot
    else:
        dw_hr = dw_hr_dot = None
        dr, dr_dot = dh_t, dh_t_dot
    do, do_dot = dr * tanh_c, dr_dot * tanh_c + dr * tanh_c_dot
    dtanh = 1.0 - tanh_c * tanh_c
    dc = dc_t + dr * o * dtanh
    dc_dot = dc_t_dot + dr_dot * o * dtanh + dr * o_dot * dtanh - 2.0 * dr * o * tanh_c * tanh_c_dot
    di, df, dg = dc * g, dc * c_prev, dc * i
    di_dot, df_dot, dg_dot = dc_dot * g + dc * g_dot, dc_dot * c_prev + dc * c_prev_dot, \
        dc_dot * i + dc * i_dot
    dz = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f),
                         dg * (1.0 - g * g), do * o * (1.0 - o)], axis=-1)
    dz_dot = np.concatenate([di_dot * i * (1.0 - i) + di * (1.0 - 2.0 * i) * i_dot,
                             df_dot * f * (1.0 - f) + df * (1.0 - 2.0 * f) * f_dot,
                             dg_dot * (1.0 - g * g) - 2.0 * dg * g * g_dot,
                             do_dot * o * (1.0 - o) + do * (1.0 - 2.0 * o) * o_dot], axis=-1)
    return ((dz @ w_ih, dz @ w_hh, dc * f, dz, dw_hr),
            (dz_dot @ w_ih + dz @ w_ih_dot, dz_dot @ w_hh + dz @ w_hh_dot,
             dc_dot * f + dc * f_dot, dz_dot, dw_hr_dot))


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_cT=None, d_hT_dot=None,
                 d_cT_dot=None, input_grad=True):
    """backward and its tangent along forward_jvp's tangents, d_out_dot = R{d_out} (None = 0)
    -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr) and the same tuple of R{·}."""
    x, valid, tc = cache.x, cache.valid, tcache
    d_out_dot = _or_zeros(d_out_dot, d_out)
    dx, dx_dot = np.zeros_like(x), np.zeros_like(x)
    dz, dz_dot = np.zeros_like(cache.gates), np.zeros_like(cache.gates)
    dw_hr = None if cache.w_hr is None else np.zeros_like(cache.w_hr)
    dw_hr_dot = None if cache.w_hr is None else np.zeros_like(cache.w_hr)
    dh_next, dc_next = _or_zeros(d_hT, cache.h0), _or_zeros(d_cT, cache.c0)
    dh_next_dot, dc_next_dot = _or_zeros(d_hT_dot, cache.h0), _or_zeros(d_cT_dot, cache.c0)
    for t in reversed(range(x.shape[0])):
        c_prev, c_prev_dot = (cache.c[t - 1], tc.c_dot[t - 1]) if t > 0 else (cache.c0, tc.c0_dot)
        dh_t, dh_t_dot, dc_t, dc_t_dot = (dh_next + d_out[t], dh_next_dot + d_out_dot[t],
                                          dc_next, dc_next_dot)
        if valid is not None:                              # padded outputs are constants
            v = valid[t][:, None]
            dh_t, dh_t_dot, dc_t, dc_t_dot = (np.where(v, q, 0.0)
                                              for q in (dh_t, dh_t_dot, dc_t, dc_t_dot))
        (dx[t], dh_prev, dc_prev, dz[t], dw_hr_t), (dx_dot[t], dh_prev_dot, dc_prev_dot,
                                                    dz_dot[t], dw_hr_t_dot) = step_backward_jvp(
            dh_t, dc_t, dh_t_dot, dc_t_dot, c_prev, c_prev_dot, cache.gates[t], tc.gates_dot[t],
            cache.c[t], tc.c_dot[t], cache.w_ih, cache.w_hh, tc.w_ih_dot, tc.w_hh_dot,
            cache.w_hr, tc.w_hr_dot)
        if dw_hr is not None:
            dw_hr += dw_hr_t
            dw_hr_dot += dw_hr_t_dot
        if valid is not None:                              # carried states pass straight back
            dh_prev = dh_prev + np.where(v, 0.0, dh_next)
            dc_prev = dc_prev + np.where(v, 0.0, dc_next)
            dh_prev_dot = dh_prev_dot + np.where(v, 0.0, dh_next_dot)
            dc_prev_dot = dc_prev_dot + np.where(v, 0.0, dc_next_dot)
        dh_next, dc_next, dh_next_dot, dc_next_dot = dh_prev, dc_prev, dh_prev_dot, dc_prev_dot
    h_prevs = np.concatenate([cache.h0[None], cache.h[:-1]], axis=0)    # (T, B, P)
    h_prevs_dot = np.concatenate([tc.h0_dot[None], tc.h_dot[:-1]], axis=0)
    dw_ih = np.einsum("tbg,tbi->gi", dz, x, optimize=True)
    dw_ih_dot = (np.einsum("tbg,tbi->gi", dz_dot, x, optimize=True)
                 + np.einsum("tbg,tbi->gi", dz, tc.x_dot, optimize=True))
    dw_hh = np.einsum("tbg,tbp->gp", dz, h_prevs, optimize=True)
    dw_hh_dot = (np.einsum("tbg,tbp->gp", dz_dot, h_prevs, optimize=True)
                 + np.einsum("tbg,tbp->gp", dz, h_prevs_dot, optimize=True))
    db = dz.sum(axis=(0, 1)) if cache.has_bias else None
    db_dot = dz_dot.sum(axis=(0, 1)) if cache.has_bias else None
    grads = (dx if input_grad else None, dh_next, dc_next, dw_ih, dw_hh, db,
             None if db is None else db.copy(), dw_hr)
    grads_dot = (dx_dot if input_grad else None, dh_next_dot, dc_next_dot, dw_ih_dot, dw_hh_dot,
                 db_dot, None if db_dot is None else db_dot.copy(), dw_hr_dot)
    return grads, grads_dot


# ----------------------------------------------------------------------------
# RTRL: the step's partial Jacobians

def _diag(v):
    """(B, H) -> (B, H, H): one diagonal matrix per sequence."""
    return v[:, :, None] * np.eye(v.shape[1], dtype=v.dtype)


def step_jacobians(x_t, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """The partial Jacobians of one step s_t = (h_t, c_t) = F(s_{t-1}, x_t; θ), dense (RTRL).

    The state is s = [h, c] side by side, S = P + H wide. s_t depends on W_ih, W_hh and the
    biases only through z_t (linear in each), so those Jacobians are Z_t = ∂s_t/∂z_t times
    the factor that meets them in z_t. With the gates i, f, g, o of step_forward:
        ∂c_t/∂z  = [diag(g i(1-i)), diag(c_{t-1} f(1-f)), diag(i (1-g^2)), 0]  (B, H, 4H)
        q        = o (1 - tanh(c_t)^2)                                  (∂r_t/∂c_t, diagonal)
        ∂r_t/∂z  = diag(q) ∂c_t/∂z + [0, 0, 0, diag(tanh(c_t) o(1-o))]
        ∂h_t/∂z  = W_hr ∂r_t/∂z  (proj)  else ∂r_t/∂z
        Z_t      = [∂h_t/∂z; ∂c_t/∂z]                                   (B, S, 4H)
    The state enters through z (via h_{t-1}) and directly (c_{t-1} at fixed z):
        ∂s_t/∂s_{t-1} = [Z_t W_hh | C_t],  C_t = [W_hr diag(q f) (or diag(q f)); diag(f)]
        ∂s_t/∂W_ih[k, m] = Z_t[:, k] x_t[m]       ∂s_t/∂W_hh[k, m] = Z_t[:, k] h_{t-1}[m]
        ∂s_t/∂b_ih = ∂s_t/∂b_hh = Z_t
        ∂h_t[p']/∂W_hr[p, j] = δ_p'p r_t[j],   ∂c_t/∂W_hr = 0

    -> J_state (B, S, S), J_w_ih (B, S, 4H, I), J_w_hh (B, S, 4H, P), J_b_ih, J_b_hh
    (B, S, 4H; None without bias), J_w_hr (B, S, P, H; None without proj).
    """
    _, c_t, gates = step_forward(x_t, h_prev, c_prev, w_ih, w_hh, b_ih, b_hh, w_hr)
    i, f, g, o = split_gates(gates)
    tanh_c = np.tanh(c_t)
    q = o * (1.0 - tanh_c * tanh_c)
    zero = np.zeros_like(_diag(o))
    dc_dz = np.concatenate([_diag(g * i * (1.0 - i)), _diag(c_prev * f * (1.0 - f)),
                            _diag(i * (1.0 - g * g)), zero], axis=-1)
    dr_dz = q[:, :, None] * dc_dz + np.concatenate(
        [zero, zero, zero, _diag(tanh_c * o * (1.0 - o))], axis=-1)
    project = (lambda m: m) if w_hr is None else (lambda m: w_hr @ m)  # noqa: E731
    Z = np.concatenate([project(dr_dz), dc_dz], axis=1)
    C = np.concatenate([project(_diag(q * f)), _diag(f)], axis=1)
    J_state = np.concatenate([Z @ w_hh, C], axis=2)
    J_w_ih = Z[..., None] * x_t[:, None, None, :]
    J_w_hh = Z[..., None] * h_prev[:, None, None, :]
    J_b = (None, None) if b_ih is None else (Z, Z.copy())
    J_w_hr = None
    if w_hr is not None:
        P, H = w_hr.shape
        r_t = o * tanh_c
        J_w_hr = np.zeros((x_t.shape[0], P + H, P, H), dtype=x_t.dtype)
        J_w_hr[:, :P] = np.eye(P, dtype=x_t.dtype)[None, :, :, None] * r_t[:, None, None, :]
    return (J_state, J_w_ih, J_w_hh) + J_b + (J_w_hr,)


# ----------------------------------------------------------------------------
# the cell contract (minirnn.CellSpec): this file's functions under the uniform names

class LSTMStepCache(NamedTuple):
    x_t: np.ndarray               # (B, I)
    h_prev: np.ndarray            # (B, P)
    c_prev: np.ndarray            # (B, H)
    gates: np.ndarray             # (B, 4H) i, f, g, o
    c_t: np.ndarray               # (B, H)


class LSTMSpec(FamilySpec):
    name, family, module, cell_module = "lstm", "lstm", "LSTM", "LSTMCell"
    gate_names, state_names, sigmoid_gates = ("i", "f", "g", "o"), ("h", "c"), ("i", "f", "o")
    param_names, extra_params = CORE_PARAMS + ("weight_hr",), ("weight_hr",)
    gates_field, dgates_field = "gates", "dz"
    summary = "LSTM, gates i, f, g, o; optional projection proj_size"
    reference = sys.modules[__name__]    # this file: forward, backward, ... (a Tier by its names)

    def step_forward(self, x_t, state, params):
        h_t, c_t, gates = step_forward(x_t, *state, *self.args(params))
        return (h_t, c_t), LSTMStepCache(x_t, *state, gates, c_t)

    def step_backward(self, cache_t, d_state, params, per_sample=False):
        w_hr = params.get("weight_hr")
        dx, dh_prev, dc_prev, dz, _, dw_hr = step_backward(
            *d_state, cache_t.c_prev, cache_t.gates, cache_t.c_t, params["weight_ih"],
            params["weight_hh"], w_hr)
        grads = linear_step_grads(dz, dz, cache_t.x_t, cache_t.h_prev,
                                  params.get("bias_ih") is not None, per_sample)
        if w_hr is not None and per_sample:
            r_t = split_gates(cache_t.gates)[3] * np.tanh(cache_t.c_t)      # (B, H)
            dw_hr = d_state[0][:, :, None] * r_t[:, None, :]
        grads["weight_hr"] = dw_hr
        return dx, (dh_prev, dc_prev), grads

    def extra_grads(self, cache, steps):
        if cache.w_hr is None:
            return {"weight_hr": None}
        r = split_gates(cache.gates)[3] * np.tanh(cache.c)                   # (T, B, H)
        return {"weight_hr": np.einsum("tbp,tbh->bph", steps.dh, r, optimize=True)}
