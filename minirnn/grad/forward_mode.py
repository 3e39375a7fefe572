"""Forward mode through a whole model: directional derivatives (JVPs) of its outputs.

    res = minirnn.grad.jvp(model, x, state, {"x": x_dot, "weight_hh_l0": w_dot}, lengths=n)
    res.out, res.state, res.out_dot, res.state_dot      # (out, state_n) and their tangents

Given tangents for x, for the initial state ("h0", "c0": the names of spec.state_names plus
"0") and for any parameters (by their names in ``model.params``), it returns the derivative
of ``out`` and of the final state along them: ȯut = J·(ẋ, ḣ_0, ċ_0, θ̇). A missing tangent is
zero. The tangents are propagated by hand beside the forward pass — each cell's
`forward_jvp` (minirnn/cells/<family>.py, or derived from a registered cell's steps) — layer
by layer and direction by direction on the model's own stack walker (minirnn.nn.passes).
This is what the dot-product test ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ against the BPTT needs (JAX's
check_grads, torch's gradcheck(check_forward_ad=True)).

Dropout: the derivative of a forward with random masks is not the derivative of the model,
so a model in training mode with active dropout is refused; call model.eval() first.
"""
from __future__ import annotations

from ..nn.recurrent import RNNBase
from ..nn.passes import JVPResult, check_deterministic
from ..nn.passes import jvp as _jvp


def check_model(model, what, deterministic=True):
    """A recurrent module (and, where the derivative must be the model's, one whose forward
    draws no dropout masks)."""
    if not isinstance(model, RNNBase):
        raise TypeError(f"model: expected minirnn.RNN, LSTM or GRU (or a registered cell's "
                        f"RNNBase) for {what}, got {type(model).__name__}")
    if deterministic:
        check_deterministic(model, what)


def jvp(model, x, state=None, tangents=None, lengths=None):
    """Forward mode: the tangents of out and state_n along the given tangents -> JVPResult.

    model: minirnn.RNN, LSTM or GRU (any layers, directions, proj_size, batch_first,
    unbatched input). x, state (a tuple per spec.state_names, None = zeros) and lengths as
    ``model.forward_state`` takes them. tangents: a dict with any of "x", "h0", "c0" (the
    initial states, shaped as state) and parameter names (``model.params``' keys), each the
    shape of what it perturbs; missing entries (or None) are zero.
    """
    check_model(model, "a JVP")
    return _jvp(model, x, state, tangents, lengths)


__all__ = ["jvp", "JVPResult"]
