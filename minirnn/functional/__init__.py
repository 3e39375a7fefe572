"""The functional core: one layer, one direction, arrays in and out.

Three tiers (as stumpy does it):
  * ``minirnn.cells.rnn`` / ``.lstm`` / ``.gru`` — the NumPy reference, the spec, one step at
    a time (unchecked: it trusts its arguments, as a spec should read);
  * ``minirnn.kernels``                    — private fused Numba kernels, same signatures;
  * the functions below                    — validate the input, then dispatch to a backend
    (the cell's tier: minirnn.cells.FamilySpec.tier).

    out, h_T, cache = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh")
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = rnn_backward(cache, d_out, d_hT)
    out, h_T, c_T, cache = lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None)
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr = lstm_backward(cache, d_out, d_hT, d_cT)
    out, h_T, cache = gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_backward(cache, d_out, d_hT)
"""
from __future__ import annotations

import numpy as np

from .._checks import (as_float_array, check_bool, check_lengths, check_shape, to_numpy,
                       valid_mask)
from .._blas import policy as thread_policy
from ..cells import get_cell
from ..cells.gru import GRUCache, GRUGradSteps
from ..cells.lstm import LSTMCache, LSTMGradSteps
from ..cells.rnn import NONLINEARITIES, RNNCache, RNNGradSteps
from .backends import KERNEL_BACKENDS, Backend, get_backend

BACKENDS = KERNEL_BACKENDS           # the names; get_backend(name) gives the Backend


def _tier(cell, backend):
    """The family functions of `cell` on `backend` (its name checked first)."""
    return get_cell(cell).tier(get_backend(backend).name)


def _weights(dtype, H, G, I, P, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """Validate one layer's parameters; G = gates (1 for Elman, 4 for LSTM)."""
    w_ih = as_float_array("w_ih", w_ih, dtype)
    check_shape("w_ih", w_ih, (G * H, I))
    w_hh = as_float_array("w_hh", w_hh, dtype)
    check_shape("w_hh", w_hh, (G * H, P))
    if (b_ih is None) != (b_hh is None):
        raise ValueError("b_ih, b_hh: give both biases or neither, "
                         f"got b_ih={'None' if b_ih is None else 'array'}, "
                         f"b_hh={'None' if b_hh is None else 'array'}")
    if b_ih is not None:
        b_ih = as_float_array("b_ih", b_ih, dtype)
        check_shape("b_ih", b_ih, (G * H,))
        b_hh = as_float_array("b_hh", b_hh, dtype)
        check_shape("b_hh", b_hh, (G * H,))
    if w_hr is not None:
        w_hr = as_float_array("w_hr", w_hr, dtype)
        check_shape("w_hr", w_hr, (P, H))
    return w_ih, w_hh, b_ih, b_hh, w_hr


def _input(x):
    """x must be (T, B, I); the layer computes in x's precision (float32 or float64)."""
    x = to_numpy(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected shape (T, B, I), got {x.shape}")
    return as_float_array("x", x, x.dtype if x.dtype.name in ("float32", "float64") else np.float64)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, backend="numpy"):
    """Elman RNN layer. x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), RNNCache.

    The computation runs in x's dtype (float32 or float64); lengths (B,) ends sequences early.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {NONLINEARITIES}, got {nonlinearity!r}")
    x = _input(x)
    T, B, I = x.shape
    H = np.shape(w_hh)[0]
    w_ih, w_hh, b_ih, b_hh, _ = _weights(x.dtype, H, 1, I, H, w_ih, w_hh, b_ih, b_hh)
    h0 = as_float_array("h0", h0, x.dtype)
    check_shape("h0", h0, (B, H))
    valid = None if lengths is None else valid_mask(check_lengths(lengths, B, T), T)
    with thread_policy(x, w_hh):                         # minirnn/_blas.py's rule
        return _tier("rnn_" + nonlinearity, backend).forward(x, h0, w_ih, w_hh, b_ih, b_hh,
                                                              nonlinearity, valid)


def _upstream(cache, cache_type, forward_name, d_out, **d_states):
    """Check a backward's cache and upstream gradients (each state's gradient has the shape
    of the cache's initial state: d_hT like h0, d_cT like c0) -> d_out, then the states."""
    if not isinstance(cache, cache_type):
        raise TypeError(f"cache: expected the {cache_type.__name__} returned by {forward_name}, "
                        f"got {type(cache).__name__}")
    dt = cache.x.dtype
    d_out = as_float_array("d_out", d_out, dt)
    check_shape("d_out", d_out, cache.h.shape)
    checked = []
    for name, value in d_states.items():
        if value is not None:
            value = as_float_array(name, value, dt)
            state = name[len("d_"):-len("T")]         # "d_hT" -> "h": shaped like cache.h0
            check_shape(name, value, getattr(cache, state + "0").shape)
        checked.append(value)
    return (d_out, *checked)


def rnn_backward(cache, d_out, d_hT=None, backend="numpy", return_steps=False,
                 input_grad=True):
    """BPTT for rnn_forward -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh (+ RNNGradSteps).

    input_grad=False: x needs no gradient, so dx is None and its product is skipped."""
    d_out, d_hT = _upstream(cache, RNNCache, "rnn_forward", d_out, d_hT=d_hT)
    with thread_policy(cache.x, cache.w_hh):
        return _tier("rnn_" + cache.nonlinearity, backend).backward(
            cache, d_out, d_hT, return_steps, input_grad=check_bool("input_grad", input_grad))


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None,
                 lengths=None, backend="numpy"):
    """LSTM layer. x (T, B, I), h0 (B, P), c0 (B, H) -> out (T, B, P), h_T, c_T, LSTMCache.

    P = proj_size when w_hr (P, H) is given, else H.
    """
    x = _input(x)
    T, B, I = x.shape
    H = np.shape(w_hh)[0] // 4
    P = np.shape(w_hr)[0] if w_hr is not None else H
    w_ih, w_hh, b_ih, b_hh, w_hr = _weights(x.dtype, H, 4, I, P, w_ih, w_hh, b_ih, b_hh, w_hr)
    h0 = as_float_array("h0", h0, x.dtype)
    check_shape("h0", h0, (B, P))
    c0 = as_float_array("c0", c0, x.dtype)
    check_shape("c0", c0, (B, H))
    valid = None if lengths is None else valid_mask(check_lengths(lengths, B, T), T)
    with thread_policy(x, w_hh):
        return _tier("lstm", backend).forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid)


def lstm_backward(cache, d_out, d_hT=None, d_cT=None, backend="numpy", return_steps=False,
                  input_grad=True):
    """BPTT for lstm_forward -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr (+ LSTMGradSteps).

    input_grad=False: x needs no gradient, so dx is None and its product is skipped."""
    d_out, d_hT, d_cT = _upstream(cache, LSTMCache, "lstm_forward", d_out, d_hT=d_hT, d_cT=d_cT)
    with thread_policy(cache.x, cache.w_hh):
        return _tier("lstm", backend).backward(cache, d_out, d_hT, d_cT, return_steps,
                                               input_grad=check_bool("input_grad", input_grad))


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, backend="numpy"):
    """GRU layer. x (T, B, I), h0 (B, H) -> out (T, B, H), h_T (B, H), GRUCache."""
    x = _input(x)
    T, B, I = x.shape
    H = np.shape(w_hh)[0] // 3
    w_ih, w_hh, b_ih, b_hh, _ = _weights(x.dtype, H, 3, I, H, w_ih, w_hh, b_ih, b_hh)
    h0 = as_float_array("h0", h0, x.dtype)
    check_shape("h0", h0, (B, H))
    valid = None if lengths is None else valid_mask(check_lengths(lengths, B, T), T)
    with thread_policy(x, w_hh):
        return _tier("gru", backend).forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)


def gru_backward(cache, d_out, d_hT=None, backend="numpy", return_steps=False,
                 input_grad=True):
    """BPTT for gru_forward -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh (+ GRUGradSteps).

    input_grad=False: x needs no gradient, so dx is None and its product is skipped."""
    d_out, d_hT = _upstream(cache, GRUCache, "gru_forward", d_out, d_hT=d_hT)
    with thread_policy(cache.x, cache.w_hh):
        return _tier("gru", backend).backward(cache, d_out, d_hT, return_steps,
                                              input_grad=check_bool("input_grad", input_grad))


__all__ = ["RNNCache", "LSTMCache", "GRUCache", "RNNGradSteps",
           "LSTMGradSteps", "GRUGradSteps", "BACKENDS", "KERNEL_BACKENDS", "Backend",
           "get_backend", "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward"]
