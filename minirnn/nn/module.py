"""Module: named parameters, their accumulated gradients, torch-compatible state dicts."""
from __future__ import annotations

import contextlib

import numpy as np

from .._checks import as_dtype, check_keys, to_numpy


class _Named(dict):
    """A dict of parameter (or gradient) arrays whose missing key lists the valid ones."""

    def __init__(self, what):
        super().__init__()
        self.what = what

    def __missing__(self, key):
        raise KeyError(f"{self.what}[{key!r}]: no such parameter; expected one of {list(self)}")


class Module:
    """Parameters live in ``self.params`` (name -> array, torch's names and order) and their
    gradients in ``self.grads`` (same names), accumulated by ``backward`` until ``zero_grad``.
    Sub-modules are registered with ``add_module`` and their names are prefixed ("rnn.weight_ih_l0")."""

    def __init__(self, dtype="float64", seed=None):
        self.dtype = as_dtype(dtype)
        self.params: dict[str, np.ndarray] = _Named("params")
        self.grads: dict[str, np.ndarray] = _Named("grads")
        self.training = True
        # one seed, two independent streams: initial weights, and dropout masks
        self._init_rng, self.rng = (np.random.default_rng(s)
                                    for s in np.random.SeedSequence(seed).spawn(2))
        self._children: dict[str, "Module"] = {}

    # ---- parameters -------------------------------------------------------
    def add_param(self, name, shape, bound):
        """A new parameter, uniform in [-bound, bound] as torch initialises it."""
        self.params[name] = self._init_rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.grads[name] = np.zeros(shape, dtype=self.dtype)

    def add_module(self, name, module):
        self._children[name] = module
        return module

    def named_parameters(self, prefix=""):
        """Yield (name, param, grad) for this module and its children, in registration order."""
        for name, p in self.params.items():
            yield prefix + name, p, self.grads[name]
        for child_name, child in self._children.items():
            yield from child.named_parameters(prefix + child_name + ".")

    def zero_grad(self):
        for _, _, g in self.named_parameters():
            g[...] = 0.0

    def modules(self, prefix=""):
        """Yield (path, module) for this module and every descendant ("" is this one)."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.modules(prefix + name + ".")

    def parameters(self):
        """The parameter arrays, as torch's Module.parameters() (registration order)."""
        return [p for _, p, _ in self.named_parameters()]

    @contextlib.contextmanager
    def using_backend(self, backend):
        """Run every recurrent layer in this module on `backend` ("numpy" | "numba") inside the
        block; each layer's own choice is restored on exit, whatever happens."""
        from ..functional.backends import get_backend
        get_backend(backend)                               # refuses an unknown name first
        layers = [m for _, m in self.modules() if hasattr(m, "backend")]
        saved = [m.backend for m in layers]
        try:
            for m in layers:
                m.backend = backend
            yield self
        finally:
            for m, b in zip(layers, saved):
                m.backend = b

    # ---- mode ----------------------------------------------------------------
    def train(self, mode=True):
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- state dicts -------------------------------------------------------
    def state_dict(self):
        """name -> a copy of the parameter (numpy), with torch's exact keys and shapes."""
        return {name: p.copy() for name, p, _ in self.named_parameters()}

    def grad_dict(self):
        return {name: g.copy() for name, _, g in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy numpy arrays or torch tensors into the parameters, in place.

        Missing or unexpected keys raise KeyError (strict), a wrong shape raises ValueError,
        a non-float value TypeError; nothing is changed unless every entry is valid.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict: expected a mapping of name -> array, "
                            f"got {type(state_dict).__name__}")
        own = {name: p for name, p, _ in self.named_parameters()}
        if strict:
            check_keys("state_dict", own, state_dict.keys())
        staged = {}
        for name in own:
            if name not in state_dict:
                continue
            value = to_numpy(state_dict[name])
            if value.dtype.kind != "f":
                raise TypeError(f"state_dict[{name!r}]: expected a floating-point array, "
                                f"got dtype {value.dtype}")
            if value.shape != own[name].shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {own[name].shape}, "
                                 f"got {value.shape}")
            staged[name] = value
        for name, value in staged.items():
            own[name][...] = value          # in place: optimisers keep their references
        return self
