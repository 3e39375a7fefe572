"""Kernel backends: who computes one layer in one direction. One protocol, one registry.

    from minirnn.functional.backends import get_backend
    nb = get_backend("numba")
    out, state_T, cache = nb.forward("lstm", x, (h0, c0), params, valid)
    dx, d_state0, grads, steps = nb.backward("lstm", cache, d_out, (d_hT, d_cT), return_steps=True)

A backend is a *tier* of the cell registry: "numpy" runs each cell's reference module
(minirnn/functional/<family>.py, the spec), "numba" its fused twin (minirnn/kernels/). Both
modules have the same signatures and caches, so a backend is only the choice of module; the
registry's CellSpec maps the uniform call onto each family's signature. (Training engines,
which add torch, are a different set: minirnn.train.engine.TRAIN_BACKENDS.)
"""
from __future__ import annotations

from .._checks import lookup
from .._threads import policy as thread_policy
from ..registry import CELLS, get_cell


class Backend:
    """One tier of implementations: `forward`/`backward` for any cell, by name or CellSpec."""

    def __init__(self, name, tier, summary):
        self.name, self.tier, self.summary = name, tier, summary

    def __repr__(self):
        return f"Backend({self.name!r}: {self.summary})"

    def module(self, cell):
        """The module holding `cell`'s forward/backward in this tier."""
        return getattr(get_cell(cell), self.tier)()       # the registry remembers the import

    def forward(self, cell, x, state, params, valid=None):
        spec = get_cell(cell)
        with thread_policy(x, params.get("weight_hh")):        # minirnn/_threads.py's rule
            return spec.layer_forward(self.module(spec), x, state, params, valid)

    def backward(self, cell, cache, d_out, d_state, return_steps=False, input_grad=True):
        spec = get_cell(cell)
        with thread_policy(getattr(cache, "x", None), getattr(cache, "w_hh", None)):
            return spec.layer_backward(self.module(spec), cache, d_out, d_state, return_steps,
                                       input_grad)

    def __getattr__(self, attr):
        # the family-level names, e.g. get_backend("numba").lstm_forward(..., path="loop")
        family, _, fn = attr.rpartition("_")
        spec = next((s for s in CELLS.values() if s.family == family), None)
        if spec is None or fn not in ("forward", "backward"):
            raise AttributeError(f"backend {self.name!r} has no attribute {attr!r}")
        return getattr(getattr(spec, self.tier)(), fn)


BACKENDS = {
    "numpy": Backend("numpy", "reference", "the NumPy reference, one step at a time"),
    "numba": Backend("numba", "kernel", "fused Numba kernels, the same math"),
}
KERNEL_BACKENDS = tuple(BACKENDS)


def get_backend(name) -> Backend:
    """'numpy' (the reference) or 'numba' (fused kernels) -> its Backend."""
    return name if isinstance(name, Backend) else lookup("backend", BACKENDS, name)


__all__ = ["Backend", "BACKENDS", "KERNEL_BACKENDS", "get_backend"]
