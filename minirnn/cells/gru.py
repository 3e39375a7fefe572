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

Tangents (forward mode: a dot is the derivative along the given tangents ẋ, ḣ_0, Ẇ, ḃ):
    ġi = ẋ_t W_ih^T + x_t Ẇ_ih^T + ḃ_ih      ġh = ḣ_{t-1} W_hh^T + h_{t-1} Ẇ_hh^T + ḃ_hh
    ṙ = r(1-r) (ġi_r + ġh_r)   ż = z(1-z) (ġi_z + ġh_z)   ḣn = ġh_n
    ṅ = (1-n^2) (ġi_n + ṙ hn + r ḣn)
    ḣ_t = (1-z) ṅ + z ḣ_{t-1} + ż (h_{t-1} - n)

Tangent of the backward (R-operator, R{q} = q's dot), per step t:
    R{dn} = R{dh} (1-z) - dh ż                  R{dz} = R{dh} (h_{t-1} - n) + dh (ḣ_{t-1} - ṅ)
    R{da_n} = R{dn} (1-n^2) - 2 dn n ṅ
    R{dr} = R{da_n} hn + da_n ḣn                R{dhn} = R{da_n} r + da_n ṙ
    R{da_r} = R{dr} r(1-r) + dr (1-2r) ṙ        R{da_z} = R{dz} z(1-z) + dz (1-2z) ż
    R{dgi} = [R{da_r}, R{da_z}, R{da_n}]        R{dgh} = [R{da_r}, R{da_z}, R{dhn}]
    R{dx_t} = R{dgi} W_ih + dgi Ẇ_ih
    R{dh_{t-1}} = R{dh} z + dh ż + R{dgh} W_hh + dgh Ẇ_hh
    R{dW_ih} += R{dgi}^T x_t + dgi^T ẋ_t         R{dW_hh} += R{dgh}^T h_{t-1} + dgh^T ḣ_{t-1}
    R{db_ih}, R{db_hh} = sums over steps and batch of R{dgi}, R{dgh}

Variable lengths: at a step t >= length[b] the state of sequence b is carried unchanged,
its output is zero and nothing flows into its input or weights (torch's packed sequences).

Shapes: T = time, B = batch, I = input size, H = hidden size.
"""
from __future__ import annotations

import sys
from typing import NamedTuple, Optional

import numpy as np

from .family import FamilySpec, linear_step_grads

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


# ----------------------------------------------------------------------------
# tangents (forward mode): the JVP through time, from the forward's cache

class GRUTangentCache(NamedTuple):
    """The tangents of the forward pass, which the tangent of the backward needs."""
    x_dot: np.ndarray             # (T, B, I)
    h0_dot: np.ndarray            # (B, H)
    gates_dot: np.ndarray         # (T, B, 3H) ṙ, ż, ṅ
    hn_dot: np.ndarray            # (T, B, H)  ḣn_t
    h_dot: np.ndarray             # (T, B, H)  ḣ_t (carried past a sequence's end)
    w_ih_dot: np.ndarray          # (3H, I)
    w_hh_dot: np.ndarray          # (3H, H)


def _or_zeros(dot, like):
    return np.zeros_like(like) if dot is None else dot     # a missing tangent is zero


def step_jvp(x_t, h_prev, gates_t, hn_t, x_dot_t, h_prev_dot, w_ih, w_hh, w_ih_dot, w_hh_dot,
             b_ih_dot, b_hh_dot):
    """The tangent of step_forward -> ḣ_t (B, H), gate tangents ṙ, ż, ṅ (B, 3H), ḣn_t (B, H)."""
    gi_dot = x_dot_t @ w_ih.T + x_t @ w_ih_dot.T + b_ih_dot
    gh_dot = h_prev_dot @ w_hh.T + h_prev @ w_hh_dot.T + b_hh_dot
    gi_r_dot, gi_z_dot, gi_n_dot = split_gates(gi_dot)
    gh_r_dot, gh_z_dot, hn_dot = split_gates(gh_dot)
    r, z, n = split_gates(gates_t)
    r_dot = r * (1.0 - r) * (gi_r_dot + gh_r_dot)
    z_dot = z * (1.0 - z) * (gi_z_dot + gh_z_dot)
    n_dot = (1.0 - n * n) * (gi_n_dot + r_dot * hn_t + r * hn_dot)
    h_dot = (1.0 - z) * n_dot + z * h_prev_dot + z_dot * (h_prev - n)
    return h_dot, np.concatenate([r_dot, z_dot, n_dot], axis=-1), hn_dot


def forward_jvp(cache, x_dot=None, h0_dot=None, w_ih_dot=None, w_hh_dot=None, b_ih_dot=None,
                b_hh_dot=None):
    """Tangents of forward's results along the given input tangents (None = zero)
    -> ȯut (T, B, H), ḣ_T (B, H), GRUTangentCache."""
    x, h, valid = cache.x, cache.h, cache.valid
    x_dot, h0_dot = _or_zeros(x_dot, x), _or_zeros(h0_dot, cache.h0)
    w_ih_dot, w_hh_dot = _or_zeros(w_ih_dot, cache.w_ih), _or_zeros(w_hh_dot, cache.w_hh)
    like = cache.w_hh[:, 0]                                 # (G*H,): a bias's shape
    b_ih_dot = _or_zeros(b_ih_dot, like) if cache.has_bias else 0.0
    b_hh_dot = _or_zeros(b_hh_dot, like) if cache.has_bias else 0.0
    gates_dot, hn_dot, h_dot = np.empty_like(cache.gates), np.empty_like(h), np.empty_like(h)
    out_dot = np.zeros_like(h)
    h_prev, h_prev_dot = cache.h0, h0_dot
    for t in range(x.shape[0]):
        h_new_dot, gates_dot[t], hn_dot[t] = step_jvp(
            x[t], h_prev, cache.gates[t], cache.hn[t], x_dot[t], h_prev_dot, cache.w_ih,
            cache.w_hh, w_ih_dot, w_hh_dot, b_ih_dot, b_hh_dot)
        if valid is None:
            h_dot[t] = out_dot[t] = h_new_dot
        else:
            v = valid[t][:, None]
            h_dot[t] = np.where(v, h_new_dot, h_prev_dot)
            out_dot[t] = np.where(v, h_new_dot, 0.0)
        h_prev, h_prev_dot = h[t], h_dot[t]
    tcache = GRUTangentCache(x_dot, h0_dot, gates_dot, hn_dot, h_dot, w_ih_dot, w_hh_dot)
    return out_dot, h_prev_dot, tcache


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


# ----------------------------------------------------------------------------
# the tangent of the backward (R-operator): second order, forward over reverse

def step_backward_jvp(dh_t, dh_t_dot, h_prev, h_prev_dot, gates_t, gates_dot_t, hn_t, hn_dot_t,
                      w_ih, w_hh, w_ih_dot, w_hh_dot):
    """The tangent of step_backward -> (dx_t, dh_prev, dgi_t, dgh_t) and their dots."""
    r, z, n = split_gates(gates_t)
    r_dot, z_dot, n_dot = split_gates(gates_dot_t)
    dn, dn_dot = dh_t * (1.0 - z), dh_t_dot * (1.0 - z) - dh_t * z_dot
    dz, dz_dot = dh_t * (h_prev - n), dh_t_dot * (h_prev - n) + dh_t * (h_prev_dot - n_dot)
    da_n, da_n_dot = dn * (1.0 - n * n), dn_dot * (1.0 - n * n) - 2.0 * dn * n * n_dot
    dr, dr_dot = da_n * hn_t, da_n_dot * hn_t + da_n * hn_dot_t
    dhn, dhn_dot = da_n * r, da_n_dot * r + da_n * r_dot
    da_r = dr * r * (1.0 - r)
    da_r_dot = dr_dot * r * (1.0 - r) + dr * (1.0 - 2.0 * r) * r_dot
    da_z = dz * z * (1.0 - z)
    da_z_dot = dz_dot * z * (1.0 - z) + dz * (1.0 - 2.0 * z) * z_dot
    dgi, dgi_dot = (np.concatenate([da_r, da_z, da_n], axis=-1),
                    np.concatenate([da_r_dot, da_z_dot, da_n_dot], axis=-1))
    dgh, dgh_dot = (np.concatenate([da_r, da_z, dhn], axis=-1),
                    np.concatenate([da_r_dot, da_z_dot, dhn_dot], axis=-1))
    return ((dgi @ w_ih, dh_t * z + dgh @ w_hh, dgi, dgh),
            (dgi_dot @ w_ih + dgi @ w_ih_dot,
             dh_t_dot * z + dh_t * z_dot + dgh_dot @ w_hh + dgh @ w_hh_dot, dgi_dot, dgh_dot))


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_hT_dot=None, input_grad=True):
    """backward and its tangent along forward_jvp's tangents, d_out_dot = R{d_out} (None = 0)
    -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) and the same tuple of R{·}."""
    x, h0, h, valid, tc = cache.x, cache.h0, cache.h, cache.valid, tcache
    d_out_dot = _or_zeros(d_out_dot, d_out)
    dx, dx_dot = np.zeros_like(x), np.zeros_like(x)
    dgi, dgi_dot = np.zeros_like(cache.gates), np.zeros_like(cache.gates)
    dgh, dgh_dot = np.zeros_like(cache.gates), np.zeros_like(cache.gates)
    dh_next, dh_next_dot = _or_zeros(d_hT, h0), _or_zeros(d_hT_dot, h0)
    for t in reversed(range(x.shape[0])):
        h_prev, h_prev_dot = (h[t - 1], tc.h_dot[t - 1]) if t > 0 else (h0, tc.h0_dot)
        dh_t, dh_t_dot = dh_next + d_out[t], dh_next_dot + d_out_dot[t]
        if valid is not None:                              # padded outputs are constants
            v = valid[t][:, None]
            dh_t, dh_t_dot = np.where(v, dh_t, 0.0), np.where(v, dh_t_dot, 0.0)
        (dx[t], dh_prev, dgi[t], dgh[t]), (dx_dot[t], dh_prev_dot, dgi_dot[t], dgh_dot[t]) = \
            step_backward_jvp(dh_t, dh_t_dot, h_prev, h_prev_dot, cache.gates[t],
                              tc.gates_dot[t], cache.hn[t], tc.hn_dot[t], cache.w_ih, cache.w_hh,
                              tc.w_ih_dot, tc.w_hh_dot)
        if valid is not None:                              # carried state passes straight back
            dh_prev = dh_prev + np.where(v, 0.0, dh_next)
            dh_prev_dot = dh_prev_dot + np.where(v, 0.0, dh_next_dot)
        dh_next, dh_next_dot = dh_prev, dh_prev_dot
    h_prevs = np.concatenate([h0[None], h[:-1]], axis=0)                 # (T, B, H)
    h_prevs_dot = np.concatenate([tc.h0_dot[None], tc.h_dot[:-1]], axis=0)
    dw_ih = np.einsum("tbg,tbi->gi", dgi, x, optimize=True)
    dw_ih_dot = (np.einsum("tbg,tbi->gi", dgi_dot, x, optimize=True)
                 + np.einsum("tbg,tbi->gi", dgi, tc.x_dot, optimize=True))
    dw_hh = np.einsum("tbg,tbk->gk", dgh, h_prevs, optimize=True)
    dw_hh_dot = (np.einsum("tbg,tbk->gk", dgh_dot, h_prevs, optimize=True)
                 + np.einsum("tbg,tbk->gk", dgh, h_prevs_dot, optimize=True))
    sums = (lambda g: g.sum(axis=(0, 1))) if cache.has_bias else (lambda g: None)  # noqa: E731
    grads = (dx if input_grad else None, dh_next, dw_ih, dw_hh, sums(dgi), sums(dgh))
    grads_dot = (dx_dot if input_grad else None, dh_next_dot, dw_ih_dot, dw_hh_dot,
                 sums(dgi_dot), sums(dgh_dot))
    return grads, grads_dot


def hidden_side_grad(dgi, gates):
    """dL/dgi (..., 3H) -> dL/dgh: equal in the r and z blocks, the n block times r (tools that
    rebuild per-step weight gradients from the per-step record need the hidden side)."""
    H = gates.shape[-1] // 3
    dgh = dgi.copy()
    dgh[..., 2 * H:] *= gates[..., :H]
    return dgh


# ----------------------------------------------------------------------------
# RTRL: the step's partial Jacobians

def step_jacobians(x_t, h_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    """The partial Jacobians of one step h_t = F(h_{t-1}, x_t; θ), dense (for RTRL).

    h_t depends on the parameters only through gi_t (W_ih, b_ih) and gh_t (W_hh, b_hh), each
    linear in them, so each Jacobian is ∂h_t/∂gi_t or ∂h_t/∂gh_t times the factor that
    meets it there. With the gates r, z, n of step_forward and e = (1 - z)(1 - n^2):
        Zi_t = ∂h_t/∂gi_t = [diag(e hn r(1-r)), diag((h_{t-1} - n) z(1-z)), diag(e)]
        Zh_t = ∂h_t/∂gh_t = [diag(e hn r(1-r)), diag((h_{t-1} - n) z(1-z)), diag(e r)]
                                                            (B, H, 3H): only the n blocks differ
        ∂h_t/∂h_{t-1}       = Zh_t W_hh + diag(z)           (h_{t-1} enters gh and z h_{t-1})
        ∂h_t/∂W_ih[k, m]    = Zi_t[:, k] x_t[m]             (B, H, 3H, I)
        ∂h_t/∂W_hh[k, m]    = Zh_t[:, k] h_{t-1}[m]         (B, H, 3H, H)
        ∂h_t/∂b_ih = Zi_t,  ∂h_t/∂b_hh = Zh_t               (B, H, 3H)

    -> J_state (B, H, H), J_w_ih, J_w_hh, J_b_ih, J_b_hh (the biases' None without bias).
    """
    _, gates, hn = step_forward(x_t, h_prev, w_ih, w_hh, b_ih, b_hh)
    r, z, n = split_gates(gates)
    eye = np.eye(r.shape[1], dtype=r.dtype)
    diag = lambda v: v[:, :, None] * eye                                   # noqa: E731
    e = (1.0 - z) * (1.0 - n * n)
    Zr, Zz = diag(e * hn * r * (1.0 - r)), diag((h_prev - n) * z * (1.0 - z))
    Zi = np.concatenate([Zr, Zz, diag(e)], axis=-1)
    Zh = np.concatenate([Zr, Zz, diag(e * r)], axis=-1)
    J_state = Zh @ w_hh + diag(z)
    J_w_ih = Zi[..., None] * x_t[:, None, None, :]
    J_w_hh = Zh[..., None] * h_prev[:, None, None, :]
    J_b = (None, None) if b_ih is None else (Zi, Zh)
    return (J_state, J_w_ih, J_w_hh) + J_b


# ----------------------------------------------------------------------------
# the cell contract (minirnn.CellSpec): this file's functions under the uniform names

class GRUStepCache(NamedTuple):
    x_t: np.ndarray               # (B, I)
    h_prev: np.ndarray            # (B, H)
    gates: np.ndarray             # (B, 3H) r, z, n
    hn: np.ndarray                # (B, H)


class GRUSpec(FamilySpec):
    name, family, module, cell_module = "gru", "gru", "GRU", "GRUCell"
    gate_names, state_names, sigmoid_gates = ("r", "z", "n"), ("h",), ("r", "z")
    gates_field, dgates_field = "gates", "dg"
    summary = "GRU, gates r, z, n; r applied after the hidden product"
    reference = sys.modules[__name__]    # this file: forward, backward, ... (a Tier by its names)

    def step_forward(self, x_t, state, params):
        h_t, gates, hn = step_forward(x_t, *state, *self.args(params))
        return (h_t,), GRUStepCache(x_t, state[0], gates, hn)

    def step_backward(self, cache_t, d_state, params, per_sample=False):
        dx, dh_prev, dgi, dgh = step_backward(d_state[0], cache_t.h_prev, cache_t.gates,
                                              cache_t.hn, params["weight_ih"],
                                              params["weight_hh"])
        grads = linear_step_grads(dgi, dgh, cache_t.x_t, cache_t.h_prev,
                                  params.get("bias_ih") is not None, per_sample)
        return dx, (dh_prev,), grads

    def hidden_dgates(self, dgates, gates):
        return hidden_side_grad(dgates, gates)
