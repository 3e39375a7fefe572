"""Real-time recurrent learning (Williams & Zipser 1989): the exact gradient, computed forward.

    res = minirnn.grad.rtrl_gradient(model, x, target)   # loss: squared error per step
    res.grads["weight_hh_l0"]           # equals BPTT's (model.backward) to round-off
    run = minirnn.grad.rtrl_online(model, x, target, lr=0.01)   # update after every step

The state s_t = (h_t[, c_t]) = F(s_{t-1}, x_t; θ) carries its influence matrix
M_t = ds_t/dθ (B, S, |θ|): how every state unit depends on every parameter. Per step
    M_t   = ∂F/∂s_{t-1} · M_{t-1} + ∂F/∂θ           M_0 = 0 (s_0 does not depend on θ)
    g    += dL_t/ds_t · M_t                         summed over the batch
with the step's partial Jacobians from the cell's reference (`step_jacobians` in
minirnn/cells/<family>.py, through CellSpec.step_jacobians). Summed over every step,
g = dL/dθ for L = Σ_t L_t: BPTT's gradient, computed using only the past, so the parameters
may also change after every step (the online form, RTRLOnline): M then mixes the Jacobians of
the parameters current at each past step, which is what RTRL is.

Losses per step are on the outputs out_t (h_t; zero past a sequence's end, which adds no
gradient): "squared_error", L_t = ½‖out_t - y_t‖²; "projection", L_t = Σ y_t · out_t (a
fixed random projection: a linear loss); or a callable (out_t, y_t) -> (L_t, dL_t/dout_t)
given the valid rows of step t.

Cost: memory B·S·|θ| numbers for M (|θ| ≈ G·H·(I + H): O(H^3) per sequence; 34 MB for a
float64 LSTM with I = H = 64); time O(S^2·|θ|) = O(H^4) a step for the product J_s M. H ≤ 64 is
what it is for; an influence matrix above MEMORY_LIMIT is refused (the error says what it
would need). The 1 GiB default admits, at B = 1, float64, I = H: LSTM H ≤ 202, GRU H ≤ 281,
Elman H ≤ 406 (where J_s M alone is 75–110 GFLOP a step). `backend="numba"` runs the fused
kernel (minirnn/kernels/_rtrl.py): the product J_s M through BLAS, the rest of the step in
one pass over M, the dense ∂F/∂θ never formed.

Single layer, one direction: a second layer's influence would need the first's (M of the
input), and a reverse direction is not online at all; both are refused.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import (as_float_array, check_int, check_lengths, check_shape, check_steps,
                       valid_mask)
from ..functional.backends import get_backend

MEMORY_LIMIT = 1 << 30          # bytes: the largest influence matrix M that RTRL will allocate
LOSSES = ("squared_error", "projection")


class RTRLResult(NamedTuple):
    grads: dict                   # model.grads key -> dL/dθ of the summed loss (model untouched)
    loss: float                   # Σ_t L_t over the valid steps
    out: np.ndarray               # the outputs, in the model's layout (as its forward)
    state: tuple                  # the final state, a tuple per spec.state_names, each (B, size)


class RTRLOnlineResult(NamedTuple):
    losses: np.ndarray            # (T,) L_t, each before its own update
    out: np.ndarray               # the outputs, in the model's layout
    state: tuple                  # the final state


def _loss(kind, out_t, y_t):
    """-> L_t (float), dL_t/dout_t (same shape as out_t)."""
    if callable(kind):
        res = kind(out_t, y_t)
        grad = np.asarray(res[1], dtype=out_t.dtype) if isinstance(res, (tuple, list)) and \
            len(res) == 2 and np.ndim(res[0]) == 0 and res[1] is not None else None
        if grad is None or grad.shape != out_t.shape:
            got = (f"dL_t/dout_t of shape {grad.shape}" if grad is not None else
                   type(res).__name__ if not isinstance(res, (tuple, list)) else
                   f"a {type(res).__name__} of {len(res)}")
            raise ValueError(f"loss: the callable {getattr(kind, '__name__', kind)!r} must "
                             f"return (L_t, dL_t/dout_t) with dL_t/dout_t of shape "
                             f"{out_t.shape} (the valid rows of step t's output), got {got}")
        return float(res[0]), grad
    if kind == "squared_error":
        diff = out_t - y_t
        return 0.5 * float(np.sum(diff * diff)), diff
    return float(np.sum(y_t * out_t)), y_t


def check_memory(need, memory_limit, what, detail, advice):
    """need (bytes) within memory_limit (None: MEMORY_LIMIT), else a ValueError that says what
    would need it, how the number is made up, and what to do."""
    limit = MEMORY_LIMIT if memory_limit is None else check_int("memory_limit", memory_limit)
    if need > limit:
        raise ValueError(f"model: {what} would need {need} bytes ({need / 2**20:.1f} MiB: "
                         f"{detail}), above memory_limit={limit} bytes "
                         f"({limit / 2**20:.1f} MiB); {advice}")


class Layout(NamedTuple):
    """One layer's parameters as a flat vector, blocks side by side in the registry's
    param_names order (those present), and its state's sizes."""
    keys: dict                    # functional name -> the model's key ("weight_hh" -> "..._l0")
    shapes: dict                  # functional name -> the parameter's shape
    offsets: dict                 # functional name -> where its block starts in the vector
    N: int                        # the vector's length
    sizes: tuple                  # per spec.state_names: P (h) or H (c)
    P: int                        # the width of h (proj_size or hidden_size)


def layer_layout(model) -> Layout:
    """The Layout of a single-layer module or cell."""
    spec = model.spec
    keys = dict(model.param_keys()) if hasattr(model, "param_keys") else \
        {n: n for n in spec.param_names}
    keys = {n: keys[n] for n in spec.param_names if keys[n] in model.params}
    shapes = {n: model.params[k].shape for n, k in keys.items()}
    offsets, N = {}, 0
    for n, shape in shapes.items():
        offsets[n] = N
        N += int(np.prod(shape))
    H = model.hidden_size
    P = getattr(model, "proj_size", 0) or H
    return Layout(keys, shapes, offsets, N, tuple(P if n == "h" else H for n in spec.state_names),
                  P)


class _Influence:
    """The state and its influence matrix for one single-layer, one-direction module.

    Parameter blocks are flattened side by side in the registry's param_names order (those
    present), so M is (B, S, N) and the gradient a flat (N,) vector; `unflatten` maps it back
    onto the module's own keys.
    """

    def __init__(self, model, batch, state, backend, memory_limit):
        self.spec, self.dtype = model.spec, model.dtype
        self.params = model.params
        self.keys, self.shapes, self.offsets, N, self.sizes, self.P = layer_layout(model)
        self.S, self.N, self.B = sum(self.sizes), N, batch
        check_memory(batch * self.S * N * self.dtype.itemsize, memory_limit,
                     "RTRL's influence matrix ds/dθ",
                     f"batch {batch} × state {self.S} × {N} parameters × "
                     f"{self.dtype.itemsize} bytes",
                     "it grows as H^3 per sequence, so lower hidden_size or the batch, or pass "
                     "a larger memory_limit= if the memory is there (the NumPy reference holds "
                     "about four such arrays at once, the kernel two)")
        self.backend = get_backend(model.backend if backend is None else backend).name
        self.state = tuple(np.array(s, dtype=self.dtype) for s in state)
        self.M = np.zeros((batch, self.S, N), dtype=self.dtype)
        if self.backend == "numba":
            from ..kernels import _rtrl
            self.rtrl_step = getattr(self.spec.twin("numba"), "rtrl_step", None)
            if self.rtrl_step is None:
                raise ValueError(f"backend: cell {self.spec.name!r} has no fused RTRL step on "
                                 f"'numba'; use backend='numpy' (RTRL from its step Jacobians)")
            self.kernel, self._spare = _rtrl, np.empty_like(self.M)   # M_t is written there
            self._offsets = np.array([self.offsets.get(n, -1) for n in _rtrl.BLOCKS],
                                     dtype=np.int64)

    def layer_params(self):
        return {n: self.params[k] for n, k in self.keys.items()}

    def step(self, x_t, valid_t, loss, y_t):
        """Advance state and influence one step with the current parameters.
        x_t (B, I), valid_t (B,) bool or None, y_t (B, P) -> out_t (B, P), L_t, dL_t/dθ (N,)."""
        params, spec, B, S = self.layer_params(), self.spec, self.B, self.S
        keep = np.ones(B, dtype=bool) if valid_t is None else valid_t
        if self.backend == "numba":
            new, J_state, Zi, Zh, r = self.rtrl_step(x_t, self.state, params,
                                                     spec.nonlinearity)
        else:
            _, new, _ = spec.forward(x_t[None], self.state, params)
            J_state, J = spec.step_jacobians(x_t, self.state, params)
        h_prev = self.state[0]
        # finished sequences keep their state (and below their influence); out_t is 0 there
        self.state = tuple(np.where(keep[:, None], s_new, s) for s_new, s in zip(new, self.state))
        out_t = np.where(keep[:, None], self.state[0], 0.0)
        value, d_out = _loss(loss, out_t[keep], y_t[keep])
        dL_ds = np.zeros((B, S), dtype=self.dtype)
        dL_ds[keep, :self.P] = d_out                       # c_t is not an output: no loss on it
        if self.backend == "numba":
            g = self.kernel.influence_update(self.M, self._spare, J_state, Zi, Zh, x_t, h_prev,
                                             r, keep, self._offsets, dL_ds)
            self.M, self._spare = self._spare, self.M
            return out_t, value, g
        dF_dtheta = np.concatenate([J[n].reshape(B, S, int(np.prod(self.shapes[n])))
                                    for n in self.keys], axis=-1)
        M = J_state @ self.M + dF_dtheta                   # M_t = ∂F/∂s M_{t-1} + ∂F/∂θ
        self.M = np.where(keep[:, None, None], M, self.M)
        return out_t, value, np.einsum("bs,bsn->n", dL_ds, self.M)

    def unflatten(self, flat):
        """Flat (N,) -> {model key: array of the parameter's shape}."""
        return {self.keys[n]: flat[o:o + int(np.prod(self.shapes[n]))].reshape(self.shapes[n])
                .copy() for n, o in self.offsets.items()}

    def influence(self):
        """{model key: M's block for that parameter, (B, S, *shape)}: ds_t/dθ (a copy)."""
        B, S = self.B, self.S
        return {self.keys[n]: self.M[:, :, o:o + int(np.prod(self.shapes[n]))]
                .reshape((B, S) + self.shapes[n]).copy() for n, o in self.offsets.items()}

    def update(self, flat, lr):
        """θ <- θ - lr · g, in place (the arrays the model and its callers hold)."""
        for n, o in self.offsets.items():
            p = self.params[self.keys[n]]
            p -= lr * flat[o:o + p.size].reshape(p.shape)


# ---- the public API ----------------------------------------------------------------------------

def _check_loss(loss):
    if not callable(loss) and loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES} or a callable (out_t, y_t) -> "
                         f"(L_t, dL_t/dout_t), got {loss!r}")
    return loss


def _check_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
            or not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr: expected a finite number >= 0, got {lr!r}")
    return float(lr)


def _check_model(model):
    """A minirnn recurrent module or cell, single-layer and one-directional."""
    if getattr(model, "spec", None) is None or not hasattr(model, "params"):
        raise TypeError(f"model: expected a minirnn recurrent module or cell (RNN, LSTM, "
                        f"GRU, RNNCell, ...), got {type(model).__name__}")
    layers, bidir = getattr(model, "num_layers", 1), getattr(model, "bidirectional", False)
    if layers != 1 or bidir:
        raise ValueError(f"model: RTRL here is single-layer and one-directional, got "
                         f"num_layers={layers}, bidirectional={bidir}; build it with "
                         f"num_layers=1, bidirectional=False")
    return model


def _check_step(model, B, P, x_t, target_t, valid):
    """One online step's inputs: x_t (B, I), target_t (B, P), valid (B,) bool or None
    -> the three as arrays in the model's dtype (valid as bool)."""
    x_t = as_float_array("x_t", x_t, model.dtype)
    check_shape("x_t", x_t, (B, model.input_size))
    target_t = as_float_array("target_t", target_t, model.dtype)
    check_shape("target_t", target_t, (B, P))
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        check_shape("valid", valid, (B,))
    return x_t, target_t, valid


def _out_size(model):
    return getattr(model, "proj_size", 0) or model.hidden_size


def _check_state(model, state, B, unbatched):
    """None (zeros), or the state as the model's forward takes it: a tuple per
    spec.state_names (a one-state cell's array alone too), each in the module's layout
    (1, B, size) ((1, size) unbatched) or one layer's (B, size) ((size,) unbatched), the
    layout of a one-step cell -> a tuple of (B, size) arrays."""
    names = model.spec.state_names
    sizes = [_out_size(model) if n == "h" else model.hidden_size for n in names]
    if state is None:
        return tuple(np.zeros((B, n), dtype=model.dtype) for n in sizes)
    if len(names) == 1 and not isinstance(state, (tuple, list)):
        state = (state,)                                   # torch's form: h alone
    if not isinstance(state, (tuple, list)) or len(state) != len(names):
        raise TypeError(f"state: expected a tuple of {len(names)} array(s) {names}, each "
                        f"(1, batch, size) as the module's forward takes it or (batch, size), "
                        f"got {type(state).__name__}")
    out = []
    for k, (s, n) in enumerate(zip(state, sizes)):
        s = as_float_array(f"state[{k}]", s, model.dtype)
        one = (n,) if unbatched else (B, n)
        if s.ndim == len(one) + 1 and hasattr(model, "num_layers"):     # the module's layout
            check_shape(f"state[{k}]", s, (1,) + one, " (the module's layout: one layer)")
            s = s[0]
        check_shape(f"state[{k}]", s, one, " (one layer's state)")
        out.append(s[None] if unbatched else s)
    return tuple(out)


def _prepare(model, x, target, state, lengths):
    """-> x (T, B, I), target (T, B, P), state tuple of (B, size), valid (T, B) or None,
    unbatched; each checked against the model."""
    _check_model(model)
    x = as_float_array("x", x, model.dtype)
    if x.ndim not in (2, 3) or x.shape[-1] != model.input_size:
        raise ValueError(f"x: expected (T, B, {model.input_size}) in the model's layout, or "
                         f"(T, {model.input_size}) unbatched, got shape {x.shape}")
    unbatched = x.ndim == 2
    to_tm = getattr(model, "to_time_major", None)        # a cell has no layout: time-major
    layout = (lambda a: to_tm(a, unbatched)) if to_tm is not None else \
        (lambda a: a[:, None, :] if unbatched else a)                  # noqa: E731
    target = as_float_array("target", target, model.dtype)
    check_shape("target", target, x.shape[:-1] + (_out_size(model),),
                " (the shape of the model's output)")
    x, target = layout(x), layout(target)
    T, B = x.shape[:2]
    check_steps("x", T)
    state = _check_state(model, state, B, unbatched)
    valid = None if lengths is None else valid_mask(check_lengths(lengths, B, T), T)
    return x, target, state, valid, unbatched


def _finish(model, out, state, unbatched):
    back = getattr(model, "from_time_major", None)
    out = back(out, unbatched) if back is not None else (out[:, 0] if unbatched else out)
    return out, tuple(s[0] if unbatched else s for s in state)


def _run(model, x, target, loss, state, lengths, backend, memory_limit, lr):
    """The time loop of rtrl_gradient (lr None: no update) and rtrl_online
    -> flat gradient Σ_t dL_t/dθ, losses (T,), outputs and final state in the user's layout,
    and the _Influence (for its unflatten)."""
    _check_loss(loss)
    x, target, state, valid, unbatched = _prepare(model, x, target, state, lengths)
    inf = _Influence(model, x.shape[1], state, backend, memory_limit)
    g, losses, out = time_loop(lambda x_t, valid_t, y_t: inf.step(x_t, valid_t, loss, y_t),
                               inf.update, x, target, valid, lr, inf.N)
    out, state = _finish(model, out, inf.state, unbatched)
    return g, losses, out, state, inf


def time_loop(step, update, x, target, valid, lr, N):
    """The online loop: step(x_t, valid_t or None, y_t) -> out_t, L_t, dL_t/dθ (N,) at every
    step, then update(dL_t/dθ, lr) unless lr is None -> Σ_t dL_t/dθ, losses (T,), outputs
    (T, B, P) stacked."""
    T = x.shape[0]
    g, losses, out = np.zeros(N, dtype=x.dtype), np.empty(T), []
    for t in range(T):
        out_t, losses[t], g_t = step(x[t], None if valid is None else valid[t], target[t])
        g += g_t
        if lr is not None:
            update(g_t, lr)
        out.append(out_t)
    return g, losses, np.stack(out)


def rtrl_gradient(model, x, target, loss="squared_error", state=None, lengths=None,
                  backend=None, memory_limit=None) -> RTRLResult:
    """The exact gradient of L = Σ_t L_t(out_t, target_t) by RTRL, forward in time.

    model: a single-layer, one-direction RNN/LSTM/GRU (or a cell: x then time-major). x and
    target in the model's layout ((T, B, .), batch_first, or unbatched (T, .)); target has
    the output's shape. loss: "squared_error", "projection" or a callable (out_t, y_t) ->
    (L_t, dL_t/dout_t) (see the module docstring). state: a tuple per spec.state_names, each
    (B, size) (None: zeros). lengths: as the model's forward (a finished sequence's state and
    influence are carried). backend: "numpy" (the reference) or "numba" (the kernel); None:
    the model's. memory_limit: bytes for the influence matrix (None: MEMORY_LIMIT).
    The model's parameters and grads are left as they are.
    """
    g, losses, out, state, inf = _run(model, x, target, loss, state, lengths, backend,
                                      memory_limit, None)
    return RTRLResult(inf.unflatten(g), float(losses.sum()), out, state)


class RTRLOnline:
    """Online RTRL: after every step θ <- θ - lr · dL_t/dθ, from the influence carried so far.

        trainer = RTRLOnline(model, lr=0.01, batch_size=4)
        for x_t, y_t in stream:                 # x_t (B, I), y_t (B, P)
            L_t = trainer.step(x_t, y_t)

    The influence matrix is not reset when θ changes: M_t chains each past step's Jacobians
    at the parameters current at that step, so dL_t/ds_t · M_t is ∂L_t/∂δ for one
    perturbation δ added to the parameters of every past step -- online RTRL's gradient (the
    gradient of the whole sequence at fixed θ only as lr -> 0). state: a tuple per
    spec.state_names, each (batch_size, size); loss, backend, memory_limit as rtrl_gradient's.
    """

    def __init__(self, model, lr, loss="squared_error", batch_size=1, state=None,
                 backend=None, memory_limit=None):
        self.lr, self.loss = _check_lr(lr), _check_loss(loss)
        B = check_int("batch_size", batch_size)
        state = _check_state(_check_model(model), state, B, False)
        self.model, self._inf = model, _Influence(model, B, state, backend, memory_limit)

    @property
    def state(self):
        return self._inf.state

    def influence(self):
        """{model key: ds_t/dθ block (B, S, *shape)}: the influence carried now (a copy)."""
        return self._inf.influence()

    def step(self, x_t, target_t, valid=None):
        """x_t (B, I), target_t (B, P), valid (B,) bool or None (False: that sequence has
        ended, its state and influence are carried) -> L_t, before the update."""
        inf = self._inf
        x_t, target_t, valid = _check_step(self.model, inf.B, inf.P, x_t, target_t, valid)
        _, value, g = inf.step(x_t, valid, self.loss, target_t)
        inf.update(g, self.lr)
        return value


def rtrl_online(model, x, target, lr, loss="squared_error", state=None, lengths=None,
                backend=None, memory_limit=None) -> RTRLOnlineResult:
    """Online RTRL over a sequence: the parameters (model.params, in place) change after every
    step, each update using only the past. Arguments as rtrl_gradient's; lr: the SGD step."""
    _, losses, out, state, _ = _run(model, x, target, loss, state, lengths, backend,
                                    memory_limit, _check_lr(lr))
    return RTRLOnlineResult(losses, out, state)


__all__ = ["rtrl_gradient", "rtrl_online", "RTRLOnline", "RTRLResult", "RTRLOnlineResult",
           "MEMORY_LIMIT", "LOSSES"]
