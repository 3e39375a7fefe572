"""A model's derivative passes beyond the backward, on the same stack walker (minirnn.nn.stack).

    res = jvp(model, x, state, {"x": x_dot, "weight_hh_l0": w_dot}, lengths=n)   # forward mode
    out, state_n, rec = record_forward(model, x, state, lengths)
    out_dot, finals, tcaches = tangent_forward(model, rec, x_dot, state_dot, tangents)
    grads, grads_dot = backward_pass(model, rec, d_out, d_state, tcaches, d_out_dot)
    per_sample = per_sample_pass(model, rec, d_out)        # {name: (B, *shape)}

Each layer-direction runs its cell's forward_jvp / backward_jvp / backward(per_sample=True)
(minirnn.cells: the cell's own derivative, or one derived from its steps), exactly where the
forward ran its forward: the same lengths, reversals, layer stacking and dropout masks. A
missing tangent is zero. The public tools (minirnn.grad.jvp, hvp, gnvp, gradcheck,
per_sample_gradients) stand on these.

Dropout: the derivative of a forward with random masks is not the derivative of the model,
so a model in training mode with active dropout is refused; call model.eval() first.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_shape
from .stack import down, stack_states, up


class JVPResult(NamedTuple):
    """The forward's results and their tangents, in the model's user layout."""
    out: np.ndarray               # as model.forward_state returns it
    state: tuple                  # state_n, a tuple per spec.state_names
    out_dot: np.ndarray           # ȯut, the shape of out
    state_dot: tuple              # the tangents of state_n, same shapes


def check_deterministic(model, what):
    """Refuse a model whose forward draws dropout masks: their derivative is not the model's."""
    if model.training and model.dropout > 0 and model.num_layers > 1:
        raise ValueError(f"model: dropout={model.dropout} is active in training mode, and "
                         f"{what} of a forward with random masks is not the model's; call "
                         f"model.eval() first")


def record_forward(model, x, state, lengths):
    """Run the forward without disturbing the model's own record -> out, state_n, record."""
    with model.preserve_record():
        out, state_n = model.forward_state(x, state, lengths)
        return out, state_n, model.last_forward


def check_tangents(model, tangents, x_shape, state_shapes):
    """tangents: {"x", "h0"[, "c0"], parameter names: array} (None = {}) -> a dict of arrays
    in the model's dtype, each checked against the shape it is the tangent of."""
    if tangents is None:
        return {}
    if not hasattr(tangents, "items"):
        raise TypeError(f"tangents: expected a dict of name -> array, got "
                        f"{type(tangents).__name__}")
    shapes = {"x": x_shape}
    shapes.update({f"{n}0": s for n, s in zip(model.spec.state_names, state_shapes)})
    shapes.update({n: p.shape for n, p in model.params.items()})
    out = {}
    for key, value in tangents.items():
        if key not in shapes:
            raise ValueError(f"tangents: unknown name {key!r}; expected some of {list(shapes)}")
        if value is None:
            continue
        arr = as_float_array(f"tangents[{key!r}]", value, model.dtype)
        check_shape(f"tangents[{key!r}]", arr, tuple(shapes[key]))
        out[key] = arr
    return out


def tangent_forward(model, rec, x_dot, state_dot, tangents):
    """The tangent of model.forward_state from its record. x_dot (T, B, I) time-major or
    None; state_dot: tuple per state name of (L*D, B, size) or None; tangents: parameter name
    -> tangent -> ȯut (T, B, D*P), final state tangents per layer-direction, tangent caches."""
    LD = len(rec.caches)
    finals, tcaches = [None] * LD, [None] * LD

    def run(layer, d, k, seqs):
        params_dot = {n: tangents.get(key) for n, key in model.param_keys(layer, d)}
        out_dot, finals[k], tcaches[k] = model.spec.forward_jvp(
            rec.caches[k], seqs[0], tuple(None if s is None else s[k] for s in state_dot),
            params_dot, backend=model.backend)
        return (out_dot,)

    (out_dot,) = up(model.stack(rec.lengths, rec.masks), (x_dot,), run)
    return out_dot, finals, tcaches


def backward_pass(model, rec, d_out, d_state=None, tcaches=None, d_out_dot=None):
    """model.backward_state over a forward record, without touching model.grads; with
    tcaches (from tangent_forward) also its tangent, started from d_out_dot = R{d_out}.

    d_out, d_out_dot: (T, B, D*P) time-major; d_state: tuple per state name of
    (L*D, B, size) or None (its tangent is zero: a loss linear in the final state)
    -> {parameter name: gradient}, {parameter name: its tangent} (None without tcaches)."""
    spec, S = model.spec, len(model.spec.state_names)
    tangent = tcaches is not None
    d_state = (None,) * S if d_state is None else d_state
    grads, grads_dot = {}, ({} if tangent else None)

    def run(layer, d, k, gs, need_dx):
        ds = tuple(None if s is None else s[k] for s in d_state)
        if tangent:
            (dx, _, gr), (dx_dot, _, gr_dot) = spec.backward_jvp(
                rec.caches[k], tcaches[k], gs[0], gs[1], ds, (None,) * S, need_dx,
                backend=model.backend)
        else:
            dx, _, gr, _ = spec.backward(rec.caches[k], gs[0], ds, False, need_dx,
                                         backend=model.backend)
            dx_dot = gr_dot = None
        for n, key in model.param_keys(layer, d):
            if gr[n] is not None:
                grads[key] = gr[n]
                if tangent:
                    grads_dot[key] = gr_dot[n]
        return (dx, dx_dot)

    # x needs no gradient here: the bottom layer is told so (input_grad=False)
    down(model.stack(rec.lengths, rec.masks), (d_out, d_out_dot if tangent else None), run,
         input_grad=False)
    return grads, grads_dot


def per_sample_pass(model, rec, d_out, d_state=None):
    """The backward over a forward record with every parameter gradient kept per sequence
    (their sum over the batch is the backward's), model.grads untouched. d_out (T, B, D*P)
    time-major; d_state: tuple per state name of (L*D, B, size) or None
    -> {parameter name: (B, *shape)}."""
    S = len(model.spec.state_names)
    d_state = (None,) * S if d_state is None else d_state
    grads = {}

    def run(layer, d, k, gs, need_dx):
        dx, _, gr, _ = model.spec.backward(
            rec.caches[k], gs[0], tuple(None if s is None else s[k] for s in d_state), False,
            need_dx, backend=model.backend, per_sample=True)
        grads.update({key: gr[n] for n, key in model.param_keys(layer, d) if gr[n] is not None})
        return (dx,)

    down(model.stack(rec.lengths, rec.masks), (d_out,), run, input_grad=False)
    return grads


def jvp(model, x, state=None, tangents=None, lengths=None):
    """Forward mode: the tangents of out and state_n along the given tangents -> JVPResult.

    x, state (a tuple per spec.state_names, None = zeros) and lengths as
    ``model.forward_state`` takes them. tangents: a dict with any of "x", "h0", "c0" (the
    initial states, shaped as state) and parameter names (``model.params``' keys), each the
    shape of what it perturbs; missing entries (or None) are zero.
    """
    check_deterministic(model, "a JVP")
    out, state_n, rec = record_forward(model, x, state, lengths)
    unbatched = rec.unbatched
    tangents = check_tangents(model, tangents, np.shape(x), [s.shape for s in state_n])
    x_dot = tangents.get("x")
    if x_dot is not None:
        x_dot = model.to_time_major(x_dot, unbatched)
    state_dot = tuple(tangents.get(f"{n}0") for n in model.spec.state_names)
    if unbatched:
        state_dot = tuple(None if s is None else s[:, None, :] for s in state_dot)
    out_dot, finals, _ = tangent_forward(model, rec, x_dot, state_dot, tangents)
    return JVPResult(out, state_n, model.from_time_major(out_dot, unbatched),
                     stack_states(finals, unbatched))


__all__ = ["JVPResult", "jvp", "record_forward", "check_tangents", "check_deterministic",
           "tangent_forward", "backward_pass", "per_sample_pass"]
