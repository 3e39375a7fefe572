"""BLAS threads, chosen on purpose (threadpoolctl), for every library call and every command.

NumPy's OpenBLAS starts one worker thread per core, and its workers spin while they wait for
the next product. For the products a recurrent network runs at every time step (a (B, H)
state times the (H, G*H) recurrent weight, T times in a row) the split is not worth it, and
when another process holds a core the spinning workers fight it: measured on 2 cores with one
spinning process, `minirnn train names --epochs 2` trained 6x slower with the default threads
than with one. So minirnn decides, for the CLI and the library alike:

    1. a count set on purpose: minirnn.set_num_threads(n) in Python, --threads N on a command
       (train, step, gradcheck, predict, generate, study), else
    2. MINIRNN_NUM_THREADS=N (the one environment variable; minirnn/_config.py), else
    3. the size rule: 1 BLAS thread when the per-step recurrent product B x H x G*H
       (multiply-adds) is below SMALL_PRODUCT; above it the BLAS library's own count (its
       pool: the usable cores, or what OPENBLAS_NUM_THREADS says).

Library calls (model(x), model.backward, the cells, the functional API: every layer that
runs through a kernel backend) each enter `policy(x, w_hh)`, which sets the count around the
call and puts the previous one back afterwards, so the caller's own NumPy keeps its threads.
It costs a microsecond or two per call (benchmarks/module_overhead.py measures it) and nothing
when BLAS already runs with the count. Commands use `limit(choice)`, which also makes the
count the library's for the block (torch's intra-op threads too, for the torch backend).
The setting is process-wide, as torch's set_num_threads is.
"""
from __future__ import annotations

import contextlib
import numbers
import os
import sys
from typing import NamedTuple

from . import _config

# The per-step recurrent product (multiply-adds) from which a second BLAS thread pays off in
# an end-to-end forward+backward of one layer on a quiet machine; measured with
# `python -m minirnn._threads` (see measure()). Below it every tutorial model in this package
# (names B=64 H=128 LSTM: 4.2e6; script/char B=32 H=256 LSTM: 8.4e6).
SMALL_PRODUCT = 3.0e7

ENV = "MINIRNN_NUM_THREADS"


class Choice(NamedTuple):
    threads: int            # the BLAS thread count to use
    why: str                # one line for the user: where the number comes from


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # not on Linux
        return os.cpu_count() or 1


def step_product(batch, hidden, cell="lstm", proj_size=0):
    """Multiply-adds of one time step's recurrent product: B x H_out x G*H."""
    from .cells import get_cell
    gates = get_cell(cell).gates
    return int(batch) * int(proj_size or hidden) * gates * int(hidden)


def _positive(name, value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or (isinstance(value, float) and value != n):
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return n


def choose(threads=None, product=None) -> Choice:
    """The thread count by the rule in the module docstring. `product`: the per-step recurrent
    product of the run (step_product); None when unknown (then the usable cores)."""
    if threads is not None:
        return Choice(_positive("--threads", threads), "--threads")
    if _explicit is not None:
        return Choice(_explicit, _explicit_why)
    env = _config.env_threads()
    if env is not None:
        return Choice(env, ENV)
    if product is None:
        return Choice(usable_cores(), "the usable cores")
    if product < SMALL_PRODUCT:
        return Choice(1, f"per-step product {_sci(product)} multiply-adds < {_sci(SMALL_PRODUCT)}")
    return Choice(usable_cores(),
                  f"per-step product {_sci(product)} multiply-adds >= {_sci(SMALL_PRODUCT)}")


def _sci(x):
    """2.6e+05 -> 2.6e5"""
    return f"{x:.1e}".replace("e+0", "e").replace("e+", "e").replace(".0e", "e")


def describe(choice, actual=None):
    n = choice.threads if actual is None else actual
    capped = "" if actual is None or actual == choice.threads else \
        f", capped from {choice.threads} by the BLAS pool"
    return (f"{n} BLAS thread{'s' if n != 1 else ''} ({choice.why}{capped}; "
            f"--threads N or {ENV}=N to choose)")


def blas_threads():
    """The BLAS libraries' current thread counts, e.g. [2] (threadpoolctl)."""
    from threadpoolctl import threadpool_info
    return [d["num_threads"] for d in threadpool_info() if d.get("user_api") == "blas"]


@contextlib.contextmanager
def limit(choice, torch=False):
    """BLAS (and, with torch=True, torch's intra-op pool) at choice.threads inside the block;
    yields the count BLAS really runs with (min over its libraries), or None without BLAS."""
    global _explicit, _explicit_why
    from threadpoolctl import threadpool_limits
    n = choice.threads if isinstance(choice, Choice) else _positive("threads", choice)
    saved_torch, saved_explicit = None, (_explicit, _explicit_why)
    if torch:
        import torch as _torch
        saved_torch = _torch.get_num_threads()
        _torch.set_num_threads(n)
    try:
        # the library calls inside use the command's count
        _explicit, _explicit_why = n, choice.why if isinstance(choice, Choice) else "threads"
        with threadpool_limits(limits=n, user_api="blas"):
            counts = blas_threads()
            yield min(counts) if counts else None
    finally:
        _explicit, _explicit_why = saved_explicit
        if saved_torch is not None:
            import torch as _torch
            _torch.set_num_threads(saved_torch)


# ---- the library's policy: one entry per layer call ------------------------------------------
_explicit = None          # set_num_threads(n), or a command's limit(): the count every call uses
_explicit_why = ""        # where it comes from, for describe()
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
    which the opt-in persistent kernel shares its time loop with). n=None goes back to the
    default: MINIRNN_NUM_THREADS (read again now; otherwise it is read once, at the first call
    that computes), else 1 thread for per-step products below SMALL_PRODUCT multiply-adds and
    BLAS's own count above. Process-wide; inside a command, --threads wins."""
    global _explicit, _explicit_why
    n = None if n is None else _count_arg("n", n)
    env = _read_env() if n is None else None         # a bad MINIRNN_NUM_THREADS: refused now
    _explicit, _explicit_why = n, "minirnn.set_num_threads"
    if "minirnn.kernels._common" in sys.modules:        # else the kernels apply it on import
        import numba
        _config.apply_threads(n or env or numba.config.NUMBA_NUM_THREADS)


def get_num_threads():
    """The BLAS threads minirnn's calls use: the count set (set_num_threads, else
    MINIRNN_NUM_THREADS, read again now); without one, the BLAS library's current count, which
    calls above the size rule's SMALL_PRODUCT use (smaller ones run on 1 thread)."""
    n = explicit_threads()
    if n is not None:
        return n
    counts = [get() for get, _ in _blas_libs()]
    return min(counts) if counts else usable_cores()


def add_argument(parser):
    """The --threads option every computing command shares."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"BLAS threads (default: {ENV}, else 1 for per-step products "
                             f"below {SMALL_PRODUCT:.0e} multiply-adds, the usable cores above)")


# ---- how SMALL_PRODUCT was measured -----------------------------------------------------------
def measure(sizes=((64, 128), (32, 256), (64, 256), (128, 256), (64, 512), (128, 512)), T=30,
            cell="lstm", repeats=5, threads=(1, 2)):
    """Forward+backward of one `cell` layer (numba backend, float64, I = H) at each (B, H),
    alternating the thread counts, best of `repeats` -> rows (B, H, product, {threads: s})."""
    import time

    import numpy as np

    from .nn import make_recurrent
    rng = np.random.default_rng(0)
    rows = []
    for B, H in sizes:
        m = make_recurrent(cell, H, H, backend="numba", seed=0)
        x = rng.standard_normal((T, B, H))
        out, _ = m(x)
        m.backward(np.ones_like(out))                  # compile and warm up
        best = {n: float("inf") for n in threads}
        for _ in range(repeats):
            for n in threads:
                with limit(Choice(n, "measure")):     # the library's calls too
                    t0 = time.perf_counter()
                    out, _ = m(x)
                    m.backward(np.ones_like(out))
                    best[n] = min(best[n], time.perf_counter() - t0)
        rows.append((B, H, step_product(B, H, cell), best))
    return rows


if __name__ == "__main__":
    import sys
    cell = sys.argv[1] if len(sys.argv) > 1 else "lstm"
    for B, H, product, best in measure(cell=cell):
        print(f"{cell} B={B} H={H} per-step product {product:.1e}: "
              + ", ".join(f"{n} thr {t * 1e3:.1f} ms" for n, t in best.items())
              + f"  (1 -> 2 threads: x{best[1] / best[2]:.2f})", flush=True)
