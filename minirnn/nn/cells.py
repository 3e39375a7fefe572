"""RNNCell, LSTMCell and GRUCell: one time step, torch's API, on the same functional core (T = 1).

As for the sequence modules, the cell's registry entry says what differs; the uniform view is
``forward_state(x, state) -> state'`` and ``backward_state(d_state') -> dx, d_state``.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .._checks import as_float_array, check_bool, check_int, check_shape
from ..functional.backends import get_backend
from ..cells import get_cell
from .module import Module


class _CellBase(Module):
    def __init__(self, cell, input_size, hidden_size, bias, dtype, seed, backend):
        super().__init__(dtype, seed)
        self.spec = get_cell(cell)
        # torch's bounds: a cell may have no inputs (input_size=0), a sequence module may not
        self.input_size = check_int("input_size", input_size, low=0)
        # DELIBERATE (differs from torch): torch builds a cell with no units; here it would
        # carry an empty state through kernels compiled for real ones, so it is refused.
        # An empty batch (B = 0) is accepted, as in torch.
        self.hidden_size = check_int("hidden_size", hidden_size,
                                     why=" (a cell with no hidden units has no state to carry)")
        self.bias = check_bool("bias", bias)
        get_backend(backend)
        self.backend = backend
        G, bound = self.spec.gates, 1.0 / np.sqrt(hidden_size)
        self.add_param("weight_ih", (G * hidden_size, input_size), bound)
        self.add_param("weight_hh", (G * hidden_size, hidden_size), bound)
        if bias:
            self.add_param("bias_ih", (G * hidden_size,), bound)
            self.add_param("bias_hh", (G * hidden_size,), bound)
        self._cache = None
        self._unbatched = False
        self._freed = False                 # the last forward's cache was used by a backward

    def __repr__(self):
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, bias={self.bias}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    def _input(self, x):
        x = as_float_array("input", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected shape (B, {self.input_size}) or ({self.input_size},) "
                             f"(input_size={self.input_size}), got {x.shape}")
        unbatched = x.ndim == 1
        x = x[None] if unbatched else x
        return x[None], unbatched                                   # (T=1, B, I)

    def _state(self, name, value, B, unbatched):
        if value is None:
            return np.zeros((B, self.hidden_size), dtype=self.dtype)
        if isinstance(value, tuple):      # np.asarray would stack it into one array
            raise TypeError(f"{name}: expected one array of shape ([batch,] hidden_size), got a "
                            f"tuple of {len(value)}" + (" (only the LSTMCell's hx is a pair (h, c))"
                                                        if len(self.spec.state_names) == 1 else ""))
        arr = as_float_array(name, value, self.dtype)
        if unbatched:
            check_shape(name, arr, (self.hidden_size,), " (unbatched input: one state vector)")
            return arr[None]
        check_shape(name, arr, (B, self.hidden_size))
        return arr

    def _states(self, prefix, values, B, unbatched):
        names = self.spec.state_names
        if values is None:
            values = (None,) * len(names)
        if not isinstance(values, (tuple, list)) or len(values) != len(names):
            got = (f"a {type(values).__name__} of {len(values)}" if isinstance(values, (tuple, list))
                   else type(values).__name__ + (f" of shape {tuple(values.shape)}"
                                                 if hasattr(values, "shape") else ""))
            raise TypeError(f"{prefix}: expected a tuple of {len(names)} array(s) {names}, "
                            f"got {got}")
        label = (lambda k: prefix if len(names) == 1 else f"{prefix}[{k}]")  # noqa: E731
        return tuple(self._state(label(k), v, B, unbatched) for k, v in enumerate(values))

    def _out(self, arr):
        return arr[0] if self._unbatched else arr

    # ---- the uniform state API ----------------------------------------------------------------
    def forward_state(self, x, state=None):
        """x (B, I) or (I,), state a tuple per spec.state_names or None -> state' (tuple)."""
        x, unbatched = self._input(x)
        state = self._states("hx", state, x.shape[1], unbatched)
        _, new, cache = get_backend(self.backend).forward(self.spec, x, state, self.params)
        self._cache, self._unbatched, self._freed = cache, unbatched, False
        return tuple(self._out(s) for s in new)

    def backward_state(self, d_state, retain_graph=False):
        """dL/d(state') (tuple; entries may be None) -> dx, d_state (tuple).
        retain_graph=True keeps the forward's cache for another backward (as torch's);
        without it a second backward of the same forward is refused."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward(): run forward first")
        if self._freed:
            raise RuntimeError("backward() a second time on the same forward: its gradients "
                               "are in the cell's grads already and would be added again. "
                               "Run forward again, or pass retain_graph=True to the first "
                               "backward to keep its cache (as torch's backward)")
        cache = self._cache
        d_state = self._states("d_state", d_state, cache.x.shape[1], self._unbatched)
        dx, d_prev, grads, _ = get_backend(self.backend).backward(
            self.spec, cache, np.zeros_like(cache.h), d_state)
        for name, g in grads.items():
            if g is not None:
                self.grads[name] += g
        self._freed = not check_bool("retain_graph", retain_graph)
        return self._out(dx[0]), tuple(self._out(s) for s in d_prev)

    @contextlib.contextmanager
    def preserve_record(self):
        """Probe forwards/backwards leave the cache of the caller's last forward in place."""
        saved = self._cache, self._unbatched, self._freed
        try:
            yield self
        finally:
            self._cache, self._unbatched, self._freed = saved


class _SingleStateCell(_CellBase):
    """RNNCell and GRUCell: forward(x, h) -> h', backward(d_h') -> dx, dh."""

    def forward(self, x, hx=None):
        """x (B, I) or (I,), hx (B, H) or None -> h' (B, H)."""
        return self.forward_state(x, None if hx is None else (hx,))[0]

    def backward(self, d_h, retain_graph=False):
        """dL/dh' -> dx, dh (gradients of forward's input and hx)."""
        dx, (dh,) = self.backward_state((d_h,), retain_graph)
        return dx, dh


class RNNCell(_SingleStateCell):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype="float64",
                 seed=None, backend="numpy"):
        # torch checks this at the first forward; here the constructor refuses it
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = str(nonlinearity)
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, bias, dtype, seed, backend)


class GRUCell(_SingleStateCell):
    """h' = (1 - z) * n + z * h, gates r, z, n as torch's nn.GRUCell."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__("gru", input_size, hidden_size, bias, dtype, seed, backend)


class LSTMCell(_CellBase):
    """(h', c') from (x, (h, c)), gate order i, f, g, o."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__("lstm", input_size, hidden_size, bias, dtype, seed, backend)

    def forward(self, x, hx=None):
        """x (B, I) or (I,), hx = (h, c) each (B, H) or None -> (h', c')."""
        return self.forward_state(x, hx)

    def backward(self, d_h, d_c=None, retain_graph=False):
        """dL/dh', dL/dc' -> dx, (dh, dc)."""
        return self.backward_state((d_h, d_c), retain_graph)


_CELL_MODULES = {"RNNCell": RNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}


def make_cell(cell, input_size, hidden_size, **kwargs):
    """The one-step module for a built-in `cell` (minirnn.RNNCell / LSTMCell / GRUCell)."""
    spec = get_cell(cell)
    cls = _CELL_MODULES.get(spec.cell_module)
    if cls is None:
        raise ValueError(f"cell: {spec.name!r} has no one-step module; run it for one step "
                         f"with minirnn.nn.make_recurrent({spec.name!r}, ...) and T = 1")
    return cls(input_size, hidden_size, **spec.module_kwargs(), **kwargs)
