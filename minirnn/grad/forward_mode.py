"""Forward mode through a whole model: directional derivatives (JVPs) of its outputs.

    res = minirnn.grad.jvp(model, x, state, {"x": x_dot, "weight_hh_l0": w_dot}, lengths=n)
    res.out, res.state, res.out_dot, res.state_dot      # (out, state_n) and their tangents

Given tangents for x, for the initial state ("h0", "c0": the names of spec.state_names plus
"0") and for any parameters (by their names in ``model.params``), it returns the derivative
of ``out`` and of the final state along them: ȯut = J·(ẋ, ḣ_0, ċ_0, θ̇). A missing tangent is
zero. The tangents are propagated by hand beside the forward pass — each cell's
`forward_jvp` in minirnn/functional/<family>.py — layer by layer and direction by direction,
exactly as RNNBase composes the forward (lengths, bidirectional reversal, layer stacking).
This is what the dot-product test ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ against the BPTT needs (JAX's
check_grads, torch's gradcheck(check_forward_ad=True)).

Dropout: the derivative of a forward with random masks is not the derivative of the model,
so a model in training mode with active dropout is refused; call model.eval() first.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_shape, reverse_padded

# backends with tangent twins: the module holding a family's forward_jvp / backward_jvp
_TANGENT_TIERS = {"numba": "minirnn.kernels._{family}_tangent"}


class JVPResult(NamedTuple):
    """The forward's results and their tangents, in the model's user layout."""
    out: np.ndarray               # as model.forward_state returns it
    state: tuple                  # state_n, a tuple per spec.state_names
    out_dot: np.ndarray           # ȯut, the shape of out
    state_dot: tuple              # the tangents of state_n, same shapes


def check_model(model, what):
    """A recurrent module whose derivative is the derivative of its forward."""
    from ..nn.recurrent import RNNBase
    if not isinstance(model, RNNBase):
        raise TypeError(f"model: expected minirnn.RNN, LSTM or GRU for {what}, "
                        f"got {type(model).__name__}")
    if model.training and model.dropout > 0 and model.num_layers > 1:
        raise ValueError(f"model: dropout={model.dropout} is active in training mode, and "
                         f"{what} of a forward with random masks is not the model's; call "
                         f"model.eval() first")


def tangent_fns(model):
    """The module holding the cell's forward_jvp/backward_jvp for the model's backend: the
    kernel twin where one exists, else the NumPy reference."""
    import importlib
    spec = model.spec
    name = _TANGENT_TIERS.get(model.backend)
    if name is None:
        return spec.reference()
    return importlib.import_module(name.format(family=spec.family))


def param_names(model, layer, direction):
    """((functional name, model parameter name), ...) of one layer-direction."""
    return model.param_keys(layer, direction)


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
    """The tangent of RNNBase.forward_state from its record. x_dot (T, B, I) time-major or
    None; state_dot: tuple per state name of (L*D, B, size) or None; tangents: parameter name
    -> tangent -> ȯut (T, B, D*P), final state tangents per layer-direction, tangent caches."""
    spec, D, fns = model.spec, model.num_directions, tangent_fns(model)
    finals, tcaches = [], []
    layer_in = x_dot
    for layer in range(model.num_layers):
        if layer_in is not None and rec.masks[layer] is not None:
            layer_in = layer_in * rec.masks[layer]
        outs = []
        for d in range(D):
            k = layer * D + d
            seq = layer_in if d == 0 or layer_in is None else reverse_padded(layer_in, rec.lengths)
            params_dot = {n: tangents.get(key) for n, key in param_names(model, layer, d)}
            out_dot, st_dot, tcache = spec.layer_jvp(
                fns, rec.caches[k], seq, tuple(None if s is None else s[k] for s in state_dot),
                params_dot)
            outs.append(out_dot if d == 0 else reverse_padded(out_dot, rec.lengths))
            finals.append(st_dot)
            tcaches.append(tcache)
        layer_in = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
    return layer_in, finals, tcaches


def stack_states(finals, n_states, unbatched):
    """Per layer-direction state tuples -> a tuple per state name of (L*D, B, size)."""
    return tuple((lambda s: s[:, 0, :] if unbatched else s)(np.stack([f[j] for f in finals]))
                 for j in range(n_states))


def jvp(model, x, state=None, tangents=None, lengths=None):
    """Forward mode: the tangents of out and state_n along the given tangents -> JVPResult.

    model: minirnn.RNN, LSTM or GRU (any layers, directions, proj_size, batch_first,
    unbatched input). x, state (a tuple per spec.state_names, None = zeros) and lengths as
    ``model.forward_state`` takes them. tangents: a dict with any of "x", "h0", "c0" (the
    initial states, shaped as state) and parameter names (``model.params``' keys), each the
    shape of what it perturbs; missing entries (or None) are zero.
    """
    check_model(model, "a JVP")
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
                     stack_states(finals, len(state_n), unbatched))


__all__ = ["jvp", "JVPResult"]
