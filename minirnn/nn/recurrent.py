"""RNN, LSTM and GRU modules: torch's nn.RNN / nn.LSTM / nn.GRU API, NumPy arrays in and out.

Layers stack, directions run side by side; a layer-direction is one call of the functional
core (minirnn.functional), so every number here comes from those few readable lines. The
cell's registry entry (minirnn.cells) says what differs between cells: gate count, states,
extra parameters. Nothing here branches on the cell's name.

Two views of the same computation:
  * torch's: ``forward(x, hx) -> out, h_n`` (RNN, GRU) or ``out, (h_n, c_n)`` (LSTM);
  * uniform, for tools: ``forward_state(x, state) -> out, state_n`` and
    ``backward_state(d_out, d_state) -> dx, d_state0``, a state being the tuple named by
    ``spec.state_names``: (h,) or (h, c), for every cell alike.

Shapes: T = time, B = batch, I = input size, H = hidden size, P = proj_size or H,
L = num_layers, D = 2 if bidirectional else 1.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple, Optional

import numpy as np

from .._checks import (as_float_array, check_bool, check_int, check_lengths, check_probability,
                       check_shape, check_steps, valid_mask, warn_dropout_single_layer)
from .._blas import policy as thread_policy
from ..cells import BACKENDS, get_cell
from ..functional.backends import get_backend
from .module import Module
from .stack import Stack, down, stack_states, up
from .passes import jvp as passes_jvp


class ForwardRecord(NamedTuple):
    """What the last forward kept for backward: one cache per layer and direction."""
    caches: list                  # [L * D] the functional caches, index l * D + d
    masks: list                   # [L] dropout mask applied to layer l's input (or None)
    lengths: Optional[np.ndarray]  # (B,) or None
    unbatched: bool
    freed: bool = False           # a backward has used it (and was not asked to retain it)


def _describe(value):
    """'a tuple of 3' / 'ndarray of shape (2, 4)' / 'int': what came, for a message."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    shape = getattr(value, "shape", None)
    return type(value).__name__ + ("" if shape is None else f" of shape {tuple(shape)}")


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__(dtype, seed)
        spec = get_cell(mode)
        self.spec = spec                                    # the registry's entry for the cell
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.proj_size = check_int("proj_size", proj_size, low=0)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.dropout = check_probability("dropout", dropout)
        warn_dropout_single_layer(self.dropout, self.num_layers)
        if self.proj_size and not spec.supports_proj:
            raise ValueError(f"proj_size: only the LSTM supports a projection, got "
                             f"{proj_size} for {spec.name}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size={hidden_size}, "
                             f"got {proj_size}")
        get_backend(backend)                   # refuses an unknown backend now, not at forward
        self.mode, self.backend = spec.name, backend
        self.num_directions = 2 if self.bidirectional else 1
        self.gates = spec.gates
        self.out_size = self.proj_size or self.hidden_size            # P
        self._sizes = spec.state_sizes(self.hidden_size, self.proj_size)  # per state: P or H
        self._last: Optional[ForwardRecord] = None
        # (layer, direction) -> ((functional name, parameter name), ...): built once, because
        # formatting names on every call is a measurable part of a batch-1 step
        self._param_keys = {
            (layer, d): tuple((n, f"{n}_l{layer}{'_reverse' if d else ''}")
                              for n in spec.param_names)
            for layer in range(self.num_layers) for d in range(self.num_directions)}
        bound = 1.0 / np.sqrt(hidden_size)
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.out_size * self.num_directions
            shapes = spec.param_shapes(in_size, self.hidden_size, self.proj_size)
            for d in range(self.num_directions):
                for n, key in self._param_keys[layer, d]:
                    # bias=False drops the cell's biases (its parameters named bias_*)
                    if n in shapes and (self.bias or not n.startswith("bias")):
                        self.add_param(key, shapes[n], bound)

    def __repr__(self):
        extra = f", proj_size={self.proj_size}" if self.proj_size else ""
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, mode={self.mode!r}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}{extra}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")

    def _layer_params(self, layer, direction):
        params = self.params
        return {n: params.get(key) for n, key in self._param_keys[layer, direction]}

    # ---- what tools may ask (the derivative and study tools in minirnn.grad) --------------------
    @property
    def state_sizes(self):
        """Feature size of each state in spec.state_names order: h is P wide, c is H wide."""
        return self._sizes

    def param_keys(self, layer=0, direction=0):
        """((functional name, this model's parameter name), ...) of one layer-direction, in
        spec.param_names order: ("weight_ih", "weight_ih_l0"), ... (absent ones included)."""
        return self._param_keys[layer, direction]

    def initial_state(self, state, batch):
        """None (zeros) or a tuple per spec.state_names -> that tuple checked, each
        (num_layers * num_directions, batch, size) in this model's dtype."""
        return self._states("state", state, batch, False)

    # ---- layout (public: tools convert the user's layout to time-major and back) ----------------
    def to_time_major(self, arr, unbatched=False):
        """An array in this module's user layout -> (T, B, features) (a view where possible)."""
        if unbatched:
            return arr[:, None, :]
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    def from_time_major(self, arr, unbatched=False):
        """(T, B, features) -> this module's user layout (contiguous)."""
        if unbatched:
            return np.ascontiguousarray(arr[:, 0, :])
        return np.ascontiguousarray(arr.transpose(1, 0, 2) if self.batch_first else arr)

    def _state(self, name, value, B, size, unbatched):
        """h0 / c0 (or their gradients): None -> zeros; else check (L*D, B, size)."""
        LD = self.num_layers * self.num_directions
        if value is None:
            return np.zeros((LD, B, size), dtype=self.dtype)
        if isinstance(value, tuple):      # np.asarray would stack it into one array
            raise TypeError(f"{name}: expected one array of shape (num_layers*num_directions, "
                            f"[batch,] size), got a tuple of {len(value)}"
                            + (" (only the LSTM's hx is a pair (h0, c0))"
                               if len(self.spec.state_names) == 1 else ""))
        arr = as_float_array(name, value, self.dtype)
        if unbatched:
            check_shape(name, arr, (LD, size), " (num_layers*num_directions, size) for unbatched input")
            return arr[:, None, :]
        check_shape(name, arr, (LD, B, size), " (num_layers*num_directions, batch, size)")
        return arr

    def _states(self, what, values, B, unbatched):
        """what: "state" (h0, c0) or "d_state" (d_h_n, d_c_n). A tuple per state name
        (entries may be None), or for a one-state cell its array alone, as forward takes it
        -> tuple of (L*D, B, size), checked. A missing state is zeros; a missing d_state
        entry stays None (the backward knows it as zero, and skips a copy)."""
        names = self.spec.state_names
        if len(names) == 1 and values is not None and not isinstance(values, (tuple, list)):
            values = (values,)                                 # torch's form: h alone
        if values is None:
            if what == "d_state":
                return (None,) * len(names)
            LD = self.num_layers * self.num_directions
            return tuple(np.zeros((LD, B, size), self.dtype) for size in self._sizes)
        if not isinstance(values, (tuple, list)) or len(values) != len(names):
            raise TypeError(f"{what}: expected a tuple of {len(names)} array(s) {names} for "
                            f"{self.mode}, got {_describe(values)}")
        if what == "state":
            return tuple(self._state(f"{n}0", v, B, size, unbatched)
                         for n, v, size in zip(names, values, self._sizes))
        return tuple(None if v is None else self._state(f"d_{n}_n", v, B, size, unbatched)
                     for n, v, size in zip(names, values, self._sizes))

    # ---- the uniform state API ---------------------------------------------------------------
    def stack(self, lengths=None, masks=None):
        """The walk of this model's stack (minirnn.nn.stack) for a forward with `lengths`."""
        return Stack(self.num_layers, self.num_directions, self.out_size, lengths,
                     tuple(masks) if masks is not None else (None,) * self.num_layers)

    def _dropout_masks(self, T, B):
        """Per layer, the mask on its input: None for layer 0 and when dropout is off."""
        masks = [None] * self.num_layers
        if self.training and self.dropout > 0:
            keep, width = 1.0 - self.dropout, self.num_directions * self.out_size
            for layer in range(1, self.num_layers):
                mask = (self.rng.random((T, B, width)) < keep).astype(self.dtype)
                masks[layer] = mask / keep if keep > 0 else mask
        return masks

    def forward_state(self, x, state=None, lengths=None):
        """x in the user layout, state a tuple per spec.state_names (or None: zeros)
        -> out, state_n (tuple, each (L*D, B, size); (L*D, size) for unbatched input)."""
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected shape (T, B, I), (B, T, I) with batch_first, or (T, I) "
                             f"unbatched, got {x.shape}")
        unbatched = x.ndim == 2
        given = x.shape
        x = self.to_time_major(x, unbatched)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x: expected feature size input_size={self.input_size}, got {I} "
                             f"(x has shape {given}, features last)")
        check_steps("x", T)
        # B = 0 is valid, as in torch: out (T, 0, D*P), h_n (L*D, 0, P), zero gradients
        state0 = self._states("state", state, B, unbatched)
        lengths = None if lengths is None else check_lengths(lengths, B, T)
        valid = None if lengths is None else valid_mask(lengths, T)
        stack = self.stack(lengths, self._dropout_masks(T, B))
        caches, finals = [None] * len(stack.masks) * self.num_directions, []

        def run(layer, d, k, seqs):
            out, st, caches[k] = self.spec.forward(seqs[0], tuple(s[k] for s in state0),
                                                   self._layer_params(layer, d), valid,
                                                   backend=self.backend)
            finals.append(st)
            return (out,)

        with thread_policy(x, self._layer_params(0, 0).get("weight_hh")):  # minirnn/_blas.py
            (out,) = up(stack, (x,), run)
        self._last = ForwardRecord(caches, list(stack.masks), lengths, unbatched)
        return self.from_time_major(out, unbatched), stack_states(finals, unbatched)

    def backward_state(self, d_out, d_state=None, return_steps=False, input_grad=True,
                       retain_graph=False):
        """dL/d(out) and dL/d(state_n) (tuple, entries may be None) -> dx, d_state0 (tuple),
        and with return_steps the per-step gradient records, one per layer-direction.

        input_grad=False: the input needs no gradient (one-hot characters, say, as torch's
        x.requires_grad=False), so dx is None and its product is never computed.
        retain_graph=True: keep the forward's record for another backward (as torch's);
        without it a second backward of the same forward is refused, since it would add the
        gradients to model.grads a second time."""
        rec = self._record()
        d_out, d_final = self._upstream(rec, d_out, d_state)
        LD = len(rec.caches)
        d_first, steps = [None] * LD, [None] * LD          # per layer-direction

        def run(layer, d, k, gs, need_dx):
            dx, d_first[k], grads, steps[k] = self.spec.backward(
                rec.caches[k], gs[0], tuple(None if s is None else s[k] for s in d_final),
                return_steps, need_dx, backend=self.backend)
            self._accumulate(layer, d, grads)
            return (dx,)

        with thread_policy(d_out, self._layer_params(0, 0).get("weight_hh")):
            d_in = down(self.stack(rec.lengths, rec.masks), (d_out,), run, input_grad)
        if not check_bool("retain_graph", retain_graph):
            self._last = rec._replace(freed=True)
        dx = None if d_in is None else self.from_time_major(d_in[0], rec.unbatched)
        result = (dx, stack_states(d_first, rec.unbatched))
        return result + (steps,) if return_steps else result

    def _record(self):
        if self._last is None:
            raise RuntimeError("backward() called before forward(): run forward first, then "
                               "backward with the gradient of the loss w.r.t. its outputs")
        if self._last.freed:
            raise RuntimeError("backward() a second time on the same forward: its gradients "
                               "are in model.grads already and would be added again. Run "
                               "forward again, or pass retain_graph=True to the first "
                               "backward to keep its record (as torch's backward)")
        return self._last

    def _upstream(self, rec, d_out, d_state):
        """Check dL/d(out) (forward's output shape) and dL/d(state_n) against the record
        -> d_out time-major (T, B, D*P), d_state tuple of (L*D, B, size) or None."""
        P, D = self.out_size, self.num_directions
        T, B = rec.caches[0].x.shape[:2]
        d_out = as_float_array("d_out", d_out, self.dtype)
        want = (T, D * P) if rec.unbatched else ((B, T, D * P) if self.batch_first else (T, B, D * P))
        check_shape("d_out", d_out, want, " (the shape of forward's output)")
        return (self.to_time_major(d_out, rec.unbatched),
                self._states("d_state", d_state, B, rec.unbatched))

    def _accumulate(self, layer, direction, grads):
        for n, key in self._param_keys[layer, direction]:
            g = grads[n]
            if g is not None:
                self.grads[key] += g

    # ---- torch's API: a single state is returned bare, the LSTM's pair as a pair ---------------
    def state_tuple(self, hx, name="hx"):
        """torch's form (h, or (h, c) for the LSTM; None) -> the uniform tuple (or None)."""
        if hx is None:
            return None
        if len(self.spec.state_names) == 1:
            return (hx,)
        if not isinstance(hx, (tuple, list)) or len(hx) != len(self.spec.state_names):
            raise TypeError(f"{name}: expected a pair (h, c) for the {type(self).__name__}, "
                            f"got {_describe(hx)}")
        return tuple(hx)

    def state_value(self, state):
        """The uniform tuple -> torch's form: h alone, or the pair (h, c)."""
        return state[0] if len(state) == 1 else tuple(state)

    def forward(self, x, hx=None, lengths=None):
        """hx: h0 (RNN, GRU) or (h0, c0) (LSTM), or None -> out, h_n or (h_n, c_n)."""
        out, state = self.forward_state(x, self.state_tuple(hx), lengths)
        return out, self.state_value(state)

    def backward(self, d_out, d_state=None, return_steps=False, input_grad=True,
                 retain_graph=False):
        """d_state: d_h_n (RNN, GRU) or (d_h_n, d_c_n) (LSTM; either may be None)
        -> dx (None with input_grad=False), dh0 or (dh0, dc0) (+ per-step gradients, one
        per layer-direction). retain_graph: as backward_state."""
        res = self.backward_state(d_out, self.state_tuple(d_state, "d_state"), return_steps,
                                  input_grad, retain_graph)
        return (res[0], self.state_value(res[1])) + res[2:]

    def jvp(self, x, state=None, tangents=None, lengths=None):
        """Forward mode: out, state_n and their tangents along `tangents` ({"x", "h0"[, "c0"],
        parameter names: array}, missing = zero) -> minirnn.nn.passes.JVPResult. The record
        the next backward() uses is left as it was."""
        return passes_jvp(self, x, state, tangents, lengths)

    # ---- the record of the last forward ----------------------------------------------------------
    @property
    def last_forward(self) -> Optional[ForwardRecord]:
        """The record the next backward() will use (caches, dropout masks, lengths), or None."""
        return self._last

    @property
    def last_caches(self):
        """The caches of the last forward, index layer * num_directions + direction."""
        return None if self._last is None else list(self._last.caches)

    @contextlib.contextmanager
    def preserve_record(self):
        """Run probe forwards/backwards (gradcheck, gradient flow) without disturbing the
        record that the caller's next backward() needs."""
        saved = self._last
        try:
            yield self
        finally:
            self._last = saved


class RNN(RNNBase):
    """Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float64", seed=None,
                 backend="numpy"):
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = str(nonlinearity)
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, 0, dtype, seed, backend)


class LSTM(RNNBase):
    """LSTM with torch's gate order i, f, g, o and optional projection (proj_size)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float64", seed=None,
                 backend="numpy"):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype, seed, backend)


class GRU(RNNBase):
    """GRU with torch's gate order r, z, n (r applied after the hidden product)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float64", seed=None, backend="numpy"):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype, seed, backend)


_MODULES = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}     # a built-in cell's torch-named class


def make_recurrent(cell, input_size, hidden_size, **kwargs):
    """The multi-layer module for `cell` with torch's keywords: minirnn.RNN / LSTM / GRU for
    the built-in cells, an RNNBase for a registered cell of your own."""
    spec = get_cell(cell)
    cls = _MODULES.get(spec.module)
    if cls is None:
        return RNNBase(spec, input_size, hidden_size, **kwargs)
    return cls(input_size, hidden_size, **spec.module_kwargs(), **kwargs)


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "ForwardRecord", "BACKENDS", "make_recurrent"]
