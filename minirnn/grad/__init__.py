"""Gradient-correctness tools: finite-difference gradcheck, gradient flow through time, exact
derivatives beyond reverse mode, and gradient studies.

Each public name below lives in its own module and is imported on first use (torch, plots
and kernels stay unloaded until a tool needs them): ``minirnn.grad.NAME`` or
``from minirnn.grad import NAME``.
"""
import importlib

# public name -> the module under minirnn.grad that defines it (one line per name). A public
# name must not be a submodule's name: importing the submodule would shadow it.
_EXPORTS = {
    "GradcheckReport": "gradcheck",           # the function is minirnn.gradcheck
    "gradient_flow": "flow",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'minirnn.grad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)
