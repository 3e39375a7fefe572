"""Persistent recurrent weights on the CPU: the shared machinery of the batched time loops
that run in one Numba kernel (the cells' gate math: _persistent_cells.py).

Persistent RNNs (Diamos et al., ICML 2016) keep W_hh in a GPU's registers for the whole
sequence. The CPU analogue here: W_hh is packed once per forward (and once per backward) into
panels, one panel per block of U hidden units, holding the G gate blocks' columns of those
units side by side (forward: G = 4 LSTM i, f, g, o; 3 GRU r, z, n; 1 Elman) or their W_hh
columns (backward). The panels are dealt out to n threads (numba.get_num_threads(); this
thread and n-1 pool threads, each running the nogil kernel on its own panels for every step):
each computes its units' recurrent product, then their gate math and state update, so a
panel's slice of W_hh is read by one core only, step after step, and stays in its cache. A
spinning barrier (_barrier.py) ends each step (the next step needs all of h_t); with one
thread there is none.

Forward, step t, panel p (units j in p's block; the cell's equations, functional/<cell>.py):
    z_t[:, gate j] += h_{t-1} W_hh^T[:, gate j]   for each gate block   (gate_product)
    then the cell's gate math and state update of units j, finish_units (ragged lengths)
Backward, step t, panel p (one barrier a step, as forward):
    dL/dh_t[j] = dz_{t+1} W_hh[:, j] (+ the cell's direct path) (unit_product, carry_units)
    then the cell's gate derivatives dz_t of units j (upstream_units: dL/dh_t entering)
after the loop dL/dh_0 = dz_0 W_hh. The large products stay outside, one GEMM each (_common:
the input projection, the weight gradients). Caches and results are those of the loop path.
Cells: LSTM (no projection), GRU, Elman RNN (tanh, relu).

The product helpers are compiled with NUMBA_PRODUCT_FLAGS (a*b + c may become one FMA), the
rest with NUMBA_FLAGS (fastmath as configured, off by default). The rows of the product are
blocked by 8 (one load and store of the output per 8 multiply-adds) and a panel is at most
PANEL_BYTES a row-block, so the 8 rows of W_hh in use stay in L1. Offsets are written
max(0, ...): an index LLVM cannot prove non-negative keeps Numba's wraparound select in the
inner loop, and that loop then stays scalar (measured: 6 against 52 GFLOP/s).

Calls are serialised by a lock (the helper pool is this module's alone: every part of a call
must run at once, or the barrier would wait forever). path=None does not pick this kernel
yet: see PERSISTENT_MIN_WORK for what was measured (the LSTM).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._config import NUMBA_PRODUCT_FLAGS
from ._common import LOOP_MAX_BATCH, ijit

mjit = numba.njit(**NUMBA_PRODUCT_FLAGS)

PANEL_BYTES = 32768          # 8 rows of a panel's W_hh slice: within L1 (48 KiB here)
_LOCK = threading.Lock()
_POOL = None                     # the n-1 helper threads (ThreadPoolExecutor), made on demand
# path=None picks the persistent kernel from this many multiply-adds a step (B*G*H*H) up:
# never, for now. Measured (Intel Xeon host, 2 cores, a quiet moment, 2026-12-02;
# benchmarks/persistent_ab.py -> docs/persistent-ab-1.json, -2.json: one process, whole LSTM
# forward+backward against the blas path, B = 32-64, rounds alternating): 0.68-1.02x at 1
# thread, 0.50-0.66x at 2. Timings on the way (one-off runs, no script kept): (1) LLVM
# vectorises Numba's code 256 bits wide on this host ("prefer-256-bit" tuning): the FMA peak
# of Numba's code is 109 GFLOP/s float32 a thread, and the step product reaches ~50-70
# (float64 ~25), against ~95 for OpenBLAS's AVX-512 kernel on the same (32 x 1024) x
# (1024 x 256) product; with the tuning off (NUMBA_CPU_FEATURES=...,-prefer-256-bit) the peak
# doubled but the whole call still ran at 0.61-0.80x. (2) The second thread does not pay
# yet: through prange (Numba's workqueue layer) a launch a step cost ~150 us (forward loop,
# B=32, H=256 float32: 23 ms serial, 38-45 ms through prange); with the spinning barrier it
# took 29 ms at 1 thread and 43 ms at 2 (OpenBLAS at 1 thread, quiet machine; cause not
# found), and without sched_yield the 2-thread loops ran 1.5-7x slower whenever another job
# held a core. path="persistent" forces it.
PERSISTENT_MIN_WORK = float("inf")


# ----------------------------------------------------------------------------
# the products, one panel each

@mjit
def gate_product(z, tz, hx, t, wp, p, U, H):
    """z[tz, b, g*H + p*U + u] += sum_k hx[t, b, k] wp[p, k, g*U + u] for every gate block g
    and the panel's units u. wp (P, K, NG*U): the packed W_hh^T. Eight rows of wp and two rows
    of z at a time: each loaded w serves two multiply-adds, z's rows are loaded and stored
    once per eight; the inner loop runs over contiguous memory (LLVM vectorises it)."""
    B = z.shape[1]
    K = wp.shape[1]
    NG = wp.shape[2] // U
    j0 = max(0, p * U)
    Up = min(U, H - j0)
    k = 0
    while k + 8 <= K:
        b = 0
        while b < B:
            b1 = min(b + 1, B - 1)                    # an odd last row runs twice: same values
            a0, a1, a2, a3 = hx[t, b, k], hx[t, b, k + 1], hx[t, b, k + 2], hx[t, b, k + 3]
            a4, a5, a6, a7 = hx[t, b, k + 4], hx[t, b, k + 5], hx[t, b, k + 6], hx[t, b, k + 7]
            c0, c1, c2, c3 = hx[t, b1, k], hx[t, b1, k + 1], hx[t, b1, k + 2], hx[t, b1, k + 3]
            c4, c5, c6, c7 = hx[t, b1, k + 4], hx[t, b1, k + 5], hx[t, b1, k + 6], hx[t, b1, k + 7]
            for g in range(NG):
                zo = max(0, g * H + j0)
                wo = max(0, g * U)
                for u in range(Up):
                    w0, w1 = wp[p, k, wo + u], wp[p, k + 1, wo + u]
                    w2, w3 = wp[p, k + 2, wo + u], wp[p, k + 3, wo + u]
                    w4, w5 = wp[p, k + 4, wo + u], wp[p, k + 5, wo + u]
                    w6, w7 = wp[p, k + 6, wo + u], wp[p, k + 7, wo + u]
                    y0 = (((((((z[tz, b, zo + u] + w0 * a0) + w1 * a1) + w2 * a2) + w3 * a3)
                             + w4 * a4) + w5 * a5) + w6 * a6) + w7 * a7
                    y1 = (((((((z[tz, b1, zo + u] + w0 * c0) + w1 * c1) + w2 * c2) + w3 * c3)
                             + w4 * c4) + w5 * c5) + w6 * c6) + w7 * c7
                    z[tz, b, zo + u] = y0
                    z[tz, b1, zo + u] = y1
            b += 2
        k += 8
    while k < K:
        for b in range(B):
            a0 = hx[t, b, k]
            for g in range(NG):
                zo = max(0, g * H + j0)
                wo = max(0, g * U)
                for u in range(Up):
                    z[tz, b, zo + u] += wp[p, k, wo + u] * a0
        k += 1


@mjit
def unit_product(y, x, tx, wb, p, U):
    """y[b, p*U + u] = sum_c x[tx, b, c] wb[p, c, u] for the panel's units u; y (B, H),
    x (., B, C), wb (P, C, U): the packed W_hh's columns. Eight rows of wb at a time."""
    B, H = y.shape
    C = wb.shape[1]
    j0 = max(0, p * U)
    Up = min(U, H - j0)
    zero = y.dtype.type(0.0)
    for b in range(B):
        for u in range(Up):
            y[b, j0 + u] = zero
    k = 0
    while k + 8 <= C:           # one row of y at a time: the two-row form measured 3x slower
        for b in range(B):
            a0, a1, a2, a3 = x[tx, b, k], x[tx, b, k + 1], x[tx, b, k + 2], x[tx, b, k + 3]
            a4, a5, a6, a7 = x[tx, b, k + 4], x[tx, b, k + 5], x[tx, b, k + 6], x[tx, b, k + 7]
            for u in range(Up):
                y[b, j0 + u] = (((((((y[b, j0 + u] + wb[p, k, u] * a0) + wb[p, k + 1, u] * a1)
                                    + wb[p, k + 2, u] * a2) + wb[p, k + 3, u] * a3)
                                  + wb[p, k + 4, u] * a4) + wb[p, k + 5, u] * a5)
                                + wb[p, k + 6, u] * a6) + wb[p, k + 7, u] * a7
        k += 8
    while k < C:
        for b in range(B):
            a0 = x[tx, b, k]
            for u in range(Up):
                y[b, j0 + u] += wb[p, k, u] * a0
        k += 1


# ----------------------------------------------------------------------------
# the path choice

def persistent_path(B, G, H, proj, path=None):
    """True: the persistent kernel runs this call. path: None (by size: batches above
    _common.LOOP_MAX_BATCH without a projection, from PERSISTENT_MIN_WORK multiply-adds a
    step), "persistent" (forced; ValueError with a projection), "loop" or "blas" (False)."""
    if path == "persistent":
        if proj:
            raise ValueError("path: 'persistent' has no LSTM projection (proj_size > 0): "
                             "expected None, 'loop' or 'blas', got 'persistent'")
        return True
    if path is not None:
        return False
    return not proj and B > LOOP_MAX_BATCH and B * G * H * H >= PERSISTENT_MIN_WORK


# ----------------------------------------------------------------------------
# packing (NumPy, once per call: W_hh does not change inside a sequence)

def panel_units(H, G, itemsize, threads):
    """Units per panel: H split between the threads, at most what keeps 8 rows of a panel
    (G gate blocks of U units) within PANEL_BYTES."""
    cap = max(1, PANEL_BYTES // (8 * G * itemsize))
    return max(1, min(-(-H // max(1, threads)), cap))


def pack_forward(w_hh, G, U):
    """W_hh (G*H, K) -> wp (P, K, G*U): wp[p, k, g*U + u] = W_hh[g*H + p*U + u, k] (zero past H)."""
    GH, K = w_hh.shape
    H = GH // G
    P = -(-H // U)
    w = np.zeros((G, P * U, K), dtype=w_hh.dtype)
    w[:, :H] = w_hh.reshape(G, H, K)
    return np.ascontiguousarray(w.reshape(G, P, U, K).transpose(1, 3, 0, 2).reshape(P, K, G * U))


def pack_backward(w_hh, U):
    """W_hh (C, H) -> wb (P, C, U): wb[p, c, u] = W_hh[c, p*U + u] (zero past H)."""
    C, H = w_hh.shape
    P = -(-H // U)
    w = np.zeros((C, P * U), dtype=w_hh.dtype)
    w[:, :H] = w_hh
    return np.ascontiguousarray(w.reshape(C, P, U).transpose(1, 0, 2))


# ----------------------------------------------------------------------------
# the per-unit pieces every cell shares (inlined into the cells' kernels)

@ijit
def finish_units(hx, t, b, valid, out, j0, Up):
    """Row b of units j0 .. j0+Up-1 after step t (hx (T+1, B, H): h_t in row t+1): out_t = h_t
    while the sequence runs; past its end h_t = h_{t-1} (carried) and out_t = 0."""
    k0 = max(0, j0)
    if valid[t, b]:
        for u in range(Up):
            out[t, b, k0 + u] = hx[t + 1, b, k0 + u]
    else:
        zero = out.dtype.type(0.0)
        for u in range(Up):
            hx[t + 1, b, k0 + u] = hx[t, b, k0 + u]
            out[t, b, k0 + u] = zero


@ijit
def upstream_units(dh, dhn, d_out, valid, t, b, j0, Up):
    """dh[t, b] = dL/dh_t for units j0 .. j0+Up-1: dhn (from step t+1) + d_out_t while the
    sequence runs, 0 past its end (padded outputs are constants)."""
    k0 = max(0, j0)
    if valid[t, b]:
        for u in range(Up):
            dh[t, b, k0 + u] = dhn[b, k0 + u] + d_out[t, b, k0 + u]
    else:
        zero = dh.dtype.type(0.0)
        for u in range(Up):
            dh[t, b, k0 + u] = zero


@ijit
def carry_units(dhn, dhp, valid, t, j0, Up):
    """dhn <- dL/dh_{t-1} for units j0 .. j0+Up-1: dhp (through step t), plus dhn itself where
    the sequence had ended (a carried state passes its gradient straight back)."""
    k0 = max(0, j0)
    for b in range(dhn.shape[0]):
        if valid[t, b]:
            for u in range(Up):
                dhn[b, k0 + u] = dhp[b, k0 + u]
        else:
            for u in range(Up):
                dhn[b, k0 + u] = dhp[b, k0 + u] + dhn[b, k0 + u]


# ----------------------------------------------------------------------------
# running a kernel on the threads

def run_parts(kernel, args, n):
    """kernel(*args, me, n, flags) on n threads at once: this one and n-1 pool threads (nogil
    kernels; every part must run concurrently, or the barrier would wait forever: the pool is
    ours alone, and calls are serialised)."""
    flags = np.zeros(n, dtype=np.int64)
    if n == 1:
        kernel(*args, 0, 1, flags)
        return
    global _POOL
    with _LOCK:
        if _POOL is None or _POOL._max_workers < n - 1:
            _POOL = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="minirnn-persistent")
        futures = [_POOL.submit(kernel, *args, me, n, flags) for me in range(1, n)]
        kernel(*args, 0, n, flags)
        for f in futures:
            f.result()


def thread_count(threads=None):
    """How many threads share the panels: threads, or Numba's count (numba.get_num_threads());
    1 without the JIT (plain Python holds the GIL)."""
    if numba.config.DISABLE_JIT:
        return 1
    return max(1, numba.get_num_threads() if threads is None else int(threads))


def forward_panels(w_hh, G, threads=None):
    """-> n threads, U units a panel, wp = pack_forward(W_hh): a forward's panels."""
    n = thread_count(threads)
    U = panel_units(w_hh.shape[0] // G, G, w_hh.dtype.itemsize, n)
    return n, U, pack_forward(np.ascontiguousarray(w_hh), G, U)


def backward_panels(w_hh, threads=None):
    """-> n threads, U units a panel, wb = pack_backward(W_hh): a backward's panels."""
    n = thread_count(threads)
    U = panel_units(w_hh.shape[1], 1, w_hh.dtype.itemsize, n)
    return n, U, pack_backward(np.ascontiguousarray(w_hh), U)


__all__ = ["gate_product", "unit_product", "finish_units", "upstream_units", "carry_units",
           "run_parts", "thread_count", "forward_panels", "backward_panels", "pack_forward",
           "pack_backward", "panel_units", "persistent_path"]
