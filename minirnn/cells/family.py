"""Cells whose sequence functions have their own argument lists: the built-in families.

The reference files (rnn.py, lstm.py, gru.py) write each family with its natural signature,
forward(x, h0[, c0], w_ih, w_hh, b_ih, b_hh[, nonlinearity | w_hr], valid), and their Numba
twins (minirnn/kernels/) keep exactly those signatures and caches. A FamilySpec holds one
family's functions for each backend in a Tier and maps the contract's uniform calls
(x, state tuple, parameter dict) onto them, so no tool ever branches on a cell's name.

    Tier(forward, backward, forward_jvp, backward_jvp, step_jacobians[, rtrl_step])
        forward(x, *state0, *args, valid) -> out, *state_T, cache
        backward(cache, d_out, *d_state_T, return_steps=, input_grad=)
            -> dx, *d_state0, *param grads (param_names order) [, per-step record]
        forward_jvp(cache, x_dot, *state0_dot, *param tangents) -> out_dot, *state_T_dot, tcache
        backward_jvp(cache, tcache, d_out, d_out_dot, *d_state_T, *d_state_T_dot, input_grad=)
            -> the backward's tuple, and the same tuple of its tangents (the R-operator)
        step_jacobians(x_t, *state, *args) -> J_state, the parameters' Jacobians
where args = W_ih, W_hh, b_ih, b_hh, then the extra parameters, then the nonlinearity if any.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

from .spec import CellSpec


class Tier(NamedTuple):
    """One family's functions on one backend (the reference's signatures)."""
    forward: Callable
    backward: Callable
    forward_jvp: Callable
    backward_jvp: Callable
    step_jacobians: Optional[Callable] = None
    rtrl_step: Optional[Callable] = None        # the fused RTRL step (minirnn.grad.rtrl)


class FamilySpec(CellSpec):
    """A cell with family-signature sequence functions: `reference` (the cell's own file,
    which has a Tier's functions by name) on numpy, a registered Tier on any other backend."""

    family: str = ""             # the reference file's name: "rnn" | "lstm" | "gru"
    reference = None             # that module

    def tier(self, backend):
        return self.reference if backend == "numpy" else self.twin(backend)

    def args(self, params):
        """The parameters after the state, in the family's order."""
        out = [params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
               params.get("bias_hh")]
        out += [params.get(n) for n in self.extra_params]
        return out + ([self.nonlinearity] if self.nonlinearity else [])

    def _unpack(self, res):
        """A backward's tuple -> dx, d_state0 tuple, {param name: grad or None}."""
        S, n = len(self.state_names), len(self.param_names)
        return res[0], tuple(res[1:1 + S]), dict(zip(self.param_names, res[1 + S:1 + S + n]))

    # ---- the contract's sequence methods, through the family's functions -------------------
    def forward(self, x, state, params, valid=None, backend="numpy"):
        res = self.tier(backend).forward(x, *state, *self.args(params), valid)
        return res[0], tuple(res[1:-1]), res[-1]

    def backward(self, cache, d_out, d_state, return_steps=False, input_grad=True,
                 backend="numpy", per_sample=False):
        res = self.tier(backend).backward(cache, d_out, *d_state,
                                          return_steps=return_steps or per_sample,
                                          input_grad=input_grad)
        dx, d_state0, grads = self._unpack(res)
        if per_sample:                 # the same per-step record, not summed over the batch
            grads = self.per_sample_grads(cache, res[-1])
        return dx, d_state0, grads, (res[-1] if return_steps else None)

    def forward_jvp(self, cache, x_dot, state_dot, params_dot, backend="numpy"):
        res = self.tier(backend).forward_jvp(cache, x_dot, *state_dot,
                                             *[params_dot.get(n) for n in self.param_names])
        return res[0], tuple(res[1:-1]), res[-1]

    def backward_jvp(self, cache, tcache, d_out, d_out_dot, d_state, d_state_dot,
                     input_grad=True, backend="numpy"):
        res, res_dot = self.tier(backend).backward_jvp(cache, tcache, d_out, d_out_dot,
                                                       *d_state, *d_state_dot,
                                                       input_grad=input_grad)
        return self._unpack(res), self._unpack(res_dot)

    def step_jacobians(self, x_t, state, params, backend="numpy"):
        res = self.reference.step_jacobians(x_t, *state, *self.args(params))
        return res[0], dict(zip(self.param_names, res[1:]))

    def has(self, part):
        # the family's sequence-level derivatives stand in for the step-level ones
        if part in ("step_jvp", "step_backward_jvp", "step_jacobians"):
            return True
        return super().has(part)

    # ---- per-sample gradients from the backward's record -----------------------------------
    def per_sample_grads(self, cache, steps):
        """{name: (B, *shape)} from a backward's per-step record: dW_ih = Σ_t dz_t ⊗ x_t,
        dW_hh = Σ_t dz^h_t ⊗ h_{t-1} (dz^h: the hidden side's gradient, hidden_dgates),
        biases Σ_t dz_t (and dz^h_t); a cell with more parameters adds them (extra_grads)."""
        dz = getattr(steps, self.dgates_field)                          # (T, B, G*H)
        dzh = self.hidden_dgates(dz, getattr(cache, self.gates_field))
        h_prev = np.concatenate([cache.h0[None], cache.h[:-1]], axis=0)  # (T, B, P)
        grads = {"weight_ih": np.einsum("tbg,tbi->bgi", dz, cache.x, optimize=True),
                 "weight_hh": np.einsum("tbg,tbp->bgp", dzh, h_prev, optimize=True),
                 "bias_ih": dz.sum(axis=0) if cache.has_bias else None,
                 "bias_hh": dzh.sum(axis=0) if cache.has_bias else None}
        grads.update(self.extra_grads(cache, steps))
        return {n: grads.get(n) for n in self.param_names}

    def states_of(self, cache):
        # the family caches keep each state under its own name: h0, h (and c0, c)
        return (tuple(getattr(cache, f"{n}0") for n in self.state_names),
                tuple(getattr(cache, n) for n in self.state_names))

    def hidden_dgates(self, dgates, gates):
        """dL/d(hidden-side pre-activations) from dL/d(gate pre-activations): the same array
        unless the family says otherwise (the GRU's n block)."""
        return dgates

    def extra_grads(self, cache, steps):
        return {}


def linear_step_grads(dz_i, dz_h, x_t, h_prev, bias, per_sample=False):
    """One step's parameter gradients for pre-activations linear in the parameters:
    z^i = x_t W_ih^T + b_ih and z^h = h_{t-1} W_hh^T + b_hh, with dL/dz^i = dz_i and
    dL/dz^h = dz_h (B, G*H) -> dW_ih = dz_i^T x_t, dW_hh = dz_h^T h_{t-1}, db_ih, db_hh
    (summed over the batch, or with a leading B axis when per_sample)."""
    if per_sample:
        grads = {"weight_ih": dz_i[:, :, None] * x_t[:, None, :],
                 "weight_hh": dz_h[:, :, None] * h_prev[:, None, :],
                 "bias_ih": dz_i.copy(), "bias_hh": dz_h.copy()}
    else:
        grads = {"weight_ih": dz_i.T @ x_t, "weight_hh": dz_h.T @ h_prev,
                 "bias_ih": dz_i.sum(axis=0), "bias_hh": dz_h.sum(axis=0)}
    if not bias:
        grads["bias_ih"] = grads["bias_hh"] = None
    return grads


__all__ = ["Tier", "FamilySpec", "linear_step_grads"]
