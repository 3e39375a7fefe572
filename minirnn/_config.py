"""The one place with Numba settings (numba is imported only here and in minirnn/kernels/).

Environment variables, read once when the kernels are first imported:

    MINIRNN_FASTMATH=1        compile the kernels with fastmath (off by default: gradient
                              studies need IEEE behaviour -- NaN/inf propagate, no reassociation,
                              and the 1e-13 agreement with the NumPy reference holds)
    MINIRNN_NUM_THREADS=N     the one thread setting: the BLAS threads every computing command
                              uses (train, step, gradcheck, predict, generate, study; applied
                              with threadpoolctl by minirnn/_threads.py, which `--threads N`
                              overrides), set for Numba (numba.set_num_threads) and given to
                              torch by the benchmark (torch.set_num_threads), so comparisons
                              are like for like. Unset: the commands choose 1 BLAS thread for
                              per-step recurrent products below minirnn._threads.SMALL_PRODUCT
                              multiply-adds and the usable cores above (measured: spinning
                              OpenBLAS workers made names training 3.4x slower when another
                              process held one of 2 cores); num_threads() is the usable cores.

The kernels themselves are single-threaded; the large products go through NumPy's BLAS.
OPENBLAS_NUM_THREADS (or MKL_NUM_THREADS / OMP_NUM_THREADS), read before Python starts, still
caps the pool BLAS starts with; minirnn never asks for more threads than that pool holds.
"""
from __future__ import annotations

import os


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NUMBA_FLAGS = dict(nogil=True, cache=True, fastmath=_env_flag("MINIRNN_FASTMATH"),
                   error_model="numpy")
# The FMA-peak probe (minirnn/kernels/_peak.py, the yardstick `minirnn bench` records) may
# contract a*b + c into one fused multiply-add, so that it measures the machine's FMA rate.
# "contract" alone is not fastmath: no reassociation, no NaN/inf assumptions. No kernel uses it.
NUMBA_PEAK_FLAGS = dict(NUMBA_FLAGS, fastmath=NUMBA_FLAGS["fastmath"] or {"contract"})


def _env_threads():
    raw = os.environ.get("MINIRNN_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"MINIRNN_NUM_THREADS: expected a positive integer, got {raw!r}")
    return n


def apply_threads():
    """Apply MINIRNN_NUM_THREADS to Numba, if it is set. -> the thread count (num_threads()).

    Our kernels are not `parallel=True`, so Numba's thread pool is never needed; it is launched only when a
    user asks for a count. Measured here: once Numba's OpenMP layer has
    started, torch imported later in the same process ran nn.RNN 45x slower (two OpenMP
    pools on two cores), so we pin Numba to its own 'workqueue' layer, which uses no OpenMP,
    unless NUMBA_THREADING_LAYER says otherwise.
    """
    n = _env_threads()
    if n is not None:
        import numba
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return num_threads()


def num_threads():
    """Threads for the compute libraries: MINIRNN_NUM_THREADS, else the usable cores.
    The benchmark gives torch this count, so comparisons are like for like."""
    n = _env_threads()
    if n is not None:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # not on Linux
        return os.cpu_count() or 1
