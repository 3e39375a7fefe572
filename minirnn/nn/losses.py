"""log_softmax, NLL and cross-entropy with torch's semantics; each returns its gradient too.

    loss, dlogits = cross_entropy(logits (N, C), targets (N,), weight=None, ignore_index=-100)

Weighted mean, as torch: sum_n w[y_n] * (-log p[n, y_n]) / sum_n w[y_n] over non-ignored n.
"""
from __future__ import annotations

import numpy as np

from .._checks import to_numpy


def log_softmax(z, axis=-1):
    """Stable: subtract the max before exponentiating, so exp never overflows."""
    z = np.asarray(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _check(logp, targets, weight, ignore_index, name="logp"):
    logp = to_numpy(logp)
    if logp.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {logp.dtype}")
    if logp.ndim != 2:
        raise ValueError(f"{name}: expected shape (N, C), got {logp.shape}")
    N, C = logp.shape
    t = to_numpy(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integer class ids, got dtype {t.dtype}")
    if t.shape != (N,):
        raise ValueError(f"targets: expected shape ({N},), got {t.shape}")
    used = t != ignore_index
    if used.any() and (t[used].min() < 0 or t[used].max() >= C):
        raise ValueError(f"targets: expected class ids in [0, {C}) (or ignore_index={ignore_index}), "
                         f"got min {t[used].min()}, max {t[used].max()}")
    w = np.ones(C, dtype=logp.dtype) if weight is None else np.asarray(weight, dtype=logp.dtype)
    if w.shape != (C,):
        raise ValueError(f"weight: expected one weight per class, shape ({C},), got {w.shape}")
    safe_t = np.where(used, t, 0)
    w_n = w[safe_t] * used                                # (N,) weight of each target, 0 if ignored
    return logp, safe_t, w_n


def nll_loss(logp, targets, weight=None, ignore_index=-100, reduction="mean", _name="logp"):
    """-> (loss, dlogp). reduction: 'mean' (weighted, as torch) or 'sum'."""
    logp, t, w_n = _check(logp, targets, weight, ignore_index, _name)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    rows = np.arange(len(t))
    denom = w_n.sum() if reduction == "mean" else 1.0
    if denom == 0:                                        # every target ignored: torch gives nan
        return float("nan"), np.zeros_like(logp)
    loss = -(w_n * logp[rows, t]).sum() / denom
    dlogp = np.zeros_like(logp)
    dlogp[rows, t] = -w_n / denom
    return float(loss), dlogp


def cross_entropy(logits, targets, weight=None, ignore_index=-100, reduction="mean"):
    """log_softmax then NLL -> (loss, dlogits); dlogits = (softmax - onehot) * w / denom."""
    logits = to_numpy(logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"logits: expected a floating-point array, got dtype {logits.dtype}")
    logp = log_softmax(logits, axis=-1)
    loss, dlogp = nll_loss(logp, targets, weight, ignore_index, reduction, _name="logits")
    # backward of log_softmax: dz = dlogp - softmax * sum(dlogp)
    dlogits = dlogp - np.exp(logp) * dlogp.sum(axis=-1, keepdims=True)
    return loss, dlogits
