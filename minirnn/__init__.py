"""minirnn — a small, readable, trustworthy recurrent-network engine.

Elman RNN (tanh, relu) and LSTM written out in NumPy, forward and BPTT one step at a time,
the same math fused in Numba, checked against torch's nn.RNN / nn.LSTM.
"""
from . import functional
from .nn import LSTM, RNN, LSTMCell, Module, RNNCell
from .testing import assert_close

__version__ = "0.1.0"

__all__ = ["functional", "RNN", "LSTM", "RNNCell", "LSTMCell", "Module", "assert_close",
           "__version__"]
