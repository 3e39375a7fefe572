"""Shared pieces of the Numba backend: the decorators, the path choice, the recurrent
matrix-vector product, and the two large-product stages every cell shares (the input
projection before the time loop, the weight gradients after it)."""
from __future__ import annotations

import hashlib
import os

import numba
import numpy as np
from numba.core import caching

from .._config import NUMBA_FLAGS, apply_threads

apply_threads()

# Numba's cache checks only the source file of the cached function, but the kernels inline
# helpers from _common.py (matvec_add, the row rules) and _vmath.py: an edit there would leave
# the cached kernels stale. So for files in this folder the cache stamp also covers those files.
_HERE = os.path.dirname(os.path.abspath(__file__))
_INLINED = [os.path.join(_HERE, f) for f in ("_common.py", "_vmath.py")]


class _InlinedStamp:
    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        digest = hashlib.sha256()
        for path in _INLINED:
            with open(path, "rb") as f:
                digest.update(f.read())
        return super().get_source_stamp(), digest.hexdigest()


try:      # numba internals: without them, kernels still cache, but by their own file only
    caching.CacheImpl._locator_classes[:0] = [
        type("_Inlined" + base.__name__, (_InlinedStamp, base), {})
        for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                     caching.UserWideCacheLocator)]
except (AttributeError, TypeError):
    pass

jit = numba.njit(**NUMBA_FLAGS)
# kernel helpers, inlined into their callers at Numba-IR level: no call, no per-call
# refcounting of array arguments, and LLVM sees the caller's loop nest whole (a called helper
# would stop it vectorising). Never compiled on their own, so nothing to cache.
ijit = numba.njit(inline="always", **{k: v for k, v in NUMBA_FLAGS.items() if k != "cache"})

# Path choice. The "blas" path pays Python overhead per step (a BLAS call and one or two njit
# calls) but multiplies at BLAS speed (and on BLAS's threads); the "loop" path runs the whole
# time loop in one njit kernel (matvec_add below, vectorised transcendentals), single-threaded.
# Measured with the vectorised loop path (fwd+bwd, T=50, I=32, one BLAS thread, medians of 7
# on 2 shared cores, so +-15% noise; blas-time / loop-time, > 1: the loop path is faster):
#   LSTM float64  B=1: 7.6 (H=16) 2.9 (64) 1.8 (128) 1.25 (256) 1.1 (384)
#                 B=4: 3.0 (16) 1.5 (32) 0.96-1.14 (64..384)
#                 B=8: 1.9 (16) 1.06 (32) 0.75-0.96 (64..384)   B=16: 1.04 (16) 0.7-0.9 above
#   LSTM float32  B=1: 12 (16) 3.5 (64) 1.9 (128) 1.5 (256) 0.86 (384);  B=4: 1.4-3.6 (16..384)
#                 B=8: 0.94-2.2;   B=16: 1.46 (16) 0.8-0.97 above
#   RNN  float64  B=1: 14 (16) 2.6 (128) 1.5 (256) 1.24 (384);  B=4: 1.1-8.6 up to 128, ~1 above
#                 B=8: 1.07-4.9;  B=16: 1.3-2.8 up to H=96, 0.8-1.0 above
# Up to 4 sequences the loop path is faster, or level within the noise (worst 0.86-0.89), at
# every size measured: one pass over W_hh a step serves them all, and both paths are bound by
# streaming W_hh. Past that BLAS's register blocking wins once a step has more than ~32k
# multiply-adds. The per-sequence cap keeps large layers (unmeasured here, and where BLAS's
# threads pay on a many-core machine) on the blas path.
LOOP_MAX_BATCH = 4               # B at most this: the loop path up to LOOP_MAX_STEP_WORK
LOOP_MAX_STEP_WORK = 1 << 18     # G*H*P multiply-adds per step and sequence (LSTM H <= 256)
LOOP_MAX_WORK = 1 << 15          # larger batches: B * G*H*P per step (G = 1 RNN, 3 GRU, 4 LSTM)


def loop_path(B, G, H, P, path=None):
    """True: run the whole sequence in one njit kernel; False: BLAS per step from Python.

    path: None (choose by size), "loop" or "blas" (forced; tests and benchmarks use it).
    """
    if path is None:
        if B <= LOOP_MAX_BATCH:
            return G * H * P <= LOOP_MAX_STEP_WORK
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


# ----------------------------------------------------------------------------
# the loop path's matrix-vector product

@ijit
def matvec_add(y, ty, x, tx, w):
    """y[ty, b] += x[tx, b] @ w for every b; y (., B, N), x (., B, K), w (K, N) C-contiguous.

    Axpy form, over four rows of w at a time: y's row is loaded and stored once per four rows
    (row by row, those loads and stores bound the loop), the inner loop runs over contiguous
    memory and touches two arrays, so LLVM vectorises it without fastmath. The b loop sits
    inside the row blocks so that four rows of w serve every sequence while they are in L1.
    Summation order: row by row, fixed, so reruns are bitwise identical.
    """
    K, N = w.shape
    B = x.shape[1]
    k = 0
    while k + 4 <= K:
        for b in range(B):
            a0, a1, a2, a3 = x[tx, b, k], x[tx, b, k + 1], x[tx, b, k + 2], x[tx, b, k + 3]
            for j in range(N):
                y[ty, b, j] = (((y[ty, b, j] + w[k, j] * a0) + w[k + 1, j] * a1)
                               + w[k + 2, j] * a2) + w[k + 3, j] * a3
        k += 4
    while k < K:
        for b in range(B):
            a0 = x[tx, b, k]
            for j in range(N):
                y[ty, b, j] += w[k, j] * a0
        k += 1


@ijit
def zero_rows(y, ty):
    """y[ty] = 0 for a (., B, N) array, without the view y[ty] would be (a view costs an NRT
    incref/decref pair, in a time loop a measurable part of a small step)."""
    zero = y.dtype.type(0.0)
    for b in range(y.shape[1]):
        for j in range(y.shape[2]):
            y[ty, b, j] = zero


@ijit
def finish_row(hx, t, b, valid, out):
    """Row b after step t of a loop-path kernel; hx (T+1, ., N) holds h_{t-1} in row t and h_t
    in row t+1. While the sequence runs out[t, b] = h_t; past its end h_t = h_{t-1} (the state
    is carried) and out[t, b] = 0. No views (a view costs an NRT incref/decref pair)."""
    N = hx.shape[2]
    if valid[t, b]:
        for j in range(N):
            out[t, b, j] = hx[t + 1, b, j]
    else:
        zero = out.dtype.type(0.0)
        for j in range(N):
            hx[t + 1, b, j] = hx[t, b, j]
            out[t, b, j] = zero


@ijit
def upstream_row(dh, t, b, dhn, d_out, valid):
    """dh[t, b] = dL/dh_t: the gradient from step t+1 (dhn[0, b]) plus d_out[t, b] while the
    sequence runs, 0 past its end (padded outputs are constants)."""
    N = dh.shape[2]
    for j in range(N):
        dh[t, b, j] = dhn[0, b, j] + d_out[t, b, j]
    if not valid[t, b]:
        zero = dh.dtype.type(0.0)
        for j in range(N):
            dh[t, b, j] = zero


@ijit
def carry_back_row(dhn, dhp, t, b, valid):
    """dhn[0, b] <- dL/dh_{t-1}: dhp[0, b] (the gradient through step t), plus dhn[0, b]
    itself where the sequence had ended (a carried state passes its gradient straight back)."""
    N = dhn.shape[2]
    if valid[t, b]:
        for j in range(N):
            dhn[0, b, j] = dhp[0, b, j]
    else:
        for j in range(N):
            dhn[0, b, j] = dhp[0, b, j] + dhn[0, b, j]


@ijit
def carry_back(dhn, dhp, t, valid):
    """carry_back_row for every row."""
    for b in range(dhn.shape[1]):
        carry_back_row(dhn, dhp, t, b, valid)


# the blas path's row-block kernels (one call per block of rows)

def transposed_product(dtype):
    """True: the blas path forms the forward's recurrent product as W_hh h_{t-1}^T, (G, B),
    and its step kernel turns it round (untranspose); False: as h_{t-1} W_hh^T, (B, G).
    Measured (OpenBLAS 0.3.31 from NumPy's wheel, SkylakeX kernels on a 2-core AMD EPYC, one
    BLAS thread, best of 15 x 50 products): float32 (B, H) = (32, 256) 286 -> 185 us,
    (64, 512) 1846 -> 1389 us, a whole forward 43 -> 36 ms (T=100 B=32 I=128 H=256) and
    274 -> 242 ms (T=100 B=64 I=256 H=512); float64 the other way: 473 -> 567 us, a forward
    66 -> 71 ms. Same products, another BLAS call: the last bits may differ."""
    return np.dtype(dtype) == np.float32


def product_buffers(G, B, dtype):
    """-> zT (G, B) (or (0, 0) when not transposed_product), z (1, B, G): where the blas
    path's recurrent product goes (recurrent_product)."""
    zT = np.empty((G, B) if transposed_product(dtype) else (0, 0), dtype=dtype)
    return zT, np.empty((1, B, G), dtype=dtype)


def recurrent_product(w_hh, h_prev, zT, z):
    """W_hh h_prev^T into zT (G, B) when it has rows, else h_prev W_hh^T into z[0] (B, G)."""
    if zT.shape[0]:
        np.matmul(w_hh, h_prev.T, out=zT)
    else:
        np.matmul(h_prev, w_hh.T, out=z[0])


@ijit
def untranspose(src, dst, b0, b1):
    """dst[0, b, j] = src[j, b] for rows b0 .. b1-1: src (N, B), dst (1, B, N). Sixteen
    columns at a time, so the (16, B) block of src read with a stride stays in L1 while every
    row takes its sixteen values."""
    N = src.shape[0]
    for j0 in range(0, N, 16):
        j1 = min(j0 + 16, N)
        for b in range(b0, b1):
            for j in range(j0, j1):
                dst[0, b, j] = src[j, b]


@jit
def finish_rows(hx, t, valid, out, b0, b1):
    """finish_row for rows b0 .. b1-1."""
    for b in range(b0, b1):
        finish_row(hx, t, b, valid, out)


@jit
def carry_rows(dhn, dhp, t, valid, b0, b1):
    """carry_back_row for rows b0 .. b1-1."""
    for b in range(b0, b1):
        carry_back_row(dhn, dhp, t, b, valid)


# ----------------------------------------------------------------------------
# the large products, shared by every cell and both paths

def input_projection(x, w_ih, b_ih=None, b_hh=None):
    """x (T, B, I) -> x W_ih^T + b_ih (+ b_hh) for all steps at once: (T, B, G), a new
    C-contiguous array (the kernels write the pre-activations into it). b_hh=None leaves the
    hidden bias to the cell (GRU keeps it apart)."""
    T, B, I = x.shape
    xw = (c(x).reshape(T * B, I) @ c(w_ih).T).reshape(T, B, w_ih.shape[0])
    if b_ih is not None:
        xw += (b_ih + b_hh) if b_hh is not None else b_ih
    return xw


def stacked_inputs(x, h0, h):
    """x (T, B, I), h0 (B, P), h (T, B, P) -> (T, B, I+P): x_t beside h_{t-1}, the operand of
    the one weight-gradient product (weight_grads); a copy of its own (benchmarks time it)."""
    T, B, I = x.shape
    xh = np.empty((T, B, I + h0.shape[1]), dtype=np.result_type(x, h))
    xh[:, :, :I] = x
    xh[0, :, I:], xh[1:, :, I:] = h0, h[:-1]
    return xh


def previous_states(h0, h):
    """h0 (B, P), h (T, B, P) -> (T, B, P) h_{t-1} for every step, a new array."""
    return np.concatenate([h0[None], h[:-1]])


def weight_grads(dz, x, w_ih, h0, h, has_bias, dz_hh=None, input_grad=True):
    """The gradients that need every step, as a few large products after the time loop.

    dz (T, B, G): dL/d(x_t W_ih^T + b_ih); dz_hh (T, B, G): dL/d(h_{t-1} W_hh^T + b_hh) when it
    differs from dz (GRU), else None. h0 (B, P), h (T, B, P): the states, so h_{t-1} is h0 then
    h[:-1]. -> dx (T, B, I) (None without input_grad: one product fewer), dw_ih (G, I),
    dw_hh (G, P), db_ih, db_hh (G,) or None.
    """
    T, B, I = x.shape
    G, P = dz.shape[2], h0.shape[1]
    dz2 = dz.reshape(T * B, G)                             # (T*B, G)
    dx = (dz2 @ c(w_ih)).reshape(T, B, I) if input_grad else None   # (T, B, I)
    if dz_hh is None:                  # one product dz^T [x | h_prev]: dz^T is packed once
        dw = dz2.T @ stacked_inputs(x, h0, h).reshape(T * B, I + P)   # (G, I + P)
        dw_ih, dw_hh = c(dw[:, :I]), c(dw[:, I:])          # (G, I), (G, P)
    else:
        h_prev = previous_states(h0, h).reshape(T * B, P)  # (T*B, P)
        dw_ih = dz2.T @ c(x).reshape(T * B, I)             # (G, I)
        dw_hh = dz_hh.reshape(T * B, G).T @ h_prev         # (G, P)
    if not has_bias:
        return dx, dw_ih, dw_hh, None, None
    db_ih = dz2.sum(axis=0)
    return dx, dw_ih, dw_hh, db_ih, db_ih.copy() if dz_hh is None else \
        dz_hh.reshape(T * B, G).sum(axis=0)
