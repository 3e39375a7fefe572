"""Modules with torch's API on NumPy arrays."""
from .cells import GRUCell, LSTMCell, RNNCell, make_cell
from .module import Module
from .recurrent import GRU, LSTM, RNN, ForwardRecord, RNNBase, make_recurrent

__all__ = ["Module", "RNNBase", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "ForwardRecord", "make_recurrent", "make_cell"]
