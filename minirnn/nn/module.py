"""Module: named parameters, their accumulated gradients, torch-compatible state dicts."""
from __future__ import annotations

import contextlib

import numpy as np

from .._checks import (as_dtype, check_bool, check_fits, check_int, check_keys, check_real,
                       check_seed, to_numpy)


class _Named(dict):
    """A dict of parameter (or gradient) arrays whose missing key lists the valid ones."""

    def __init__(self, what):
        super().__init__()
        self.what = what

    def __missing__(self, key):
        raise KeyError(f"{self.what}[{key!r}]: no such parameter; expected one of {list(self)}")


def _check_prefix(prefix):
    if not isinstance(prefix, str):
        raise TypeError(f"prefix: expected a str (prepended to every name), got "
                        f"{type(prefix).__name__} {prefix!r}")


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
        self._init_rng, self.rng = (np.random.default_rng(s) for s in
                                    np.random.SeedSequence(check_seed("seed", seed)).spawn(2))
        self._children: dict[str, "Module"] = {}

    # ---- parameters -------------------------------------------------------
    def add_param(self, name, shape, bound):
        """A new parameter, uniform in [-bound, bound] as torch initialises it."""
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__} {name!r}")
        if not isinstance(shape, tuple):
            raise TypeError(f"shape: expected a tuple of ints, got {type(shape).__name__} "
                            f"{shape!r}")
        shape = tuple(check_int(f"shape[{k}]", n, low=0) for k, n in enumerate(shape))
        # numpy's uniform draws from [-bound, bound]: its width must be a finite float
        bound = check_real("bound", bound, low=0, high=np.finfo(np.float64).max / 2)
        # the parameter, its gradient and the float64 draw it is cast from
        check_fits(name, int(np.prod(shape, dtype=object)) * (2 * self.dtype.itemsize + 8),
                   f"a parameter of shape {shape} ({self.dtype.name}) and its gradient")
        self.params[name] = self._init_rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.grads[name] = np.zeros(shape, dtype=self.dtype)

    def add_module(self, name, module):
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__} {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a minirnn Module, got {type(module).__name__}")
        self._children[name] = module
        return module

    def named_parameters(self, prefix=""):
        """Yield (name, param, grad) for this module and its children, in registration order."""
        _check_prefix(prefix)
        for name, p in self.params.items():
            yield prefix + name, p, self.grads[name]
        for child_name, child in self._children.items():
            yield from child.named_parameters(prefix + child_name + ".")

    def zero_grad(self):
        for _, _, g in self.named_parameters():
            g[...] = 0.0

    def modules(self, prefix=""):
        """Yield (path, module) for this module and every descendant ("" is this one)."""
        _check_prefix(prefix)
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
        self.training = check_bool("mode", mode)      # train("False") would be truthy
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
        if check_bool("strict", strict):
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
