"""RNNCell and LSTMCell: one time step, torch's API, on the same functional core (T = 1)."""
from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_shape
from ..functional import get_backend
from .module import Module


class _CellBase(Module):
    def __init__(self, input_size, hidden_size, bias, gates, dtype, seed, backend):
        super().__init__(dtype, seed)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        get_backend(backend)
        self.input_size, self.hidden_size, self.bias, self.backend = input_size, hidden_size, bias, backend
        bound = 1.0 / np.sqrt(hidden_size)
        self.add_param("weight_ih", (gates * hidden_size, input_size), bound)
        self.add_param("weight_hh", (gates * hidden_size, hidden_size), bound)
        if bias:
            self.add_param("bias_ih", (gates * hidden_size,), bound)
            self.add_param("bias_hh", (gates * hidden_size,), bound)
        self._cache = None
        self._unbatched = False

    def _input(self, x):
        x = as_float_array("input", x, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"input: expected shape (B, {self.input_size}) or ({self.input_size},), "
                             f"got {x.shape}")
        self._unbatched = x.ndim == 1
        x = x[None] if self._unbatched else x
        check_shape("input", x, (None, self.input_size))
        return x[None]                                              # (T=1, B, I)

    def _state(self, name, value, B):
        if value is None:
            return np.zeros((B, self.hidden_size), dtype=self.dtype)
        arr = as_float_array(name, value, self.dtype)
        arr = arr[None] if self._unbatched and arr.ndim == 1 else arr
        check_shape(name, arr, (B, self.hidden_size))
        return arr

    def _out(self, arr):
        return arr[0] if self._unbatched else arr

    def _weights(self):
        p = self.params
        return p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError("backward() called before forward(): run forward first")
        return self._cache

    def _accumulate(self, dparams):
        for name, g in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dparams):
            if g is not None:
                self.grads[name] += g


class RNNCell(_CellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype="float64",
                 seed=None, backend="numpy"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, dtype, seed, backend)

    def forward(self, x, hx=None):
        """x (B, I) or (I,), hx (B, H) -> h' (B, H)."""
        x = self._input(x)
        h = self._state("hx", hx, x.shape[1])
        _, h_new, self._cache = get_backend(self.backend).rnn_forward(
            x, h, *self._weights(), self.nonlinearity, None)
        return self._out(h_new)

    def backward(self, d_h):
        """dL/dh' -> dx, dh (gradients of forward's input and hx)."""
        cache = self._need_cache()
        d_h = self._state("d_h", d_h, cache.x.shape[1])
        dx, dh, *dparams = get_backend(self.backend).rnn_backward(
            cache, np.zeros_like(cache.h), d_h, False)
        self._accumulate(dparams)
        return self._out(dx[0]), self._out(dh)


class LSTMCell(_CellBase):
    """(h', c') from (x, (h, c)), gate order i, f, g, o."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__(input_size, hidden_size, bias, 4, dtype, seed, backend)

    def forward(self, x, hx=None):
        """x (B, I) or (I,), hx = (h, c) each (B, H) or None -> (h', c')."""
        x = self._input(x)
        B = x.shape[1]
        h, c = (None, None) if hx is None else hx
        h, c = self._state("hx[0]", h, B), self._state("hx[1]", c, B)
        _, h_new, c_new, self._cache = get_backend(self.backend).lstm_forward(
            x, h, c, *self._weights(), None, None)
        return self._out(h_new), self._out(c_new)

    def backward(self, d_h, d_c=None):
        """dL/dh', dL/dc' -> dx, (dh, dc)."""
        cache = self._need_cache()
        B = cache.x.shape[1]
        d_h = self._state("d_h", d_h, B)
        d_c = self._state("d_c", d_c, B)
        dx, dh, dc, *dparams = get_backend(self.backend).lstm_backward(
            cache, np.zeros_like(cache.h), d_h, d_c, False)
        self._accumulate(dparams[:4])
        return self._out(dx[0]), (self._out(dh), self._out(dc))
