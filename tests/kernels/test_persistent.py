"""The persistent LSTM kernel (minirnn/kernels/_persistent*.py) against the NumPy reference:
every output, cache field, gradient and per-step record; ragged lengths; both dtypes; 1 and
2 Numba threads (panels split between them); both directions through the module; the
packing, the path choice, and the FMA-peak probe."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.functional import LSTMCache
from minirnn.cells import lstm
from minirnn.testing import assert_close
from tests.helpers import numba_threads

numba = pytest.importorskip("numba")
K = pytest.importorskip("minirnn.kernels")
from minirnn.kernels import _lstm as KL  # noqa: E402
from minirnn.kernels import _persistent as PS  # noqa: E402
from minirnn.kernels import _persistent_cells as PC  # noqa: E402

RTOL = {"float64": 1e-13, "float32": 2e-5}
ATOL = {"float64": 1e-15, "float32": 1e-7}
THREADS = [n for n in (1, 2) if n <= numba.config.NUMBA_NUM_THREADS]


@pytest.fixture
def threads(request):
    before = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(before)


def _random(rng, dtype, *shape, scale=0.5):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _check(T, B, I, H, dtype, ragged, bias, seed, d_state):
    rng = np.random.default_rng(seed)
    x, h0, c0 = _random(rng, dtype, T, B, I), _random(rng, dtype, B, H), _random(rng, dtype, B, H)
    w_ih, w_hh = _random(rng, dtype, 4 * H, I), _random(rng, dtype, 4 * H, H)
    b_ih, b_hh = (_random(rng, dtype, 4 * H), _random(rng, dtype, 4 * H)) if bias else (None, None)
    valid = None
    if ragged:
        lengths = rng.integers(1, T + 1, size=B)
        valid = np.arange(T)[:, None] < lengths[None, :]
    d_out = _random(rng, dtype, T, B, H)
    d_hT, d_cT = ((_random(rng, dtype, B, H), _random(rng, dtype, B, H)) if d_state
                  else (None, None))
    ref = lstm.forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, valid)
    got = K.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, valid, path="persistent")
    assert isinstance(got[3], LSTMCache)
    rt, at = RTOL[dtype], ATOL[dtype]
    for name, a, e in zip(["out", "h_T", "c_T"], got[:3], ref[:3]):
        assert a.dtype == e.dtype
        assert_close(a, e, rtol=rt, atol=at, name=name)
    for field in ("gates", "c", "h"):
        assert_close(getattr(got[3], field), getattr(ref[3], field), rtol=rt, atol=at,
                     name="cache." + field)
    g_ref = lstm.backward(ref[3], d_out, d_hT, d_cT, return_steps=True)
    g_got = K.lstm_backward(got[3], d_out, d_hT, d_cT, True, path="persistent")
    for name, a, e in zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"], g_got, g_ref):
        if e is None:
            assert a is None, name
        else:
            assert_close(a, e, rtol=rt, atol=at, name=name)
    for field in g_ref[8]._fields:
        assert_close(getattr(g_got[8], field), getattr(g_ref[8], field), rtol=rt, atol=at,
                     name="steps." + field)


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 9),
                       st.integers(1, 41)),
       dtype=st.sampled_from(["float64", "float32"]), ragged=st.booleans(), bias=st.booleans(),
       d_state=st.booleans(), n=st.sampled_from(THREADS), seed=st.integers(0, 2**31 - 1))
def test_persistent_lstm_matches_reference(shape, dtype, ragged, bias, d_state, n, seed):
    with numba_threads(n):
        _check(*shape, dtype, ragged, bias, seed, d_state)


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_several_panels_and_odd_batch(threads, dtype):
    """H past one panel (PANEL_BYTES): several panels a thread, a short last panel, an odd B
    (the two-row product's last row), K not a multiple of 8."""
    H = PS.panel_units(10 ** 6, 4, np.dtype(dtype).itemsize, 1) + 13
    _check(3, 5, 4, H, dtype, ragged=True, bias=True, seed=3, d_state=True)


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_module_both_directions_lengths(threads, dtype, monkeypatch):
    """Through minirnn.LSTM (two layers, bidirectional, ragged lengths) with the kernels'
    path choice forced to the persistent kernel: equal to the NumPy module."""
    calls = []

    def forced(B, G, H, proj, path=None):
        calls.append(B)
        return not proj
    monkeypatch.setattr(KL, "persistent_path", forced)
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=11)
    ref, fast = minirnn.LSTM(5, 7, **kw), minirnn.LSTM(5, 7, backend="numba", **kw)
    rng = np.random.default_rng(5)
    T, B = 6, 6
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)
    c0 = 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)
    lengths = np.array([6, 3, 1, 5, 2, 6])
    out_r, (h_r, c_r) = ref(x, (h0, c0), lengths=lengths)
    out_f, (h_f, c_f) = fast(x, (h0, c0), lengths=lengths)
    rt = RTOL[dtype]
    for name, a, e in [("out", out_f, out_r), ("h_n", h_f, h_r), ("c_n", c_f, c_r)]:
        assert_close(a, e, rtol=rt, name=name)
    d_out = rng.standard_normal(out_r.shape).astype(dtype)
    dx_r, (dh_r, dc_r) = ref.backward(d_out)
    dx_f, (dh_f, dc_f) = fast.backward(d_out)
    for name, a, e in [("dx", dx_f, dx_r), ("dh0", dh_f, dh_r), ("dc0", dc_f, dc_r)]:
        assert_close(a, e, rtol=rt, name=name)
    for (name, _, g_r), (_, _, g_f) in zip(ref.named_parameters(), fast.named_parameters()):
        assert_close(g_f, g_r, rtol=rt, name="grad " + name)
    assert len(calls) >= 8                      # 2 layers x 2 directions x forward, backward


def test_path_choice():
    assert PS.persistent_path(32, 4, 256, False, "persistent")
    assert not PS.persistent_path(32, 4, 256, False, "blas")
    assert not PS.persistent_path(32, 4, 256, False, "loop")
    assert not PS.persistent_path(32, 4, 256, True)              # no projection kernel
    assert not PS.persistent_path(2, 4, 256, False)              # B <= 4: the loop path
    assert PS.persistent_path(32, 4, 256, False) == (32 * 4 * 256 * 256
                                                     >= PS.PERSISTENT_MIN_WORK)
    with pytest.raises(ValueError, match="path: 'persistent' has no LSTM projection"):
        PS.persistent_path(32, 4, 8, True, "persistent")
    assert PS.persistent_path(32, 3, 8, False, "persistent")      # GRU, Elman: no projection
    with pytest.raises(ValueError, match="path: expected None, 'loop', 'blas' or 'persistent'"):
        K.gru_forward(*[np.zeros(s) for s in [(2, 1, 3), (1, 4), (12, 3), (12, 4)]],
                      path="bogus")


def test_packing_is_the_documented_layout():
    rng = np.random.default_rng(1)
    G, H, Kd, U = 4, 5, 3, 2
    w = rng.standard_normal((G * H, Kd))
    wp = PS.pack_forward(w, G, U)
    assert wp.shape == (3, Kd, G * U) and wp.flags.c_contiguous
    for p in range(3):
        for g in range(G):
            for u in range(U):
                col = wp[p, :, g * U + u]
                j = p * U + u
                np.testing.assert_array_equal(col, w[g * H + j] if j < H else 0.0)
    wh = rng.standard_normal((G * H, H))
    wb = PS.pack_backward(wh, U)
    assert wb.shape == (3, G * H, U)
    for p in range(3):
        for u in range(U):
            j = p * U + u
            np.testing.assert_array_equal(wb[p, :, u], wh[:, j] if j < H else 0.0)
    assert PS.panel_units(256, 4, 4, 2) == 128 and PS.panel_units(3, 4, 8, 8) == 1
    assert PS.panel_units(4096, 4, 8, 1) == PS.PANEL_BYTES // (8 * 4 * 8)


def test_direct_calls_with_and_without_threads():
    rng = np.random.default_rng(2)
    T, B, H = 3, 5, 6
    gates = rng.standard_normal((T, B, 4 * H))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w_hh = 0.3 * rng.standard_normal((4 * H, H))
    v = np.ones((T, B), dtype=np.bool_)
    a = PC.lstm_forward(gates.copy(), h0, c0, w_hh, v)
    b = PC.lstm_forward(gates.copy(), h0, c0, w_hh, v, threads=3)
    for x, y in zip(a, b):
        assert_close(x, y, rtol=1e-15, name="threads=3 against the default")
    d_out = rng.standard_normal((T, B, H))
    g_act = gates.copy()
    hx, cx, _ = PC.lstm_forward(g_act, h0, c0, w_hh, v)
    outs = []
    for n in (None, 2):
        dh, dc, dz = np.empty((T, B, H)), np.empty((T, B, H)), np.empty((T, B, 4 * H))
        dhn, dcn = np.zeros((B, H)), np.zeros((B, H))
        outs.append(PC.lstm_backward(d_out, dhn, dcn, c0[None], g_act, cx[1:], w_hh, v, dh, dc,
                                     dz, threads=n) + (dz,))
    for x, y in zip(*outs):
        assert_close(x, y, rtol=1e-15, name="backward threads=2 against the default")


def test_fma_peak_probe():
    from minirnn.kernels._peak import fma_peak_gflops
    assert fma_peak_gflops() > 0
    assert fma_peak_gflops("float32", seconds=0.02, length=64) > 0
