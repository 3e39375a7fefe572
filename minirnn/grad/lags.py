"""The gradient by time lag (Pascanu, Mikolov & Bengio 2013, eq. 3-5).

For a loss L = sum_t L_t(out_t) and the parameters theta of a recurrent model,

    dL/dtheta = sum_t sum_{tau <= t} dL_t/ds_t  ds_t/ds_tau  d+s_tau/dtheta

where d+s_tau/dtheta is the "immediate" derivative of step tau (its own use of theta, the
state entering it held fixed) and ds_t/ds_tau the product of the step Jacobians in between.
Grouping the terms by the lag k = t - tau gives the parts g_k, with sum_k g_k = dL/dtheta:
g_0 is what a network with no memory of its gradient would learn from, g_k for large k is the
long-range credit that vanishes or explodes.

How it is computed, exactly and with the engine's own code (any cell, any layers, either
backend): let A_k(tau) = the part of dL/ds_tau that comes from the loss at t = tau + k. Then

    A_0(tau)   = the loss's own gradient at step tau (dL/d out_tau)
    A_k(tau)   = vjp of step tau+1 applied to A_{k-1}(tau+1)
    g_k        = sum_tau (immediate gradient of step tau, seeded with A_k(tau))

All T steps sit side by side as one batch of T*B rows (row tau*B + b holds x_tau and the state
entering step tau), so one one-step forward serves every lag, and lag k is one one-step
backward of that batch: the module's backward_state returns the vjp into the entering state
(the next lag's adjoint, shifted by one step) and accumulates the immediate gradients summed
over the rows, which is g_k. T backward calls in all; memory T * |theta| for the parts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_int
from ._common import (check_forward_model, collect, measuring, states_in_record,
                      time_major_pair)


@dataclass
class LagGradient:
    """The gradient split by lag k = t - tau."""
    parts: dict                   # name -> (K, *shape): lag k's part, k = 0 .. K-1
    complete: bool                # True: every lag of the sequence is in (K = T), sum = gradient

    @property
    def lags(self):
        return np.arange(len(next(iter(self.parts.values()))))

    def total(self):
        """{name: sum over lags}: the full BPTT gradient when complete."""
        return {n: p.sum(axis=0) for n, p in self.parts.items()}

    def param_norms(self):
        """{name: (K,)} the Frobenius norm of each parameter's part per lag."""
        return {n: np.sqrt(np.sum(p.reshape(len(p), -1) ** 2, axis=1))
                for n, p in self.parts.items()}

    def norms(self, names=None):
        """(K,) the norm of each lag's part over the parameters `names` (None: all)."""
        names = list(self.parts) if names is None else list(names)
        return np.sqrt(sum(v ** 2 for n, v in self.param_norms().items() if n in names))

    def cumulative(self):
        """{name: (K, *shape)}: the sum of the parts of lags 0..k, which is the gradient that
        truncated BPTT with k1 = 1, k2 = k + 1 uses."""
        return {n: np.cumsum(p, axis=0) for n, p in self.parts.items()}


def gradient_by_lag(model, x, d_out, state=None, max_lag=None):
    """dL/dtheta of a unidirectional minirnn.RNN / LSTM / GRU split by time lag -> LagGradient.

    x: the input (user layout); d_out: dL/d(out) at every step (forward's output shape);
    state: the initial state tuple per model.spec.state_names (None: zeros); max_lag: compute
    lags 0..max_lag only (None: all, 0..T-1, and then the parts sum to the gradient).
    The model's gradients and forward record are left as they were; dropout is off."""
    check_forward_model(model)
    x_tm, d_tm = time_major_pair(model, x, d_out)
    T, B = x_tm.shape[:2]
    K = T if max_lag is None else min(check_int("max_lag", max_lag, low=0) + 1, T)
    with measuring(model):
        model.forward_state(model.from_time_major(x_tm), state)
        entering = [states_in_record(model, t - 1) for t in range(T)]   # t = 0: the initial
        rows = tuple(np.concatenate([s[j] for s in entering], axis=1)      # (L, T*B, size)
                     for j in range(len(entering[0])))
        # one step, T*B rows: row tau*B + b runs step tau of sequence b
        model.forward_state(model.from_time_major(x_tm.reshape(1, T * B, x_tm.shape[2])), rows)
        zero_out = np.zeros((1, T * B, d_tm.shape[2]), dtype=model.dtype)
        parts, adjoint = {}, None
        for k in range(K):
            model.zero_grad()
            if k == 0:                                 # the losses' own gradients, lag 0
                _, d_enter = model.backward_state(
                    model.from_time_major(d_tm.reshape(1, T * B, d_tm.shape[2])), None,
                    retain_graph=True)                 # one forward, K backwards through it
            else:
                _, d_enter = model.backward_state(model.from_time_major(zero_out), adjoint,
                                                  retain_graph=True)
            for name, g in collect(model).items():
                parts.setdefault(name, np.empty((K,) + g.shape, dtype=g.dtype))[k] = g
            # the state entering step tau+1 is the state leaving step tau: shift by one step
            adjoint = tuple(_shift_up(d, B) for d in d_enter)
    return LagGradient(parts, complete=K == T)


def language_model_lags(model, tokens, targets, state=None, max_lag=None):
    """gradient_by_lag for a minirnn.nn.models.LanguageModel's mean cross-entropy on
    tokens/targets (B, T), for its recurrent layer's parameters (the embedding and the
    read-out act at lag 0 by construction). Eval mode (no dropout); the weights and
    gradients are left as they were."""
    from ..nn.losses import cross_entropy
    from ..nn.models import LanguageModel
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model: expected a LanguageModel, got {type(model).__name__}")
    was = model.training
    model.eval()
    try:
        with model.rnn.preserve_record():
            logits, _ = model.forward(tokens, state)                 # (B, T, V)
            B, T, V = logits.shape
            x = model.embed(np.asarray(tokens))                      # (B, T, E) batch first
            _, d_logits = cross_entropy(logits.reshape(-1, V), np.asarray(targets).reshape(-1))
            d_out = d_logits.reshape(B, T, V) @ model.fc.params["weight"]   # dL/d out: (B, T, H)
            rnn_state = None if state is None else model.rnn.state_tuple(state)
            return gradient_by_lag(model.rnn, x, d_out, rnn_state, max_lag)
    finally:
        model.train(was)


def _shift_up(d, B):
    """(L, T*B, size) rows tau -> rows tau-1 (row block 0 dropped, the last block zero)."""
    out = np.zeros_like(d)
    out[:, :-B] = d[:, B:]
    return out


__all__ = ["LagGradient", "gradient_by_lag", "language_model_lags"]
