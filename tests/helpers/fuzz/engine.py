"""The fuzzer's engine: degenerate values, one bounded call, and its verdict.

A case is a public callable with a valid baseline call (tests/helpers/fuzz/recipes.py), one or two
of whose arguments are replaced by degenerate but plausible values: arrays of rank 0, of the
wrong rank, with an empty or a huge (zero-stride) dimension, non-finite, of the wrong dtype,
Python lists; None; booleans and floats where ints go; huge sizes; wrong strings; a wrong
model. The call must succeed or be *refused*: a ValueError or TypeError (or an exception the
recipe names, e.g. assert_close's AssertionError) raised by a `raise` statement in minirnn's
own code. Anything else is a crash: IndexError, KeyError, MemoryError, a numba typing error,
a TypeError or ValueError that numpy or Python raised inside a minirnn function ("cannot
reshape array", "'NoneType' object is not subscriptable"), a RecursionError, or a call that
runs past its time bound.

    python -m tests.test_fuzz --calls 100000    # the long run: every crash site, counted
"""
from __future__ import annotations

import contextlib
import faulthandler
import inspect
import linecache
import math
import os
import resource
import signal
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import minirnn

PKG = Path(minirnn.__file__).resolve().parent
CALL_SECONDS = 20          # a call running longer is a hang (the largest baselines take < 2 s)
HUGE = (2**40, 2**62, 10**30)   # sizes no machine holds: refused before any allocation


class CallTimeout(BaseException):
    """A call ran past CALL_SECONDS (a BaseException: `except Exception` in the library
    cannot swallow it)."""


# ---- degenerate values ---------------------------------------------------------------------------

def _axis_sizes(a, k, n):
    shape = list(a.shape)
    shape[k] = n
    return tuple(shape)


def _array_variants(a):
    """Degenerate relatives of the array a (its dtype, rank, sizes, values)."""
    out = [np.asarray(a.flat[0] if a.size else 1.0, dtype=a.dtype), a[..., None], a.tolist(),
           a.astype(np.complex128), a.astype(bool), a.astype(object), a.astype(np.float16),
           a.astype(str), None, 1.0, True, "x", (a,)]
    out += [a.astype(t) for t in (np.int64, np.uint8, np.float32, np.float64) if t != a.dtype]
    if a.ndim:
        out += [a[0], a.reshape(-1), np.asfortranarray(a), a[..., ::-1]]
        for k in range(a.ndim):
            out += [np.zeros(_axis_sizes(a, k, 0), a.dtype),
                    np.ones(_axis_sizes(a, k, a.shape[k] + 1), a.dtype)]
            if a.shape[k] > 1:
                out.append(np.take(a, range(a.shape[k] - 1), axis=k))
            # a view: no memory behind it, but a copy would need petabytes
            out.append(np.broadcast_to(np.zeros((), a.dtype), _axis_sizes(a, k, 2**40)))
    if a.size:
        for bad in (np.nan, np.inf, -np.inf, 1e308, -1):
            b = np.array(a, dtype=np.float64 if a.dtype.kind in "iub" else a.dtype)
            with np.errstate(over="ignore"):              # 1e308 is inf in float32
                b.flat[a.size // 2] = bad
            out.append(b)
        if a.dtype.kind in "iu":
            out += [a * 0 - 1, a * 0 + 2**62, a + 0.5]
    return out


def _int_variants(v):
    out = [0, -1, True, False, 2.5, float(v), "3", None, math.nan, math.inf, np.int64(v),
           np.uint8(2), [v], np.array(v), np.array([v]), -2**63]
    return out + list(HUGE)


def _float_variants(v):
    return [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 5e-324, True, "0.1", None, 10**30,
            complex(1, 1), np.float32(v), [v], np.array(v), np.array([v, v])]


def _str_variants(v):
    return ["", "bogus", None, 1, v.encode(), v.upper(), v + " ", [v], True, np.str_(v)]


def _generic_variants():
    """For an argument whose baseline is None (absent): things a caller might pass."""
    return [0, -1, 1, True, "x", 1.5, math.nan, [], (), {}, np.zeros(0), np.zeros(()),
            np.zeros((2,)), np.array([np.nan]), [1, 2], object(), 2**40]


def _model_variants(w):
    """A wrong or different model: the World draws the alternatives."""
    return [None, 1, "lstm", np.zeros(3), object(), *w.other_models()]


def draw_degenerate(draw, w, value):
    """A degenerate variant of `value`, drawn (recursing into tuples, lists and dicts)."""
    if isinstance(value, np.ndarray):
        return draw(st.sampled_from(_array_variants(value)))
    if isinstance(value, (bool, np.bool_)):
        return draw(st.sampled_from([0, 1, "False", None, np.bool_(not value), 2, math.nan,
                                     "yes"]))
    if isinstance(value, (int, np.integer)):
        return draw(st.sampled_from(_int_variants(int(value))))
    if isinstance(value, (float, np.floating)):
        return draw(st.sampled_from(_float_variants(float(value))))
    if isinstance(value, str):
        return draw(st.sampled_from(_str_variants(value)))
    if isinstance(value, (tuple, list)) and value:
        # a record the library made (a cache, a checkpoint) is opaque: it is replaced whole,
        # never edited inside, which no caller does
        record = hasattr(value, "_fields")
        how = draw(st.sampled_from(["short", "long", "type", "empty", "bare"] +
                                   ([] if record else ["element", "element"])))
        kind = list if isinstance(value, list) else tuple      # a NamedTuple's relatives too
        items = list(value)
        if how == "element":
            k = draw(st.integers(0, len(value) - 1))
            items[k] = draw_degenerate(draw, w, items[k])
            return kind(items)
        return {"short": kind(items[:-1]), "long": kind([*items, items[0]]), "empty": kind(),
                "type": list(items) if kind is tuple else tuple(items), "bare": items[0]}[how]
    if isinstance(value, dict) and value:
        how = draw(st.sampled_from(["entry", "entry", "unknown", "empty", "items"]))
        if how == "entry":
            key = draw(st.sampled_from(sorted(value, key=str)))
            return {**value, key: draw_degenerate(draw, w, value[key])}
        return {"unknown": {**value, "bogus": 1.0}, "empty": {},
                "items": list(value.items())}[how]
    if isinstance(value, minirnn.Module):
        return draw(st.sampled_from(_model_variants(w)))
    if callable(value) and not isinstance(value, type):
        return draw(st.sampled_from([None, 1, "x", lambda *a, **k: None,
                                     lambda *a, **k: (1.0, None), lambda *a, **k: np.zeros(0)]))
    return draw(st.sampled_from(_generic_variants()))


# ---- one bounded call ----------------------------------------------------------------------------

def _alarm(signum, frame):
    raise CallTimeout(f"the call ran longer than {CALL_SECONDS} s")


@contextlib.contextmanager
def bounded(seconds=CALL_SECONDS):
    """Interrupt the block after `seconds` (SIGALRM; main thread only) and keep its warnings
    (numpy's overflow on non-finite input, ...) out of the test's output. A signal cannot stop
    a loop inside numpy's C code or a compiled kernel: if the block is still there at 3 x
    `seconds`, the process prints every thread's stack and exits (a hang, never a stall)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(3 * seconds, exit=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def address_space_cap(extra=4 << 30):
    """Cap this process's address space at its current size + `extra`, so that an allocation
    which would swamp the machine fails at once as a MemoryError (a crash, reported) instead."""
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (now + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def consume(result):
    """Run what a call handed back lazily: a generator's items, a context manager's block."""
    if inspect.isgenerator(result):
        return list(result)
    if hasattr(result, "__enter__") and hasattr(result, "__exit__") \
            and isinstance(result, contextlib.AbstractContextManager):
        with result:
            pass
    return result


# ---- the verdict ---------------------------------------------------------------------------------

def raise_site(exc):
    """(file, line, source) of the innermost frame of exc's traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?", 0, ""
    path = tb.tb_frame.f_code.co_filename
    return path, tb.tb_lineno, linecache.getline(path, tb.tb_lineno).strip()


def deliberate(exc):
    """Raised by a `raise` statement in minirnn's own code (not by numpy, Python or numba
    inside a minirnn function)."""
    path, _, source = raise_site(exc)
    try:
        Path(path).resolve().relative_to(PKG)
    except ValueError:
        return False
    return source.startswith("raise ")


def verdict(exc, accept=()):
    """None (success) or an exception -> "ok", "refused" or "crash"."""
    if exc is None:
        return "ok"
    if isinstance(exc, (ValueError, TypeError, *accept)) and deliberate(exc):
        return "refused"
    if OSError in accept and isinstance(exc, OSError):
        return "refused"           # the system's answer about a path names the path
    return "crash"


def crash_site(exc):
    """Where a crash happened, for grouping: the innermost minirnn frame and the type."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if str(PKG) in str(Path(f.filename).resolve())]
    f = (ours or frames or [None])[-1]
    if f is None:
        return f"{type(exc).__name__} at ?"
    path = Path(f.filename).resolve().relative_to(PKG.parent) if ours else f.filename
    where = f"{path}:{f.name}:{f.lineno}"
    return f"{type(exc).__name__} at {where}"


def attempt(call, seconds=CALL_SECONDS):
    """Run one call -> (verdict, exception or None)."""
    exc = None
    try:
        with bounded(seconds):
            consume(call.fn(**call.kwargs))
    except BaseException as e:                     # noqa: B902 -- classified below
        if isinstance(e, KeyboardInterrupt):
            raise
        exc = e
    return verdict(exc, call.accept), exc


@contextlib.contextmanager
def working_in(path):
    """Run the block in directory `path` (a relative path a call writes lands there)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


def scratch_dir():
    """A fresh temporary directory for calls that write files."""
    return tempfile.TemporaryDirectory(prefix="minirnn-fuzz-")
