"""The single-thread FMA peak of Numba-compiled code on this machine: fma_peak_gflops().

Recorded by `minirnn bench` beside the GEMM peak (minirnn.bench.env.fma_peak): what
Numba-compiled arithmetic can reach on this CPU. Compiled with NUMBA_PEAK_FLAGS (a*b + c may
become one FMA), vector width included (LLVM's choice for this CPU).
"""
from __future__ import annotations

import time

import numba
import numpy as np

from .._config import NUMBA_PEAK_FLAGS

mjit = numba.njit(**NUMBA_PEAK_FLAGS)


@mjit
def _fma_loop(y, n, m, a):
    """n passes over y (L1-sized): each element goes through 8 dependent multiply-adds a pass,
    the elements are independent (so the loop is vectorised and the out-of-order core
    overlaps them): 8 FMAs per load and store."""
    for _ in range(n):
        for j in range(y.shape[0]):
            v = y[j]
            v = v * m + a
            v = v * m + a
            v = v * m + a
            v = v * m + a
            v = v * m + a
            v = v * m + a
            v = v * m + a
            v = v * m + a
            y[j] = v


def fma_peak_gflops(dtype="float64", seconds=0.2, length=512):
    """GFLOP/s of one thread running _fma_loop (2 FLOPs a multiply-add), the best of a few
    timed blocks of ~seconds/4 each."""
    dt = np.dtype(dtype)
    y = np.full(length, 0.5, dtype=dt)
    m, a = dt.type(0.999), dt.type(0.0005)
    _fma_loop(y, 1, m, a)                                 # compile / load
    n = 64
    while True:
        t0 = time.perf_counter()
        _fma_loop(y, n, m, a)
        if time.perf_counter() - t0 > seconds / 8 or n > 1 << 26:
            break
        n *= 2
    best = 0.0
    for _ in range(4):
        t0 = time.perf_counter()
        _fma_loop(y, n, m, a)
        best = max(best, 16 * length * n / (time.perf_counter() - t0) / 1e9)
    return best
