"""The public cell contract: what a cell must give minirnn, and what it may.

    class MyCell(minirnn.CellSpec):
        name = "mycell"
        gate_names = ("a",)                   # the G blocks of W_ih's rows, in order
        state_names = ("h",)                  # what a step carries; "h" (the output) first
        def step_forward(self, x_t, state, params):  ...   -> state_t, cache_t
        def step_backward(self, cache_t, d_state, params): ...  -> dx_t, d_state_prev, grads
    minirnn.register_cell(MyCell())
    model = minirnn.nn.make_recurrent("mycell", 8, 16, num_layers=2, bidirectional=True)

MUST provide (one step, B sequences at once; state is a tuple per state_names, each (B, size);
params a dict of one layer's arrays by param_names, an absent optional one as None):
    step_forward(x_t (B, I), state, params)         -> state_t (tuple), cache_t (anything)
    step_backward(cache_t, d_state_t, params)       -> dx_t (B, I), d_state_{t-1} (tuple),
                                                       {name: dL/dparam of this step}
    names: name, gate_names, state_names, param_names (defaults: weight_ih, weight_hh, bias_ih,
    bias_hh), and param_shapes() (default: torch's G*H-row layout).
MAY provide (each tool derives what it exactly can, and refuses, naming the part, what not):
    step_jvp(cache_t, x_dot_t, state_dot, params, params_dot) -> state_t_dot, tcache_t
        forward mode. Without it the tangent is J_x ẋ + J_s ṡ + Σ J_θ θ̇ with the step
        Jacobians derived from step_backward: exact, but the dot-product test between forward
        and reverse mode then compares a thing with itself, so gradcheck refuses it.
    step_backward_jvp(cache_t, tcache_t, d_state_t, d_state_t_dot, params, params_dot)
        -> (dx_t, d_state_{t-1}, grads), the same triple's tangents: the R-operator
        (Hessian-vector products). Needs step_jvp; never derived (second derivatives).
    step_jacobians(x_t, state, params) -> J_state (B, S, S), {name: (B, S, *shape)}
        dense one-step Jacobians on the flat state s = the state_names side by side (RTRL,
        UORO, Lyapunov spectra). Default: S vector-Jacobian products with unit cotangents.
    per-sample gradients: step_backward(..., per_sample=True) returning grads with a leading
        B axis. Default: step_backward once per sequence.
    torch_step(x_t, state, params) -> state_t with torch ops: the autograd twin (parity,
        minirnn.interop.torch.to_torch, the torch training path).
    sequence-level versions of any of these, per backend (forward, backward, forward_jvp,
        backward_jvp): the built-in cells bring their own, and Numba twins (FamilySpec).

The sequence methods below run a cell's steps through time with torch's packed-sequence
rules: past a sequence's end (valid[t, b] False) its state is carried unchanged, its output
is zero and nothing flows back into its input or the parameters.
Shapes: T = time, B = batch, I = input size, S = the flat state's size.
"""
from __future__ import annotations

import inspect
from typing import NamedTuple, Optional

import numpy as np

CORE_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class StepsCache(NamedTuple):
    """What the generic sequence forward keeps: every step's own cache."""
    x: np.ndarray                 # (T, B, I) inputs
    state0: tuple                 # per state name, (B, size)
    states: tuple                 # per state name, (T, B, size): carried past a sequence's end
    steps: tuple                  # T step caches, as step_forward returned them
    valid: Optional[np.ndarray]   # (T, B) bool, or None: every step is inside its sequence
    params: dict                  # the layer's parameters the forward ran with

    @property
    def h(self):                  # (T, B, P) the hidden states, which are the outputs
        return self.states[0]

    @property
    def h0(self):
        return self.state0[0]

    @property
    def gates(self):              # (T, B, G*H) where the step caches have a `gates` field
        return np.stack([s.gates for s in self.steps])


class StepsTangentCache(NamedTuple):
    """What the generic tangent forward keeps for the tangent of the backward."""
    x_dot: np.ndarray             # (T, B, I)
    state0_dot: tuple             # per state name, (B, size)
    states_dot: tuple             # per state name, (T, B, size)
    steps: tuple                  # T tangent step caches (None where derived)
    params_dot: dict


class StepsGrad(NamedTuple):
    """The per-step record of the generic backward (debuggers, gradient-flow studies)."""
    dh: np.ndarray                # (T, B, P) dL/dh_t entering step t (zero past an end)
    d_states: tuple               # per state name, (T, B, size) dL/ds_t entering step t


def _write_step(states, out, t, new, prev, valid):
    """Row t of each state (T, B, size) and of out (T, B, P) from a step's new states: past a
    sequence's end (valid[t, b] False) the state is carried and the output is zero. The same
    rule for the forward and its tangents -> the states entering step t + 1."""
    v = None if valid is None else valid[t][:, None]
    for k, (s_new, s_prev) in enumerate(zip(new, prev)):
        states[k][t] = s_new if v is None else np.where(v, s_new, s_prev)
    out[t] = new[0] if v is None else np.where(v, new[0], 0.0)
    return tuple(s[t] for s in states)


class CellSpec:
    """The contract (see the module docstring). Subclass it, set the names, write the two
    required step methods, and register an instance: minirnn.register_cell(MyCell())."""

    name: str = ""
    gate_names: tuple = ("a",)
    state_names: tuple = ("h",)
    param_names: tuple = CORE_PARAMS
    extra_params: tuple = ()         # optional parameters past the core four ("weight_hr")
    sigmoid_gates: tuple = ()        # gates living in [0, 1] (saturation plots, colour maps)
    gates_field: str = "gates"       # the cache field holding the activated gates (T, B, G*H)
    dgates_field: Optional[str] = None   # the per-step record's gate gradients, if it has one
    module: Optional[str] = None     # a torch.nn class with the same parameters ("LSTM")
    cell_module: Optional[str] = None    # its one-step class in minirnn.nn and torch.nn
    nonlinearity: Optional[str] = None
    summary: str = ""

    # ---- names and sizes -------------------------------------------------------------------
    @property
    def gates(self):
        """G: W_ih is (G*H, I), stacked in gate_names order."""
        return len(self.gate_names)

    @property
    def has_cell_state(self):
        return "c" in self.state_names

    @property
    def supports_proj(self):
        return "weight_hr" in self.param_names

    def module_kwargs(self):
        """Constructor keywords that pick this cell within its module class."""
        return {} if self.nonlinearity is None else {"nonlinearity": self.nonlinearity}

    def param_shapes(self, input_size, hidden_size, proj_size=0):
        """{name: shape} of one layer: torch's layout, W_ih (G*H, I), W_hh (G*H, P), biases
        (G*H,), W_hr (P, H) when projecting. Override for another layout."""
        G, H, P = self.gates, hidden_size, proj_size or hidden_size
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, P),
                  "bias_ih": (G * H,), "bias_hh": (G * H,)}
        if proj_size:
            shapes["weight_hr"] = (P, H)
        return {n: shapes[n] for n in self.param_names if n in shapes}

    def state_sizes(self, hidden_size, proj_size=0):
        """Feature size of each state: h is P wide (proj_size or H), any other H."""
        return tuple((proj_size or hidden_size) if n == "h" else hidden_size
                     for n in self.state_names)

    def split_gates(self, gates):
        """(..., G*H) -> {gate name: (..., H)} as views, in gate_names order."""
        H = gates.shape[-1] // self.gates
        return {n: gates[..., k * H:(k + 1) * H] for k, n in enumerate(self.gate_names)}

    def has(self, part):
        """Whether the cell brings `part` itself ("step_jvp", "step_backward_jvp",
        "step_jacobians", "torch_step"), rather than a derivation or nothing."""
        own = getattr(type(self), part, None)
        return own is not None and own is not getattr(CellSpec, part, None)

    def require(self, part, what):
        if not self.has(part):
            raise ValueError(f"cell {self.name!r}: {what} needs the cell's {part}, which it does "
                             f"not define (see minirnn.CellSpec: the optional parts)")

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    # ---- tiers: who computes a whole sequence ----------------------------------------------
    def backends(self):
        """The backends this cell runs on: numpy (its own code) and any registered twins."""
        return ("numpy",) + tuple(vars(self).get("_twins", {}))

    def add_twin(self, backend, twin):
        """Run on `backend` with `twin` (minirnn.register_tier calls this): an object with the
        sequence methods in the form this cell calls them, or a function of no arguments
        returning one (called on first use: a twin that compiles on import loads when asked)."""
        if not isinstance(backend, str) or backend == "numpy":
            raise ValueError(f"backend: expected the name of a backend other than 'numpy' (the "
                             f"cell's own code), got {backend!r}")
        vars(self).setdefault("_twins", {})[backend] = twin

    def twin(self, backend):
        """This cell's implementation on `backend` (added by minirnn.register_tier)."""
        twins = vars(self).get("_twins", {})
        twin = twins.get(backend)
        if twin is None:
            raise ValueError(f"backend: cell {self.name!r} has no {backend!r} implementation; "
                             f"expected one of {self.backends()} (minirnn.register_tier adds "
                             f"one)")
        if callable(twin) and not hasattr(twin, "forward"):
            twin = twins[backend] = twin()                  # loaded once, kept
        return twin

    def states_of(self, cache):
        """A sequence forward's cache -> (state0 tuple of (B, size), states tuple of
        (T, B, size)): the state it started from and every step's (carried past an end)."""
        return tuple(cache.state0), tuple(cache.states)

    # ---- the required parts -----------------------------------------------------------------
    def step_forward(self, x_t, state, params):
        raise NotImplementedError(f"cell {self.name!r}: step_forward is required")

    def step_backward(self, cache_t, d_state, params, per_sample=False):
        raise NotImplementedError(f"cell {self.name!r}: step_backward is required")

    # optional parts a subclass may define (None here: has() tells them apart)
    step_jvp = None
    step_backward_jvp = None
    torch_step = None

    # ---- a whole sequence, from the steps (the numpy tier) ---------------------------------
    def forward(self, x, state, params, valid=None, backend="numpy"):
        """x (T, B, I), state tuple, params -> out (T, B, P), state_T tuple, cache."""
        if backend != "numpy":
            return self.twin(backend).forward(x, state, params, valid)
        T, B = x.shape[:2]
        states = tuple(np.empty((T,) + np.shape(s), dtype=x.dtype) for s in state)
        out = np.zeros((T, B, np.shape(state[0])[1]), dtype=x.dtype)
        steps, prev = [], tuple(state)
        for t in range(T):
            new, cache_t = self.step_forward(x[t], prev, params)
            prev = _write_step(states, out, t, new, prev, valid)
            steps.append(cache_t)
        return out, prev, StepsCache(x, tuple(state), states, tuple(steps), valid, dict(params))

    def backward(self, cache, d_out, d_state, return_steps=False, input_grad=True,
                 backend="numpy", per_sample=False):
        """d_out (T, B, P), d_state tuple (None entries = zeros) -> dx (T, B, I) or None,
        d_state0 tuple, {name: gradient or None}, StepsGrad or None. per_sample=True: each
        gradient with a leading B axis (one per sequence)."""
        if backend != "numpy":
            return self.twin(backend).backward(cache, d_out, d_state, return_steps, input_grad)
        x, params, valid = cache.x, cache.params, cache.valid
        T, B = x.shape[:2]
        d_next = tuple(np.zeros_like(s0) if d is None else d
                       for d, s0 in zip(d_state, cache.state0))
        dx = np.zeros_like(x)
        lead = (B,) if per_sample else ()
        grads = {n: np.zeros(lead + p.shape, dtype=x.dtype) for n, p in params.items()
                 if p is not None}
        record = tuple(np.zeros_like(s) for s in cache.states) if return_steps else None
        for t in reversed(range(T)):
            d_t = (d_next[0] + d_out[t],) + d_next[1:]
            v = None if valid is None else valid[t][:, None]
            if v is not None:                              # padded outputs are constants
                d_t = tuple(np.where(v, d, 0.0) for d in d_t)
            dx[t], d_prev, g_t = self._step_backward(cache.steps[t], d_t, params, per_sample)
            for n in grads:
                grads[n] += g_t[n]
            if v is not None:                              # carried states pass straight back
                d_prev = tuple(dp + np.where(v, 0.0, dn) for dp, dn in zip(d_prev, d_next))
            if record is not None:
                for k, d in enumerate(d_t):
                    record[k][t] = d
            d_next = tuple(d_prev)
        out = {n: grads.get(n) for n in self.param_names}
        steps = None if record is None else StepsGrad(record[0], record)
        return (dx if input_grad else None), d_next, out, steps

    def _step_backward(self, cache_t, d_state, params, per_sample):
        """step_backward, per sample where asked: the cell's own, else once per sequence."""
        if not per_sample:
            return self.step_backward(cache_t, d_state, params)
        if "per_sample" in inspect.signature(self.step_backward).parameters:
            return self.step_backward(cache_t, d_state, params, per_sample=True)
        B = d_state[0].shape[0]
        dx, d_prev, grads = self.step_backward(cache_t, d_state, params)
        rows = [self.step_backward(cache_t, tuple(np.where(np.arange(B)[:, None] == b, d, 0.0)
                                                  for d in d_state), params)[2]
                for b in range(B)]
        return dx, d_prev, {n: np.stack([r[n] for r in rows]) for n in grads}

    def forward_jvp(self, cache, x_dot, state_dot, params_dot, backend="numpy"):
        """Tangents along x_dot (T, B, I), state_dot (tuple) and params_dot ({name: tangent})
        (None or missing = zero) -> out_dot, state_T_dot tuple, tangent cache."""
        if backend != "numpy":
            return self.twin(backend).forward_jvp(cache, x_dot, state_dot, params_dot)
        x, params, valid = cache.x, cache.params, cache.valid
        x_dot = np.zeros_like(x) if x_dot is None else x_dot
        pdot = {n: (np.zeros_like(p) if params_dot.get(n) is None else params_dot[n])
                for n, p in params.items() if p is not None}
        prev_dot = tuple(np.zeros_like(s) if d is None else d
                         for d, s in zip(state_dot, cache.state0))
        states_dot = tuple(np.empty_like(s) for s in cache.states)
        out_dot = np.zeros_like(cache.states[0])
        tsteps = []
        for t in range(x.shape[0]):
            if self.has("step_jvp"):
                new_dot, tc = self.step_jvp(cache.steps[t], x_dot[t], prev_dot, params, pdot)
            else:                                         # derived: J_x ẋ + J_s ṡ + Σ J_θ θ̇
                prev = cache.state0 if t == 0 else tuple(s[t - 1] for s in cache.states)
                new_dot, tc = self._derived_jvp(x[t], prev, params, x_dot[t], prev_dot, pdot), None
            prev_dot = _write_step(states_dot, out_dot, t, new_dot, prev_dot, valid)
            tsteps.append(tc)
        tcache = StepsTangentCache(x_dot, tuple(state_dot), states_dot, tuple(tsteps), pdot)
        return out_dot, prev_dot, tcache

    def backward_jvp(self, cache, tcache, d_out, d_out_dot, d_state, d_state_dot,
                     input_grad=True, backend="numpy"):
        """backward and its tangent (the R-operator) along forward_jvp's tangents
        -> (dx, d_state0, grads) and the same triple of tangents."""
        if backend != "numpy":
            return self.twin(backend).backward_jvp(cache, tcache, d_out, d_out_dot, d_state,
                                                   d_state_dot, input_grad)
        self.require("step_backward_jvp", "the tangent of the backward (HVP, order 2)")
        self.require("step_jvp", "the tangent of the backward (HVP, order 2)")
        x, params, valid = cache.x, cache.params, cache.valid
        d_out_dot = np.zeros_like(d_out) if d_out_dot is None else d_out_dot
        zeros = lambda ds: tuple(np.zeros_like(s0) if d is None else d         # noqa: E731
                                 for d, s0 in zip(ds, cache.state0))
        d_next, d_next_dot = zeros(d_state), zeros(d_state_dot)
        dx, dx_dot = np.zeros_like(x), np.zeros_like(x)
        grads = {n: np.zeros_like(p) for n, p in params.items() if p is not None}
        grads_dot = {n: np.zeros_like(p) for n, p in grads.items()}
        for t in reversed(range(x.shape[0])):
            d_t = (d_next[0] + d_out[t],) + d_next[1:]
            d_t_dot = (d_next_dot[0] + d_out_dot[t],) + d_next_dot[1:]
            v = None if valid is None else valid[t][:, None]
            if v is not None:
                d_t, d_t_dot = (tuple(np.where(v, d, 0.0) for d in ds) for ds in (d_t, d_t_dot))
            (dx[t], d_prev, g), (dx_dot[t], d_prev_dot, g_dot) = self.step_backward_jvp(
                cache.steps[t], tcache.steps[t], d_t, d_t_dot, params, tcache.params_dot)
            for n in grads:
                grads[n] += g[n]
                grads_dot[n] += g_dot[n]
            if v is not None:
                d_prev = tuple(dp + np.where(v, 0.0, dn) for dp, dn in zip(d_prev, d_next))
                d_prev_dot = tuple(dp + np.where(v, 0.0, dn)
                                   for dp, dn in zip(d_prev_dot, d_next_dot))
            d_next, d_next_dot = tuple(d_prev), tuple(d_prev_dot)
        keyed = lambda g: {n: g.get(n) for n in self.param_names}              # noqa: E731
        return ((dx if input_grad else None, d_next, keyed(grads)),
                (dx_dot if input_grad else None, d_next_dot, keyed(grads_dot)))

    # ---- one step's Jacobians ---------------------------------------------------------------
    def step_jacobians(self, x_t, state, params, backend="numpy"):
        """J_state (B, S, S) = ∂s_t/∂s_{t-1}, {name: (B, S, *shape) or None} = ∂s_t/∂θ, on the
        flat state s = the state_names side by side. Derived: S step VJPs, cotangent e_k."""
        return self._vjp_jacobians(x_t, state, params)[1:]

    def _vjp_jacobians(self, x_t, state, params):
        """-> J_x (B, S, I), J_state (B, S, S), {name: (B, S, *shape)}: row k of each is the
        step's vector-Jacobian product with the unit cotangent e_k (exact)."""
        sizes = [np.shape(s)[1] for s in state]
        B, S = np.shape(x_t)[0], sum(sizes)
        _, cache_t = self.step_forward(x_t, tuple(state), params)
        J_x = np.zeros((B, S, np.shape(x_t)[1]), dtype=x_t.dtype)
        J_s = np.zeros((B, S, S), dtype=x_t.dtype)
        J_p = {n: np.zeros((B, S) + p.shape, dtype=x_t.dtype)
               for n, p in params.items() if p is not None}
        for k in range(S):
            e = np.zeros((B, S), dtype=x_t.dtype)
            e[:, k] = 1.0
            d_state = tuple(np.split(e, np.cumsum(sizes)[:-1], axis=1))
            dx, d_prev, g = self._step_backward(cache_t, d_state, params, per_sample=True)
            J_x[:, k], J_s[:, k] = dx, np.concatenate(d_prev, axis=1)
            for n in J_p:
                J_p[n][:, k] = g[n]
        return J_x, J_s, {n: J_p.get(n) for n in self.param_names}

    def _derived_jvp(self, x_t, state, params, x_dot_t, state_dot, params_dot):
        """The step's tangent from its derived Jacobians: J_x ẋ + J_s ṡ + Σ_θ J_θ θ̇."""
        J_x, J_s, J_p = self._vjp_jacobians(x_t, state, params)
        flat = np.einsum("bsi,bi->bs", J_x, x_dot_t)
        flat += np.einsum("bsr,br->bs", J_s, np.concatenate(state_dot, axis=1))
        for n, J in J_p.items():
            if J is not None:
                flat += J.reshape(J.shape[:2] + (-1,)) @ params_dot[n].ravel()
        sizes = [np.shape(s)[1] for s in state]
        return tuple(np.split(flat, np.cumsum(sizes)[:-1], axis=1))


__all__ = ["CellSpec", "CORE_PARAMS", "StepsCache", "StepsTangentCache", "StepsGrad"]
