"""BLAS threads, chosen on purpose (threadpoolctl), for every command that computes.

NumPy's OpenBLAS starts one worker thread per core, and its workers spin while they wait for
the next product. For the products a recurrent network runs at every time step (a (B, H)
state times the (H, G*H) recurrent weight, T times in a row) the split is not worth it, and
when another process holds a core the spinning workers fight it: measured on 2 cores with one
spinning process, `minirnn train names --epochs 2` trained 6x slower with the default threads
than with one. So minirnn decides, for the CLI and the library alike:

    1. --threads N (train, step, gradcheck, predict, generate, study), or the count set with
       minirnn.set_num_threads(n) in Python, else
    2. MINIRNN_NUM_THREADS=N (the one environment variable; minirnn/_config.py), else
    3. the size rule: 1 BLAS thread when the per-step recurrent product B x H x G*H
       (multiply-adds) is below SMALL_PRODUCT; above it the BLAS library's own count (its
       pool: the usable cores, or what OPENBLAS_NUM_THREADS says).

`limit(choice)` applies the count around a command's work and restores the previous one
afterwards (torch's intra-op threads too, for the torch backend); inside it, the library's
per-call rule (minirnn/_blas.py, which holds SMALL_PRODUCT) uses the command's count.
OPENBLAS_NUM_THREADS and friends still cap the pool the BLAS library starts with.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

from . import _blas, _config
from ._blas import SMALL_PRODUCT  # noqa: F401  (the rule's threshold, one place)
from ._config import usable_cores

ENV = "MINIRNN_NUM_THREADS"


class Choice(NamedTuple):
    threads: int            # the BLAS thread count to use
    why: str                # one line for the user: where the number comes from


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
    n, why = _blas.explicit()
    if n is not None:
        return Choice(n, why)
    env = _config.env_threads()
    if env is not None:
        return Choice(env, ENV)
    if product is None:
        return Choice(usable_cores(), "the usable cores")
    if product < _blas.SMALL_PRODUCT:
        return Choice(1, f"per-step product {_sci(product)} multiply-adds < "
                         f"{_sci(_blas.SMALL_PRODUCT)}")
    return Choice(usable_cores(),
                  f"per-step product {_sci(product)} multiply-adds >= {_sci(_blas.SMALL_PRODUCT)}")


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
    from threadpoolctl import threadpool_limits
    n = choice.threads if isinstance(choice, Choice) else _positive("threads", choice)
    saved_torch, saved_explicit = None, _blas.explicit()
    if torch:
        import torch as _torch
        saved_torch = _torch.get_num_threads()
        _torch.set_num_threads(n)
    try:
        # the library calls inside use the command's count
        _blas.set_explicit(n, choice.why if isinstance(choice, Choice) else "threads")
        with threadpool_limits(limits=n, user_api="blas"):
            counts = blas_threads()
            yield min(counts) if counts else None
    finally:
        _blas.set_explicit(*saved_explicit)
        if saved_torch is not None:
            import torch as _torch
            _torch.set_num_threads(saved_torch)


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
