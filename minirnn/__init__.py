"""minirnn — a small, readable, trustworthy recurrent-network engine.

Elman RNN (tanh, relu) and LSTM written out in NumPy, forward and BPTT one step at a time,
the same math fused in Numba, checked against torch's nn.RNN / nn.LSTM.
"""
import importlib

from . import functional
from .nn import LSTM, RNN, LSTMCell, Module, RNNCell
from .testing import assert_close

__version__ = "0.1.0"

# Tools that pull in more (plots, torch interop) are imported on first use.
_LAZY = {
    "gradcheck": "._gradcheck", "GradcheckReport": "._gradcheck",
    "trace": ".tracing", "Trace": ".tracing",
    "clip_grad_norm": ".optim", "SGD": ".optim", "Adam": ".optim",
    "Linear": ".nn.layers", "Embedding": ".nn.layers", "Dropout": ".nn.layers",
    "save_checkpoint": ".checkpoint", "load_checkpoint": ".checkpoint",
    "CheckpointError": ".checkpoint", "load_model_state": ".checkpoint",
    "SequenceClassifier": ".models", "LanguageModel": ".models", "Engine": ".training",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in ("study", "optim", "checkpoint", "models", "training", "torch_backend"):
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'minirnn' has no attribute {name!r}")


__all__ = ["functional", "RNN", "LSTM", "RNNCell", "LSTMCell", "Module", "assert_close",
           "__version__", *_LAZY]
