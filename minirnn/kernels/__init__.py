"""The Numba backend: fused kernels with exactly the reference signatures and caches.

    from minirnn.kernels import TWINS
    out, h_T, cache = TWINS["rnn_tanh"].forward(x, h0, w_ih, w_hh, b_ih, b_hh, "tanh", valid)

TWINS is the table of each family's fused functions (a minirnn.cells.Tier per reference file);
minirnn.functional.backends registers them as the "numba" tier of the built-in cells. Each
forward/backward also takes path=None|"loop"|"blas" (keyword) to force one of the two code
paths; None picks by size (see _common.LOOP_MAX_WORK).
Settings: minirnn/_config.py.
W_hh^T for the loop path is kept between calls while the weights are unchanged (_wcache).
"""
from __future__ import annotations

from ..cells import Tier
from . import _gru, _gru_tangent, _lstm, _lstm_tangent, _rnn, _rnn_tangent, _rtrl
from ._common import LOOP_MAX_WORK, loop_path
from ._gru import backward as gru_backward
from ._gru import forward as gru_forward
from ._lstm import backward as lstm_backward
from ._lstm import forward as lstm_forward
from ._rnn import backward as rnn_backward
from ._rnn import forward as rnn_forward

_RNN = Tier(_rnn.forward, _rnn.backward, _rnn_tangent.forward_jvp, _rnn_tangent.backward_jvp,
            rtrl_step=_rtrl.rnn_step)
TWINS = {                                   # cell name -> its family's fused functions
    "rnn_tanh": _RNN,
    "rnn_relu": _RNN,
    "lstm": Tier(_lstm.forward, _lstm.backward, _lstm_tangent.forward_jvp,
                 _lstm_tangent.backward_jvp, rtrl_step=_rtrl.lstm_step),
    "gru": Tier(_gru.forward, _gru.backward, _gru_tangent.forward_jvp,
                _gru_tangent.backward_jvp, rtrl_step=_rtrl.gru_step),
}

__all__ = ["TWINS", "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward", "LOOP_MAX_WORK", "loop_path"]
