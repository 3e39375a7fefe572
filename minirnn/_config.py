"""The one place with Numba settings (numba is imported only here and in minirnn/kernels/).

Environment variables, read once when the kernels are first imported:

    MINIRNN_FASTMATH=1        compile the kernels with fastmath (off by default: gradient
                              studies need IEEE behaviour -- NaN/inf propagate, no reassociation,
                              and the 1e-13 agreement with the NumPy reference holds)
    MINIRNN_NUM_THREADS=N     threads for Numba (numba.set_num_threads); the benchmark gives
                              torch the same number (torch.set_num_threads) so comparisons are
                              fair. Default: Numba's default (NUMBA_NUM_THREADS, i.e. all cores).

The BLAS products (done through NumPy) use NumPy's own pool: set OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS / OMP_NUM_THREADS before starting Python to pin it too.
"""
from __future__ import annotations

import os


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NUMBA_FLAGS = dict(nogil=True, cache=True, fastmath=_env_flag("MINIRNN_FASTMATH"),
                   error_model="numpy")


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
    """Apply MINIRNN_NUM_THREADS to Numba (capped at NUMBA_NUM_THREADS); -> threads in use."""
    import numba
    n = _env_threads()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


def num_threads():
    """The thread count Numba uses (after MINIRNN_NUM_THREADS); the benchmark gives torch the same."""
    return apply_threads()
