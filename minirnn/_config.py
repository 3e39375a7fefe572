"""The one place with Numba settings (numba is imported only here and in minirnn/kernels/).

Environment variables, read once when the kernels are first imported:

    MINIRNN_FASTMATH=1        compile the kernels with fastmath (off by default: gradient
                              studies need IEEE behaviour -- NaN/inf propagate, no reassociation,
                              and the 1e-13 agreement with the NumPy reference holds)
    MINIRNN_NUM_THREADS=N     the one thread setting: the BLAS threads every library call
                              (model(x), model.backward, the functional API) and every
                              computing command (train, step, gradcheck, predict, generate,
                              study) uses -- minirnn/_blas.py applies it, `--threads N` and
                              minirnn.set_num_threads(n) override it -- set for Numba
                              (numba.set_num_threads) and given to torch by the benchmark
                              (torch.set_num_threads), so comparisons are like for like. 0 or
                              anything but a positive integer is refused (ValueError) at the
                              first call that computes. Unset: 1 BLAS thread for per-step
                              recurrent products below minirnn._blas.SMALL_PRODUCT
                              multiply-adds, the BLAS library's own count above (measured:
                              spinning OpenBLAS workers made names training 3.4x slower when
                              another process held one of 2 cores); num_threads() is then the
                              usable cores.

The kernels themselves are single-threaded; the large products go through NumPy's BLAS.
OPENBLAS_NUM_THREADS (or MKL_NUM_THREADS / OMP_NUM_THREADS), read before Python starts, still
caps the pool BLAS starts with; minirnn never asks for more threads than that pool holds.
"""
from __future__ import annotations

import os
import sys


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NUMBA_FLAGS = dict(nogil=True, cache=True, fastmath=_env_flag("MINIRNN_FASTMATH"),
                   error_model="numpy")
# The FMA-peak probe (minirnn/kernels/_peak.py, the yardstick `minirnn bench` records) may
# contract a*b + c into one fused multiply-add, so that it measures the machine's FMA rate.
# "contract" alone is not fastmath: no reassociation, no NaN/inf assumptions. No kernel uses it.
NUMBA_PEAK_FLAGS = dict(NUMBA_FLAGS, fastmath=NUMBA_FLAGS["fastmath"] or {"contract"})


def env_threads():
    """MINIRNN_NUM_THREADS as a count, None when unset; a bad value is refused (ValueError)."""
    raw = os.environ.get("MINIRNN_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"MINIRNN_NUM_THREADS: expected a positive integer (a thread count such "
                         f"as 1 or 2), got {raw!r}; set it to one or unset it")
    return n


_asked = None          # minirnn.set_num_threads(n): Numba's count too (None: MINIRNN_NUM_THREADS)


def ask_threads(n):
    """minirnn.set_num_threads(n) for Numba (None: back to MINIRNN_NUM_THREADS, else Numba's
    default): applied now if the kernels are loaded, else when they load (apply_threads)."""
    global _asked
    _asked = n
    if "minirnn.kernels._common" in sys.modules:
        import numba
        apply_threads(n or env_threads() or numba.config.NUMBA_NUM_THREADS)


def apply_threads(n=None):
    """Give Numba a thread count: n, else the one asked for with minirnn.set_num_threads, else
    MINIRNN_NUM_THREADS; nothing when none is set. -> the thread count (num_threads()).

    Our kernels are not `parallel=True`, so Numba's thread pool is never needed; it is
    launched only when a user asks for a count. Measured here: once Numba's OpenMP layer has
    started, torch imported later in the same process ran nn.RNN 45x slower (two OpenMP
    pools on two cores), so we pin Numba to its own 'workqueue' layer, which uses no OpenMP,
    unless NUMBA_THREADING_LAYER says otherwise.
    """
    if n is None:
        n = _asked if _asked is not None else env_threads()
    if n is not None:
        import numba
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return num_threads()


def num_threads():
    """Threads for the compute libraries: minirnn.set_num_threads's count, else
    MINIRNN_NUM_THREADS, else the usable cores. The benchmark gives torch this count, so
    comparisons are like for like."""
    n = _asked if _asked is not None else env_threads()
    return usable_cores() if n is None else n


def usable_cores():
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # not on Linux
        return os.cpu_count() or 1
