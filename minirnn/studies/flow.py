"""Gradient flow through time, measured by the engine's own BPTT.

    flow = minirnn.studies.gradient_flow(minirnn.LSTM(8, 64), x)
    flow.dh_norm[k]      # (T,) ||dL/dh_t|| for layer-direction k = layer * D + d
    flow.jac_sigma[d]    # (T, B) largest singular value of dh_T/dh_t, last layer, direction d
    decay_rate(flow.norms_by_distance())   # the per-step factor: < 1 vanishing, > 1 exploding

Everything comes from ``model.backward(..., return_steps=True)``: its per-step records hold
dL/dh_t (and dL/dc_t for the LSTM) for every layer and direction, so what is plotted here is
exactly what the engine computes when it trains. tests/test_study.py checks it against torch
autograd with retain_grad on every step.

Time index: every per-step array here is in the sequence's own time order (the reverse
direction's records are mapped back from its processing order), t = 0 .. T-1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._checks import reverse_padded, to_numpy

LOSSES = ("last", "all")
# a fitted rate per step within this band is "stable": 0.9996 is not vanishing in any sense a
# learner cares about (after 200 steps it still keeps 92% of the gradient)
STABLE_BAND = (0.99, 1.01)


@dataclass
class GradientFlow:
    """Per-step gradients of one loss, per layer-direction k = layer * num_directions + d."""
    mode: str                         # the registry's cell name: "rnn_tanh", "lstm", "gru", ...
    num_layers: int
    num_directions: int
    loss: str
    lengths: Optional[np.ndarray]     # (B,) or None
    d_out: np.ndarray                 # dL/d(out): the loss's projection, in the model's layout
    dh: list                          # [L*D] (T, B, P) dL/dh_t, time order
    dc: Optional[list]                # [L*D] (T, B, H) dL/dc_t (LSTM), else None
    dh_norm: list                     # [L*D] (T,) Frobenius norm over batch and units
    dc_norm: Optional[list]           # [L*D] (T,) or None
    jac: Optional[list]               # [D] (T, B, P, P) d h_final / d h_t, last layer, [t, b, j, i]
    jac_norm: Optional[list]          # [D] (T, B) Frobenius norms of jac
    jac_sigma: Optional[list]         # [D] (T, B) largest singular values of jac

    @property
    def T(self):
        return self.dh[0].shape[0]

    def index(self, layer=-1, direction=0):
        layer = layer % self.num_layers
        if not 0 <= direction < self.num_directions:
            raise ValueError(f"direction: expected 0..{self.num_directions - 1}, got {direction}")
        return layer * self.num_directions + direction

    def norms_by_distance(self, layer=-1, direction=0, state="h"):
        """||dL/dh_t|| (state="h") or ||dL/dc_t|| ("c") ordered by distance from the loss:
        element s is s steps before the last step, the one loss="last" reads (direction 0)."""
        if state not in ("h", "c") or (state == "c" and self.dc_norm is None):
            raise ValueError(f"state: expected 'h'{' or c' if self.dc_norm else ''}, got {state!r}")
        norms = (self.dh_norm if state == "h" else self.dc_norm)[self.index(layer, direction)]
        return norms[::-1].copy()


def gradient_flow(model, x, hx=None, lengths=None, loss="last", jacobians=True, seed=0):
    """Per-step gradient norms of a loss, by the model's own BPTT -> GradientFlow.

    loss="last": L = sum_b u_b . y_b, y_b = the model's output at sequence b's last step
    (T-1, or lengths[b]-1), u_b a random unit vector (seeded); loss="all": a random
    projection of every output step. jacobians=True also computes dh_final/dh_t for each
    direction of the last layer (h_final = that direction's entry of h_n): one forward and one
    backward of the batch repeated P times, basis vector j of h_final on copy j.

    Dropout is off (eval mode) while measuring; the model's training flag and gradients are
    restored afterwards.
    """
    from ..nn.recurrent import RNNBase
    if not isinstance(model, RNNBase):
        raise TypeError(f"model: expected minirnn.RNN, LSTM or GRU, got {type(model).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    grads_before = {name: g.copy() for name, _, g in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        with model.preserve_record():                 # the caller's next backward() is intact
            return _measure(model, x, hx, lengths, loss, jacobians, seed)
    finally:
        for name, _, g in model.named_parameters():
            g[...] = grads_before[name]
        model.train(was_training)


def _measure(model, x, hx, lengths, loss, jacobians, seed):
    has_c = model.spec.has_cell_state
    x = to_numpy(x)
    out = _forward(model, x, hx, lengths)[0]
    rec = model.last_forward                                  # lengths validated there
    B = rec.caches[0].x.shape[1]
    y = model.to_time_major(out, rec.unbatched)               # (T, B, D*P)
    T = y.shape[0]
    rng = np.random.default_rng(seed)
    d_y = np.zeros_like(y)
    if loss == "last":
        last = np.full(B, T - 1) if rec.lengths is None else rec.lengths - 1
        u = rng.standard_normal((B, y.shape[2]))
        d_y[last, np.arange(B)] = u / np.linalg.norm(u, axis=1, keepdims=True)
    else:
        d_y[...] = rng.standard_normal(y.shape)
        if rec.lengths is not None:                           # padded outputs are constants
            d_y *= (np.arange(T)[:, None] < rec.lengths[None, :])[..., None]
    d_out = model.from_time_major(d_y, rec.unbatched)
    steps = _backward(model, d_out, None)
    lengths_v = rec.lengths
    dh = [_time_order(s.dh, k % model.num_directions, lengths_v) for k, s in enumerate(steps)]
    dc = ([_time_order(s.dc, k % model.num_directions, lengths_v) for k, s in enumerate(steps)]
          if has_c else None)
    norm = lambda a: np.sqrt(np.einsum("tbh,tbh->t", a, a))  # noqa: E731
    dh_norm, dc_norm = [norm(a) for a in dh], None if dc is None else [norm(a) for a in dc]
    jac = jac_norm = jac_sigma = None
    if jacobians:
        jac = _jacobians(model, x, hx, rec, B)
        jac_norm = [np.sqrt(np.einsum("tbji,tbji->tb", J, J)) for J in jac]
        jac_sigma = [np.linalg.svd(J, compute_uv=False)[..., 0] for J in jac]
    return GradientFlow(model.mode, model.num_layers, model.num_directions, loss, lengths_v,
                        d_out, dh, dc, dh_norm, dc_norm, jac, jac_norm, jac_sigma)


def _forward(model, x, hx, lengths):
    """-> out, h_n, c_n (None without a cell state), whatever the cell."""
    out, state = model.forward_state(x, model.state_tuple(hx), lengths=lengths)
    return out, state[0], (state[1] if len(state) > 1 else None)


def _backward(model, d_out, d_h_n):
    """Only h_n's gradient is seeded; -> the per-step records."""
    extra = (None,) * (len(model.spec.state_names) - 1)
    return model.backward_state(d_out, (d_h_n, *extra), return_steps=True)[2]


def _time_order(a, direction, lengths):
    """The reverse direction records steps in processing order; map them to time order."""
    return reverse_padded(a, lengths) if direction else np.asarray(a)


def _jacobians(model, x, hx, rec, B):
    """dh_final/dh_t for each direction of the last layer, every t and sample -> [D] (T, B, P, P).

    The batch is repeated P times (copy j = samples j*B .. j*B+B-1) and copy j backpropagates
    the basis vector e_j from h_final: the per-step dh of copy j is then row j of every
    Jacobian, so one backward gives all of them. The two directions of a layer never mix in
    its own backward, so both are seeded at once.
    """
    P, D, L = model.out_size, model.num_directions, model.num_layers
    bx = model.to_time_major(x, rec.unbatched)      # (T, B, I)
    xr = np.tile(bx, (1, P, 1))                                                # (T, P*B, I)
    xr = xr.transpose(1, 0, 2) if model.batch_first else xr
    hxr = None
    if hx is not None:
        states = [np.tile(np.asarray(to_numpy(s), dtype=model.dtype).reshape(L * D, B, -1),
                          (1, P, 1)) for s in model.state_tuple(hx)]
        hxr = tuple(states)
    lr = None if rec.lengths is None else np.tile(rec.lengths, P)
    _, state_n = model.forward_state(xr, hxr, lengths=lr)
    h_n = state_n[0]
    T = bx.shape[0]
    d_h_n = np.zeros_like(h_n)                                                 # (L*D, P*B, P)
    rows = np.arange(P * B)
    for d in range(D):
        d_h_n[(L - 1) * D + d, rows, rows // B] = 1.0
    d_out = np.zeros((P * B, T, D * P) if model.batch_first else (T, P * B, D * P), model.dtype)
    steps = _backward(model, d_out, d_h_n)
    jac = []
    for d in range(D):
        dh = _time_order(steps[(L - 1) * D + d].dh, d, lr)                    # (T, P*B, P)
        jac.append(np.ascontiguousarray(dh.reshape(T, P, B, P).transpose(0, 2, 1, 3)))
    return jac


def decay_rate(norms, distances=None):
    """Fitted per-step factor of a gradient norm: exp(slope) of the least-squares line through
    (distance, log norm). norms[s] is the norm s steps from the loss unless distances says
    otherwise. < 1: vanishing, > 1: exploding. Zero (underflowed or dead-ReLU) and non-finite
    norms are left out of the fit; with fewer than two left the rate is NaN."""
    norms = np.asarray(to_numpy(norms), dtype=np.float64).reshape(-1)
    dist = np.arange(norms.size, dtype=np.float64) if distances is None else \
        np.asarray(to_numpy(distances), dtype=np.float64).reshape(-1)
    if dist.shape != norms.shape:
        raise ValueError(f"distances: expected one per norm, shape {norms.shape}, got {dist.shape}")
    if np.any(norms < 0):
        raise ValueError("norms: expected non-negative norms, got a negative value")
    keep = np.isfinite(norms) & (norms > 0) & np.isfinite(dist)
    if keep.sum() < 2 or np.ptp(dist[keep]) == 0:
        return float("nan")
    slope = np.polyfit(dist[keep], np.log(norms[keep]), 1)[0]
    return float(np.exp(slope))


def behaviour(rate):
    """A fitted rate per step -> "vanishing" (below STABLE_BAND), "stable" (within it,
    bounds included), "exploding" (above it) or "nan"."""
    lo, hi = STABLE_BAND
    rate = float(rate)
    if not np.isfinite(rate):
        return "nan"
    return "vanishing" if rate < lo else "exploding" if rate > hi else "stable"


def band_text():
    """The band in words, for legends and tables."""
    lo, hi = STABLE_BAND
    return f"stable: {lo:g} to {hi:g} (vanishing below, exploding above)"


def scale_recurrent(model, scale):
    """Multiply every recurrent weight W_hh (weight_hh_l*, all four gate blocks of an LSTM)
    by `scale`, in place; nothing else changes. With torch's uniform(-1/sqrt(H), 1/sqrt(H))
    init an Elman W_hh has spectral radius about scale / sqrt(3) (circular law): the knob of
    the vanishing/exploding picture."""
    for name, p, _ in model.named_parameters():
        if name.startswith("weight_hh"):
            p *= scale
    return model


def exploding_demo(cell="rnn_relu", weight_scale=4.0, T=40, hidden=32, input_size=4, batch=8,
                   steps=20, lr=0.05, max_norm=1.0, seed=0, backend="numpy"):
    """Exploding gradients, and global-norm clipping (minirnn.clip_grad_norm) taming them.

    A `cell` network (scale_recurrent by `weight_scale`) regresses its final state h_T onto a
    random target, loss = mean over the batch of ||h_T - y||^2 / 2, trained by plain SGD
    (p -= lr * grad) twice from the same weights: without and with clipping to `max_norm`.
    Returns a dict of plain numbers: the fitted per-step gradient factor at scale 1 and at
    `weight_scale` (gradient_flow + decay_rate), and per run the loss and the global gradient
    norm (before clipping) at every step, and whether everything stayed finite.
    """
    from ..nn import make_recurrent
    from ..train.optim import clip_grad_norm          # the one clipping function (global norm)

    def build(scale):
        m = make_recurrent(cell, input_size, hidden, seed=seed, backend=backend)
        return scale_recurrent(m, scale)

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, batch, input_size))                  # (T, B, I)
    y = rng.standard_normal((batch, hidden))                          # (B, H)
    rates = {}
    for scale in sorted({1.0, float(weight_scale)}):
        flow = gradient_flow(build(scale), x, jacobians=False, seed=seed)
        rates[scale] = decay_rate(flow.norms_by_distance())
    runs = {}
    for name, clip in (("no_clip", False), ("clip", True)):
        model = build(weight_scale)
        losses, norms = [], []
        with np.errstate(all="ignore"):                               # inf/nan is the point
            for _ in range(steps):
                out, h_n = _forward(model, x, None, None)[:2]
                diff = h_n[-1] - y                                    # (B, H)
                losses.append(float(0.5 * np.sum(diff * diff) / batch))
                model.zero_grad()
                d_h_n = np.zeros_like(h_n)
                d_h_n[-1] = diff / batch
                _backward(model, np.zeros_like(out), d_h_n)
                sq = sum(float(np.sum(g * g)) for _, _, g in model.named_parameters())
                norms.append(float(np.sqrt(sq)))
                if not (np.isfinite(losses[-1]) and np.isfinite(norms[-1])):
                    break                                             # diverged: nothing to learn
                if clip:
                    clip_grad_norm(model, max_norm)
                for _, p, g in model.named_parameters():
                    p -= lr * g
        finite = bool(np.all(np.isfinite(losses)) and np.all(np.isfinite(norms)))
        runs[name] = {"loss": losses, "grad_norm": norms, "finite": finite}
    return {"cell": cell, "weight_scale": float(weight_scale), "T": T, "hidden": hidden,
            "steps": steps, "lr": lr, "max_norm": max_norm,
            "rate_by_scale": rates, "runs": runs}


__all__ = ["GradientFlow", "gradient_flow", "decay_rate", "scale_recurrent", "exploding_demo",
           "LOSSES", "STABLE_BAND", "behaviour", "band_text"]
