"""Elman RNN, one layer, one direction — the NumPy reference (the spec; never optimised).

Forward, per step t:
    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
    h_t = act(a_t)                    act = tanh or relu

Backward, per step t (dh = dL/dh_t from the output and from step t+1):
    da_t      = dh * act'(a_t)        tanh' = 1 - h_t^2,   relu' = [a_t > 0]
    dx_t      = da_t W_ih             dh_{t-1} = da_t W_hh
    dW_ih    += da_t^T x_t            dW_hh   += da_t^T h_{t-1}
    db_ih     = db_hh = sum over batch of da_t

Variable lengths: at a step t >= length[b] the state of sequence b is carried unchanged,
its output is zero and nothing flows into its input or weights (torch's packed sequences).

Shapes: T = time, B = batch, I = input size, H = hidden size.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

NONLINEARITIES = ("tanh", "relu")


class RNNCache(NamedTuple):
    """Everything the backward needs, and everything a debugger wants to show."""
    x: np.ndarray                 # (T, B, I) inputs
    h0: np.ndarray                # (B, H)    initial state
    a: np.ndarray                 # (T, B, H) pre-activations a_t
    h: np.ndarray                 # (T, B, H) states h_t (carried past a sequence's end)
    valid: Optional[np.ndarray]   # (T, B) bool: step t lies inside sequence b; None = all do
    w_ih: np.ndarray              # (H, I)
    w_hh: np.ndarray              # (H, H)
    has_bias: bool
    nonlinearity: str             # "tanh" | "relu"


def _act(a, nonlinearity):
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)


def _act_grad(a_t, h_t, nonlinearity):
    # tanh' is cheapest from the output; relu' needs the sign of the input
    return 1.0 - h_t * h_t if nonlinearity == "tanh" else (a_t > 0).astype(a_t.dtype)


# ----------------------------------------------------------------------------
# one time step

def step_forward(x_t, h_prev, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """x_t (B, I), h_prev (B, H) -> h_t (B, H), a_t (B, H)."""
    a_t = x_t @ w_ih.T + h_prev @ w_hh.T
    if b_ih is not None:
        a_t = a_t + b_ih + b_hh
    return _act(a_t, nonlinearity), a_t


def step_backward(dh_t, a_t, h_t, w_ih, w_hh, nonlinearity="tanh"):
    """dL/dh_t (B, H) -> dx_t (B, I), dh_prev (B, H), da_t (B, H).

    The step's weight gradients are da_t^T x_t and da_t^T h_{t-1}; the sequence backward
    forms them for all steps at once, as one large product after the loop.
    """
    da_t = dh_t * _act_grad(a_t, h_t, nonlinearity)
    return da_t @ w_ih, da_t @ w_hh, da_t


# ----------------------------------------------------------------------------
# the whole sequence

def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", valid=None):
    """x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), cache.

    valid (T, B) bool marks the steps inside each sequence (None: every step).
    """
    T, B, _ = x.shape
    H = w_hh.shape[0]
    a = np.empty((T, B, H), dtype=x.dtype)
    h = np.empty((T, B, H), dtype=x.dtype)
    out = np.zeros((T, B, H), dtype=x.dtype)
    h_prev = h0
    for t in range(T):
        h_new, a[t] = step_forward(x[t], h_prev, w_ih, w_hh, b_ih, b_hh, nonlinearity)
        if valid is None:
            h[t] = out[t] = h_new
        else:
            v = valid[t][:, None]
            h[t] = np.where(v, h_new, h_prev)    # finished sequences keep their last state
            out[t] = np.where(v, h_new, 0.0)
        h_prev = h[t]
    cache = RNNCache(x, h0, a, h, valid, w_ih, w_hh, b_ih is not None, nonlinearity)
    return out, h_prev, cache


class RNNGradSteps(NamedTuple):
    """Per-step gradients of a backward pass (for debuggers and gradient-flow studies)."""
    dh: np.ndarray                # (T, B, H) dL/dh_t entering step t (zero past a sequence's end)
    da: np.ndarray                # (T, B, H) dL/da_t


def backward(cache, d_out, d_hT=None, return_steps=False, input_grad=True):
    """BPTT. d_out (T, B, H), d_hT (B, H) or None -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh.

    db_ih and db_hh are None when the layer has no bias. return_steps=True appends an
    RNNGradSteps with every step's dh_t and da_t. input_grad=False: dx is None.
    """
    x, h0, a, h, valid = cache.x, cache.h0, cache.a, cache.h, cache.valid
    T = x.shape[0]
    dx = np.zeros_like(x)
    dh = np.zeros_like(h)                              # (T, B, H)
    da = np.zeros_like(a)                              # (T, B, H)
    dh_next = np.zeros_like(h0) if d_hT is None else d_hT
    for t in reversed(range(T)):
        if valid is None:
            dh[t] = dh_next + d_out[t]
            dx[t], dh_next, da[t] = step_backward(dh[t], a[t], h[t], cache.w_ih, cache.w_hh,
                                                  cache.nonlinearity)
        else:
            v = valid[t][:, None]
            dh[t] = np.where(v, dh_next + d_out[t], 0.0)   # padded outputs are constants
            dx[t], dh_prev, da[t] = step_backward(dh[t], a[t], h[t], cache.w_ih, cache.w_hh,
                                                  cache.nonlinearity)
            dh_next = dh_prev + np.where(v, 0.0, dh_next)  # carried state passes straight back
    # weight gradients: sum over steps of da_t^T x_t and da_t^T h_{t-1}
    h_prevs = np.concatenate([h0[None], h[:-1]], axis=0)  # (T, B, H)
    dw_ih = np.einsum("tbh,tbi->hi", da, x, optimize=True)
    dw_hh = np.einsum("tbh,tbk->hk", da, h_prevs, optimize=True)
    db = da.sum(axis=(0, 1)) if cache.has_bias else None
    grads = (dx if input_grad else None, dh_next, dw_ih, dw_hh, db,
             None if db is None else db.copy())
    return grads + (RNNGradSteps(dh, da),) if return_steps else grads
