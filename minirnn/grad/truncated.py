"""Truncated BPTT (k1, k2) (Williams & Peng 1990, their BPTT(h; h') with h = k2, h' = k1):
the gradient it uses, and how far that is from the full gradient.

The schedule, over a sequence of T steps with a loss L_t at every step:

    cut the sequence into chunks of k1 steps, s .. e (the last one may be shorter);
    after each chunk, backpropagate its losses L_s .. L_e through the window that starts
    k2 - k1 steps before the chunk, w = max(0, s - (k2 - k1)) .. e (k2 >= k1);
    the state entering the window is a constant: its value is carried, its gradient cut.

So the loss at position j (0-based) of its chunk reaches back over the lags
t - tau = 0 .. j + k2 - k1 (tau: the step whose use of the parameters is differentiated),
the same in every chunk. The usual forms:

    k1 = k2 = k   chunks of k steps, the state carried from one chunk into the next
                  (Engine.step_lm on chunks); L_t at chunk position j sees lags 0..j only
    k1 = 1, k2 = k   every loss sees exactly its last k steps: the sum over lags < k of
                  minirnn.grad.gradient_by_lag (tests/studies/test_study_truncated.py checks it)
    k1 >= T (one chunk), or k2 >= T + k1 - 1 (every window starts at step 0; k1 = 1,
                  k2 >= T is one case): full BPTT

The truncated gradient at fixed parameters is the sum of the windows' gradients: what one
pass of TBPTT would apply if it updated only at the end. `Engine.step_truncated` trains with
the same schedule, one update per window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_float_array, check_fits, check_int
from ._common import check_forward_model, collect, measuring, time_major_pair


def tbptt_windows(T, k1, k2=None):
    """The schedule above -> [(w, s, e)]: window start, first step whose loss counts, last
    step (inclusive), in order. w <= s <= e; the chunks s..e tile 0..T-1."""
    T = check_int("T", T)
    k1 = check_int("k1", k1)
    k2 = k1 if k2 is None else check_int("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2: expected k2 >= k1 = {k1} (each window backpropagates the losses "
                         f"of the last k1 steps through k2 steps), got {k2}")
    # a list of -(-T // k1) tuples of three ints, about 150 bytes each in CPython
    check_fits("T", -(-T // k1) * 150, f"the schedule's {-(-T // k1)} windows")
    windows, s = [], 0
    while s < T:
        e = min(s + k1, T) - 1
        windows.append((max(0, s - (k2 - k1)), s, e))
        s = e + 1
    return windows


def truncated_gradient(model, x, d_out, k1, k2=None, state=None):
    """The gradient that truncated BPTT (k1, k2) uses, at the model's current parameters.

    model: a unidirectional minirnn.RNN / LSTM / GRU (any layers); x: its input (user layout);
    d_out: dL/d(out) at every step (the shape of its output; a loss L = sum_t L_t(out_t) has
    these at fixed parameters, whatever the truncation); state: the initial state tuple per
    model.spec.state_names (None: zeros). Returns {parameter name: gradient}, keyed like
    model.grads, which are left as they were (eval mode while measuring: no dropout)."""
    check_forward_model(model)
    x_tm, d_tm = time_major_pair(model, x, d_out)
    T, B = x_tm.shape[:2]
    windows = tbptt_windows(T, k1, k2)
    with measuring(model):
        entering = _states_entering(model, x_tm, state, sorted({w for w, _, _ in windows}))
        for w, s, e in windows:
            model.forward_state(model.from_time_major(x_tm[w:e + 1]), entering[w])
            d = np.zeros((e - w + 1,) + d_tm.shape[1:], dtype=model.dtype)
            d[s - w:] = d_tm[s:e + 1]                  # only the losses of this update count
            model.backward_state(model.from_time_major(d), None)   # the entering state: cut
        return collect(model)


def _states_entering(model, x_tm, state, starts):
    """{w: the state entering step w} for the sorted window starts, by one forward pass cut at
    the starts (the values are those of the uncut pass)."""
    entering, st, prev = {}, state, 0
    for w in starts:
        if w > prev:
            _, st = model.forward_state(model.from_time_major(x_tm[prev:w]), st)
        entering[w], prev = st, w
    return entering


def full_gradient(model, x, d_out, state=None):
    """The full BPTT gradient of the same loss, {name: gradient}, measured like
    truncated_gradient (the caller's gradients and record untouched)."""
    check_forward_model(model)
    x_tm, d_tm = time_major_pair(model, x, d_out)
    with measuring(model):
        model.forward_state(model.from_time_major(x_tm), state)
        model.backward_state(model.from_time_major(d_tm), None)
        return collect(model)


def gradient_agreement(grads, reference):
    """Two gradients as {name: array} (the same names) -> (cosine similarity, relative error
    ||g - g_ref|| / ||g_ref||), over all parameters concatenated."""
    for name, value in (("grads", grads), ("reference", reference)):
        if not isinstance(value, dict):
            raise TypeError(f"{name}: expected a dict of name -> array, got "
                            f"{type(value).__name__}")
    if not reference:
        raise ValueError("reference: expected at least one parameter's gradient, got none")
    if set(grads) != set(reference):
        raise ValueError(f"grads: expected the parameters {sorted(reference)}, got {sorted(grads)}")
    for n in reference:
        ref = as_float_array(f"reference[{n!r}]", reference[n], np.float64)
        got = as_float_array(f"grads[{n!r}]", grads[n], np.float64)
        if got.shape != ref.shape:
            raise ValueError(f"grads[{n!r}]: expected shape {ref.shape} (the reference's), got "
                             f"{got.shape}")
    g = np.concatenate([np.ravel(grads[n]) for n in sorted(reference)]).astype(np.float64)
    r = np.concatenate([np.ravel(reference[n]) for n in sorted(reference)]).astype(np.float64)
    ng, nr = np.linalg.norm(g), np.linalg.norm(r)
    cos = float(g @ r / (ng * nr)) if ng > 0 and nr > 0 else float("nan")
    rel = float(np.linalg.norm(g - r) / nr) if nr > 0 else float("nan")
    return cos, rel


@dataclass
class TruncationBias:
    """How far the truncated gradient is from the full one, per truncation length k2."""
    k2: np.ndarray                # (n,) the truncation lengths measured
    k1: object                    # the k1 used: an int, or "k2" (k1 = k2: chunks)
    cosine: np.ndarray            # (n,) cosine similarity with the full gradient
    rel_error: np.ndarray         # (n,) ||g_k - g|| / ||g||
    param_rel_error: dict         # name -> (n,) the same per parameter


def truncation_bias(model, x, d_out, lengths, k1=None, state=None):
    """truncated_gradient against the full BPTT gradient for each truncation length k2 in
    `lengths`; k1=None: k1 = k2 (chunks), else a fixed k1 (k1 = 1: every loss sees exactly
    k2 steps; a k2 below that k1 is refused). -> TruncationBias."""
    items = np.atleast_1d(lengths).tolist() if isinstance(lengths, np.ndarray) else \
        list(lengths) if isinstance(lengths, (list, tuple, range)) else [lengths]
    lengths = [check_int("lengths", k) for k in items]
    if not lengths:
        raise ValueError("lengths: expected at least one truncation length, got none")
    k1 = None if k1 is None else check_int("k1", k1)
    full = full_gradient(model, x, d_out, state)
    cos, rel, per = [], [], {n: [] for n in full}
    for k in lengths:
        g = truncated_gradient(model, x, d_out, k if k1 is None else k1, k, state)
        c, r = gradient_agreement(g, full)
        cos.append(c)
        rel.append(r)
        for n in full:
            nf = np.linalg.norm(full[n])
            per[n].append(float(np.linalg.norm(g[n] - full[n]) / nf) if nf > 0 else float("nan"))
    return TruncationBias(np.asarray(lengths), "k2" if k1 is None else k1, np.asarray(cos),
                          np.asarray(rel), {n: np.asarray(v) for n, v in per.items()})


__all__ = ["tbptt_windows", "truncated_gradient", "full_gradient", "gradient_agreement",
           "TruncationBias", "truncation_bias"]
