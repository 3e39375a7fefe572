"""Shared pieces of the Numba backend: the decorator, the path choice, small helpers."""
from __future__ import annotations

import numba
import numpy as np

from .._config import NUMBA_FLAGS, apply_threads

apply_threads()
jit = numba.njit(**NUMBA_FLAGS)

# Path choice, measured (fwd+bwd, T=50, float64, 2 shared cores; blas-time / loop-time):
#   B*G*H*P per step:  1k-4k: 2.1-3.6x   16k: 1.3-1.5x   65k: 0.85-1.05x   262k+: 0.5-0.9x
# The "blas" path pays Python-loop overhead per step (a BLAS call and one or two njit calls)
# but multiplies at BLAS speed; the "loop" path runs the whole time loop in one njit kernel
# with a hand-written matrix-vector product (axpy form, vectorised by LLVM without fastmath).
# The loop path wins while one step's recurrent product is below ~64k multiply-adds
# (e.g. B=1: RNN H<=181, LSTM H<=90; the tutorials' RNN H=128 and LSTM H=64).
LOOP_MAX_WORK = 1 << 15          # B * G*H * P multiply-adds per step (G = 1 RNN, 4 LSTM)


def loop_path(B, G, H, P, path=None):
    """True: run the whole sequence in one njit kernel; False: BLAS per step from Python.

    path: None (choose by size), "loop" or "blas" (forced; tests and benchmarks use it).
    """
    if path is None:
        return B * G * H * P <= LOOP_MAX_WORK
    if path not in ("loop", "blas"):
        raise ValueError(f"path: expected None, 'loop' or 'blas', got {path!r}")
    return path == "loop"


def c(a):
    """C-contiguous view or copy: every kernel is compiled for C layout only (one signature)."""
    return np.ascontiguousarray(a)


def valid_or_ones(valid, T, B):
    """An all-True mask stands in for None: np.where(True, x, ...) is x exactly, so results
    are bitwise those of the unmasked math, and each kernel has one signature per dtype."""
    return np.ones((T, B), dtype=np.bool_) if valid is None else c(np.asarray(valid, dtype=np.bool_))


@jit
def select_state(valid_t, new, prev, state_t, out_t):
    """state_t = where(valid, new, prev); out_t = where(valid, new, 0) -- all (B, N)."""
    B, N = new.shape
    for b in range(B):
        if valid_t[b]:
            for j in range(N):
                state_t[b, j] = new[b, j]
                out_t[b, j] = new[b, j]
        else:
            for j in range(N):
                state_t[b, j] = prev[b, j]
                out_t[b, j] = 0.0


@jit
def mask_grad(valid_t, d_next, d_out_t, d_t):
    """d_t = where(valid, d_next + d_out_t, 0) -- the gradient entering step t, (B, N)."""
    B, N = d_next.shape
    for b in range(B):
        if valid_t[b]:
            for j in range(N):
                d_t[b, j] = d_next[b, j] + d_out_t[b, j]
        else:
            for j in range(N):
                d_t[b, j] = 0.0


def carry(valid_t, d_prev, d_next):
    """Past a sequence's end the state is carried, so its gradient passes straight back."""
    if not valid_t.all():
        skip = ~valid_t
        d_prev[skip] += d_next[skip]
    return d_prev
