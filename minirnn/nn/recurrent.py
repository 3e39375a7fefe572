"""RNN and LSTM modules: torch's nn.RNN / nn.LSTM API, NumPy arrays in and out.

Layers stack, directions run side by side; a layer-direction is one call of the functional
core (minirnn.functional), so every number here comes from those few readable lines.
Shapes: T = time, B = batch, I = input size, H = hidden size, P = proj_size or H,
L = num_layers, D = 2 if bidirectional else 1.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._checks import as_float_array, check_lengths, check_shape, reverse_padded, valid_mask
from ..functional import BACKENDS, get_backend
from .module import Module

CELLS = ("rnn_tanh", "rnn_relu", "lstm")


class _Record(NamedTuple):
    """What the last forward kept for backward: one cache per layer and direction."""
    caches: list                  # [L * D] RNNCache / LSTMCache, index l * D + d
    masks: list                   # [L] dropout mask applied to layer l's input (or None)
    lengths: Optional[np.ndarray]  # (B,) or None
    unbatched: bool


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__(dtype, seed)
        if mode not in CELLS:
            raise ValueError(f"mode: expected one of {CELLS}, got {mode!r}")
        for name, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                                 ("num_layers", num_layers, 1), ("proj_size", proj_size, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        if proj_size and mode != "lstm":
            raise ValueError(f"proj_size: only the LSTM supports a projection, got {proj_size} for {mode}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size={hidden_size}, got {proj_size}")
        get_backend(backend)                   # refuses an unknown backend now, not at forward
        self.mode, self.backend = mode, backend
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.num_directions = 2 if bidirectional else 1
        self.gates = 4 if mode == "lstm" else 1
        self.out_size = proj_size or hidden_size                 # P
        self._last: Optional[_Record] = None
        H, G, P, bound = hidden_size, self.gates, self.out_size, 1.0 / np.sqrt(hidden_size)
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else P * self.num_directions
            for sfx in ("", "_reverse")[: self.num_directions]:
                self.add_param(f"weight_ih_l{layer}{sfx}", (G * H, in_size), bound)
                self.add_param(f"weight_hh_l{layer}{sfx}", (G * H, P), bound)
                if bias:
                    self.add_param(f"bias_ih_l{layer}{sfx}", (G * H,), bound)
                    self.add_param(f"bias_hh_l{layer}{sfx}", (G * H,), bound)
                if proj_size:
                    self.add_param(f"weight_hr_l{layer}{sfx}", (P, H), bound)

    def __repr__(self):
        extra = f", proj_size={self.proj_size}" if self.proj_size else ""
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, mode={self.mode!r}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}{extra}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")

    def _layer_params(self, layer, direction):
        sfx = "_reverse" if direction else ""
        p = self.params
        get = lambda n: p.get(f"{n}_l{layer}{sfx}")  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    # ---- layout ------------------------------------------------------------------
    def _to_tbi(self, arr, unbatched):
        """User layout -> (T, B, features)."""
        if unbatched:
            return arr[:, None, :]
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    def _from_tbi(self, arr, unbatched):
        if unbatched:
            return np.ascontiguousarray(arr[:, 0, :])
        return np.ascontiguousarray(arr.transpose(1, 0, 2) if self.batch_first else arr)

    def _state(self, name, value, B, size, unbatched):
        """h0 / c0 (or their gradients): None -> zeros; else check (L*D, B, size)."""
        LD = self.num_layers * self.num_directions
        if value is None:
            return np.zeros((LD, B, size), dtype=self.dtype)
        arr = as_float_array(name, value, self.dtype)
        if unbatched:
            check_shape(name, arr, (LD, size), " (num_layers*num_directions, size) for unbatched input")
            return arr[:, None, :]
        check_shape(name, arr, (LD, B, size), " (num_layers*num_directions, batch, size)")
        return arr

    # ---- forward -------------------------------------------------------------------
    def _forward(self, x, h0, c0, lengths):
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected shape (T, B, I), (B, T, I) with batch_first, or (T, I) "
                             f"unbatched, got {x.shape}")
        unbatched = x.ndim == 2
        x = self._to_tbi(x, unbatched)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x: expected feature size input_size={self.input_size}, got {I} "
                             f"(x has shape {x.shape} as (T, B, I))")
        if T == 0:
            raise ValueError("x: expected at least one time step, got T=0")
        H, P, D = self.hidden_size, self.out_size, self.num_directions
        h0 = self._state("h0", h0, B, P, unbatched)
        is_lstm = self.mode == "lstm"
        if is_lstm:
            c0 = self._state("c0", c0, B, H, unbatched)
        lengths = None if lengths is None else check_lengths(lengths, B, T)
        valid = None if lengths is None else valid_mask(lengths, T)
        fns = get_backend(self.backend)
        caches, masks, h_n, c_n = [], [], [], []
        layer_in = x                                                    # (T, B, I or D*P)
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and self.training and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self.rng.random(layer_in.shape) < keep).astype(self.dtype)
                mask = mask / keep if keep > 0 else mask
                layer_in = layer_in * mask
            masks.append(mask)
            outs = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, d)
                seq = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                if is_lstm:
                    out, hT, cT, cache = fns.lstm_forward(seq, h0[k], c0[k], w_ih, w_hh, b_ih,
                                                          b_hh, w_hr, valid)
                    c_n.append(cT)
                else:
                    out, hT, cache = fns.rnn_forward(seq, h0[k], w_ih, w_hh, b_ih, b_hh,
                                                     self.mode[4:], valid)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
                h_n.append(hT)
                caches.append(cache)
            layer_in = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
        self._last = _Record(caches, masks, lengths, unbatched)
        out = self._from_tbi(layer_in, unbatched)
        squeeze = (lambda s: s[:, 0, :]) if unbatched else (lambda s: s)  # noqa: E731
        h_n = squeeze(np.stack(h_n))
        return out, h_n, (squeeze(np.stack(c_n)) if is_lstm else None)

    # ---- backward -------------------------------------------------------------------
    def _backward(self, d_out, d_hn, d_cn, return_steps=False):
        rec = self._last
        if rec is None:
            raise RuntimeError("backward() called before forward(): run forward first, then "
                               "backward with the gradient of the loss w.r.t. its outputs")
        H, P, D = self.hidden_size, self.out_size, self.num_directions
        first = rec.caches[0]
        T, B = first.x.shape[:2]
        d_out = as_float_array("d_out", d_out, self.dtype)
        want = (T, D * P) if rec.unbatched else ((B, T, D * P) if self.batch_first else (T, B, D * P))
        check_shape("d_out", d_out, want, " (the shape of forward's output)")
        d_out = self._to_tbi(d_out, rec.unbatched)
        d_hn = self._state("d_h_n", d_hn, B, P, rec.unbatched)
        is_lstm = self.mode == "lstm"
        if is_lstm:
            d_cn = self._state("d_c_n", d_cn, B, H, rec.unbatched)
        fns = get_backend(self.backend)
        dh0 = np.zeros_like(d_hn)
        dc0 = np.zeros_like(d_cn) if is_lstm else None
        steps = [None] * len(rec.caches)
        d_layer_out = d_out                                              # (T, B, D*P)
        for layer in reversed(range(self.num_layers)):
            d_in = 0.0
            for d in range(D):
                k = layer * D + d
                g = d_layer_out[..., d * P:(d + 1) * P]
                if d:
                    g = reverse_padded(g, rec.lengths)
                if is_lstm:
                    res = fns.lstm_backward(rec.caches[k], np.ascontiguousarray(g), d_hn[k],
                                            d_cn[k], return_steps)
                    dx, dh0[k], dc0[k], *dparams = res[:8]
                else:
                    res = fns.rnn_backward(rec.caches[k], np.ascontiguousarray(g), d_hn[k],
                                           return_steps)
                    dx, dh0[k], *dparams = res[:6]
                if return_steps:
                    steps[k] = res[-1]
                self._accumulate(layer, d, dparams)
                d_in = d_in + (reverse_padded(dx, rec.lengths) if d else dx)
            if rec.masks[layer] is not None:
                d_in = d_in * rec.masks[layer]
            d_layer_out = d_in
        dx = self._from_tbi(d_layer_out, rec.unbatched)
        squeeze = (lambda s: s[:, 0, :]) if rec.unbatched else (lambda s: s)  # noqa: E731
        result = (dx, squeeze(dh0), squeeze(dc0) if is_lstm else None)
        return result + (steps,) if return_steps else result

    def _accumulate(self, layer, direction, dparams):
        sfx = "_reverse" if direction else ""
        for name, g in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), dparams):
            if g is not None:
                self.grads[f"{name}_l{layer}{sfx}"] += g

    @property
    def last_caches(self):
        """The caches of the last forward, index layer * num_directions + direction."""
        return None if self._last is None else list(self._last.caches)


class RNN(RNNBase):
    """Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float64", seed=None,
                 backend="numpy"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, 0, dtype, seed, backend)

    def forward(self, x, hx=None, lengths=None):
        """-> out, h_n."""
        out, h_n, _ = self._forward(x, hx, None, lengths)
        return out, h_n

    def backward(self, d_out, d_h_n=None, return_steps=False):
        """-> dx, dh0 (+ per-step gradients, one per layer-direction, with return_steps)."""
        res = self._backward(d_out, d_h_n, None, return_steps)
        return (res[0], res[1]) + ((res[3],) if return_steps else ())


class LSTM(RNNBase):
    """LSTM with torch's gate order i, f, g, o and optional projection (proj_size)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype, seed, backend)

    def forward(self, x, hx=None, lengths=None):
        """hx = (h0, c0) or None -> out, (h_n, c_n)."""
        h0, c0 = self._split_pair("hx", hx)
        out, h_n, c_n = self._forward(x, h0, c0, lengths)
        return out, (h_n, c_n)

    def backward(self, d_out, d_state=None, return_steps=False):
        """d_state = (d_h_n, d_c_n), either may be None -> dx, (dh0, dc0)."""
        d_hn, d_cn = self._split_pair("d_state", d_state)
        res = self._backward(d_out, d_hn, d_cn, return_steps)
        return (res[0], (res[1], res[2])) + ((res[3],) if return_steps else ())

    @staticmethod
    def _split_pair(name, pair):
        if pair is None:
            return None, None
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name}: expected a pair (h, c) for the LSTM, got {type(pair).__name__}")
        return pair


__all__ = ["RNNBase", "RNN", "LSTM", "CELLS", "BACKENDS"]
