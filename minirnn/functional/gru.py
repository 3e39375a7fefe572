"""GRU, one layer, one direction — the NumPy reference (the spec; never optimised).

Forward, per step t (gate order r, z, n as torch; W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,)
each stacked r, z, n):
    gi_t = x_t W_ih^T + b_ih            split into gi_r, gi_z, gi_n      (input side)
    gh_t = h_{t-1} W_hh^T + b_hh        split into gh_r, gh_z, hn        (hidden side)
    r = sigmoid(gi_r + gh_r)
    z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * hn)             hn = h_{t-1} W_hn^T + b_hn: r multiplies the hidden
                                        product AFTER it is formed, b_hn included
    h_t = (1 - z) * n + z * h_{t-1}
Because b_hn sits inside r * (...), b_ih and b_hh can NOT be merged (unlike RNN and LSTM).

Backward, per step t (dh = dL/dh_t from the output and from step t+1):
    dn   = dh * (1 - z)                 dz   = dh * (h_{t-1} - n)
    da_n = dn * (1 - n^2)               a_n  = gi_n + r * hn, the n pre-activation
    dr   = da_n * hn                    dhn  = da_n * r        (the hidden product of n)
    da_r = dr * r (1 - r)               da_z = dz * z (1 - z)
    dgi  = [da_r, da_z, da_n]           dL/dgi_t (B, 3H), the input-side pre-activations
    dgh  = [da_r, da_z, dhn ]           dL/dgh_t (B, 3H): differs from dgi in the n block only
    dx_t = dgi W_ih                     dh_{t-1} = dh * z + dgh W_hh
    dW_ih += dgi^T x_t                  dW_hh   += dgh^T h_{t-1}
    db_ih  = sum over steps and batch of dgi,   db_hh = the same of dgh
             (equal in the r and z blocks; the n blocks differ by the factor r)

Variable lengths: at a step t >= length[b] the state of sequence b is carried unchanged,
its output is zero and nothing flows into its input or weights (torch's packed sequences).

Shapes: T = time, B = batch, I = input size, H = hidden size.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .lstm import sigmoid


class GRUCache(NamedTuple):
    """Everything the backward needs, and everything a debugger wants to show."""
    x: np.ndarray                 # (T, B, I)  inputs
    h0: np.ndarray                # (B, H)     initial state
    gates: np.ndarray             # (T, B, 3H) activated gates r, z, n
    hn: np.ndarray                # (T, B, H)  hidden product of n: h_{t-1} W_hn^T + b_hn
    h: np.ndarray                 # (T, B, H)  states h_t (carried past a sequence's end)
    valid: Optional[np.ndarray]   # (T, B) bool: step t lies inside sequence b; None = all do
    w_ih: np.ndarray              # (3H, I)
    w_hh: np.ndarray              # (3H, H)
    has_bias: bool


def split_gates(gates):
    """(..., 3H) -> r, z, n, each (..., H)."""
    return np.split(gates, 3, axis=-1)


# ----------------------------------------------------------------------------
# one time step

def step_forward(x_t, h_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    """x_t (B, I), h_prev (B, H) -> h_t (B, H), gates_t (B, 3H) r, z, n, hn_t (B, H)."""
    gi = x_t @ w_ih.T
    gh = h_prev @ w_hh.T
    if b_ih is not None:
        gi = gi + b_ih                  # two separate biases: b_hn must stay inside r * (...)
        gh = gh + b_hh
    gi_r, gi_z, gi_n = split_gates(gi)
    gh_r, gh_z, hn = split_gates(gh)
    r = sigmoid(gi_r + gh_r)
    z = sigmoid(gi_z + gh_z)
    n = np.tanh(gi_n + r * hn)
    h_t = (1.0 - z) * n + z * h_prev
    return h_t, np.concatenate([r, z, n], axis=-1), hn


def step_backward(dh_t, h_prev, gates_t, hn_t, w_ih, w_hh):
    """dL/dh_t (B, H) -> dx_t (B, I), dh_prev (B, H), dgi_t (B, 3H), dgh_t (B, 3H).

    dgi_t / dgh_t: gradients wrt the input-side / hidden-side pre-activations gi_t / gh_t.
    The step's weight gradients are dgi_t^T x_t and dgh_t^T h_{t-1}; the sequence backward
    forms them for all steps at once, as one large product after the loop.
    """
    r, z, n = split_gates(gates_t)
    dn = dh_t * (1.0 - z)
    dz = dh_t * (h_prev - n)
    da_n = dn * (1.0 - n * n)
    dr = da_n * hn_t
    dhn = da_n * r
    da_r = dr * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    dgi = np.concatenate([da_r, da_z, da_n], axis=-1)
    dgh = np.concatenate([da_r, da_z, dhn], axis=-1)
    return dgi @ w_ih, dh_t * z + dgh @ w_hh, dgi, dgh


# ----------------------------------------------------------------------------
# the whole sequence

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, valid=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), cache.

    valid (T, B) bool marks the steps inside each sequence (None: every step).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    gates = np.empty((T, B, 3 * H), dtype=x.dtype)
    hn = np.empty((T, B, H), dtype=x.dtype)
    h = np.empty((T, B, H), dtype=x.dtype)
    out = np.zeros((T, B, H), dtype=x.dtype)
    h_prev = h0
    for t in range(T):
        h_new, gates[t], hn[t] = step_forward(x[t], h_prev, w_ih, w_hh, b_ih, b_hh)
        if valid is None:
            h[t] = out[t] = h_new
        else:
            v = valid[t][:, None]
            h[t] = np.where(v, h_new, h_prev)    # finished sequences keep their last state
            out[t] = np.where(v, h_new, 0.0)
        h_prev = h[t]
    cache = GRUCache(x, h0, gates, hn, h, valid, w_ih, w_hh, b_ih is not None)
    return out, h_prev, cache


class GRUGradSteps(NamedTuple):
    """Per-step gradients of a backward pass (for debuggers and gradient-flow studies)."""
    dh: np.ndarray                # (T, B, H)  dL/dh_t entering step t (zero past a sequence's end)
    dg: np.ndarray                # (T, B, 3H) dL/d[a_r, a_z, a_n], the gate pre-activations
                                  #            (= dgi; the hidden side's n block is dg_n * r)


def backward(cache, d_out, d_hT=None, return_steps=False, input_grad=True):
    """BPTT. d_out (T, B, H), d_hT (B, H) or None -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh.

    db_ih and db_hh are None when the layer has no bias. return_steps=True appends a
    GRUGradSteps with every step's dh_t and dg_t. input_grad=False: dx is None.
    """
    x, h0, h, valid = cache.x, cache.h0, cache.h, cache.valid
    T = x.shape[0]
    dx = np.zeros_like(x)
    dh = np.zeros_like(h)                              # (T, B, H)
    dgi = np.zeros_like(cache.gates)                   # (T, B, 3H) dL/dgi_t
    dgh = np.zeros_like(cache.gates)                   # (T, B, 3H) dL/dgh_t
    dh_next = np.zeros_like(h0) if d_hT is None else d_hT
    for t in reversed(range(T)):
        h_prev = h[t - 1] if t > 0 else h0
        if valid is None:
            dh[t] = dh_next + d_out[t]
        else:
            v = valid[t][:, None]
            dh[t] = np.where(v, dh_next + d_out[t], 0.0)   # padded outputs are constants
        dx[t], dh_prev, dgi[t], dgh[t] = step_backward(dh[t], h_prev, cache.gates[t],
                                                       cache.hn[t], cache.w_ih, cache.w_hh)
        if valid is not None:
            dh_prev = dh_prev + np.where(v, 0.0, dh_next)  # carried state passes straight back
        dh_next = dh_prev
    # weight gradients: sum over steps of dgi_t^T x_t and dgh_t^T h_{t-1}
    h_prevs = np.concatenate([h0[None], h], axis=0)[:T]   # (T, B, H)
    dw_ih = np.einsum("tbg,tbi->gi", dgi, x, optimize=True)
    dw_hh = np.einsum("tbg,tbk->gk", dgh, h_prevs, optimize=True)
    db_ih = dgi.sum(axis=(0, 1)) if cache.has_bias else None
    db_hh = dgh.sum(axis=(0, 1)) if cache.has_bias else None
    grads = (dx if input_grad else None, dh_next, dw_ih, dw_hh, db_ih, db_hh)
    return grads + (GRUGradSteps(dh, dgi),) if return_steps else grads


def hidden_side_grad(dgi, gates):
    """dL/dgi (..., 3H) -> dL/dgh: equal in the r and z blocks, the n block times r (tools that
    rebuild per-step weight gradients from the per-step record need the hidden side)."""
    H = gates.shape[-1] // 3
    dgh = dgi.copy()
    dgh[..., 2 * H:] *= gates[..., :H]
    return dgh
