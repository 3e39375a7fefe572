"""One thread policy for the library and the CLI (minirnn/_blas.py, minirnn/_threads.py).

What is checked is behaviour: the BLAS thread count that threadpoolctl reports *inside* a
library call (a spy in place of the reference or kernel function the call reaches), and the
count outside it afterwards. The rule: a count set on purpose (set_num_threads, a command's
--threads, MINIRNN_NUM_THREADS) wins; without one, 1 BLAS thread for per-step products below
SMALL_PRODUCT and BLAS as configured above it; the caller's count is put back after the call.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import minirnn
from minirnn import _blas
from minirnn import _threads as T
from minirnn import functional as F
from minirnn.cells import BUILTIN, get_cell
from minirnn.nn import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POOL = 2            # BLAS's own count in these tests (the outer threadpool_limits), != 1


def blas_counts():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def _load_every_blas():
    """One Numba call of each family first: the kernels' first call can load a BLAS library
    of its own (threadpoolctl then lists it), which the counts below must include."""
    rng = np.random.default_rng(0)
    for cell in ("lstm", "gru", "rnn_tanh"):
        m = make_recurrent(cell, 2, 3, backend="numba", seed=0)
        out, _ = m(rng.standard_normal((2, 1, 2)))
        m.backward(np.ones_like(out))


@pytest.fixture(autouse=True)
def default_policy(monkeypatch):
    """Each test starts from the default (no count set, MINIRNN_NUM_THREADS unset) with BLAS
    at POOL threads, and leaves it so."""
    if not blas_counts():
        pytest.skip("no BLAS library visible to threadpoolctl")
    monkeypatch.delenv(T.ENV, raising=False)
    minirnn.set_num_threads(None)
    _load_every_blas()
    with threadpool_limits(POOL, user_api="blas"):
        yield
    minirnn.set_num_threads(None)


@pytest.fixture
def inside(monkeypatch):
    """-> a list that receives the BLAS counts seen inside every forward/backward function of
    every built-in cell's reference (numpy) and Numba twin (a spy wrapped around each; the
    twins through the public minirnn.register_tier, put back afterwards)."""
    seen = []

    def spy(real):
        def wrapped(*a, **k):
            seen.append(blas_counts())
            return real(*a, **k)
        return wrapped

    twins = {name: get_cell(name).twin("numba") for name in BUILTIN}
    modules = {id(get_cell(name).reference): get_cell(name).reference for name in BUILTIN}
    for module in modules.values():                  # rnn_tanh and rnn_relu share a file
        for fn in ("forward", "backward"):
            monkeypatch.setattr(module, fn, spy(getattr(module, fn)))
    for name, twin in twins.items():
        minirnn.register_tier(name, "numba", twin._replace(forward=spy(twin.forward),
                                                           backward=spy(twin.backward)))
    yield seen
    for name, twin in twins.items():
        minirnn.register_tier(name, "numba", twin)


def _data(cell, B=2, T_=4, I=3, H=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T_, B, I)), rng.standard_normal((T_, B, H))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_module_calls_run_small_products_on_one_thread(inside, cell, backend):
    x, d_out = _data(cell)
    m = make_recurrent(cell, 3, 5, backend=backend, seed=1)
    out, _ = m(x)
    m.backward(d_out)
    assert inside == [[1] * len(blas_counts())] * 2                  # forward, then backward
    assert blas_counts() == [POOL] * len(blas_counts())              # the caller's count back


def test_stacked_bidirectional_and_cells_follow_the_rule(inside):
    rng = np.random.default_rng(2)
    m = minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, backend="numba", seed=0)
    out, _ = m(rng.standard_normal((5, 2, 3)))
    m.backward(rng.standard_normal(out.shape))
    cell = minirnn.GRUCell(3, 4, backend="numpy", seed=0)
    h = cell(rng.standard_normal((2, 3)))
    cell.backward(rng.standard_normal(h.shape))
    assert len(inside) == 2 * 4 + 2 and all(c == [1] * len(c) for c in inside)
    assert blas_counts() == [POOL] * len(blas_counts())


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_functional_api_follows_the_rule(inside, backend):
    rng = np.random.default_rng(3)
    T_, B, I, H = 4, 2, 3, 5
    x = rng.standard_normal((T_, B, I))
    z = lambda *s: rng.standard_normal(s)                                # noqa: E731
    out, h, c, cache = F.lstm_forward(x, z(B, H), z(B, H), z(4 * H, I), z(4 * H, H),
                                      backend=backend)
    F.lstm_backward(cache, z(*out.shape), backend=backend)
    out, h, cache = F.gru_forward(x, z(B, H), z(3 * H, I), z(3 * H, H), backend=backend)
    F.gru_backward(cache, z(*out.shape), backend=backend)
    out, h, cache = F.rnn_forward(x, z(B, H), z(H, I), z(H, H), backend=backend)
    F.rnn_backward(cache, z(*out.shape), backend=backend)
    assert len(inside) == 6 and all(c == [1] * len(c) for c in inside)
    assert blas_counts() == [POOL] * len(blas_counts())


def test_large_products_run_with_blas_as_configured(inside, monkeypatch):
    monkeypatch.setattr(_blas, "SMALL_PRODUCT", 1)              # every product counts as large
    x, d_out = _data("lstm")
    m = minirnn.LSTM(3, 5, backend="numba", seed=0)
    m(x)
    m.backward(d_out)
    assert inside == [[POOL] * len(blas_counts())] * 2


def test_set_num_threads_is_every_calls_count(inside):
    x, d_out = _data("lstm")
    m = minirnn.LSTM(3, 5, backend="numpy", seed=0)
    minirnn.set_num_threads(3)
    assert minirnn.get_num_threads() == 3
    m(x)
    m.backward(d_out)
    assert inside == [[3] * len(blas_counts())] * 2
    assert blas_counts() == [POOL] * len(blas_counts())             # outside: the caller's
    minirnn.set_num_threads(None)                                    # back to the rule
    assert minirnn.get_num_threads() == POOL
    m(x)
    assert inside[-1] == [1] * len(blas_counts())


def test_set_num_threads_gives_numba_the_count():
    import numba

    import minirnn.kernels  # noqa: F401  (the kernels loaded: Numba's count applies now)
    minirnn.set_num_threads(1)
    assert numba.get_num_threads() == 1
    minirnn.set_num_threads(None)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


def test_the_environment_variable_is_the_library_count(inside, monkeypatch):
    monkeypatch.setenv(T.ENV, "3")
    assert minirnn.get_num_threads() == 3          # read again here (else at the first call)
    x, d_out = _data("gru")
    m = minirnn.GRU(3, 5, backend="numba", seed=0)
    m(x)
    assert inside == [[3] * len(blas_counts())]
    minirnn.set_num_threads(2)                     # set on purpose: wins over the variable
    m(x)
    assert inside[-1] == [2] * len(blas_counts())
    monkeypatch.setenv(T.ENV, "0")
    minirnn.set_num_threads(1)                     # a count set needs no variable
    with pytest.raises(ValueError, match="MINIRNN_NUM_THREADS: expected a positive integer"):
        minirnn.set_num_threads(None)              # back to the variable: a bad one refused
    assert minirnn.get_num_threads() == 1          # the refused call changed nothing
    monkeypatch.delenv(T.ENV)


def test_a_commands_count_is_the_library_count_inside_it(inside):
    x, _ = _data("lstm")
    m = minirnn.LSTM(3, 5, backend="numpy", seed=0)
    with T.limit(T.Choice(3, "--threads")):
        m(x)
        assert T.choose(None, 1) == (3, "--threads")          # a nested command keeps it
    assert inside == [[3] * len(blas_counts())]
    m(x)
    assert inside[-1] == [1] * len(blas_counts())


def test_count_is_put_back_when_the_call_raises(monkeypatch):
    from minirnn.cells import lstm as ref

    def boom(*a, **k):
        assert blas_counts() == [1] * len(blas_counts())
        raise RuntimeError("inside")
    monkeypatch.setattr(ref, "forward", boom)
    x, _ = _data("lstm")
    with pytest.raises(RuntimeError, match="inside"):
        minirnn.LSTM(3, 5, backend="numpy", seed=0)(x)
    assert blas_counts() == [POOL] * len(blas_counts())


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (True, TypeError),
                                        (1.5, TypeError), (2.0, TypeError), ("2", TypeError),
                                        ([1], TypeError)])
def test_set_num_threads_refuses_a_bad_count(bad, error):
    with pytest.raises(error, match=r"^n: expected a positive integer .* got "):
        minirnn.set_num_threads(bad)
    assert _blas.explicit_threads() is None                          # nothing was set
    minirnn.set_num_threads(np.int64(2))                             # numpy integers are fine
    assert minirnn.get_num_threads() == 2


_CALL = ("import numpy as np, minirnn, minirnn._blas as T; from threadpoolctl import "
         "threadpool_info as i; T.SMALL_PRODUCT = 0; m = minirnn.LSTM(3, 4); "
         "import minirnn.cells.lstm as R; f = R.forward; "
         "R.forward = lambda *a, **k: print([d['num_threads'] for d in i() "
         "if d['user_api'] == 'blas']) or f(*a, **k); m(np.ones((2, 1, 3)))")


def _run(env_value):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="2")
    env[T.ENV] = env_value
    return subprocess.run([sys.executable, "-c", _CALL], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("value", ["0", "garbage", "-1", "1.5"])
def test_a_bad_environment_value_is_refused_by_the_library(value):
    res = _run(value)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: MINIRNN_NUM_THREADS: expected a positive integer")
    assert repr(value) in last


def test_the_environment_variable_holds_in_a_fresh_process():
    """The issue's case: MINIRNN_NUM_THREADS=1 with a 2-thread OpenBLAS pool, a product the
    size rule would leave to BLAS (SMALL_PRODUCT = 0): the call runs on 1 thread."""
    res = _run("1")
    assert res.returncode == 0, res.stderr
    counts = ast.literal_eval(res.stdout.splitlines()[0])
    assert counts and set(counts) == {1}


# ---- benchmarks/thread_policy.py's verdicts (the measurement itself is not a test) ----------
def _policy_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "thread_policy_bench", os.path.join(ROOT, "benchmarks", "thread_policy.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mode(median, p90, calls=200):
    return dict(median=median, p90=p90, calls=calls)


def test_thread_targets_count_what_they_judged_and_judge_nothing_without_a_busy_core():
    tp = _policy_script()
    good = dict(default=_mode(1.0, 1.5), pinned=_mode(0.9, 1.0))
    lines, judged, missed = tp.verdicts(good, busy_cores=0.97)
    assert (judged, missed) == (2, 0) and "2 of 2 targets judged" in lines[-1]
    lines, judged, missed = tp.verdicts(dict(default=_mode(1.0, 9.0), pinned=_mode(0.5, 0.6)),
                                        busy_cores=0.97)
    assert (judged, missed) == (2, 2) and lines[0].endswith("MISSED")
    for busy in (None, 0.2, 0.69):            # the foreign core was not busy: nothing judged
        lines, judged, missed = tp.verdicts(good, busy_cores=busy)
        assert judged == 0 and lines == [lines[0]] and lines[0].startswith("0 of 2 targets")
        assert "met" not in lines[0]
    lines, judged, _ = tp.verdicts(dict(default=_mode(1.0, 1.5, 5), pinned=_mode(1.0, 1.0, 5)),
                                   busy_cores=1.0)
    assert judged == 0
