"""The persistent kernel for every cell (minirnn/kernels/_persistent_cells.py: Elman tanh and
relu, GRU, LSTM) against the NumPy reference: outputs, cache fields, gradients and per-step
records; ragged lengths; both dtypes; 1 and 2 Numba threads; several panels a thread; both
directions through the modules (tests/kernels/test_persistent.py: the LSTM's own cases,
packing)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.cells import gru, lstm, rnn
from minirnn.cells import get_cell
from minirnn.testing import assert_close
from tests.helpers import numba_threads

numba = pytest.importorskip("numba")
K = pytest.importorskip("minirnn.kernels")
from minirnn.kernels import _gru as KG  # noqa: E402
from minirnn.kernels import _lstm as KL  # noqa: E402
from minirnn.kernels import _persistent as PS  # noqa: E402
from minirnn.kernels import _persistent_cells as PC  # noqa: E402
from minirnn.kernels import _rnn as KR  # noqa: E402

RTOL = {"float64": 1e-13, "float32": 2e-5}
ATOL = {"float64": 1e-15, "float32": 1e-7}
THREADS = [n for n in (1, 2) if n <= numba.config.NUMBA_NUM_THREADS]
CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]


def _random(rng, dtype, *shape, scale=0.5):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _run(cell, ref_or_kernel, x, h0, c0, w, valid, d_out, d_hT, d_cT, **kw):
    """Forward and backward (return_steps) of cell through the reference module or the
    kernels -> (out, h_T[, c_T]), cache, grads."""
    if cell == "lstm":
        f = lstm if ref_or_kernel == "ref" else None
        fwd = f.forward if f else K.lstm_forward
        bwd = f.backward if f else K.lstm_backward
        res = fwd(x, h0, c0, *w, None, valid, **kw)
        return res[:3], res[3], bwd(res[3], d_out, d_hT, d_cT, True, **kw)
    if cell == "gru":
        fwd = gru.forward if ref_or_kernel == "ref" else K.gru_forward
        bwd = gru.backward if ref_or_kernel == "ref" else K.gru_backward
        res = fwd(x, h0, *w, valid, **kw)
    else:
        fwd = rnn.forward if ref_or_kernel == "ref" else K.rnn_forward
        bwd = rnn.backward if ref_or_kernel == "ref" else K.rnn_backward
        res = fwd(x, h0, *w, cell[4:], valid, **kw)
    return res[:2], res[2], bwd(res[2], d_out, d_hT, True, **kw)


def _check(cell, T, B, I, H, dtype, ragged, bias, seed, d_state):
    rng = np.random.default_rng(seed)
    G = get_cell(cell).gates
    x, h0, c0 = _random(rng, dtype, T, B, I), _random(rng, dtype, B, H), _random(rng, dtype, B, H)
    w = [_random(rng, dtype, G * H, I), _random(rng, dtype, G * H, H)]
    w += [_random(rng, dtype, G * H), _random(rng, dtype, G * H)] if bias else [None, None]
    valid = None
    if ragged:
        valid = np.arange(T)[:, None] < rng.integers(1, T + 1, size=B)[None, :]
    d_out = _random(rng, dtype, T, B, H)
    d_hT, d_cT = ((_random(rng, dtype, B, H), _random(rng, dtype, B, H)) if d_state
                  else (None, None))
    args = (x, h0, c0, w, valid, d_out, d_hT, d_cT)
    res_r, cache_r, g_r = _run(cell, "ref", *args)
    res_k, cache_k, g_k = _run(cell, "kernel", *args, path="persistent")
    rt, at = RTOL[dtype], ATOL[dtype]
    assert type(cache_k) is type(cache_r)
    for name, a, e in zip(["out", "h_T", "c_T"], res_k, res_r):
        assert a.dtype == e.dtype
        assert_close(a, e, rtol=rt, atol=at, name=name)
    for field in cache_r._fields:
        e = getattr(cache_r, field)
        if isinstance(e, np.ndarray) and e.dtype.kind == "f":
            assert_close(getattr(cache_k, field), e, rtol=rt, atol=at, name="cache." + field)
    for i, (a, e) in enumerate(zip(g_k[:-1], g_r[:-1])):
        if e is None:
            assert a is None, i
        else:
            assert_close(a, e, rtol=rt, atol=at, name=f"grad {i}")
    for field in g_r[-1]._fields:
        assert_close(getattr(g_k[-1], field), getattr(g_r[-1], field), rtol=rt, atol=at,
                     name="steps." + field)


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(CELLS),
       shape=st.tuples(st.integers(1, 5), st.integers(1, 7), st.integers(1, 9),
                       st.integers(1, 33)),
       dtype=st.sampled_from(["float64", "float32"]), ragged=st.booleans(), bias=st.booleans(),
       d_state=st.booleans(), n=st.sampled_from(THREADS), seed=st.integers(0, 2**31 - 1))
def test_persistent_cells_match_reference(cell, shape, dtype, ragged, bias, d_state, n, seed):
    with numba_threads(n):
        _check(cell, *shape, dtype, ragged, bias, seed, d_state)


@pytest.mark.parametrize("n", THREADS)
@pytest.mark.parametrize("cell", ["rnn_relu", "gru"])
def test_several_panels_and_odd_batch(cell, n):
    """H past one panel (PANEL_BYTES): several panels a thread, a short last one, an odd B."""
    for dtype in ("float64", "float32"):
        H = PS.panel_units(10 ** 6, get_cell(cell).gates, np.dtype(dtype).itemsize, 1) + 5
        with numba_threads(n):
            _check(cell, 3, 5, 4, H, dtype, ragged=True, bias=True, seed=4, d_state=True)


def _states(cell, s):
    return list(s) if cell == "lstm" else [s]            # (h_n, c_n) or h_n


@pytest.mark.parametrize("n", THREADS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_module_both_directions_lengths(cell, dtype, n, monkeypatch):
    """Through minirnn.RNN / GRU / LSTM (two layers, bidirectional, ragged lengths) with the
    kernels' path choice forced to the persistent kernel: equal to the NumPy module."""
    calls = []

    def forced(B, G, H, proj, path=None):
        calls.append(G)
        return True
    family = KL if cell == "lstm" else KG if cell == "gru" else KR
    monkeypatch.setattr(family, "persistent_path", forced)
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=13)
    make = {"lstm": minirnn.LSTM, "gru": minirnn.GRU}.get(cell)
    if make is None:
        kw["nonlinearity"] = cell[4:]
        make = minirnn.RNN
    ref, fast = make(5, 7, **kw), make(5, 7, backend="numba", **kw)
    rng = np.random.default_rng(6)
    T, B = 6, 6
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)
    state = (h0, 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)) if cell == "lstm" else h0
    lengths = np.array([6, 3, 1, 5, 2, 6])
    with numba_threads(n):
        out_r, s_r = ref(x, state, lengths=lengths)
        out_f, s_f = fast(x, state, lengths=lengths)
        rt = RTOL[dtype]
        assert_close(out_f, out_r, rtol=rt, atol=ATOL[dtype], name="out")
        for i, (a, e) in enumerate(zip(_states(cell, s_f), _states(cell, s_r))):
            assert_close(a, e, rtol=rt, atol=ATOL[dtype], name=f"state {i}")
        d_out = rng.standard_normal(out_r.shape).astype(dtype)
        dx_r, ds_r = ref.backward(d_out)
        dx_f, ds_f = fast.backward(d_out)
    assert_close(dx_f, dx_r, rtol=rt, atol=ATOL[dtype], name="dx")
    for i, (a, e) in enumerate(zip(_states(cell, ds_f), _states(cell, ds_r))):
        assert_close(a, e, rtol=rt, atol=ATOL[dtype], name=f"d state {i}")
    for (name, _, g_r), (_, _, g_f) in zip(ref.named_parameters(), fast.named_parameters()):
        assert_close(g_f, g_r, rtol=rt, atol=ATOL[dtype], name="grad " + name)
    assert len(calls) >= 8                      # 2 layers x 2 directions x forward, backward


def test_direct_calls_with_and_without_threads():
    """gru_/rnn_forward and _backward with threads absent (Numba's count) and given."""
    rng = np.random.default_rng(8)
    T, B, H = 3, 5, 6
    v = np.ones((T, B), dtype=np.bool_)
    v[2, 1] = False
    d_out = rng.standard_normal((T, B, H))
    h0 = rng.standard_normal((B, H))
    gi = rng.standard_normal((T, B, 3 * H))
    w3 = 0.3 * rng.standard_normal((3 * H, H))
    b_hh = rng.standard_normal(3 * H)
    for b in (b_hh, None):
        runs = []
        for n in (None, 2):
            g, hn, out = gi.copy(), np.empty((T, B, H)), np.empty((T, B, H))
            hx = PC.gru_forward(g, h0, w3, b, v, hn, out, **({} if n is None else {"threads": n}))
            dh, dgi, dgh = np.empty((T, B, H)), np.empty_like(g), np.empty_like(g)
            kw = {} if n is None else {"threads": n}
            dh0 = PC.gru_backward(d_out, np.zeros((B, H)), h0[None], hx[1:], g, hn, w3, v, dh,
                                  dgi, dgh, **kw)
            runs.append((hx, g, hn, out, dh0, dh, dgi, dgh))
        for a, e in zip(*runs):
            assert_close(a, e, rtol=1e-15, name="gru threads=2 against the default")
    w1 = 0.3 * rng.standard_normal((H, H))
    a0 = rng.standard_normal((T, B, H))
    for relu in (False, True):
        runs = []
        for n in (None, 2):
            kw = {} if n is None else {"threads": n}
            a, out = a0.copy(), np.empty((T, B, H))
            hx = PC.rnn_forward(a, h0, w1, v, relu, out, **kw)
            dh, da = np.empty((T, B, H)), np.empty((T, B, H))
            dh0 = PC.rnn_backward(d_out, np.zeros((B, H)), a, hx[1:], w1, v, relu, dh, da, **kw)
            runs.append((hx, a, out, dh0, dh, da))
        for a, e in zip(*runs):
            assert_close(a, e, rtol=1e-15, name="rnn threads=2 against the default")
        if relu:
            np.testing.assert_array_equal(runs[0][0][1:][v], np.maximum(runs[0][1], 0)[v])
        else:
            assert_close(runs[0][0][1:][v], np.tanh(runs[0][1])[v], rtol=1e-14, name="tanh")


def test_path_choice_for_gru_and_rnn():
    for G in (1, 3):
        assert PS.persistent_path(32, G, 16, False, "persistent")
        assert not PS.persistent_path(32, G, 16, False, "blas")
        assert PS.persistent_path(32, G, 16, False) == (32 * G * 16 * 16
                                                        >= PS.PERSISTENT_MIN_WORK)
    x, h0 = np.zeros((2, 1, 3)), np.zeros((1, 4))
    with pytest.raises(ValueError, match="path: expected None, 'loop', 'blas' or 'persistent', "
                                         "got 'bogus'"):
        K.rnn_forward(x, h0, np.zeros((4, 3)), np.zeros((4, 4)), path="bogus")
