"""Kernel backends: who computes one layer in one direction. One protocol, one table.

    from minirnn.functional.backends import get_backend
    nb = get_backend("numba")
    out, state_T, cache = nb.forward("lstm", x, (h0, c0), params, valid)
    dx, d_state0, grads, steps = nb.backward("lstm", cache, d_out, (d_hT, d_cT), return_steps=True)

"numpy" runs a cell's own NumPy code (the reference: the spec), "numba" its fused twin. A
backend is only that choice: each cell's CellSpec maps the uniform call onto its code
(minirnn/cells/). The backends' names are minirnn.cells.BACKENDS; the training engines add
torch (minirnn.train.engine.TRAIN_BACKENDS).

This module also registers the built-in cells' Numba twins (minirnn.kernels.TWINS) as their
"numba" tier, through the public minirnn.register_tier, as a user registers a twin of theirs.
"""
from __future__ import annotations

from .._checks import lookup
from .._blas import policy as thread_policy
from ..cells import BACKENDS as KERNEL_BACKENDS
from ..cells import BUILTIN, get_cell, register_tier


class Backend:
    """One tier of implementations: `forward`/`backward` for any cell, by name or CellSpec."""

    def __init__(self, name, summary):
        self.name, self.summary = name, summary

    def __repr__(self):
        return f"Backend({self.name!r}: {self.summary})"

    def forward(self, cell, x, state, params, valid=None):
        w_hh = params.get("weight_hh") if isinstance(params, dict) else None
        with thread_policy(x, w_hh):                             # minirnn/_blas.py's rule
            return get_cell(cell).forward(x, state, params, valid, backend=self.name)

    def backward(self, cell, cache, d_out, d_state, return_steps=False, input_grad=True):
        with thread_policy(getattr(cache, "x", None), getattr(cache, "w_hh", None)):
            return get_cell(cell).backward(cache, d_out, d_state, return_steps, input_grad,
                                           backend=self.name)


BACKENDS = {
    "numpy": Backend("numpy", "the NumPy reference, one step at a time"),
    "numba": Backend("numba", "fused Numba kernels, the same math"),
}
assert tuple(BACKENDS) == KERNEL_BACKENDS


def get_backend(name) -> Backend:
    """'numpy' (the reference) or 'numba' (fused kernels) -> its Backend."""
    return name if isinstance(name, Backend) else lookup("backend", BACKENDS, name)


def _kernel_twin(name):
    """The loader of a built-in cell's Numba twin: numba imports (and compiles) on first use."""
    def load():
        from ..kernels import TWINS
        return TWINS[name]
    return load


for _name in BUILTIN:
    register_tier(_name, "numba", _kernel_twin(_name))

__all__ = ["Backend", "BACKENDS", "KERNEL_BACKENDS", "get_backend"]
