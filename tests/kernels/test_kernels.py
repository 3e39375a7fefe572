"""The Numba backend against its twin, the NumPy reference: every output, cache field,
gradient and per-step record, both code paths ("loop" and "blas"), both dtypes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn._config import NUMBA_FLAGS
from minirnn.functional import LSTMCache, RNNCache, get_backend
from minirnn.cells import lstm, rnn
from minirnn.testing import assert_close
from tests.helpers import padding_mask, random_array

K = pytest.importorskip("minirnn.kernels")

RTOL = {"float64": 1e-13, "float32": 2e-5}
# an absolute floor, far below the data's scale (inputs ~0.5, gradients ~0.01-1): a tensor
# of one element that cancels to ~1e-4 in a sum of terms ~0.1 (e.g. dh0 at B=1, P=1) differs
# by summation order alone by ~1e-13 relative (hypothesis found T=5 B=1 I=5 H=2 proj, seed
# 905022: 1.16e-13, the same before and after the vectorised kernels)
ATOL = {"float64": 1e-15, "float32": 1e-7}
SETTINGS = settings(max_examples=60, deadline=None)


def _random(rng, dtype, *shape, scale=0.5):
    return random_array(rng, dtype, *shape, scale=scale)


def _valid(rng, T, B, ragged):
    return padding_mask(rng.integers(1, T + 1, size=B), T) if ragged else None     # (T, B)


def _compare(actual, expected, dtype, name):
    if expected is None:
        assert actual is None, f"{name}: expected None"
        return
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert_close(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype], name=name)


def _compare_cache(got, ref, dtype):
    """Every field of the kernel's cache NamedTuple against the reference's."""
    for field in ref._fields:
        a, e = getattr(got, field), getattr(ref, field)
        if isinstance(e, np.ndarray):
            if e.dtype.kind == "f":
                _compare(a, e, dtype, "cache." + field)
            else:
                np.testing.assert_array_equal(a, e)
        else:
            assert a == e, f"cache.{field}: {a!r} != {e!r}"


shapes = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 7), st.integers(1, 9))
common = dict(shape=shapes, dtype=st.sampled_from(["float64", "float32"]), ragged=st.booleans(),
              bias=st.booleans(), path=st.sampled_from(["loop", "blas", None]),
              seed=st.integers(0, 2**31 - 1))


@SETTINGS
@given(nonlinearity=st.sampled_from(["tanh", "relu"]), **common)
def test_rnn_matches_reference(shape, dtype, ragged, bias, path, seed, nonlinearity):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    x, h0 = _random(rng, dtype, T, B, I), _random(rng, dtype, B, H)
    w_ih, w_hh = _random(rng, dtype, H, I), _random(rng, dtype, H, H)
    b_ih, b_hh = (_random(rng, dtype, H), _random(rng, dtype, H)) if bias else (None, None)
    valid = _valid(rng, T, B, ragged)
    d_out, d_hT = _random(rng, dtype, T, B, H), _random(rng, dtype, B, H)

    ref = rnn.forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, valid)
    got = K.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, valid, path=path)
    assert isinstance(got[2], RNNCache)
    for name, a, e in zip(["out", "h_T"], got[:2], ref[:2]):
        _compare(a, e, dtype, name)
    _compare_cache(got[2], ref[2], dtype)

    g_ref = rnn.backward(ref[2], d_out, d_hT, return_steps=True)
    g_got = K.rnn_backward(got[2], d_out, d_hT, True, path=path)
    names = ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    for name, a, e in zip(names, g_got[:6], g_ref[:6]):
        _compare(a, e, dtype, name)
    for field in g_ref[6]._fields:
        _compare(getattr(g_got[6], field), getattr(g_ref[6], field), dtype, "steps." + field)
    # d_hT=None means zeros
    no_hT = K.rnn_backward(got[2], d_out, None, False, path=path)
    _compare(no_hT[0], rnn.backward(ref[2], d_out)[0], dtype, "dx (d_hT=None)")


@SETTINGS
@given(proj=st.booleans(), **common)
def test_lstm_matches_reference(shape, dtype, ragged, bias, path, seed, proj):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    P = max(1, H // 2) if proj else H
    x, h0, c0 = _random(rng, dtype, T, B, I), _random(rng, dtype, B, P), _random(rng, dtype, B, H)
    w_ih, w_hh = _random(rng, dtype, 4 * H, I), _random(rng, dtype, 4 * H, P)
    b_ih, b_hh = (_random(rng, dtype, 4 * H), _random(rng, dtype, 4 * H)) if bias else (None, None)
    w_hr = _random(rng, dtype, P, H) if proj else None
    valid = _valid(rng, T, B, ragged)
    d_out, d_hT, d_cT = (_random(rng, dtype, T, B, P), _random(rng, dtype, B, P),
                         _random(rng, dtype, B, H))

    ref = lstm.forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid)
    got = K.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid, path=path)
    assert isinstance(got[3], LSTMCache)
    for name, a, e in zip(["out", "h_T", "c_T"], got[:3], ref[:3]):
        _compare(a, e, dtype, name)
    _compare_cache(got[3], ref[3], dtype)

    g_ref = lstm.backward(ref[3], d_out, d_hT, d_cT, return_steps=True)
    g_got = K.lstm_backward(got[3], d_out, d_hT, d_cT, True, path=path)
    names = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr"]
    for name, a, e in zip(names, g_got[:8], g_ref[:8]):
        _compare(a, e, dtype, name)
    for field in g_ref[8]._fields:
        _compare(getattr(g_got[8], field), getattr(g_ref[8], field), dtype, "steps." + field)


def test_paths_agree_at_a_size_that_picks_blas():
    """A size past LOOP_MAX_WORK takes the blas path by default; both paths agree with the reference."""
    T, B, I, H = 4, 16, 8, 48
    assert not K.loop_path(B, 4, H, H) and K.loop_path(1, 1, 8, 8)
    rng = np.random.default_rng(7)
    x, h0, c0 = _random(rng, "float64", T, B, I), _random(rng, "float64", B, H), _random(rng, "float64", B, H)
    w = [_random(rng, "float64", *s) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    ref = lstm.forward(x, h0, c0, *w)
    for path in (None, "loop", "blas"):
        got = K.lstm_forward(x, h0, c0, *w, path=path)
        assert_close(got[0], ref[0], rtol=1e-13, name=f"out ({path})")
        d = rng.standard_normal(ref[0].shape)
        for name, a, e in zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh"],
                              K.lstm_backward(got[3], d, path=path), lstm.backward(ref[3], d)):
            assert_close(a, e, rtol=1e-13, name=f"{name} ({path})")


def test_bad_path_is_refused():
    with pytest.raises(ValueError, match="path"):
        K.loop_path(1, 1, 4, 4, path="fast")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("path", ["fused", "fast"])
def test_every_cell_refuses_an_unknown_path_naming_the_known_ones(cell, path):
    """Only 'loop' and 'blas' exist."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x, h0 = np.ones((2, 5, 3)), np.ones((5, 4))
    w_ih, w_hh = np.ones((G * 4, 3)), np.ones((G * 4, 4))
    state = (h0, h0) if cell == "lstm" else (h0,)
    forward = getattr(K, f"{cell}_forward")
    msg = f"path: expected None, 'loop' or 'blas', got '{path}'"
    with pytest.raises(ValueError, match=msg):
        forward(x, *state, w_ih, w_hh, path=path)
    cache = forward(x, *state, w_ih, w_hh)[-1]
    with pytest.raises(ValueError, match=msg):
        getattr(K, f"{cell}_backward")(cache, np.ones((2, 5, 4)), path=path)


def test_fma_peak_probe():
    from minirnn.kernels._peak import fma_peak_gflops
    assert fma_peak_gflops() > 0
    assert fma_peak_gflops("float32", seconds=0.02, length=64) > 0


def test_backend_namespace_and_functional_wrapper():
    for fn in ("rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward"):
        assert callable(getattr(K, fn))
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 3, 4, 6
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    w_ih, w_hh, b1, b2 = (rng.standard_normal(s) for s in [(H, I), (H, H), (H,), (H,)])
    lengths = [5, 2, 3]
    ref = minirnn.functional.rnn_forward(x, h0, w_ih, w_hh, b1, b2, "relu", lengths=lengths)
    got = minirnn.functional.rnn_forward(x, h0, w_ih, w_hh, b1, b2, "relu", lengths=lengths,
                                         backend="numba")
    assert_close(got[0], ref[0], rtol=1e-13, name="out")
    d = rng.standard_normal((T, B, H))
    for name, a, e in zip(["dx", "dh0", "dw_ih", "dw_hh", "db_ih"],
                          minirnn.functional.rnn_backward(got[2], d, backend="numba"),
                          minirnn.functional.rnn_backward(ref[2], d)):
        assert_close(a, e, rtol=1e-13, name=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lstm_module_two_layers_bidirectional_lengths(dtype):
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=11)
    ref, fast = minirnn.LSTM(5, 7, **kw), minirnn.LSTM(5, 7, backend="numba", **kw)
    rng = np.random.default_rng(5)
    T, B = 6, 4
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)
    c0 = 0.5 * rng.standard_normal((4, B, 7)).astype(dtype)
    lengths = np.array([6, 3, 1, 5])
    out_r, (h_r, c_r) = ref(x, (h0, c0), lengths=lengths)
    out_f, (h_f, c_f) = fast(x, (h0, c0), lengths=lengths)
    rtol = RTOL[dtype]
    for name, a, e in [("out", out_f, out_r), ("h_n", h_f, h_r), ("c_n", c_f, c_r)]:
        assert_close(a, e, rtol=rtol, name=name)
    d_out = rng.standard_normal(out_r.shape).astype(dtype)
    d_h = rng.standard_normal(h_r.shape).astype(dtype)
    dx_r, (dh_r, dc_r) = ref.backward(d_out, (d_h, None))
    dx_f, (dh_f, dc_f) = fast.backward(d_out, (d_h, None))
    for name, a, e in [("dx", dx_f, dx_r), ("dh0", dh_f, dh_r), ("dc0", dc_f, dc_r)]:
        assert_close(a, e, rtol=rtol, name=name)
    for (name, _, g_r), (_, _, g_f) in zip(ref.named_parameters(), fast.named_parameters()):
        assert_close(g_f, g_r, rtol=rtol, name="grad " + name)


def test_rnn_module_and_cell():
    ref = minirnn.RNN(3, 5, num_layers=2, nonlinearity="relu", seed=2)
    fast = minirnn.RNN(3, 5, num_layers=2, nonlinearity="relu", seed=2, backend="numba")
    x = np.random.default_rng(9).standard_normal((7, 2, 3))
    assert_close(fast(x)[0], ref(x)[0], rtol=1e-13, name="out")
    d = np.random.default_rng(10).standard_normal((7, 2, 5))
    assert_close(fast.backward(d)[0], ref.backward(d)[0], rtol=1e-13, name="dx")

    cell_r, cell_f = minirnn.LSTMCell(3, 4, seed=1), minirnn.LSTMCell(3, 4, seed=1, backend="numba")
    xt = np.random.default_rng(4).standard_normal((2, 3))
    h_r, c_r = cell_r(xt)
    h_f, c_f = cell_f(xt)
    assert_close(h_f, h_r, rtol=1e-13, name="cell h")
    assert_close(c_f, c_r, rtol=1e-13, name="cell c")


def test_non_contiguous_inputs_and_empty_sequence():
    rng = np.random.default_rng(12)
    T, B, I, H = 4, 3, 5, 6
    x = rng.standard_normal((B, T, I)).transpose(1, 0, 2)     # (T, B, I) view, not C-contiguous
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w_ih = rng.standard_normal((I, 4 * H)).T                   # (4H, I) view
    w_hh = rng.standard_normal((4 * H, H))
    ref = lstm.forward(x, h0, c0, w_ih, w_hh)
    for path in ("loop", "blas"):
        got = K.lstm_forward(x, h0, c0, w_ih, w_hh, path=path)
        assert_close(got[0], ref[0], rtol=1e-13, name=f"out ({path})")
        d = rng.standard_normal((T, B, H))[:, ::-1]            # negative strides
        for name, a, e in zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh"],
                              K.lstm_backward(got[3], d, path=path), lstm.backward(ref[3], d)):
            assert_close(a, e, rtol=1e-13, name=f"{name} ({path})")
    # T = 0: the final state is the initial one, every gradient is zero-sized or zero
    empty = np.empty((0, B, I))
    out, h_T, cache = K.rnn_forward(empty, h0, w_ih[:H], w_hh[:H], None, None, "tanh", None)
    assert out.shape == (0, B, H)
    np.testing.assert_array_equal(h_T, h0)
    dx, dh0, dw_ih, *_ = K.rnn_backward(cache, np.empty((0, B, H)))
    assert dx.shape == (0, B, I) and not dw_ih.any() and not dh0.any()


# ----------------------------------------------------------------------------
# reruns and IEEE special values

def _problem(cell, dtype, T=6, B=3, I=5, H=7, seed=21):
    """One cell on fixed random data, lengths 6, 4, 1 -> args, kernel forward(args, **kw),
    reference forward(args, path), kernel backward(cache, path), reference backward(cache)."""
    rng = np.random.default_rng(seed)
    proj = cell == "lstm_proj"
    P = 3 if proj else H
    G = 4 if cell.startswith("lstm") else 3 if cell == "gru" else 1
    x = _random(rng, dtype, T, B, I)
    h0, c0 = _random(rng, dtype, B, P), _random(rng, dtype, B, H)
    w_ih, w_hh = _random(rng, dtype, G * H, I), _random(rng, dtype, G * H, P)
    b_ih, b_hh = _random(rng, dtype, G * H), _random(rng, dtype, G * H)
    w_hr = _random(rng, dtype, P, H) if proj else None
    valid = np.arange(T)[:, None] < np.array([6, 4, 1])[None, :]
    d_out = _random(rng, dtype, T, B, P)
    d_hT, d_cT = _random(rng, dtype, B, P), _random(rng, dtype, B, H)
    if G == 4:
        args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid)
        return (args, lambda a, **kw: K.lstm_forward(*a, **kw), lambda a, path: lstm.forward(*a),
                lambda cache, path: K.lstm_backward(cache, d_out, d_hT, d_cT, True, path=path),
                lambda cache: lstm.backward(cache, d_out, d_hT, d_cT, return_steps=True))
    if cell == "gru":
        from minirnn.cells import gru
        from minirnn.kernels import _gru
        args = (x, h0, w_ih, w_hh, b_ih, b_hh, valid)
        return (args, lambda a, **kw: _gru.forward(*a, **kw), lambda a, path: gru.forward(*a),
                lambda cache, path: _gru.backward(cache, d_out, d_hT, True, path=path),
                lambda cache: gru.backward(cache, d_out, d_hT, return_steps=True))
    nl = "relu" if cell == "rnn_relu" else "tanh"
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, nl, valid)
    return (args, lambda a, **kw: K.rnn_forward(*a, **kw), lambda a, path: rnn.forward(*a),
            lambda cache, path: K.rnn_backward(cache, d_out, d_hT, True, path=path),
            lambda cache: rnn.backward(cache, d_out, d_hT, return_steps=True))


def _arrays(result):
    """Every array in a (nested) result, in order: outputs, cache fields, gradients, steps."""
    for item in result:
        if isinstance(item, np.ndarray):
            yield item
        elif isinstance(item, tuple):
            yield from _arrays(item)


CELLS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"]


@pytest.mark.parametrize("path", ["loop", "blas"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_reruns_are_bit_identical(cell, dtype, path):
    """Three runs, with the heap churned in between (a kernel reading a buffer before writing
    it would show), the last with W_hh^T passed in precomputed: the same bits everywhere."""
    args, fwd, _, bwd, _ = _problem(cell, dtype)
    runs = []
    for k in range(3):
        junk = [np.full(n, np.nan, dtype=dtype) for n in (7, 300, 5000)]     # noqa: F841
        w_hh = args[4 if cell.startswith("lstm") else 3]
        kw = {"w_hhT": np.ascontiguousarray(w_hh.T)} if k == 2 else {}
        got = fwd(args, path=path, **kw)
        runs.append([a.copy() for a in _arrays(got + bwd(got[-1], path))])
    for later in runs[1:]:
        assert len(later) == len(runs[0])
        for a, b in zip(runs[0], later):
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _assert_ieee_close(a, e, dtype, name):
    """NaN where the reference has NaN, the same infinities, the rest within tolerance."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{name}: NaN positions")
    inf = np.isinf(e)
    np.testing.assert_array_equal(np.isinf(a), inf, err_msg=f"{name}: inf positions")
    np.testing.assert_array_equal(a[inf], e[inf], err_msg=f"{name}: signs of inf")
    finite = np.isfinite(e)
    assert_close(np.where(finite, a, 0), np.where(finite, e, 0), rtol=RTOL[dtype],
                 atol=ATOL[dtype], name=name)


@pytest.mark.skipif(bool(NUMBA_FLAGS["fastmath"]), reason="MINIRNN_FASTMATH=1 assumes no NaN/inf")
@pytest.mark.parametrize("path", ["loop", "blas"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_special_values_propagate_like_the_reference(cell, dtype, path):
    """NaN, +-inf, saturating inputs, -0 and subnormal states through the vectorised
    exp/tanh/sigmoid: every output, cache field and gradient as the reference's."""
    args, fwd, ref_fwd, bwd, ref_bwd = _problem(cell, dtype)
    x, h0 = args[0].copy(), args[1].copy()
    x[1, 0, 0] = np.nan                       # sequence 0 from step 1 on: NaN
    x[2, 1, 1] = np.inf                       # sequence 1: +inf into every pre-activation
    x[3, 1, 2] = -np.inf                      # sequence 1, its last step (length 4)
    x[4, 2, :] = np.inf                       # past sequence 2's end: padding, still computed
    x[0, 2, :] = 300.0                        # saturates: sigmoid -> 0 or 1, tanh -> +-1
    h0[0, 0] = -0.0
    h0[1, 0] = np.finfo(dtype).smallest_subnormal
    args = (x, h0) + tuple(args[2:])
    with np.errstate(all="ignore"):
        ref = ref_fwd(args, path)
        got = fwd(args, path=path)
        g_ref, g_got = ref_bwd(ref[-1]), bwd(got[-1], path)
    assert np.isnan(ref[0]).any() and np.isfinite(ref[0]).any()   # the case is what it says
    got_all, ref_all = list(_arrays(got + g_got)), list(_arrays(ref + g_ref))
    assert len(got_all) == len(ref_all)
    for k, (a, e) in enumerate(zip(got_all, ref_all)):
        _assert_ieee_close(a, e, dtype, f"array {k}")
