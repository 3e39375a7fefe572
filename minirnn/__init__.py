"""minirnn — a small, readable, trustworthy recurrent-network engine.

Elman RNN (tanh, relu), LSTM and GRU written out in NumPy, forward and BPTT one step at a
time, the same math fused in Numba, checked against torch's nn.RNN / nn.LSTM / nn.GRU.
The cells are listed in one place, minirnn.cells.
"""
from importlib import import_module as _import_module

from . import functional
from ._blas import get_num_threads, set_num_threads
from ._version import __version__
from .cells import CellSpec, register_cell, register_tier
from .nn import GRU, LSTM, RNN, GRUCell, LSTMCell, Module, RNNBase, RNNCell
from .testing import assert_close


_SUBPACKAGES = ("cells", "train", "interop", "grad", "studies", "debug", "parity", "bench",
                "tutorials", "kernels", "utils", "cli")

# Tools that pull in more (plots, torch interop) are imported on first use.
_LAZY = {
    "gradcheck": ".grad.gradcheck", "GradcheckReport": ".grad.gradcheck",
    "trace": ".debug.tracing", "Trace": ".debug.tracing",
    "explore": ".debug.explore",
    "clip_grad_norm": ".train.optim", "SGD": ".train.optim", "Adam": ".train.optim",
    "Linear": ".nn.layers", "Embedding": ".nn.layers", "Dropout": ".nn.layers",
    "save_checkpoint": ".train.checkpoint", "load_checkpoint": ".train.checkpoint",
    "CheckpointError": ".train.checkpoint", "load_model_state": ".train.checkpoint",
    "SequenceClassifier": ".nn.models", "LanguageModel": ".nn.models",
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


__all__ = ["functional", "RNN", "LSTM", "GRU", "RNNBase", "RNNCell", "LSTMCell", "GRUCell",
           "Module", "CellSpec", "register_cell", "register_tier", "assert_close",
           "set_num_threads", "get_num_threads",
           "__version__", *_LAZY]
