"""Second order through a whole model: Hessian-vector and Gauss-Newton-vector products.

    hv = minirnn.grad.hvp(model, x, minirnn.grad.MSELoss(y), v)     # H v, keyed like model.grads
    gv = minirnn.grad.gnvp(model, x, minirnn.grad.MSELoss(y), v)    # G v = Jᵀ H_L J v

The Hessian-vector product is forward over reverse (Pearlmutter 1994): the R-operator
R{·} = d/dε (·)(θ + ε v) at ε = 0 applied to the hand-written BPTT. One forward, one tangent
forward (each cell's `forward_jvp`: ȧ_t, ċ_t, ... along θ̇ = v), then the backward and its
tangent together (each cell's `backward_jvp`, walked by minirnn.nn.passes.backward_pass),
started from R{∂L/∂out} = H_L ȯut. R{∂L/∂θ} is
H v, exact to round-off: no finite differences. The Gauss-Newton product (Schraudolph 2002),
which Hessian-free optimisation (Martens & Sutskever 2011) uses because it is positive
semi-definite for a convex loss, is the tangent forward, H_L, then one ordinary backward.

The loss is a function of ``out`` (see minirnn.grad.output_losses). Dropout must be off
(model.eval()); lengths, layers, directions, proj_size and batch_first all work.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_shape
from ..nn.passes import backward_pass, record_forward, tangent_forward
from .forward_mode import check_model
from .output_losses import check_loss


def check_directions(model, v, name="v"):
    """v: parameter name -> array (missing = zero) -> a checked dict in the model's dtype."""
    if not hasattr(v, "items"):
        raise TypeError(f"{name}: expected a dict of parameter name -> array (keyed like "
                        f"model.params), got {type(v).__name__}")
    out = {}
    for key, value in v.items():
        if key not in model.params:
            raise ValueError(f"{name}: unknown parameter {key!r}; expected some of "
                             f"{list(model.params)}")
        if value is not None:
            arr = as_float_array(f"{name}[{key!r}]", value, model.dtype)
            check_shape(f"{name}[{key!r}]", arr, model.params[key].shape)
            out[key] = arr
    return out


def _prepare(model, x, loss, v, state, lengths, what):
    check_model(model, what)
    check_loss(loss)
    v = check_directions(model, v)
    out, state_n, rec = record_forward(model, x, state, lengths)
    S = len(model.spec.state_names)
    out_dot, _, tcaches = tangent_forward(model, rec, None, (None,) * S, v)
    return out, rec, model.from_time_major(out_dot, rec.unbatched), tcaches


def _time_major(model, rec, name, arr, like):
    arr = as_float_array(name, arr, model.dtype)
    check_shape(name, arr, like.shape)
    return np.ascontiguousarray(model.to_time_major(arr, rec.unbatched))


def hessian_vector(model, x, loss, v, state=None, lengths=None, d_state=None):
    """-> (gradient, H v), each {parameter name: array} in model.params' order. d_state: a
    fixed term linear in the final state, L += sum(d_state * state_n) (a tuple per state
    name shaped as state_n, or None): gradcheck uses it to reach every layer's final state."""
    out, rec, out_dot, tcaches = _prepare(model, x, loss, v, state, lengths, "an HVP")
    d_out = _time_major(model, rec, "loss.grad(out)", loss.grad(out), out)
    d_out_dot = _time_major(model, rec, "loss.hvp(out, v)", loss.hvp(out, out_dot), out)
    if d_state is not None and rec.unbatched:
        d_state = tuple(None if s is None else s[:, None, :] for s in d_state)
    grads, grads_dot = backward_pass(model, rec, d_out, d_state, tcaches, d_out_dot)
    return ({n: grads[n] for n in model.params}, {n: grads_dot[n] for n in model.params})


def hvp(model, x, loss, v, state=None, lengths=None):
    """The Hessian of loss(model(x)) in the parameters times v -> dict keyed like model.grads.

    model: minirnn.RNN, LSTM or GRU in eval mode (or without dropout). loss: an object with
    value/grad/hvp of the output (minirnn.grad.MSELoss, LinearLoss, or your own). v: parameter
    name -> direction (missing names are zero). x, state, lengths: as model.forward_state.
    model.grads and the model's record of its last forward are left untouched.
    """
    return hessian_vector(model, x, loss, v, state, lengths)[1]


def gnvp(model, x, loss, v, state=None, lengths=None):
    """The Gauss-Newton matrix Jᵀ H_L J times v (J = ∂out/∂θ, H_L the loss's Hessian in out)
    -> dict keyed like model.grads. Arguments as hvp."""
    out, rec, out_dot, _ = _prepare(model, x, loss, v, state, lengths, "a Gauss-Newton product")
    u = _time_major(model, rec, "loss.hvp(out, v)", loss.hvp(out, out_dot), out)
    grads, _ = backward_pass(model, rec, u)
    return {n: grads[n] for n in model.params}


__all__ = ["hvp", "gnvp", "hessian_vector", "backward_pass"]
