"""Trace every step of a recurrent model: inputs, gates, states, outputs, and their gradients.

    tr = minirnn.trace(model, x, hx=None, lengths=None, d_out=None, loss=None)
    rec = tr.step(t, layer=0, direction=0)      # rec.x, rec.h, rec.i, ..., rec.dh, rec.di, ...
    rows = tr.to_frame()                         # tidy table: one row per (phase, layer, dir, t, var, b)
    bad = tr.first_nonfinite()                   # None, or where the first NaN/Inf appeared

Nothing is recomputed: `trace` calls the model's own forward (and backward with
return_steps=True) and reads the engine's caches, so every number IS the engine's number.
The only values derived here are sums and norms for display: the running weight-gradient
norms (from the per-step dgates and the cached inputs) and, for proj_size, dW_hr's steps
(dh_t^T r_t with r_t = o * tanh(c_t)), which the engine does not keep per step.

Names are the equations' and mean the same in every cell: d<gate> is the gradient of that
gate's pre-activation (di, df, dg, do for the LSTM; dr, dz, dn for the GRU; da for the Elman
RNN), and `dgates` all of them side by side (B, G*H), in the gate order. No name is d + a gate
letter the cell does not have (the engines' own record calls the stacked block dz, dg or da).

Time indices are the ORIGINAL positions t = 0..T-1 for both directions: the reverse
direction's cache runs over each sequence reversed within its own length, and is mapped back
with `reverse_padded` (its own inverse). Arrays keep the batch axis (B = 1 for unbatched input).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple, Optional

import numpy as np

from .._checks import reverse_padded


def forward_vars(spec):
    """What the forward shows per step: x, each gate, c (if the cell has one), h, out."""
    return ("x", *spec.gate_names, *(("c",) if spec.has_cell_state else ()), "h", "out")


def backward_vars(spec):
    """What the backward shows per step: dh, dc (if any), and d<gate> for every gate (a
    registered cell's record holds its states' gradients alone: d<state> for each)."""
    if spec.dgates_field is None:
        return tuple(f"d{n}" for n in spec.state_names)
    return ("dh", *(("dc",) if spec.has_cell_state else ()), *(f"d{g}" for g in spec.gate_names))



class NonFinite(NamedTuple):
    """Where the first NaN / Inf appeared (in the order the engine computed it)."""
    phase: str                  # "forward" | "backward"
    layer: int
    direction: int
    t: int                      # original time position of the value
    tensor: str                 # "x", "a", "i", ..., "h", "dh", "dc", "di", ..., "da"
    index: tuple                # (batch, unit)
    value: float
    step: int                   # the engine's loop index in that direction (its visit order)


class StepRecord(SimpleNamespace):
    """One step of one layer and direction; attributes are named as the equations.

    Every array is (B, n): x (B, I), a / i / f / g / o / c (B, H), h / out (B, P),
    dh (B, P), dc (B, H), d<gate> for each gate (B, H), e.g. di, df, dg, do, and dgates
    (B, G*H), those side by side in the gate order.
    dW_norms: name -> Frobenius norm of that weight's gradient accumulated over the steps
    the backward has visited up to and including this one.
    """

    def __repr__(self):
        arrays = [k for k, v in vars(self).items() if isinstance(v, np.ndarray)]
        return (f"StepRecord(t={self.t}, layer={self.layer}, "
                f"direction={self.direction}, vars={arrays})")


class Trace:
    """The per-step record of one forward (and optionally backward) pass; build with `trace`."""

    def __init__(self, model, out, h_n, c_n, caches, grad_steps, lengths):
        self.model, self.spec = model, model.spec
        self.mode, self.num_layers, self.num_directions = model.mode, model.num_layers, model.num_directions
        self.out, self.h_n, self.c_n = out, h_n, c_n        # what model.forward returned
        self.caches, self.grad_steps = caches, grad_steps
        self.lengths = lengths
        self.T, self.B = caches[0].x.shape[:2]
        self.has_backward = grad_steps is not None
        t = np.arange(self.T)[:, None]
        self.valid = np.ones((self.T, self.B), bool) if lengths is None else t < lengths[None, :]
        # position[d][s, b]: original time position of the engine's loop step s in direction d
        pos = np.broadcast_to(t, (self.T, self.B)).copy()
        self.position = [pos, reverse_padded(pos, lengths)]
        self._fwd = [self._forward_vars(k) for k in range(len(caches))]
        self._bwd = [self._backward_vars(k) for k in range(len(caches))] if self.has_backward else None
        self.dW_norms, self.weight_grads = ([], []) if self.has_backward else (None, None)
        if self.has_backward:
            for k in range(len(caches)):
                norms, final = self._running_weight_grads(k)
                self.dW_norms.append(norms)
                self.weight_grads.append(final)

    def _repr_html_(self):
        """What a notebook shows for a trace: its gates and states over time, as a picture."""
        from .pictures import trace_repr_html
        return trace_repr_html(self)

    # ---- reading the caches ------------------------------------------------------------
    def _orig(self, arr, d):
        """(T, B, ...) in the engine's loop order -> original time positions."""
        return arr if d == 0 else reverse_padded(arr, self.lengths)

    def _forward_vars(self, k):
        c, d, spec = self.caches[k], k % self.num_directions, self.spec
        v = {"x": c.x, "h": c.h, **spec.split_gates(getattr(c, spec.gates_field))}
        if spec.has_cell_state:
            v["c"] = c.c
        # the layer's output: h_t inside the sequence, zero past its end (as the engine's out)
        v["out"] = c.h if c.valid is None else np.where(c.valid[:, :, None], c.h, 0.0)
        return {name: self._orig(a, d) for name, a in v.items()}

    def _backward_vars(self, k):
        s, d, spec = self.grad_steps[k], k % self.num_directions, self.spec
        if spec.dgates_field is None:     # a registered cell's record: its states' gradients
            v = {f"d{n}": a for n, a in zip(spec.state_names, s.d_states)}
            return {name: self._orig(a, d) for name, a in v.items()}
        dgates = getattr(s, spec.dgates_field)                           # (T, B, G*H)
        # the engine's name for the stacked block (dz, dg, da) is some cell's gate letter:
        # the trace calls it dgates in every cell, and d<gate> names one gate only
        v = {"dh": s.dh, "dgates": dgates,
             **{f"d{g}": a for g, a in spec.split_gates(dgates).items()}}
        if spec.has_cell_state:
            v["dc"] = s.dc
        return {name: self._orig(a, d) for name, a in v.items()}

    def _running_weight_grads(self, k):
        """Norms of dW accumulated in the backward's visit order: positions T-1 -> 0 in the
        forward direction, 0 -> T-1 in the reverse one (it runs each sequence backwards, so
        its backward meets the sequence start first). Padded steps contribute nothing."""
        c, f, b = self.caches[k], self._fwd[k], self._bwd[k]
        d = k % self.num_directions
        if self.spec.dgates_field is None:
            return self._running_step_grads(k)
        dz = b["dgates"]                                                 # (T, B, G*H) input side
        dzh = self.spec.hidden_dgates(dz, self._orig(getattr(c, self.spec.gates_field), d))
        split_bias = dzh is not dz                    # GRU: b_ih and b_hh get different grads
        h_prev = self._orig(np.concatenate([c.h0[None], c.h[:-1]], axis=0), d)   # (T, B, P)
        acc = {"weight_ih": np.zeros_like(c.w_ih), "weight_hh": np.zeros_like(c.w_hh)}
        if c.has_bias:
            for name in (("bias_ih", "bias_hh") if split_bias else ("bias",)):
                acc[name] = np.zeros(c.w_ih.shape[0], dtype=c.x.dtype)
        if getattr(c, "w_hr", None) is not None:
            acc["weight_hr"] = np.zeros_like(c.w_hr)
            r = f["o"] * np.tanh(f["c"])                  # (T, B, H), see the module docstring
        norms = {name: np.zeros(self.T) for name in acc}
        order = range(self.T - 1, -1, -1) if d == 0 else range(self.T)
        with np.errstate(all="ignore"):
            for t in order:
                acc["weight_ih"] += dz[t].T @ f["x"][t]
                acc["weight_hh"] += dzh[t].T @ h_prev[t]
                if "bias" in acc:
                    acc["bias"] += dz[t].sum(axis=0)
                if "bias_ih" in acc:
                    acc["bias_ih"] += dz[t].sum(axis=0)
                    acc["bias_hh"] += dzh[t].sum(axis=0)
                if "weight_hr" in acc:
                    acc["weight_hr"] += b["dh"][t].T @ r[t]
                for name, g in acc.items():
                    norms[name][t] = np.linalg.norm(g)
        layer, sfx = k // self.num_directions, "_reverse" if d else ""
        final = {}
        for name, g in acc.items():
            if name == "bias":                        # one gradient for both biases
                final[f"bias_ih_l{layer}{sfx}"] = g
                final[f"bias_hh_l{layer}{sfx}"] = g.copy()
            else:
                final[f"{name}_l{layer}{sfx}"] = g
        return norms, final

    def _running_step_grads(self, k):
        """_running_weight_grads for a registered cell: each step's gradients from its own
        step_backward (per sequence, so that the reverse direction's loop steps land on
        their original positions), summed in the same visit order."""
        c, s = self.caches[k], self.grad_steps[k]
        layer, d = divmod(k, self.num_directions)
        by_pos = {}                                      # name -> (T, *shape) per position
        for step in range(self.T):
            d_state = tuple(a[step] for a in s.d_states)
            grads = self.spec.step_backward(c.steps[step], d_state, c.params, per_sample=True)[2]
            for name, g in grads.items():
                if g is None:
                    continue
                buf = by_pos.setdefault(name, np.zeros((self.T,) + g.shape[1:], g.dtype))
                for b in range(self.B):
                    buf[self.position[d][step, b]] += g[b]
        acc = {name: np.zeros_like(buf[0]) for name, buf in by_pos.items()}
        norms = {name: np.zeros(self.T) for name in acc}
        order = range(self.T - 1, -1, -1) if d == 0 else range(self.T)
        with np.errstate(all="ignore"):
            for t in order:
                for name in acc:
                    acc[name] += by_pos[name][t]
                    norms[name][t] = np.linalg.norm(acc[name])
        sfx = "_reverse" if d else ""
        return norms, {f"{name}_l{layer}{sfx}": g for name, g in acc.items()}

    # ---- public ---------------------------------------------------------------------------
    def _check_index(self, t, layer, direction):
        for name, value, n in (("t", t, self.T), ("layer", layer, self.num_layers),
                               ("direction", direction, self.num_directions)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
            if not 0 <= value < n:
                raise ValueError(f"{name}: expected 0 <= {name} < {n}, got {value}")
        return layer * self.num_directions + direction

    def step(self, t, layer=0, direction=0):
        """The record of time position t (original order) for one layer and direction."""
        k = self._check_index(t, layer, direction)
        rec = StepRecord(t=int(t), layer=layer, direction=direction, valid=self.valid[t].copy())
        for name, arr in self._fwd[k].items():
            setattr(rec, name, arr[t])
        if self.has_backward:
            for name, arr in self._bwd[k].items():
                setattr(rec, name, arr[t])
            rec.dW_norms = {name: float(n[t]) for name, n in self.dW_norms[k].items()}
        return rec

    def variables(self, phase="forward"):
        return forward_vars(self.spec) if phase == "forward" else backward_vars(self.spec)

    def series(self, name, layer=0, direction=0):
        """One variable over time, (T, B, n), in original time order."""
        k = self._check_index(0, layer, direction)
        if name in self._fwd[k]:
            return self._fwd[k][name]
        if self.has_backward and name in self._bwd[k]:
            return self._bwd[k][name]
        known = list(self._fwd[k]) + (list(self._bwd[k]) if self.has_backward else [])
        raise KeyError(f"name: expected one of {known}, got {name!r}")

    def to_frame(self, pandas=False):
        """Tidy table: one row per (phase, layer, direction, t, variable, batch) with the
        mean, min, max and L2 norm over the units. A list of dicts, or a pandas DataFrame."""
        rows = []
        phases = [("forward", self._fwd)] + ([("backward", self._bwd)] if self.has_backward else [])
        with np.errstate(all="ignore"):
            for phase, store in phases:
                for k, vars_ in enumerate(store):
                    layer, d = divmod(k, self.num_directions)
                    for name in self.variables(phase):
                        arr = vars_[name]                                  # (T, B, n)
                        stats = (arr.mean(-1), arr.min(-1), arr.max(-1), np.linalg.norm(arr, axis=-1))
                        for t in range(self.T):
                            for b in range(self.B):
                                rows.append(dict(phase=phase, layer=layer, direction=d, t=t,
                                                 variable=name, batch=b,
                                                 mean=float(stats[0][t, b]), min=float(stats[1][t, b]),
                                                 max=float(stats[2][t, b]), norm=float(stats[3][t, b])))
        if pandas:
            try:
                import pandas as pd
            except ImportError as e:
                raise ImportError("to_frame(pandas=True) needs pandas; call to_frame() for a list "
                                  "of dicts") from e
            return pd.DataFrame(rows)
        return rows

    def _loop_arrays(self, k, backward):
        """{name: (T, B, n)} in the engine's loop order and the order it computes them: the
        input, the gates, the states (forward); the states' and the gates' gradients."""
        spec = self.spec
        if spec.dgates_field is None:                     # a registered cell's records
            if backward:
                return {f"d{n}": a for n, a in zip(spec.state_names,
                                                   self.grad_steps[k].d_states)}
            c = self.caches[k]
            gates = {spec.gates_field: c.gates} if hasattr(c.steps[0], "gates") else {}
            return {"x": c.x, **gates, **dict(zip(spec.state_names[::-1], c.states[::-1]))}
        src = self.grad_steps[k] if backward else self.caches[k]
        names = (("dh", *(("dc",) if spec.has_cell_state else ()), spec.dgates_field)
                 if backward else
                 ("x", spec.gates_field, *(("c",) if spec.has_cell_state else ()), "h"))
        return {name: getattr(src, name) for name in names}

    def first_nonfinite(self) -> Optional[NonFinite]:
        """The first NaN/Inf in the order the engine computed it: forward layer by layer, each
        direction in its own loop order, inputs before gates before states; then the backward
        from the last layer down, each direction from its last loop step to its first."""
        D = self.num_directions
        spec = self.spec
        plan = [("forward", k, self._loop_arrays(k, False), False)
                for k in range(len(self.caches))]
        if self.has_backward:
            plan += [("backward", layer * D + d, self._loop_arrays(layer * D + d, True), True)
                     for layer in reversed(range(self.num_layers)) for d in range(D)]
        for phase, k, src, backwards in plan:
            best = None                                   # (visit rank, name rank, name, s)
            for rank, (name, arr) in enumerate(src.items()):  # (T, B, n), the loop order
                bad = ~np.isfinite(arr).reshape(self.T, -1).all(axis=1)   # (T,)
                if not bad.any():
                    continue
                s = int(np.flatnonzero(bad)[-1] if backwards else np.flatnonzero(bad)[0])
                key = (self.T - 1 - s if backwards else s, rank)
                if best is None or key < best[0]:
                    best = (key, name, s)
            if best is not None:
                _, name, s = best
                arr = src[name][s]                                        # (B, n)
                b, j = (int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                tensor, unit = name, j
                if name in (spec.gates_field, spec.dgates_field) and spec.gates > 1:
                    H = arr.shape[1] // spec.gates                        # name the gate
                    gate = spec.gate_names[j // H]
                    tensor, unit = (gate if name == spec.gates_field else f"d{gate}"), j % H
                layer, d = divmod(k, D)
                return NonFinite(phase, layer, d, int(self.position[d][s, b]), tensor,
                                 (b, unit), float(arr[b, j]), s)
        return None


def trace(model, x, hx=None, lengths=None, d_out=None, loss=None) -> Trace:
    """Run `model` (a minirnn.RNN or minirnn.LSTM) on x and keep every step.

    hx: h0 (RNN) or (h0, c0) (LSTM), as the model's forward takes it.
    d_out: dL/d(output) in the output's layout -> the backward runs too (model.backward with
    return_steps=True; it accumulates into model.grads like any backward).
    loss: "sum" (d_out = ones) or a callable out -> (loss_value, d_out), instead of d_out.
    """
    from ..nn.recurrent import RNNBase
    if not isinstance(model, RNNBase):
        raise TypeError(f"model: expected a minirnn.RNN, LSTM or GRU, got {type(model).__name__}")
    if d_out is not None and loss is not None:
        raise ValueError("d_out, loss: give one of them (or neither), got both")
    with np.errstate(all="ignore"):                    # a diverging model is traced, not a crash
        out, state = model.forward_state(x, model.state_tuple(hx), lengths)
    h_n, c_n = state[0], (state[1] if len(state) > 1 else None)
    if loss is not None:
        if isinstance(loss, str):
            if loss != "sum":
                raise ValueError(f"loss: expected 'sum' or a callable, got {loss!r}")
            d_out = np.ones_like(out)
        elif callable(loss):
            result = loss(out)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError("loss: expected the callable to return (loss_value, d_out), "
                                f"got {type(result).__name__}")
            d_out = result[1]
        else:
            raise TypeError(f"loss: expected 'sum' or a callable, got {type(loss).__name__}")
    caches = model.last_caches
    valid = caches[0].valid                                # (T, B) or None: every step valid
    lengths_arr = None if valid is None else valid.sum(axis=0)
    grad_steps = None
    if d_out is not None:
        with np.errstate(all="ignore"):
            res = model.backward_state(d_out, None, return_steps=True)
        grad_steps = res[-1]
    return Trace(model, out, h_n, c_n, caches, grad_steps, lengths_arr)


__all__ = ["trace", "Trace", "StepRecord", "NonFinite", "forward_vars", "backward_vars"]
