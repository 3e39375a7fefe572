"""The two-dependency sequence task: a task whose best possible losses are known in advance
(Pitis 2016, "Recurrent neural networks in Tensorflow I", r2rt.com).

    X_t ~ Bernoulli(1/2)
    Y_t ~ Bernoulli(p_t),   p_t = 1/2 + 1/2 X_{t-3} - 1/4 X_{t-8}     (X before t = 0: zero)

p_t is the probability of Y_t = 1 given the whole input history, so no predictor beats the
cross-entropy E[H(p_t)] (nats, H the Bernoulli entropy), and one that knows only part of the
history at best reaches the entropy of the conditional it can know:

    nothing learned    H(E[p])                        = H(5/8)                          0.6616
    X_{t-3} only       E_{X_{t-3}} H(E[p | X_{t-3}])  = (H(7/8) + H(3/8)) / 2           0.5192
    both               E[H(p)]                        = (H(1/2) + H(1) + H(1/4) + H(3/4)) / 4
                                                      = ln(2)/4 + H(1/4)/2              0.4545

dependency_floors computes them by enumerating the four (X_{t-3}, X_{t-8}) cases (any lags,
effects and base); the tests check them against these closed forms and a Monte Carlo estimate.
train_two_dependency trains a one-layer language model (vocabulary {0, 1}) on the task with
truncated BPTT (Engine.step_truncated) and measures its cross-entropy on fresh data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .._checks import check_int

LAGS = (3, 8)
EFFECTS = (0.5, -0.25)
BASE = 0.5


class Floors(NamedTuple):
    """Cross-entropies in nats: knowing nothing, the first dependency only, both."""
    nothing: float
    first: float
    both: float


def bernoulli_entropy(p):
    """H(p) = -p ln p - (1-p) ln(1-p) in nats, 0 ln 0 = 0; elementwise."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
    return h if h.ndim else float(h)


def _check_task(lags, effects, base):
    lags = tuple(check_int("lags", k) for k in lags)
    if len(lags) != 2 or len(effects) != 2 or lags[0] == lags[1]:
        raise ValueError(f"lags, effects: expected two different lags and two effects, got "
                         f"lags={lags}, effects={tuple(effects)}")
    ps = [base + effects[0] * a + effects[1] * b for a, b in itertools.product((0, 1), repeat=2)]
    if min(ps) < 0 or max(ps) > 1:
        raise ValueError(f"effects: base + effects must stay a probability in [0, 1] for every "
                         f"input, got {ps} for base={base}, effects={tuple(effects)}")
    return lags, tuple(float(e) for e in effects), float(base)


def two_dependency_data(batch, T, seed=None, lags=LAGS, effects=EFFECTS, base=BASE):
    """-> x (B, T) int64 inputs, y (B, T) int64 targets, p (B, T) the probabilities of y = 1."""
    batch, T = check_int("batch", batch), check_int("T", T)
    lags, effects, base = _check_task(lags, effects, base)
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, T)) < 0.5).astype(np.int64)
    p = np.full((batch, T), base)
    for lag, effect in zip(lags, effects):
        if lag < T:                                  # X before the start counts as 0
            p[:, lag:] += effect * x[:, :T - lag]
    y = (rng.random((batch, T)) < p).astype(np.int64)
    return x, y, p


def dependency_floors(lags=LAGS, effects=EFFECTS, base=BASE) -> Floors:
    """The three cross-entropy floors (nats), exactly, by enumerating the input cases."""
    _, (e1, e2), base = _check_task(lags, effects, base)
    p = {(a, b): base + e1 * a + e2 * b for a, b in itertools.product((0, 1), repeat=2)}
    nothing = bernoulli_entropy(np.mean(list(p.values())))
    first = np.mean([bernoulli_entropy((p[a, 0] + p[a, 1]) / 2) for a in (0, 1)])
    both = np.mean([bernoulli_entropy(v) for v in p.values()])
    return Floors(float(nothing), float(first), float(both))


def monte_carlo_floors(n, seed=0, lags=LAGS, effects=EFFECTS, base=BASE):
    """The same floors estimated from n sampled steps: the mean log-loss of the three exact
    predictors (E[p], E[p | first input], p) -> (Floors of means, Floors of standard errors)."""
    n = check_int("n", n)
    _, (e1, e2), base = _check_task(lags, effects, base)
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) < 0.5, rng.random(n) < 0.5       # X_{t-lag1}, X_{t-lag2}
    p = base + e1 * a + e2 * b
    y = rng.random(n) < p
    means, errs = [], []
    for q in (np.full(n, base + (e1 + e2) / 2), base + e1 * a + e2 / 2, p):
        loss = -np.log(np.where(y, q, 1 - q))
        means.append(float(loss.mean()))
        errs.append(float(loss.std(ddof=1) / np.sqrt(n)))
    return Floors(*means), Floors(*errs)


@dataclass
class TwoDependencyRun:
    """One training run on the task."""
    cell: str
    hidden: int
    k1: int
    k2: int
    steps: int                     # time steps of training data per sequence
    test_ce: float                 # nats per step on fresh data (steps t >= max lag)
    train_ce: np.ndarray           # mean training loss of each stretch (one per progress tick)
    seen: np.ndarray               # time steps seen per sequence at the end of each stretch
    memory: dict                   # memory_probe after training: {lag: read-out accuracy}
    model: object = field(repr=False, default=None)


def train_two_dependency(k2, hidden=16, k1=None, cell="rnn_tanh", steps=20000, batch=32,
                         lr=0.01, seed=0, backend="numpy", stretch=200, eval_batch=64,
                         eval_steps=1000, progress=None):
    """Train LanguageModel(vocab 2, embedding 2, one `cell` layer of `hidden` units) with
    truncated BPTT (k1, k2) (k1=None: k1 = k2, chunks) and Adam(lr) on `batch` streams of
    `steps` time steps, fed to Engine.step_truncated in stretches of about `stretch` steps
    (a multiple of k1; the state carried across). progress(n) is called with the time steps
    done after each stretch. -> TwoDependencyRun with the cross-entropy on `eval_batch` fresh
    streams of `eval_steps` steps, and how well the trained state holds X_{t-3} and X_{t-8}
    (memory_probe)."""
    from ..train.engine import Engine
    k2 = check_int("k2", k2)
    k1 = k2 if k1 is None else check_int("k1", k1)
    steps, stretch = check_int("steps", steps), check_int("stretch", stretch)
    stretch = max(k1, stretch - stretch % k1)            # windows never straddle two calls
    model = task_model(hidden, cell, seed, backend)
    engine = Engine(model, optimizer="adam", lr=lr, backend=backend, seed=seed)
    x, y, _ = two_dependency_data(batch, steps, seed=seed + 1)
    state, train_ce, seen = None, [], []
    for a in range(0, steps, stretch):
        losses, state = engine.step_truncated(x[:, a:a + stretch], y[:, a:a + stretch], k1, k2,
                                              state)
        train_ce.append(float(np.mean(losses)))
        seen.append(min(a + stretch, steps))
        if progress is not None:
            progress(seen[-1] - a)
    ce = cross_entropy_on_task(model, eval_batch, eval_steps, seed=seed + 2, backend=backend)
    memory = memory_probe(model, seed=seed + 3)
    return TwoDependencyRun(model.cell, hidden, k1, k2, steps, ce, np.asarray(train_ce),
                            np.asarray(seen), memory, model)


def task_model(hidden=16, cell="rnn_tanh", seed=0, backend="numpy"):
    """The model train_two_dependency trains, untrained: LanguageModel(vocabulary 2,
    embedding 2, one `cell` layer of `hidden` units), float64."""
    from ..nn.models import LanguageModel
    return LanguageModel(2, 2, check_int("hidden", hidden), cell=cell, num_layers=1, seed=seed,
                         backend=backend)


def memory_probe(model, lags=LAGS, batch=64, steps=1000, seed=0):
    """How well the top layer's state h_t of a LanguageModel holds the input X_{t-j}: a
    least-squares linear read-out of X_{t-j} from (h_t, 1), fitted on the first half of
    `batch` fresh task streams and scored on the second half -> {j: fraction of X_{t-j}
    predicted right} (0.5 is chance). Eval mode, state carried from zeros; the first
    max(lags) steps are left out."""
    lags = [check_int("lags", j, low=0) for j in lags]
    x, _, _ = two_dependency_data(check_int("batch", batch), check_int("steps", steps), seed=seed)
    skip = max(lags)
    if steps <= skip or batch < 2:
        raise ValueError(f"steps, batch: expected steps > max(lags) = {skip} and batch >= 2, "
                         f"got steps={steps}, batch={batch}")
    was = model.training
    model.eval()
    try:
        with model.rnn.preserve_record():
            h, _ = model.rnn.forward(model.embed(x))                   # (B, T, H) batch first
    finally:
        model.train(was)
    feats = np.concatenate([h[:, skip:], np.ones(h[:, skip:].shape[:2] + (1,))], axis=-1)
    half = batch // 2
    fit, test = feats[:half].reshape(-1, feats.shape[-1]), feats[half:].reshape(-1, feats.shape[-1])
    result = {}
    for j in lags:
        target = x[:, skip - j:steps - j].astype(np.float64)           # X_{t-j} for t >= skip
        w, *_ = np.linalg.lstsq(fit, target[:half].reshape(-1), rcond=None)
        result[j] = float(np.mean((test @ w > 0.5) == (target[half:].reshape(-1) > 0.5)))
    return result


def cross_entropy_on_task(model, batch=64, steps=1000, seed=0, backend=None, chunk=250):
    """The model's mean cross-entropy (nats) on fresh task data, eval mode, state carried from
    zeros through the whole stream; steps before the longest lag are left out (their
    dependency reaches before the start)."""
    from ..nn.losses import log_softmax
    x, y, _ = two_dependency_data(check_int("batch", batch), check_int("steps", steps), seed=seed)
    state, total = None, []
    was = model.training
    model.eval()
    try:
        with model.using_backend(backend or model.backend):
            for a in range(0, steps, chunk):
                logits, state = model.forward(x[:, a:a + chunk], state)          # (B, n, 2)
                lp = log_softmax(logits, axis=-1)
                total.append(-np.take_along_axis(lp, y[:, a:a + chunk, None], axis=-1)[..., 0])
    finally:
        model.train(was)
    nll = np.concatenate(total, axis=1)[:, max(LAGS):]
    return float(nll.mean())


__all__ = ["LAGS", "EFFECTS", "BASE", "Floors", "bernoulli_entropy", "two_dependency_data",
           "dependency_floors", "monte_carlo_floors", "TwoDependencyRun", "train_two_dependency",
           "task_model", "memory_probe", "cross_entropy_on_task"]
