"""RTRL's cases: the configurations (every registry cell, the LSTM with and without a
projection), random weights and states in the registry's names, models and data in every
layout, and a custom per-step loss. Used by tests/grad/test_rtrl.py and
tests/grad/test_rtrl_online.py."""
from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from minirnn.cells import BUILTIN

SETTINGS = settings(max_examples=12, deadline=None)
RTOL = 1e-12
# (cell, proj_size): every registry cell, the LSTM with and without a projection
CONFIGS = [(c, 0) for c in BUILTIN] + [("lstm", 2)]
seeds = st.integers(0, 2**31 - 1)


def random_params(rng, spec, I, H, P, bias):
    """Fresh random weights in the registry's names (missing optional ones as None)."""
    G, P = spec.gates, P or H
    p = {"weight_ih": rng.standard_normal((G * H, I)) * 0.6,
         "weight_hh": rng.standard_normal((G * H, P)) * 0.6,
         "bias_ih": rng.standard_normal(G * H) * 0.5 if bias else None,
         "bias_hh": rng.standard_normal(G * H) * 0.5 if bias else None}
    if spec.extra_params:
        p["weight_hr"] = rng.standard_normal((P, H)) * 0.6 if P != H else None
    return p


def random_state(rng, spec, B, H, P):
    sizes = {"h": P or H, "c": H}
    return tuple(rng.standard_normal((B, sizes[n])) * 0.8 for n in spec.state_names)


def make_model(cell, proj, I, H, bias, layout, backend, seed, dtype="float64"):
    from minirnn.nn import make_recurrent
    kw = dict(bias=bias, batch_first=layout == "batch_first", dtype=dtype, seed=seed,
              backend=backend)
    if proj:
        kw["proj_size"] = proj
    return make_recurrent(cell, I, H, **kw)


def make_data(rng, model, T, B, layout, ragged):
    """x, target in the model's layout; a state tuple of (B, size) (or (size,)); lengths."""
    I, P, H = model.input_size, model.out_size, model.hidden_size
    shape = {"time_major": (T, B), "batch_first": (B, T), "unbatched": (T,)}[layout]
    x = rng.standard_normal(shape + (I,))
    target = rng.standard_normal(shape + (P,))
    lead = () if layout == "unbatched" else (B,)
    state = tuple(rng.standard_normal(lead + ((P if n == "h" else H),)) * 0.8
                  for n in model.spec.state_names)
    lengths = None
    if ragged and layout != "unbatched" and B > 1:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
    return x, target, state, lengths


def cubic_loss(out_t, y_t):
    """A custom per-step loss: Σ (out - y)^3 / 3, gradient (out - y)^2."""
    d = out_t - y_t
    return float(np.sum(d ** 3) / 3.0), d * d
