"""Gradient studies with answers known in advance, built on the tools of minirnn.grad and the
training engine (minirnn.train): gradient flow through time, the two-dependency task, float32
error growth, online learning with each online method. `minirnn study NAME` runs each (minirnn/cli/study_*.py).

Each public name below lives in its own module and is imported on first use (torch, plots and
training stay unloaded until a study needs them): ``minirnn.studies.NAME``.
"""
import importlib

# public name -> the module under minirnn.studies that defines it
_EXPORTS = {
    "gradient_flow": "flow",
    "two_dependency_data": "seqtask",
    "dependency_floors": "seqtask",
    "monte_carlo_floors": "seqtask",
    "train_two_dependency": "seqtask",
    "memory_probe": "seqtask",
    "float32_error_growth": "precision",
    "train_online": "online",                 # an online method learning, beside exact RTRL
    "OnlineRun": "online",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'minirnn.studies' has no attribute {name!r}")


def __dir__():
    return sorted(set(_EXPORTS) | {"__doc__", "__name__"})


__all__ = list(_EXPORTS)
