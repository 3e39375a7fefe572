"""Elman RNN, one layer, one direction — the NumPy reference (the spec; never optimised).

Forward, per step t:
    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
    h_t = act(a_t)                    act = tanh or relu

Backward, per step t (dh = dL/dh_t from the output and from step t+1):
    da_t      = dh * act'(a_t)        tanh' = 1 - h_t^2,   relu' = [a_t > 0]
    dx_t      = da_t W_ih             dh_{t-1} = da_t W_hh
    dW_ih    += da_t^T x_t            dW_hh   += da_t^T h_{t-1}
    db_ih     = db_hh = sum over batch of da_t

Tangents (forward mode: a dot is the derivative along the given tangents ẋ, ḣ_0, Ẇ, ḃ):
    ȧ_t = ẋ_t W_ih^T + x_t Ẇ_ih^T + ḣ_{t-1} W_hh^T + h_{t-1} Ẇ_hh^T + ḃ_ih + ḃ_hh
    ḣ_t = act'(a_t) * ȧ_t

Tangent of the backward (Pearlmutter's R-operator, R{q} = q's dot), per step t:
    R{dh_t}  = R{d_out_t} + R{dh from step t+1}
    R{da_t}  = R{dh_t} * act'(a_t) + dh_t * act''(a_t) ȧ_t     tanh'' ȧ = -2 h_t ḣ_t, relu'' = 0
    R{dx_t}  = R{da_t} W_ih + da_t Ẇ_ih        R{dh_{t-1}} = R{da_t} W_hh + da_t Ẇ_hh
    R{dW_ih} += R{da_t}^T x_t + da_t^T ẋ_t     R{dW_hh} += R{da_t}^T h_{t-1} + da_t^T ḣ_{t-1}
    R{db}     = sum over steps and batch of R{da_t}
With R{d_out} = (the loss's Hessian in out) ȯut and ḃ, Ẇ = v, R{dW} is the Hessian times v.

Variable lengths: at a step t >= length[b] the state of sequence b is carried unchanged,
its output is zero and nothing flows into its input or weights (torch's packed sequences).

Shapes: T = time, B = batch, I = input size, H = hidden size.
"""
from __future__ import annotations

import sys
from typing import NamedTuple, Optional

import numpy as np

from .family import FamilySpec, linear_step_grads

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


# ----------------------------------------------------------------------------
# tangents (forward mode): the JVP through time, from the forward's cache

class RNNTangentCache(NamedTuple):
    """The tangents of the forward pass, which the tangent of the backward needs."""
    x_dot: np.ndarray             # (T, B, I) ẋ
    h0_dot: np.ndarray            # (B, H)    ḣ_0
    a_dot: np.ndarray             # (T, B, H) ȧ_t
    h_dot: np.ndarray             # (T, B, H) ḣ_t (carried past a sequence's end)
    w_ih_dot: np.ndarray          # (H, I)
    w_hh_dot: np.ndarray          # (H, H)


def _or_zeros(dot, like):
    return np.zeros_like(like) if dot is None else dot     # a missing tangent is zero


def step_jvp(x_t, h_prev, a_t, h_t, x_dot_t, h_prev_dot, w_ih, w_hh, w_ih_dot, w_hh_dot,
             b_dot, nonlinearity="tanh"):
    """The tangent of step_forward -> ḣ_t (B, H), ȧ_t (B, H). b_dot = ḃ_ih + ḃ_hh (or 0)."""
    a_dot = x_dot_t @ w_ih.T + x_t @ w_ih_dot.T + h_prev_dot @ w_hh.T + h_prev @ w_hh_dot.T + b_dot
    return _act_grad(a_t, h_t, nonlinearity) * a_dot, a_dot


def forward_jvp(cache, x_dot=None, h0_dot=None, w_ih_dot=None, w_hh_dot=None, b_ih_dot=None,
                b_hh_dot=None):
    """Tangents of forward's results along the given input tangents (None = zero)
    -> ȯut (T, B, H), ḣ_T (B, H), RNNTangentCache."""
    x, a, h, valid = cache.x, cache.a, cache.h, cache.valid
    x_dot, h0_dot = _or_zeros(x_dot, x), _or_zeros(h0_dot, cache.h0)
    w_ih_dot, w_hh_dot = _or_zeros(w_ih_dot, cache.w_ih), _or_zeros(w_hh_dot, cache.w_hh)
    b_dot = 0.0
    if cache.has_bias:
        b_dot = _or_zeros(b_ih_dot, cache.w_hh[:, 0]) + _or_zeros(b_hh_dot, cache.w_hh[:, 0])
    a_dot, h_dot, out_dot = np.empty_like(a), np.empty_like(h), np.zeros_like(h)
    h_prev, h_prev_dot = cache.h0, h0_dot
    for t in range(x.shape[0]):
        h_new_dot, a_dot[t] = step_jvp(x[t], h_prev, a[t], h[t], x_dot[t], h_prev_dot,
                                       cache.w_ih, cache.w_hh, w_ih_dot, w_hh_dot, b_dot,
                                       cache.nonlinearity)
        if valid is None:
            h_dot[t] = out_dot[t] = h_new_dot
        else:
            v = valid[t][:, None]
            h_dot[t] = np.where(v, h_new_dot, h_prev_dot)
            out_dot[t] = np.where(v, h_new_dot, 0.0)
        h_prev, h_prev_dot = h[t], h_dot[t]
    tcache = RNNTangentCache(x_dot, h0_dot, a_dot, h_dot, w_ih_dot, w_hh_dot)
    return out_dot, h_prev_dot, tcache


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


# ----------------------------------------------------------------------------
# the tangent of the backward (R-operator): second order, forward over reverse

def step_backward_jvp(dh_t, dh_t_dot, a_t, h_t, a_dot_t, w_ih, w_hh, w_ih_dot, w_hh_dot,
                      nonlinearity="tanh"):
    """The tangent of step_backward -> (dx_t, dh_prev, da_t) and their dots, each (B, ·)."""
    act_grad = _act_grad(a_t, h_t, nonlinearity)
    da_t = dh_t * act_grad
    # act'' ȧ: tanh' = 1 - h^2 moves by -2 h ḣ (ḣ = act' ȧ before any mask); relu' is flat
    act_grad_dot = -2.0 * h_t * act_grad * a_dot_t if nonlinearity == "tanh" else 0.0
    da_t_dot = dh_t_dot * act_grad + dh_t * act_grad_dot
    return ((da_t @ w_ih, da_t @ w_hh, da_t),
            (da_t_dot @ w_ih + da_t @ w_ih_dot, da_t_dot @ w_hh + da_t @ w_hh_dot, da_t_dot))


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_hT_dot=None, input_grad=True):
    """backward and its tangent along forward_jvp's tangents, d_out_dot = R{d_out} (None = 0)
    -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) and the same tuple of R{·}."""
    x, h0, a, h, valid = cache.x, cache.h0, cache.a, cache.h, cache.valid
    w_ih_dot, w_hh_dot = tcache.w_ih_dot, tcache.w_hh_dot
    d_out_dot = _or_zeros(d_out_dot, d_out)
    dx, dx_dot = np.zeros_like(x), np.zeros_like(x)
    da, da_dot = np.zeros_like(a), np.zeros_like(a)
    dh_next = np.zeros_like(h0) if d_hT is None else d_hT
    dh_next_dot = np.zeros_like(h0) if d_hT_dot is None else d_hT_dot
    for t in reversed(range(x.shape[0])):
        dh_t, dh_t_dot = dh_next + d_out[t], dh_next_dot + d_out_dot[t]
        if valid is not None:
            v = valid[t][:, None]
            dh_t, dh_t_dot = np.where(v, dh_t, 0.0), np.where(v, dh_t_dot, 0.0)
        (dx[t], dh_prev, da[t]), (dx_dot[t], dh_prev_dot, da_dot[t]) = step_backward_jvp(
            dh_t, dh_t_dot, a[t], h[t], tcache.a_dot[t], cache.w_ih, cache.w_hh, w_ih_dot,
            w_hh_dot, cache.nonlinearity)
        if valid is not None:                              # carried state passes straight back
            dh_prev = dh_prev + np.where(v, 0.0, dh_next)
            dh_prev_dot = dh_prev_dot + np.where(v, 0.0, dh_next_dot)
        dh_next, dh_next_dot = dh_prev, dh_prev_dot
    h_prevs = np.concatenate([h0[None], h[:-1]], axis=0)                 # (T, B, H)
    h_prevs_dot = np.concatenate([tcache.h0_dot[None], tcache.h_dot[:-1]], axis=0)
    dw_ih = np.einsum("tbh,tbi->hi", da, x, optimize=True)
    dw_ih_dot = (np.einsum("tbh,tbi->hi", da_dot, x, optimize=True)
                 + np.einsum("tbh,tbi->hi", da, tcache.x_dot, optimize=True))
    dw_hh = np.einsum("tbh,tbk->hk", da, h_prevs, optimize=True)
    dw_hh_dot = (np.einsum("tbh,tbk->hk", da_dot, h_prevs, optimize=True)
                 + np.einsum("tbh,tbk->hk", da, h_prevs_dot, optimize=True))
    db = da.sum(axis=(0, 1)) if cache.has_bias else None
    db_dot = da_dot.sum(axis=(0, 1)) if cache.has_bias else None
    grads = (dx if input_grad else None, dh_next, dw_ih, dw_hh, db,
             None if db is None else db.copy())
    grads_dot = (dx_dot if input_grad else None, dh_next_dot, dw_ih_dot, dw_hh_dot, db_dot,
                 None if db_dot is None else db_dot.copy())
    return grads, grads_dot


# ----------------------------------------------------------------------------
# RTRL: the step's partial Jacobians

def step_jacobians(x_t, h_prev, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """The partial Jacobians of one step h_t = F(h_{t-1}, x_t; θ), dense (for RTRL).

    h_t depends on the parameters only through a_t, which is linear in each of them, so
    every parameter's Jacobian is Z_t = ∂h_t/∂a_t times the factor that meets it in a_t:
        Z_t = diag(act'(a_t))                              (B, H, H)
        ∂h_t/∂h_{t-1}       = Z_t W_hh                     (B, H, H)
        ∂h_t[j]/∂W_ih[k, m] = Z_t[j, k] x_t[m]             (B, H, H, I)
        ∂h_t[j]/∂W_hh[k, m] = Z_t[j, k] h_{t-1}[m]         (B, H, H, H)
        ∂h_t/∂b_ih = ∂h_t/∂b_hh = Z_t                      (B, H, H)
    (relu' at a_t = 0 is 0, as in step_backward.)

    -> J_state (B, H, H), J_w_ih, J_w_hh, J_b_ih, J_b_hh (the biases' None without bias).
    """
    _, a_t = step_forward(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    h_t = _act(a_t, nonlinearity)
    Z = np.eye(a_t.shape[1], dtype=a_t.dtype) * _act_grad(a_t, h_t, nonlinearity)[:, :, None]
    J_state = Z @ w_hh
    J_w_ih = Z[..., None] * x_t[:, None, None, :]
    J_w_hh = Z[..., None] * h_prev[:, None, None, :]
    J_b = None if b_ih is None else Z
    return J_state, J_w_ih, J_w_hh, J_b, None if J_b is None else Z.copy()


# ----------------------------------------------------------------------------
# the cell contract (minirnn.CellSpec): this file's functions under the uniform names

class RNNStepCache(NamedTuple):
    x_t: np.ndarray               # (B, I)
    h_prev: np.ndarray            # (B, H)
    a_t: np.ndarray               # (B, H)
    h_t: np.ndarray               # (B, H)


class ElmanSpec(FamilySpec):
    """The Elman RNN with one nonlinearity: two registered cells, rnn_tanh and rnn_relu."""
    family, module, cell_module = "rnn", "RNN", "RNNCell"
    gate_names, state_names = ("a",), ("h",)
    gates_field, dgates_field = "a", "da"

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity
        self.name = f"rnn_{nonlinearity}"
        self.summary = (f"Elman RNN, h_t = {nonlinearity}(x W_ih^T + b_ih + h W_hh^T + b_hh)")

    reference = sys.modules[__name__]    # this file: forward, backward, ... (a Tier by its names)

    def step_forward(self, x_t, state, params):
        h_t, a_t = step_forward(x_t, *state, *self.args(params))
        return (h_t,), RNNStepCache(x_t, state[0], a_t, h_t)

    def step_backward(self, cache_t, d_state, params, per_sample=False):
        dx, dh_prev, da = step_backward(d_state[0], cache_t.a_t, cache_t.h_t,
                                        params["weight_ih"], params["weight_hh"],
                                        self.nonlinearity)
        grads = linear_step_grads(da, da, cache_t.x_t, cache_t.h_prev,
                                  params.get("bias_ih") is not None, per_sample)
        return dx, (dh_prev,), grads
