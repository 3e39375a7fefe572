"""Online gradients: exact RTRL and the approximations researchers compare it with, for
every cell the registry knows.

    res = minirnn.grad.online_gradient(model, x, target, method="snap-1")
    res.grads["weight_hh_l0"]            # SnAp-1's estimate of dL/dW_hh (the weight's shape)
    trainer = minirnn.grad.OnlineTrainer(model, lr=0.01, method="e-prop", batch_size=4)
    L_t = trainer.step(x_t, y_t)         # one step forward, one update

The state s_t = (h_t[, c_t]) = F(s_{t-1}, x_t; θ) (S numbers per sequence) carries its
influence matrix M_t = ∂s_t/∂θ (S × N), and the gradient of L = Σ_t L_t is Σ_t ∂L_t/∂s_t · M_t.
RTRL keeps M_t exactly:

    M_t = J_t M_{t-1} + M̄_t,     J_t = ∂s_t/∂s_{t-1},   M̄_t = ∂s_t/∂θ (s_{t-1} held fixed).

Each method keeps some of it (minirnn/grad/_online_trackers.py derives each one):

    method    what it keeps of M_t                                memory (floats per sequence)
    rtrl      all of it                                           S·N
    snap-n    the entries that θ reaches within n steps: a fixed  nnz(P_n) (SnAp-1: N for
              pattern P_n, the recursion applied inside it        Elman and GRU, 1.75 N LSTM)
              (Menick et al. 2021)
    uoro      an unbiased random rank-one ã b̃ᵀ (Tallec &          S + N
              Ollivier 2018; minirnn.grad.uoro)
    kf-rtrl   per weight an unbiased random Kronecker product     S·ΣK + Σm (K rows and m
              A ⊗ u (Mujika et al. 2018; the gated form derived)  columns of each weight)
    e-prop    J_t without its paths through W_hh: each unit's     nnz(P_1), the SnAp-1 pattern
              internal dynamics (the LSTM's c, the GRU's z h)
              (Bellec et al. 2020)
    rflo      the diagonal of that (each state variable's own     nnz(P_1)
              leak), or a fixed decay γ (Murray 2019's 1 - 1/τ)

Every method reads the cell's step and its Jacobians J_t, M̄_t through one function,
`cell_step`: the cell contract's step_forward and step_jacobians (the cell's own, or derived
exactly from its step_backward), so a cell registered with minirnn.register_cell gets every
method. e-prop and RFLO also need W_hh to be a matrix entering only as W_hh h_{t-1} + b_hh,
KF-RTRL each weight to meet one vector per step: checked at random points when the method is
built, refused by name where not. Forming the Jacobians densely costs S·N numbers a step for
every method, O(H³); the methods' own work on top is what separates them
(benchmarks/online_cost.py measures both).

A fixed sparsity mask on W_hh (`mask=`, every method; `recurrent_mask` draws one) makes the
masked-out weights non-parameters: they must be 0 in the model, their gradient is reported
as 0 and no method tracks them. SnAp-2 is cheaper than RTRL only there.

Single layer, one direction (as rtrl_gradient); float64 is what the exact checks use.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .._checks import check_int, check_shape
from ._online_step import StepJacobians, cell_step
from .rtrl import (_check_loss, _check_lr, _check_model, _check_state,
                   _check_step, _finish, _loss, _prepare, check_memory, layer_layout, time_loop)

METHODS = ("rtrl", "snap-1", "snap-2", "uoro", "kf-rtrl", "rflo", "e-prop")
# the options each method takes (every one also takes mask=); "snap-n" is any n >= 1
OPTIONS = {"rtrl": (), "snap": (), "uoro": ("seed", "eps"), "kf-rtrl": ("seed", "eps"),
           "rflo": ("decay",), "e-prop": ()}


class OnlineResult(NamedTuple):
    grads: dict                   # model.grads key -> the method's dL/dθ (model untouched)
    loss: float                   # Σ_t L_t over the valid steps
    out: np.ndarray               # the outputs, in the model's layout (as its forward)
    state: tuple                  # the final state, a tuple per spec.state_names, each (B, size)
    method: str


# ---- the state every method steps ------------------------------------------------------------

def recurrent_mask(model, sparsity, seed=0):
    """A random fixed sparsity pattern for W_hh: a bool array of W_hh's shape with a
    fraction `sparsity` (in [0, 1)) of entries False, the same pattern in every gate block
    (a unit's gates see the same units). Apply it with model.params[key][~mask] = 0."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) \
            or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity: expected a number in [0, 1), got {sparsity!r}")
    _check_model(model)
    w = model.params[layer_layout(model).keys["weight_hh"]]
    G = model.spec.gates
    H, P = w.shape[0] // G, w.shape[1]
    rng = np.random.default_rng(check_int("seed", seed, low=0))
    block = np.zeros(H * P, dtype=bool)
    block[rng.permutation(H * P)[:int(round((1 - sparsity) * H * P))]] = True
    return np.tile(block.reshape(H, P), (G, 1))


class OnlineState:
    """The state of one single-layer one-direction model, advanced a step at a time together
    with its step Jacobians. Parameter blocks are flattened side by side in the registry's
    param_names order (those present): a flat vector of N0 numbers, of which `columns` (N)
    are tracked (all but W_hh's masked-out entries)."""

    def __init__(self, model, batch, state, mask=None):
        self.spec, self.dtype, self.B = model.spec, model.dtype, batch
        self.params = model.params
        self.keys, self.shapes, self.offsets, N0, self.sizes, self.P = layer_layout(model)
        self.S, self.N0 = sum(self.sizes), N0
        self.mask = self._check_mask(mask)
        keep = np.ones(N0, dtype=bool)
        if self.mask is not None:
            o = self.offsets["weight_hh"]
            keep[o:o + self.mask.size] = self.mask.ravel()
        self.columns = np.flatnonzero(keep)                           # (N,)
        self.N = self.columns.size
        self.state = tuple(np.array(s, dtype=self.dtype) for s in state)

    def _check_mask(self, mask):
        if mask is None:
            return None
        w = self.params[self.keys["weight_hh"]]
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask: expected a bool array (True = a weight of the sparse W_hh), "
                            f"got dtype {mask.dtype}")
        check_shape("mask", mask, w.shape, " (the shape of W_hh)")
        if np.any(w[~mask] != 0):
            raise ValueError(f"mask: W_hh has {int(np.count_nonzero(w[~mask]))} nonzero "
                             f"weight(s) outside the mask; zero them first "
                             f"(model.params[{self.keys['weight_hh']!r}][~mask] = 0)")
        return mask.copy()

    def layer_params(self, with_biases=False):
        """{name: array}; with_biases: the biases a cell has (in its param_names) but this
        model was built without, as zeros -- so that ∂s/∂b_hh is returned (e-prop, RFLO)."""
        p = {n: self.params[k] for n, k in self.keys.items()}
        if with_biases:
            for n in self.bias_names():
                p.setdefault(n, np.zeros(p["weight_hh"].shape[0], dtype=self.dtype))
        return p

    def bias_names(self):
        """The cell's biases (of bias_ih, bias_hh), whether this model has them or not."""
        return tuple(n for n in ("bias_ih", "bias_hh") if n in self.spec.param_names)

    def advance(self, x_t, keep=None):
        """One step with the current parameters; finished sequences (keep False) keep their
        state. -> StepJacobians of the step."""
        params = self.layer_params(with_biases=True)
        new, J, per = cell_step(self.spec, x_t, self.state, params)
        B, S = self.B, self.S
        Mbar = np.concatenate([self.tracked(n, per[n].reshape(B, S, self.size(n)))
                               for n in self.keys], axis=-1)            # (B, S, N)
        h_prev = self.state[0]
        if keep is None:
            self.state = tuple(new)
        else:
            self.state = tuple(np.where(keep[:, None], a, b) for a, b in zip(new, self.state))
        return StepJacobians(J, Mbar, per, h_prev, params["weight_hh"])

    def size(self, name):
        """The number of entries of parameter `name`."""
        return int(np.prod(self.shapes[name]))

    def tracked(self, name, block):
        """A parameter's block (..., its size) -> its tracked columns (all but W_hh's
        masked-out entries), in the flat vector's order."""
        if name != "weight_hh" or self.mask is None:
            return block
        return block[..., self.mask.ravel()]

    def output(self, keep=None):
        """out_t (B, P): h_t, 0 for finished sequences."""
        return self.state[0] if keep is None else np.where(keep[:, None], self.state[0], 0.0)

    def full_vector(self, g):
        """Tracked (N,) -> the flat (N0,) vector, 0 at the untracked (masked-out) columns."""
        if self.N == self.N0:
            return g
        out = np.zeros(self.N0, dtype=g.dtype)
        out[self.columns] = g
        return out

    def unflatten(self, g):
        """Tracked (N,) -> {model key: array of the parameter's shape}."""
        flat = self.full_vector(g)
        return {self.keys[n]: flat[o:o + self.size(n)].reshape(self.shapes[n]).copy()
                for n, o in self.offsets.items()}

    def update(self, g, lr):
        """θ <- θ - lr · g (tracked columns), in place."""
        flat = self.full_vector(g)
        for n, o in self.offsets.items():
            p = self.params[self.keys[n]]
            p -= lr * flat[o:o + p.size].reshape(p.shape)


# ---- choosing a method -----------------------------------------------------------------------

def parse_method(method):
    """-> (family, n): ("snap", n) for "snap-n", else (method, None)."""
    if isinstance(method, str):
        m = re.fullmatch(r"snap-(\d+)", method)
        if m and int(m.group(1)) >= 1:
            return "snap", int(m.group(1))
        if method in OPTIONS and method != "snap":
            return method, None
    raise ValueError(f"method: expected one of {METHODS} (or snap-n for any n >= 1), "
                     f"got {method!r}")


def check_options(family, options):
    allowed = ("mask",) + OPTIONS[family]
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise TypeError(f"{bad[0]}: not an option of this method; it takes {allowed}")
    opts = dict(options)
    if "seed" in opts:
        opts["seed"] = check_int("seed", opts["seed"], low=0)
    if "eps" in opts and not (isinstance(opts["eps"], (int, float)) and opts["eps"] > 0):
        raise ValueError(f"eps: expected a positive number, got {opts['eps']!r}")
    decay = opts.get("decay")
    if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float))
                              or not 0 <= decay <= 1):
        raise ValueError(f"decay: expected None or a number in [0, 1], got {decay!r}")
    return opts


def make_tracker(method, st, options=None, memory_limit=None):
    """The method's influence tracker on OnlineState `st` (options as online_gradient's;
    mask is st's): an object with update(StepJacobians, keep), grad(dL_ds) -> (N,) and
    `numbers` (the floats it holds), allocated after the memory check."""
    from . import _online_kf as kf
    from . import _online_trackers as tr
    family, n = parse_method(method)
    opts = check_options(family, options or {})
    opts.pop("mask", None)
    cls = {"rtrl": tr.DenseRTRL, "snap": tr.SnAp, "uoro": tr.UOROTracker,
           "kf-rtrl": kf.KFRTRL, "rflo": tr.RFLO, "e-prop": tr.EProp}[family]
    tracker = cls(st, n, **opts) if family == "snap" else cls(st, **opts)
    size = st.dtype.itemsize
    check_memory((tracker.numbers + 2 * st.B * st.S * st.N0) * size, memory_limit,
                 method, f"its influence, {tracker.numbers} numbers, and the dense step "
                 f"Jacobians, batch {st.B} × state {st.S} × {st.N0} parameters, twice, × "
                 f"{size} bytes", "lower hidden_size or the batch, or pass a larger "
                 "memory_limit= if the memory is there")
    tracker.allocate()
    return tracker


# ---- the public API --------------------------------------------------------------------------

def _run(model, x, target, method, loss, state, lengths, memory_limit, options, lr):
    """The time loop of online_gradient (lr None: no update) -> flat tracked gradient,
    losses (T,), outputs and final state in the user's layout, the OnlineState."""
    _check_loss(loss)
    x, target, state, valid, unbatched = _prepare(model, x, target, state, lengths)
    st = OnlineState(model, x.shape[1], state, options.get("mask"))
    tracker = make_tracker(method, st, options, memory_limit)

    def step(x_t, keep, y_t):
        tracker.update(st.advance(x_t, keep), keep)
        return _loss_and_grad(st, tracker, loss, y_t, keep)

    g, losses, out = time_loop(step, st.update, x, target, valid, lr, st.N)
    out, state = _finish(model, out, st.state, unbatched)
    return g, losses, out, state, st


def _loss_and_grad(st, tracker, loss, y_t, keep):
    """out_t, L_t and the method's dL_t/dθ (N,) after the step."""
    out_t = st.output(keep)
    rows = slice(None) if keep is None else keep
    value, d_out = _loss(loss, out_t[rows], y_t[rows])
    dL_ds = np.zeros((st.B, st.S), dtype=st.dtype)
    dL_ds[rows, :st.P] = d_out                          # c_t is not an output: no loss on it
    return out_t, value, tracker.grad(dL_ds)


def online_gradient(model, x, target, method="rtrl", loss="squared_error", state=None,
                    lengths=None, backend=None, memory_limit=None, **options) -> OnlineResult:
    """The gradient of L = Σ_t L_t(out_t, target_t) by an online method, forward in time.

    Arguments as rtrl_gradient's (model: a single-layer one-direction RNN/LSTM/GRU or cell;
    x, target in its layout; loss "squared_error", "projection" or a callable; state; lengths;
    memory_limit in bytes), and method: one of METHODS, or "snap-n" for any n >= 1 (see the
    module docstring). backend: None or "numpy" (the methods run on the reference's step
    Jacobians; "numba" is rtrl_gradient's fused kernel, there). Options: mask= (W_hh's bool
    sparsity pattern, any method); seed=, eps= (uoro, kf-rtrl: the random signs, the ε of
    the norm balance); decay= (rflo: a fixed trace decay γ in [0, 1] instead of each state
    variable's own leak). The model's parameters and grads are left as they are.
    """
    _check_backend(backend)
    g, losses, out, state, st = _run(model, x, target, method, loss, state, lengths,
                                     memory_limit, options, None)
    return OnlineResult(st.unflatten(g), float(losses.sum()), out, state, method)


def _check_backend(backend):
    if backend not in (None, "numpy"):
        raise ValueError(f"backend: expected None or 'numpy' (the online methods run on the "
                         f"NumPy reference's step Jacobians), got {backend!r}; RTRL's fused "
                         f"kernel is rtrl_gradient(..., backend='numba')")


class OnlineTrainer:
    """Online learning with any method: after every step θ <- θ - lr · (the method's
    dL_t/dθ), using only the past.

        trainer = OnlineTrainer(model, lr=0.01, method="snap-1", batch_size=4)
        for x_t, y_t in stream:                 # x_t (B, I), y_t (B, P)
            L_t = trainer.step(x_t, y_t)

    As RTRLOnline, the carried influence is not reset when θ changes (each past step's
    Jacobians at the parameters of that step). Arguments as online_gradient's; state: a tuple
    per spec.state_names, each (batch_size, size).
    """

    def __init__(self, model, lr, method="rtrl", loss="squared_error", batch_size=1,
                 state=None, backend=None, memory_limit=None, **options):
        _check_backend(backend)
        self.lr, self.loss, self.method = _check_lr(lr), _check_loss(loss), method
        B = check_int("batch_size", batch_size)
        state = _check_state(_check_model(model), state, B, False)
        self.model = model
        self._st = OnlineState(model, B, state, options.get("mask"))
        self._tracker = make_tracker(method, self._st, options, memory_limit)

    @property
    def state(self):
        return self._st.state

    def step(self, x_t, target_t, valid=None):
        """x_t (B, I), target_t (B, P), valid (B,) bool or None (False: that sequence has
        ended, its state and influence are carried) -> L_t, before the update."""
        st = self._st
        x_t, target_t, valid = _check_step(self.model, st.B, st.P, x_t, target_t, valid)
        self._tracker.update(st.advance(x_t, valid), valid)
        _, value, g = _loss_and_grad(st, self._tracker, self.loss, target_t, valid)
        st.update(g, self.lr)
        return value


__all__ = ["online_gradient", "OnlineTrainer", "OnlineResult", "recurrent_mask", "METHODS",
           "OnlineState", "StepJacobians", "make_tracker", "cell_step"]
