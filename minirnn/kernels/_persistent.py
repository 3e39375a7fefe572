"""Persistent recurrent weights on the CPU: the batched LSTM time loop in one Numba kernel.

Persistent RNNs (Diamos et al., ICML 2016) keep W_hh in a GPU's registers for the whole
sequence. The CPU analogue here: W_hh is packed once per forward (and once per backward) into
panels, one panel per block of U hidden units, holding the i, f, g, o columns of those units
side by side (forward) or their W_hh columns (backward). The panels are dealt out to n
threads (numba.get_num_threads(); this thread and n-1 pool threads, each running the nogil
kernel on its own panels for every step): each computes its units' recurrent product, then
their gate math and state update, so a panel's slice of W_hh is read by one core only, step
after step, and stays in its cache. A spinning barrier (_barrier.py) ends each step (the
next step needs all of h_t); with one thread there is none.

Forward, step t, panel p (units j in p's block, the reference's equations, lstm.py):
    z_t[:, gate j] += h_{t-1} W_hh^T[:, gate j]      for gate in i, f, g, o   (_gate_product)
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid;  c_t[j] = f c_{t-1}[j] + i g
    h_t[j] = o tanh c_t[j]
Backward, step t, panel p (one barrier a step, as forward):
    dL/dh_t[j] = dz_{t+1} W_hh[:, j] (+ carried where the sequence had ended)  (_unit_product)
    then the gate derivatives of units j: dz_t's i, f, g, o columns of j, dc_t[j], dc_{t-1}[j]
after the loop dL/dh_0 = dz_0 W_hh. The large products stay outside, one GEMM each (_common:
the input projection, the weight gradients). Caches and results are those of the loop path.

The product helpers are compiled with NUMBA_PRODUCT_FLAGS (a*b + c may become one FMA), the
rest with NUMBA_FLAGS (fastmath as configured, off by default). The rows of the product are
blocked by 8 (one load and store of the output per 8 multiply-adds) and a panel is at most
PANEL_BYTES a row-block, so the 8 rows of W_hh in use stay in L1. Offsets are written
max(0, ...): an index LLVM cannot prove non-negative keeps Numba's wraparound select in the
inner loop, and that loop then stays scalar (measured: 6 against 52 GFLOP/s).

Calls are serialised by a lock (the helper pool is this module's alone: every part of a call
must run at once, or the barrier would wait forever). path=None does not pick this kernel
yet: see PERSISTENT_MIN_WORK for what was measured.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._config import NUMBA_PRODUCT_FLAGS
from ._barrier import barrier
from ._common import LOOP_MAX_BATCH, jit
from ._vmath import vsigmoid, vtanh

mjit = numba.njit(**NUMBA_PRODUCT_FLAGS)

PANEL_BYTES = 32768          # 8 rows of a panel's W_hh slice: within L1 (48 KiB here)
_LOCK = threading.Lock()
_POOL = None                     # the n-1 helper threads (ThreadPoolExecutor), made on demand
# path=None picks the persistent kernel from this many multiply-adds a step (B*G*H*H) up:
# never, for now. Measured (Intel Xeon host, 2 cores, a quiet moment, 2026-12-02;
# benchmarks/persistent_ab.py -> docs/persistent-ab-1.json, -2.json: one process, whole LSTM
# forward+backward against the blas path, B = 32-64, rounds alternating): 0.68-1.02x at 1
# thread, 0.50-0.66x at 2. What was measured on the way (/tmp scripts, not kept): (1) LLVM
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
def _gate_product(z, t, hx, wp, p, U, H):
    """z[t, b, g*H + p*U + u] += sum_k hx[t, b, k] wp[p, k, g*U + u] for every gate block g and
    the panel's units u. wp (P, K, NG*U): the packed W_hh^T. Eight rows of wp and two rows
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
                    y0 = (((((((z[t, b, zo + u] + w0 * a0) + w1 * a1) + w2 * a2) + w3 * a3)
                             + w4 * a4) + w5 * a5) + w6 * a6) + w7 * a7
                    y1 = (((((((z[t, b1, zo + u] + w0 * c0) + w1 * c1) + w2 * c2) + w3 * c3)
                             + w4 * c4) + w5 * c5) + w6 * c6) + w7 * c7
                    z[t, b, zo + u] = y0
                    z[t, b1, zo + u] = y1
            b += 2
        k += 8
    while k < K:
        for b in range(B):
            a0 = hx[t, b, k]
            for g in range(NG):
                zo = max(0, g * H + j0)
                wo = max(0, g * U)
                for u in range(Up):
                    z[t, b, zo + u] += wp[p, k, wo + u] * a0
        k += 1


@mjit
def _unit_product(y, x, tx, wb, p, U):
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
# the LSTM time loops

@jit
def _forward_units(gates, t, hx, cx, valid, out, j0, Up):
    """The gate math and state update of units j0 .. j0+Up-1 at step t (gates holds z_t)."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 4)
    j0 = max(0, j0)
    for b in range(B):                    # one short loop per stage: LLVM vectorises each
        for u in range(Up):
            gates[t, b, j0 + u] = vsigmoid(gates[t, b, j0 + u])                    # i
        for u in range(Up):
            gates[t, b, H + j0 + u] = vsigmoid(gates[t, b, H + j0 + u])            # f
        for u in range(Up):
            gates[t, b, 2 * H + j0 + u] = vtanh(gates[t, b, 2 * H + j0 + u])      # g
        for u in range(Up):
            gates[t, b, 3 * H + j0 + u] = vsigmoid(gates[t, b, 3 * H + j0 + u])   # o
        for u in range(Up):
            cx[t + 1, b, j0 + u] = (gates[t, b, H + j0 + u] * cx[t, b, j0 + u]
                                    + gates[t, b, j0 + u] * gates[t, b, 2 * H + j0 + u])
        for u in range(Up):
            hx[t + 1, b, j0 + u] = gates[t, b, 3 * H + j0 + u] * vtanh(cx[t + 1, b, j0 + u])
        if valid[t, b]:
            for u in range(Up):
                out[t, b, j0 + u] = hx[t + 1, b, j0 + u]
        else:                                             # finished: carry h and c
            zero = out.dtype.type(0.0)
            for u in range(Up):
                cx[t + 1, b, j0 + u] = cx[t, b, j0 + u]
                hx[t + 1, b, j0 + u] = hx[t, b, j0 + u]
                out[t, b, j0 + u] = zero


@jit
def _backward_units(d_out, dhn, dcn, c0, gates, cs, valid, dh, dc, dz, t, j0, Up):
    """dL/dh_t, the gate derivatives dz_t and dc_t, dc_{t-1} of units j0 .. j0+Up-1."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 4)
    j0 = max(0, j0)
    zero, one = gates.dtype.type(0.0), gates.dtype.type(1.0)
    cp, tp = (c0, 0) if t == 0 else (cs, t - 1)           # c_{t-1}
    for b in range(B):
        if valid[t, b]:
            for u in range(Up):
                dh[t, b, j0 + u] = dhn[b, j0 + u] + d_out[t, b, j0 + u]
        else:
            for u in range(Up):
                dh[t, b, j0 + u] = zero
        for u in range(Up):
            tanh_c = vtanh(cs[t, b, j0 + u])
            o = gates[t, b, 3 * H + j0 + u]
            d = dh[t, b, j0 + u]
            dc[t, b, j0 + u] = dcn[b, j0 + u] + d * o * (one - tanh_c * tanh_c)
            dz[t, b, 3 * H + j0 + u] = d * tanh_c * o * (one - o)
        if not valid[t, b]:                               # dL/dc_t from step t+1 is cut here
            for u in range(Up):
                tanh_c = vtanh(cs[t, b, j0 + u])
                o = gates[t, b, 3 * H + j0 + u]
                dc[t, b, j0 + u] = zero + dh[t, b, j0 + u] * o * (one - tanh_c * tanh_c)
        for u in range(Up):
            i, f = gates[t, b, j0 + u], gates[t, b, H + j0 + u]
            g = gates[t, b, 2 * H + j0 + u]
            dcj = dc[t, b, j0 + u]
            dz[t, b, j0 + u] = dcj * g * i * (one - i)
            dz[t, b, H + j0 + u] = dcj * cp[tp, b, j0 + u] * f * (one - f)
            dz[t, b, 2 * H + j0 + u] = dcj * i * (one - g * g)
        if valid[t, b]:
            for u in range(Up):
                dcn[b, j0 + u] = dc[t, b, j0 + u] * gates[t, b, H + j0 + u]
        else:                                             # carried state: its gradient passes
            for u in range(Up):
                dcn[b, j0 + u] = dc[t, b, j0 + u] * gates[t, b, H + j0 + u] + dcn[b, j0 + u]


@jit
def _carry_units(dhn, dhp, valid, t, j0, Up):
    """dhn <- dL/dh_{t-1} for units j0 .. j0+Up-1: dhp (through step t), plus dhn itself where
    the sequence had ended (a carried state passes its gradient straight back)."""
    j0 = max(0, j0)
    for b in range(dhn.shape[0]):
        if valid[t, b]:
            for u in range(Up):
                dhn[b, j0 + u] = dhp[b, j0 + u]
        else:
            for u in range(Up):
                dhn[b, j0 + u] = dhp[b, j0 + u] + dhn[b, j0 + u]


@jit
def _lstm_forward_part(gates, hx, cx, wp, U, valid, out, me, n, flags):
    """Thread me of n: panels me, me+n, ... of every step, a barrier after each step.
    gates (T, B, 4H): x W_ih^T + b on entry, the activated i, f, g, o on exit. hx, cx
    (T+1, B, H): h0, c0 in row 0 on entry, h_t, c_t in row t+1 after. out (T, B, H)."""
    T, B, G = gates.shape
    H = G // 4
    P = wp.shape[0]
    for t in range(T):
        for p in range(me, P, n):
            _gate_product(gates, t, hx, wp, p, U, H)
            _forward_units(gates, t, hx, cx, valid, out, p * U, min(U, H - p * U))
        barrier(flags, me, n, t + 1)                  # step t+1 reads all of h_t


@jit
def _lstm_backward_part(d_out, dhn, dcn, c0, gates, cs, wb, U, valid, dh, dc, dz, dhp, me, n,
                        flags):
    """BPTT, thread me of n (panels as the forward). d_out (T, B, H); dhn, dcn (B, H): dL/dh_T,
    dL/dc_T on entry, dL/dh_0, dL/dc_0 on exit; c0 (1, B, H); gates, cs from the forward; dh,
    dc (T, B, H), dz (T, B, 4H) filled; dhp (B, H) scratch (dz_{t+1} W_hh)."""
    T, B, G = gates.shape
    H = G // 4
    P = wb.shape[0]
    for t in range(T - 1, -1, -1):
        for p in range(me, P, n):
            if t < T - 1:                                 # dL/dh_t through step t+1
                _unit_product(dhp, dz, t + 1, wb, p, U)
                _carry_units(dhn, dhp, valid, t + 1, p * U, min(U, H - p * U))
            _backward_units(d_out, dhn, dcn, c0, gates, cs, valid, dh, dc, dz, t, p * U,
                            min(U, H - p * U))
        barrier(flags, me, n, T - t)                      # step t-1 reads all of dz_t
    for p in range(me, P, n):                             # dL/dh_0 = dz_0 W_hh
        _unit_product(dhp, dz, 0, wb, p, U)
        _carry_units(dhn, dhp, valid, 0, p * U, min(U, H - p * U))


def _run_parts(kernel, args, n):
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


def _threads(threads):
    if numba.config.DISABLE_JIT:                      # plain Python holds the GIL: one thread
        return 1
    return max(1, numba.get_num_threads() if threads is None else int(threads))


def lstm_forward(gates, h0, c0, w_hh, valid, threads=None):
    """The persistent forward: gates (T, B, 4H) (x W_ih^T + b, activated in place), h0, c0
    (B, H), w_hh (4H, H), valid (T, B) bool -> hx, cx (T+1, B, H) (row 0 the initial
    states), out (T, B, H). threads: how many threads share the panels (default Numba's
    count, numba.get_num_threads())."""
    T, B, G = gates.shape
    H, dt = G // 4, gates.dtype
    n = _threads(threads)
    U = panel_units(H, 4, dt.itemsize, n)
    wp = pack_forward(np.ascontiguousarray(w_hh), 4, U)
    hx = np.empty((T + 1, B, H), dtype=dt)
    cx = np.empty((T + 1, B, H), dtype=dt)
    hx[0], cx[0] = h0, c0
    out = np.empty((T, B, H), dtype=dt)
    _run_parts(_lstm_forward_part, (gates, hx, cx, wp, U, valid, out), n)
    return hx, cx, out


def lstm_backward(d_out, dh_next, dc_next, c0, gates, cs, w_hh, valid, dh, dc, dz, threads=None):
    """The persistent BPTT (arguments as _lstm_backward_part's; dh_next, dc_next (B, H) updated
    in place to dL/dh_0, dL/dc_0)."""
    T, B, G = gates.shape
    H, dt = G // 4, gates.dtype
    n = _threads(threads)
    U = panel_units(H, 1, dt.itemsize, n)
    wb = pack_backward(np.ascontiguousarray(w_hh), U)
    _run_parts(_lstm_backward_part, (d_out, dh_next, dc_next, c0, gates, cs, wb, U, valid, dh,
                                     dc, dz, np.empty((B, H), dtype=dt)), n)
    return dh_next, dc_next


__all__ = ["lstm_forward", "lstm_backward", "pack_forward", "pack_backward", "panel_units",
           "persistent_path"]
