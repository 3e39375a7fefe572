"""The library's BLAS thread rule: one entry per layer call (model(x), model.backward, the
cells, the functional API), and the public minirnn.set_num_threads / get_num_threads.

NumPy's OpenBLAS starts one worker thread per core, and its workers spin while they wait for
the next product. For the products a recurrent network runs at every time step (a (B, H)
state times the (H, G*H) recurrent weight, T times in a row) the split is not worth it, and
when another process holds a core the spinning workers fight it (measured on 2 cores with one
spinning process: `minirnn train names --epochs 2` 6x slower with the default threads than
with one; a batch-1 LSTM call's p90 5.8x its median, against 1.1x on one thread). So every
layer call runs with

    1. a count set on purpose: set_num_threads(n), or a command's --threads (minirnn/_threads.py
       sets it for the command's duration), else
    2. MINIRNN_NUM_THREADS=N (minirnn/_config.py reads it; a bad value is refused), else
    3. the size rule: 1 BLAS thread when the per-step recurrent product B x H x G*H
       (multiply-adds) is below SMALL_PRODUCT; above it the BLAS library's own count (its
       pool: the usable cores, or what OPENBLAS_NUM_THREADS says).

`policy(x, w_hh)` sets the count around the call and puts the previous one back afterwards, so
the caller's own NumPy keeps its threads. It costs about a microsecond per call
(benchmarks/module_overhead.py measures it), less when BLAS already runs with the count. A
BLAS library first loaded during a call (the Numba kernels' first call loads SciPy's
OpenBLAS) follows the rule from the next call on. The setting is process-wide, as torch's
set_num_threads is. This module sits at the bottom of the package (tests/test_layout.py), so
the layers that compute can use it; the commands' side is minirnn/_threads.py.
"""
from __future__ import annotations

import contextlib
import numbers
import sys

from . import _config
from ._config import usable_cores

# The per-step recurrent product (multiply-adds) from which a second BLAS thread pays off in
# an end-to-end forward+backward of one layer on a quiet machine; measured with
# `python -m minirnn._threads` (see its measure()). Below it every tutorial model in this
# package (names B=64 H=128 LSTM: 4.2e6; script/char B=32 H=256 LSTM: 8.4e6).
SMALL_PRODUCT = 3.0e7

_explicit = None          # set_num_threads(n), or a command's --threads: the count every call uses
_explicit_why = ""        # where it comes from, for the commands' describe()
_UNREAD = object()
_env_count = _UNREAD      # MINIRNN_NUM_THREADS as read at the first call (None: unset)
_blas = ((), -1)          # ((get, set) per loaded BLAS library, len(sys.modules) then)


def _blas_libs():
    """(get, set) thread-count functions of each loaded BLAS library, found again whenever a
    module was imported since (an import is how a new BLAS library arrives)."""
    global _blas
    libs, seen = _blas
    if seen != len(sys.modules):
        from threadpoolctl import ThreadpoolController
        libs = tuple(_raw_openblas(lib) or (lib.get_num_threads, lib.set_num_threads)
                     for lib in ThreadpoolController().select(user_api="blas").lib_controllers)
        _blas = (libs, len(sys.modules))
    return libs


def _raw_openblas(lib):
    """OpenBLAS's own get/set entry points for an OpenBLAS with its pthreads pool (NumPy's),
    or None. Why: threadpoolctl's wrappers cost 0.8 us a get and 1.6 us a set (measured here),
    three times the calls themselves, and a layer call makes up to three of them."""
    if lib.internal_api != "openblas" or lib.threading_layer != "pthreads":
        return None
    for prefix, suffix in (("", ""), ("scipy_", "64_"), ("", "64_"), ("scipy_", "")):
        get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        put = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and put is not None:
            return get, put
    return None


def _read_env():
    """MINIRNN_NUM_THREADS now (ValueError on a bad value), remembered for the next calls."""
    global _env_count
    _env_count = _config.env_threads()
    return _env_count


def explicit_threads():
    """The count chosen on purpose: set_num_threads's (a command's --threads inside it), else
    MINIRNN_NUM_THREADS, else None (then the size rule decides per call)."""
    return _explicit if _explicit is not None else _read_env()


def explicit():
    """(the count set on purpose, where it comes from), or (None, "") when none is."""
    return _explicit, _explicit_why


def set_explicit(n, why):
    """Make n (None: none) every call's count, `why` naming its source; -> the previous
    (count, why), for the caller to put back (minirnn._threads.limit)."""
    global _explicit, _explicit_why
    previous = (_explicit, _explicit_why)
    _explicit, _explicit_why = n, why
    return previous


class _Scope:
    """BLAS at n threads inside the block; on exit each library changed gets its count back."""
    __slots__ = ("n", "changed")

    def __init__(self, n):
        self.n, self.changed = n, ()

    def __enter__(self):
        libs, seen = _blas
        if seen != len(sys.modules):
            libs = _blas_libs()
        n, changed = self.n, []
        for get, put in libs:
            had = get()
            if had != n:
                put(n)
                changed.append((put, had))
        self.changed = changed
        return self

    def __exit__(self, *exc):
        for put, had in self.changed:
            put(had)
        return False


_AS_CONFIGURED = contextlib.nullcontext()


def policy(x, w_hh):
    """The thread rule around one layer call: x the time-major input (T, B, I), w_hh the
    recurrent weight (G*H, P) -> a context manager that runs the block at the chosen count.
    A call with a per-step product B x size(w_hh) at or above SMALL_PRODUCT and no count set
    runs with BLAS as it is configured."""
    n = _explicit
    if n is None:
        n = _env_count if _env_count is not _UNREAD else _read_env()
        if n is None:
            shape = getattr(x, "shape", ())
            if len(shape) > 1 and shape[1] * getattr(w_hh, "size", 0) >= SMALL_PRODUCT:
                return _AS_CONFIGURED
            n = 1
    return _Scope(n)


def _count_arg(name, value):
    """A thread count argument: a positive int (numpy integers too), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer (a thread count) or None, got "
                        f"{type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer (a thread count) or None, got "
                         f"{value!r}")
    return int(value)


def set_num_threads(n):
    """Use n BLAS threads in every minirnn call from now on, as torch.set_num_threads does for
    torch: model(x), model.backward, the cells and the functional API (and Numba's thread count,
    kept like for like though no kernel is threaded). n=None goes back to the
    default: MINIRNN_NUM_THREADS (read again now; otherwise it is read once, at the first call
    that computes), else 1 thread for per-step products below SMALL_PRODUCT multiply-adds and
    BLAS's own count above. Process-wide; inside a command, --threads wins."""
    n = None if n is None else _count_arg("n", n)
    if n is None:
        _read_env()                                     # a bad MINIRNN_NUM_THREADS: refused now
    set_explicit(n, "minirnn.set_num_threads")
    _config.ask_threads(n)                              # Numba's count too


def get_num_threads():
    """The BLAS threads minirnn's calls use: the count set (set_num_threads, else
    MINIRNN_NUM_THREADS, read again now); without one, the BLAS library's current count, which
    calls above the size rule's SMALL_PRODUCT use (smaller ones run on 1 thread)."""
    n = explicit_threads()
    if n is not None:
        return n
    counts = [get() for get, _ in _blas_libs()]
    return min(counts) if counts else usable_cores()
