"""What the gradient studies share: the model check, time-major inputs, measuring gradients
without disturbing the caller's, and the states a forward pass kept for every step."""
from __future__ import annotations

import contextlib

import numpy as np

from .._checks import as_float_array, check_shape, check_steps, to_numpy


def check_forward_model(model, what="model"):
    """A minirnn.RNN / LSTM / GRU running forward in time only: a lag t - tau and a truncation
    window are defined for one direction of time (a reverse direction reads the future)."""
    from ..nn.recurrent import RNNBase
    if not isinstance(model, RNNBase):
        raise TypeError(f"{what}: expected minirnn.RNN, LSTM or GRU, got {type(model).__name__}")
    if model.num_directions != 1:
        raise ValueError(f"{what}: expected a unidirectional model (time lags and truncation "
                         f"windows run forward in time), got bidirectional=True")
    return model


def time_major_pair(model, x, d_out):
    """x (user layout, 3-D) and d_out = dL/d(out) (forward's output shape) -> both (T, B, .)
    in the model's dtype."""
    x = as_float_array("x", to_numpy(x), model.dtype)
    if x.ndim != 3:
        raise ValueError(f"x: expected a batch, shape (T, B, I) (or (B, T, I) with batch_first), "
                         f"got shape {x.shape}")
    x_tm = model.to_time_major(x)
    T, B, _ = x_tm.shape
    check_steps("x", T)
    d_out = as_float_array("d_out", to_numpy(d_out), model.dtype)
    P = model.out_size
    check_shape("d_out", d_out, (B, T, P) if model.batch_first else (T, B, P),
                " (the shape of the model's output: dL/d(out) at every step)")
    return x_tm, model.to_time_major(d_out)


@contextlib.contextmanager
def measuring(model):
    """Eval mode (no dropout masks to redraw), the caller's gradients and forward record kept:
    inside, model.grads start at zero; `collect(model)` reads them."""
    saved = {name: g.copy() for name, _, g in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        with model.preserve_record():
            model.zero_grad()
            yield model
    finally:
        for name, _, g in model.named_parameters():
            g[...] = saved[name]
        model.train(was_training)


def collect(model):
    """model.grads as a plain dict of copies, keyed like model.grads."""
    return {name: g.copy() for name, _, g in model.named_parameters()}


def states_in_record(rnn, j):
    """The state (tuple per spec.state_names, each (L, B, size)) after step j of the last
    forward of `rnn` (j = -1: the state it started from), read from its record through the
    cell (CellSpec.states_of), so a later window can start there."""
    per_layer = [rnn.spec.states_of(c) for c in rnn.last_forward.caches]
    return tuple(np.stack([s0[n] if j < 0 else s[n][j] for s0, s in per_layer])
                 for n in range(len(rnn.spec.state_names)))
