"""Modules with torch's API on NumPy arrays."""
from .cells import LSTMCell, RNNCell
from .module import Module
from .recurrent import CELLS, LSTM, RNN, RNNBase

__all__ = ["Module", "RNNBase", "RNN", "LSTM", "RNNCell", "LSTMCell", "CELLS"]
