"""minirnn — a small, readable, trustworthy recurrent-network engine.

Elman RNN (tanh, relu), LSTM and GRU written out in NumPy, forward and BPTT one step at a
time, the same math fused in Numba, checked against torch's nn.RNN / nn.LSTM / nn.GRU.
The cells are listed in one place, minirnn.registry.
"""
from importlib import import_module as _import_module

from . import functional
from .nn import GRU, LSTM, RNN, GRUCell, LSTMCell, Module, RNNCell
from .testing import assert_close

__version__ = "0.1.0"

_SUBPACKAGES = ("train", "interop", "grad", "debug", "parity", "bench", "tutorials", "kernels",
                "utils", "cli")

# Tools that pull in more (plots, torch interop) are imported on first use.
_LAZY = {
    "gradcheck": ".grad.gradcheck", "GradcheckReport": ".grad.gradcheck",
    "trace": ".debug.tracing", "Trace": ".debug.tracing",
    "explore": ".debug.explore",
    "clip_grad_norm": ".train.optim", "SGD": ".train.optim", "Adam": ".train.optim",
    "Linear": ".nn.layers", "Embedding": ".nn.layers", "Dropout": ".nn.layers",
    "save_checkpoint": ".train.checkpoint", "load_checkpoint": ".train.checkpoint",
    "CheckpointError": ".train.checkpoint", "load_model_state": ".train.checkpoint",
    "SequenceClassifier": ".train.models", "LanguageModel": ".train.models",
    "Engine": ".train.engine",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_module(_LAZY[name], __name__), name)
    if name in _SUBPACKAGES:
        return _import_module("." + name, __name__)
    raise AttributeError(f"module 'minirnn' has no attribute {name!r}")


def __dir__():
    """The public API (the lazy names too) and the subpackages; no private helper."""
    return sorted({n for n in globals() if not n.startswith("_") or n.startswith("__")}
                  | set(__all__) | set(_SUBPACKAGES))


__all__ = ["functional", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Module",
           "assert_close",
           "__version__", *_LAZY]
