"""The Lyapunov spectrum of a recurrent model driven by an input (Benettin's QR method, as
Engelken, Wolf & Abbott 2023 compute it for RNNs), its check by direct simulation, and a
training-time readout of the largest exponent (Vogt et al. 2022).

A unidirectional model is a map s_t = F(x_t, s_{t-1}) on its flat state (S numbers per
sequence: every layer's h, then every layer's c). A tangent vector grows as
δ_t = J_t δ_{t-1}, J_t = ∂s_t/∂s_{t-1}. The first k exponents are the growth rates of a k-volume
of tangents, taken apart one direction at a time by Gram-Schmidt (QR):

    Q_0 = a random orthonormal S × k frame
    for t:   Q_t R_t = J_t Q_{t-1}          (QR; R_t upper triangular)
    λ_i = 1/T Σ_t log |R_t[i, i]|           (nats per step, i = 1..k, largest first)

λ_1 > 0: tiny differences grow (chaos; gradients through time must explode along some
directions); all λ_i < 0: the dynamics contract (gradients must vanish). `warmup` steps run
first without counting, so that the frame forgets its random start.

Two answers known in advance (tests/test_study_lyapunov.py):
  * at a fixed point s* the Jacobian is one constant matrix J*, and the exponents are
    log|eig(J*)|, sorted, each eigenvalue counted with multiplicity (a complex pair gives two
    equal exponents). A tanh RNN with zero input and zero bias sits at s* = 0 with J* = W_hh.
  * direct simulation: a second trajectory started ε away, renormalised to distance ε after
    every step (Benettin's two-trajectory method), grows at rate λ_1.

J_t is dense, from the model's own exact backward (minirnn.grad._stepjac): exact, S
backward rows per step, meant for the H ≤ a few hundred of a study.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._stepjac import StateProbe, probing


@dataclass
class LyapunovSpectrum:
    exponents: np.ndarray      # (B, k) per sequence, nats per step, largest first
    running: np.ndarray        # (steps counted, B, k) the running averages after each step
    warmup: int
    diverged_at: Optional[int] = None   # the step whose state overflowed (the run stopped)

    @property
    def largest(self):
        """(B,) λ_1 of each sequence."""
        return self.exponents[:, 0]


@dataclass
class PerturbationGrowth:
    rate: np.ndarray           # (B,) mean log growth per step of a tiny perturbation
    log_growth: np.ndarray     # (T - warmup, B) Σ log(|δ_t| / ε) so far, after each step
    eps: float


def _prepare(model, x, warmup, what="x"):
    from .._checks import check_int, check_steps
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{what}: expected shape (T, B, I) (or (B, T, I) with batch_first), "
                         f"got {x.shape}")
    xt = model.to_time_major(x)
    check_steps(what, xt.shape[0])
    warmup = check_int("warmup", warmup, low=0)
    if warmup >= xt.shape[0]:
        raise ValueError(f"warmup: expected fewer steps than the input's T={xt.shape[0]}, "
                         f"got {warmup}")
    return xt, warmup


def initial_frame(seed, B, S, k):
    """(B, S, k) random columns, sequence b's from the generator [seed, b] alone: the first
    column does not depend on k, so perturbation_growth with the same seed starts along the
    QR method's first direction."""
    return np.stack([np.random.default_rng([seed, b]).standard_normal((k, S)).T
                     for b in range(B)]) if B else np.zeros((0, S, k))


def lyapunov_spectrum(model, x, k=None, state=None, warmup=0, seed=0, progress=False):
    """The first k Lyapunov exponents of `model` driven by x -> LyapunovSpectrum.

    model: a unidirectional minirnn RNN/LSTM/GRU (any registry cell, any layers; dropout off
    while measuring, the model left as it was); x: (T, B, I) in its layout, each sequence its
    own trajectory; k: exponents wanted (default all S); state: None (zeros) or the tuple per
    spec.state_names; warmup: leading steps of x that evolve state and frame uncounted;
    seed: the random initial frame; progress: a tqdm bar.
    """
    from .._checks import check_int
    from .._progress import progress as bar
    xt, warmup = _prepare(model, x, warmup)
    T, B = xt.shape[:2]
    with probing(model):
        probe = StateProbe(model)
        S = probe.S
        k = S if k is None else check_int("k", k)
        if k > S:
            raise ValueError(f"k: expected at most the state size S={S}, got {k}")
        s = probe.initial(state, B)
        Q, _ = np.linalg.qr(initial_frame(seed, B, S, k))
        total = np.zeros((B, k))
        running = np.empty((T - warmup, B, k))
        pbar = bar(range(T), desc=f"Lyapunov {model.mode}", unit="step", disable=not progress,
                   leave=False)
        counted, diverged = 0, None
        for t in pbar:
            with np.errstate(over="ignore", invalid="ignore"):      # overflow: checked below
                J = probe.jacobian(xt[t], s)
                s = probe.step(xt[t], s)
            if not (np.isfinite(s).all() and np.isfinite(J).all()):
                diverged = t                 # an unbounded (relu) state overflowed: stop here
                break
            Q, R = np.linalg.qr(J.astype(np.float64) @ Q)
            if t >= warmup:
                with np.errstate(divide="ignore"):             # a dead relu unit: log 0 = -inf
                    total += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
                counted += 1
                running[counted - 1] = total / counted
    exponents = total / counted if counted else np.full((B, k), np.nan)
    return LyapunovSpectrum(exponents, running[:counted], warmup, diverged)


def perturbation_growth(model, x, eps=1e-8, state=None, warmup=0, direction=None, seed=0):
    """Direct simulation: a copy of the trajectory started eps away (along `direction`, (B, S);
    default: the first direction of lyapunov_spectrum's random frame for the same seed; eps
    times ‖s‖ where the state is larger than 1), both driven by x, the
    copy pulled back to that distance after every step
    -> PerturbationGrowth; its rate matches λ_1 of lyapunov_spectrum on the same x, state
    and warmup. Use a float64 model (eps is far below float32's resolution)."""
    xt, warmup = _prepare(model, x, warmup)
    if not (isinstance(eps, float) and 0 < eps < 1):
        raise ValueError(f"eps: expected a float in (0, 1), got {eps!r}")
    T, B = xt.shape[:2]
    with probing(model):
        probe = StateProbe(model)
        s = probe.initial(state, B)
        if direction is None:
            direction = initial_frame(seed, B, probe.S, 1)[:, :, 0]
        d = np.asarray(direction, dtype=np.float64)
        if d.shape != (B, probe.S):
            raise ValueError(f"direction: expected shape (B, S) = {(B, probe.S)}, got {d.shape}")
        # the distance is eps relative to the state's size (at least eps): an unbounded state
        # that grows would otherwise swallow an absolute eps in its rounding
        size = lambda v: eps * np.maximum(1.0, np.linalg.norm(v, axis=1))   # noqa: E731
        d0 = size(s)
        s2 = s + d0[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)
        total = np.zeros(B)
        log_growth = np.full((T - warmup, B), np.nan)
        for t in range(T):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # see isfinite
                s, s2 = probe.step(xt[t], s), probe.step(xt[t], s2)  # s: as lyapunov_spectrum's
                dist = np.linalg.norm(s2 - s, axis=1)
                if not np.isfinite(dist).all():
                    total[:] = np.nan                      # an unbounded state overflowed
                    break
                if t >= warmup:
                    total += np.log(dist / d0)
                    log_growth[t - warmup] = total
                d0 = size(s)
                s2 = s + d0[:, None] * (s2 - s) / dist[:, None]      # back to distance d0
    return PerturbationGrowth(total / (T - warmup), log_growth, eps)


class LyapunovReadout:
    """The largest Lyapunov exponent as a training-time readout (Vogt et al. 2022): call it
    every N steps and it records (step, λ_1, ...) of the model's recurrent layer, driven by a
    fixed probe input.

        readout = LyapunovReadout(tokens[:4])          # a few probe sequences (B, T) ids
        engine.add_hook(readout, every=100)            # Engine calls readout(engine)
        ...
        readout.history                                 # [(step, λ_1 mean, λ_1 per sequence)]

    inputs: token ids (B, T) for an Engine's model (embedded by model.embed), or a float
    array in the recurrent layer's own layout; k: exponents computed (the mean λ_1 is logged);
    warmup: probe steps not counted. Called with an Engine (its model is synced first) or with
    the recurrent module itself (`readout(model.rnn, step=...)`).
    """

    def __init__(self, inputs, k=1, warmup=0, seed=0):
        from .._checks import check_int
        self.inputs = np.asarray(inputs)
        self.k = check_int("k", k)
        self.warmup = check_int("warmup", warmup, low=0)
        self.seed = seed
        self.history = []

    def _recurrent_input(self, model):
        if self.inputs.dtype.kind in "iu":
            if not hasattr(model, "embed"):
                raise TypeError("inputs: token ids need an Engine's model (it embeds them); "
                                "give the recurrent module a float array instead")
            return model.embed(self.inputs)                  # (B, T, E): batch first
        return self.inputs

    def __call__(self, target, step=None):
        model = getattr(target, "model", None)
        if model is not None and hasattr(target, "sync"):    # an Engine
            target.sync()
            step = target.steps if step is None else step
        else:
            model = target
        rnn = getattr(model, "rnn", model)
        x = self._recurrent_input(model)
        spec = lyapunov_spectrum(rnn, x, k=self.k, warmup=self.warmup, seed=self.seed)
        lam = spec.largest
        self.history.append((step, float(lam.mean()), lam.copy()))
        return float(lam.mean())
