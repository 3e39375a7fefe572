"""The Numba backend: fused kernels with exactly the reference signatures and caches.

    from minirnn.functional import get_backend
    nb = get_backend("numba")          # this module
    out, h_T, cache = nb.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, "tanh", valid)

Each function also takes path=None|"loop"|"blas" (keyword) to force one of the two code
paths; None picks by size (see _common.LOOP_MAX_WORK).
Settings: minirnn/_config.py.
W_hh^T for the loop path is kept between calls while the weights are unchanged (_wcache).
"""
from __future__ import annotations

from ._common import LOOP_MAX_WORK, loop_path
from ._gru import backward as gru_backward
from ._gru import forward as gru_forward
from ._lstm import backward as lstm_backward
from ._lstm import forward as lstm_forward
from ._rnn import backward as rnn_backward
from ._rnn import forward as rnn_forward

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward", "LOOP_MAX_WORK", "loop_path"]
