"""Modules with torch's API on NumPy arrays."""
from .cells import GRUCell, LSTMCell, RNNCell
from .module import Module
from .recurrent import CELLS, GRU, LSTM, RNN, ForwardRecord, RNNBase

__all__ = ["Module", "RNNBase", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "ForwardRecord", "CELLS"]
