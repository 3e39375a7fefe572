"""The streams `minirnn study online` learns from, each one whole in arrays.

    two_dependency_stream(batch, steps, seed)   Y_t ~ Bern(1/2 + X_{t-3}/2 - X_{t-8}/4), a loss
                                                every step (minirnn.studies.seqtask: exact floors)
    adding_stream(batch, steps, seed, length)   the adding problem (Hochreiter & Schmidhuber
                                                1997): the sum of the two marked values of an
                                                episode, one loss at its end
    chaotic_stream(name, batch, steps, seed)    next-step prediction of the first coordinate of
                                                the Hénon map, the Lorenz system or the
                                                Mackey-Glass equation, normalised, the state
                                                restarted every `washout` steps

Each is a Stream: inputs, targets, the steps that carry a loss, the steps where every
sequence starts afresh (state and influence back to 0), and the losses of learning nothing
(the best constant prediction) and of learning everything.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_int


class Stream(NamedTuple):
    name: str
    kind: str                     # "ce": class targets and cross-entropy; "mse": mean squares
    x: np.ndarray                 # (T, B, I) inputs
    y: np.ndarray                 # (T, B) int classes, or (T, B, O) values
    has_target: np.ndarray        # (T,) bool: a loss at this step
    reset: np.ndarray             # (T,) bool: every sequence starts afresh at this step
    n_out: int                    # logits or values the read-out produces
    nothing: float                # the loss of the best constant prediction
    floor: float                  # the best loss any predictor reaches


def two_dependency_stream(batch, steps, seed=0):
    """The two-dependency task as a stream: X_t one-hot (2 inputs), Y_t the class; no
    restarts. nothing/floor: dependency_floors' 'nothing' and 'both'."""
    from .seqtask import dependency_floors, two_dependency_data
    x, y, _ = two_dependency_data(batch, steps, seed=seed)              # (B, T) each
    floors = dependency_floors()
    T = x.shape[1]
    reset = np.zeros(T, dtype=bool)
    reset[0] = True
    return Stream("twodep", "ce", np.eye(2)[x.T], y.T.copy(), np.ones(T, dtype=bool), reset,
                  2, floors.nothing, floors.both)


def adding_stream(batch, steps, seed=0, length=10):
    """Episodes of `length` steps (steps rounded down to whole episodes), inputs (value
    ~ U(0, 1), marker): one marker in each half; the target at the last step is the sum of the
    two marked values. nothing: Var(U1 + U2) = 1/6 (predicting the mean, 1)."""
    length = check_int("length", length, low=2)
    episodes = max(1, check_int("steps", steps) // length)
    rng = np.random.default_rng(seed)
    values = rng.random((episodes, length, batch))
    marks = np.zeros_like(values)
    half = length // 2
    e, b = np.meshgrid(np.arange(episodes), np.arange(batch), indexing="ij")
    marks[e, rng.integers(0, half, (episodes, batch)), b] = 1.0
    marks[e, rng.integers(half, length, (episodes, batch)), b] = 1.0
    x = np.stack([values, marks], axis=-1).reshape(episodes * length, batch, 2)
    y = np.zeros((episodes, length, batch, 1))
    y[:, -1, :, 0] = (values * marks).sum(axis=1)
    pos = np.tile(np.arange(length), episodes)
    return Stream("add", "mse", x, y.reshape(episodes * length, batch, 1), pos == length - 1,
                  pos == 0, 1, 1.0 / 6.0, 0.0)


CHAOTIC = ("henon", "lorenz", "mackey-glass")


def chaotic_stream(name, batch, steps, seed=0, washout=200):
    """Next-step prediction of a chaotic series (one lane per sequence, each from its own
    initial condition), normalised per lane to mean 0 and variance 1, so the MSE is the NMSE
    and predicting the mean scores 1. The state restarts every `washout` steps. The settings
    are those of the sketched-RTRL time-series benchmark: Hénon a = 1.4, b = 0.3; Lorenz
    σ = 10, ρ = 28, β = 8/3, Euler dt = 0.01, every 2nd point; Mackey-Glass β = 0.2, γ = 0.1,
    n = 10, τ = 17, Euler dt = 1."""
    if name not in CHAOTIC:
        raise ValueError(f"name: expected one of {CHAOTIC}, got {name!r}")
    steps, washout = check_int("steps", steps), check_int("washout", washout)
    rng = np.random.default_rng(seed)
    series = {"henon": _henon, "lorenz": _lorenz, "mackey-glass": _mackey_glass}[name](
        rng, batch, steps + 1 + 64)[64:]                                # (steps + 1, B)
    series = (series - series.mean(axis=0)) / series.std(axis=0)
    pos = np.arange(steps)
    return Stream(name, "mse", series[:-1, :, None], series[1:, :, None],
                  np.ones(steps, dtype=bool), pos % washout == 0, 1, 1.0, 0.0)


def _henon(rng, B, n):
    x, y = 0.1 + 0.01 * np.arange(B) + 0.001 * rng.random(B), np.zeros(B)
    out = np.empty((n, B))
    for t in range(n):
        out[t] = x
        x, y = 1.0 - 1.4 * x * x + y, 0.3 * x
    return out


def _lorenz(rng, B, n):
    s = 1.0 + 0.1 * rng.standard_normal((B, 3))
    out = np.empty((n, B))
    for t in range(100 + 2 * n):
        x, y, z = s.T
        s = s + 0.01 * np.stack([10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z], 1)
        if t >= 100 and (t - 100) % 2 == 0:
            out[(t - 100) // 2] = s[:, 0]
    return out


def _mackey_glass(rng, B, n, tau=17):
    hist = list(1.2 + 0.2 * rng.random((tau + 1, B)))
    for _ in range(n + 100):
        lag = hist[-tau - 1]
        hist.append(hist[-1] + 0.2 * lag / (1.0 + lag ** 10) - 0.1 * hist[-1])
    return np.array(hist[-n:])


__all__ = ["Stream", "two_dependency_stream", "adding_stream", "chaotic_stream", "CHAOTIC"]
