"""The module API: bad input, state carry, dropout reproducibility, dtypes, state dicts,
unbatched input, and the cells against torch."""
import numpy as np
import pytest

import minirnn
from minirnn.testing import assert_close

RNG = np.random.default_rng(7)


def lstm(seed=0, **kw):
    return minirnn.LSTM(3, 4, seed=seed, **kw)


def rnn(seed=0, **kw):
    return minirnn.RNN(3, 4, seed=seed, **kw)


# ---- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [rnn, lstm])
def test_x_of_wrong_rank_or_feature_size(make):
    m = make()
    with pytest.raises(ValueError, match=r"x: expected shape .*got \(2, 3, 4, 3\)"):
        m(RNG.standard_normal((2, 3, 4, 3)))
    with pytest.raises(ValueError, match=r"x: expected shape .*got \(5,\)"):
        m(RNG.standard_normal(5))
    with pytest.raises(ValueError, match=r"x: expected feature size input_size=3, got 5"):
        m(RNG.standard_normal((6, 2, 5)))


def test_h0_c0_of_wrong_shape():
    m = lstm(num_layers=2, bidirectional=True)
    x = RNG.standard_normal((5, 2, 3))
    good_h, good_c = RNG.standard_normal((4, 2, 4)), RNG.standard_normal((4, 2, 4))
    with pytest.raises(ValueError, match=r"h0: expected shape \(4, 2, 4\).*got \(2, 2, 4\)"):
        m(x, (RNG.standard_normal((2, 2, 4)), good_c))
    with pytest.raises(ValueError, match=r"c0: expected shape \(4, 2, 4\).*got \(4, 3, 4\)"):
        m(x, (good_h, RNG.standard_normal((4, 3, 4))))
    r = rnn()
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 2, 4\).*got \(1, 2, 5\)"):
        r(x, RNG.standard_normal((1, 2, 5)))
    with pytest.raises(TypeError, match="hx: expected a pair"):
        m(x, good_h)


@pytest.mark.parametrize("lengths, exc, pattern", [
    ([0, 3], ValueError, r"lengths: expected every length in 1\.\.5 .*got min 0, max 3"),
    ([6, 3], ValueError, r"lengths: expected every length in 1\.\.5 .*got min 3, max 6"),
    ([5, 3, 2], ValueError, r"lengths: expected .* shape \(2,\), got shape \(3,\)"),
    ([[5, 3]], ValueError, r"lengths: expected .* shape \(2,\), got shape \(1, 2\)"),
    ([2.5, 3.0], TypeError, r"lengths: expected integers, got dtype float64"),
])
def test_bad_lengths(lengths, exc, pattern):
    with pytest.raises(exc, match=pattern):
        rnn()(RNG.standard_normal((5, 2, 3)), lengths=np.array(lengths))


def test_integral_float_lengths_are_accepted():
    x = RNG.standard_normal((5, 2, 3))
    m = rnn()
    a, _ = m(x, lengths=np.array([5.0, 2.0]))
    b, _ = m(x, lengths=np.array([5, 2]))
    assert np.array_equal(a, b) and np.all(a[2:, 1] == 0) and np.all(a[2:, 0] != 0)


def test_load_state_dict_missing_extra_misshapen():
    m = lstm(proj_size=2)
    sd = m.state_dict()
    missing = {k: v for k, v in sd.items() if k != "weight_hr_l0"}
    with pytest.raises(KeyError, match=r"missing keys \['weight_hr_l0'\]"):
        m.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['weight_ih_l1'\]"):
        m.load_state_dict(dict(sd, weight_ih_l1=np.zeros((16, 2))))
    bad = dict(sd, weight_hh_l0=np.zeros((16, 4)))
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"weight_hh_l0.*expected shape \(16, 2\), got \(16, 4\)"):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():                 # nothing was half-loaded
        assert np.array_equal(v, before[k]), k


def test_backward_before_forward():
    for m, args in ((rnn(), (np.ones((5, 2, 4)),)), (lstm(), (np.ones((5, 2, 4)),)),
                    (minirnn.RNNCell(3, 4), (np.ones((2, 4)),)),
                    (minirnn.LSTMCell(3, 4), (np.ones((2, 4)),))):
        with pytest.raises(RuntimeError, match="before forward"):
            m.backward(*args)


def test_d_out_of_wrong_shape():
    m = rnn(bidirectional=True)
    m(RNG.standard_normal((5, 2, 3)))
    with pytest.raises(ValueError, match=r"d_out: expected shape \(5, 2, 8\).*got \(5, 2, 4\)"):
        m.backward(RNG.standard_normal((5, 2, 4)))


# ---- dtypes -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [rnn, lstm])
def test_float32_and_float64(make):
    x = RNG.standard_normal((6, 2, 3))
    m64, m32 = make(dtype="float64"), make(dtype="float32")
    m32.load_state_dict(m64.state_dict())
    o64, o32 = m64(x)[0], m32(x.astype(np.float32))[0]
    assert o64.dtype == np.float64 and o32.dtype == np.float32
    assert_close(o32, o64, rtol=1e-5, name="out float32 vs float64")
    dx64, dx32 = m64.backward(np.ones_like(o64))[0], m32.backward(np.ones_like(o32))[0]
    assert dx32.dtype == np.float32 and all(g.dtype == np.float32 for g in m32.grads.values())
    assert_close(dx32, dx64, rtol=1e-5, name="dx float32 vs float64")
    # float32 into a float64 model is exact: cast; float64 into float32 would round: refused
    assert (m64(x.astype(np.float32))[0] == m64(x.astype(np.float32).astype(np.float64))[0]).all()
    with pytest.raises(TypeError, match=r"x: got dtype float64, the model computes in float32.*"
                                        r"x\.astype\(np\.float32\).*dtype='float64'"):
        m32(x)


def test_integer_input_is_cast_only_where_exact_and_bools_are_refused():
    x = np.arange(24).reshape(4, 2, 3) % 5 - 2                         # int64
    m = rnn()
    assert (m(x)[0] == m(x.astype(np.float64))[0]).all()               # int64 -> float64: exact
    with pytest.raises(TypeError, match="x: got dtype int64, the model computes in float32"):
        rnn(dtype="float32")(x)                                        # int64 -> float32 rounds
    with pytest.raises(TypeError, match="x: expected a floating-point array.*got dtype bool"):
        m(x > 0)
    with pytest.raises(TypeError, match="h0: expected a floating-point array.*got dtype complex128"):
        m(np.ones((4, 2, 3)), np.ones((1, 2, 4), dtype=np.complex128))
    with pytest.raises(TypeError, match=r"dtype: expected one of \('float32', 'float64'\), got 'int32'"):
        rnn(dtype="int32")


# ---- truncated BPTT state carry ----------------------------------------------------------

@pytest.mark.parametrize("make", [rnn, lstm])
def test_chunks_with_carried_state_equal_whole_sequence(make):
    m = make(num_layers=2)
    T, B = 12, 3
    x = RNG.standard_normal((T, B, 3))
    state0 = RNG.standard_normal((2, B, 4))
    is_lstm = m.mode == "lstm"
    hx = (state0, RNG.standard_normal((2, B, 4))) if is_lstm else state0
    whole_out, whole_state = m(x, hx)
    outs, state = [], hx
    for a, b in ((0, 5), (5, 6), (6, 12)):
        out, state = m(x[a:b], state)
        outs.append(out)
    assert np.array_equal(np.concatenate(outs), whole_out)      # exactly, not approximately
    for s_chunk, s_whole in zip(state if is_lstm else (state,),
                                whole_state if is_lstm else (whole_state,)):
        assert np.array_equal(s_chunk, s_whole)


def test_chunked_backward_with_carried_gradient_equals_whole():
    """Backward chunk by chunk, last chunk first, passing dh0 (and dc0) back: same gradients."""
    m = lstm()
    T, B = 9, 2
    x = RNG.standard_normal((T, B, 3))
    hx = (RNG.standard_normal((1, B, 4)), RNG.standard_normal((1, B, 4)))
    d_out = RNG.standard_normal((T, B, 4))
    m(x, hx)
    dx_whole, (dh_whole, dc_whole) = m.backward(d_out)
    g_whole = m.grad_dict()
    m.zero_grad()
    bounds, states, state = ((0, 4), (4, 9)), [], hx
    for a, b in bounds:
        states.append(state)
        _, state = m(x[a:b], state)
    d_state, dxs = None, []
    for (a, b), s in reversed(list(zip(bounds, states))):
        m(x[a:b], s)                                   # recompute the chunk's cache
        dx, d_state = m.backward(d_out[a:b], d_state)
        dxs.insert(0, dx)
    assert_close(np.concatenate(dxs), dx_whole, rtol=1e-13, name="dx")
    assert_close(d_state[0], dh_whole, rtol=1e-13, name="dh0")
    assert_close(d_state[1], dc_whole, rtol=1e-13, name="dc0")
    for k, g in m.grad_dict().items():
        assert_close(g, g_whole[k], rtol=1e-13, name=k)


# ---- dropout -----------------------------------------------------------------------------

def _run(m, x, d_out):
    m.zero_grad()
    out, _ = m(x)
    dx, _ = m.backward(d_out)
    return out, dx, m.grad_dict()


@pytest.mark.parametrize("make", [rnn, lstm])
def test_dropout_reproducible_by_seed(make):
    x, d_out = RNG.standard_normal((6, 2, 3)), RNG.standard_normal((6, 2, 4))
    kw = dict(num_layers=3, dropout=0.5)
    a = _run(make(**kw), x, d_out)
    b = _run(make(**kw), x, d_out)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert all(np.array_equal(a[2][k], b[2][k]) for k in a[2])
    c_model = make(**kw)
    c_model.rng = np.random.default_rng(12345)          # same weights, other dropout stream
    c = _run(c_model, x, d_out)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], _run(make(seed=1, **kw), x, d_out)[0])
    # eval: no dropout, the same numbers as a dropout-free model with the same weights
    ev = make(**kw).eval()
    plain = make(num_layers=3, dropout=0.0)
    assert np.array_equal(_run(ev, x, d_out)[0], _run(plain, x, d_out)[0])
    assert not np.array_equal(_run(ev, x, d_out)[0], a[0])


# ---- unbatched -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [rnn, lstm])
def test_unbatched_equals_batch_of_one(make):
    m = make(num_layers=2, bidirectional=True)
    x = RNG.standard_normal((5, 3))
    h0 = RNG.standard_normal((4, 4))
    is_lstm = m.mode == "lstm"
    c0 = RNG.standard_normal((4, 4))
    out1, st1 = m(x, (h0, c0) if is_lstm else h0)
    d_out = RNG.standard_normal(out1.shape)
    dx1, dst1 = m.backward(d_out)
    out2, st2 = m(x[:, None], (h0[:, None], c0[:, None]) if is_lstm else h0[:, None])
    dx2, dst2 = m.backward(d_out[:, None])
    assert out1.shape == (5, 8) and np.array_equal(out1, out2[:, 0])
    assert dx1.shape == (5, 3) and np.array_equal(dx1, dx2[:, 0])
    for a, b in zip(st1 if is_lstm else (st1,), st2 if is_lstm else (st2,)):
        assert a.shape == (4, 4) and np.array_equal(a, b[:, 0])
    for a, b in zip(dst1 if is_lstm else (dst1,), dst2 if is_lstm else (dst2,)):
        assert np.array_equal(a, b[:, 0])


# ---- torch interop ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, kw", [
    ("rnn", dict(num_layers=2, bidirectional=True)),
    ("rnn", dict(num_layers=3, bias=False, nonlinearity="relu")),
    ("lstm", dict(num_layers=2, bidirectional=True, proj_size=2)),
    ("lstm", dict(num_layers=1, bias=False)),
])
def test_state_dict_round_trip_with_torch(kind, kw):
    torch = pytest.importorskip("torch")
    t_cls, m_cls = (torch.nn.RNN, minirnn.RNN) if kind == "rnn" else (torch.nn.LSTM, minirnn.LSTM)
    tm = t_cls(3, 5, **kw).double()
    m = m_cls(3, 5, seed=3, **kw)
    t_sd, m_sd = tm.state_dict(), m.state_dict()
    assert list(m_sd) == list(t_sd)                               # same keys, same order
    assert [tuple(v.shape) for v in t_sd.values()] == [v.shape for v in m_sd.values()]
    if kw.get("bidirectional"):
        assert any(k.endswith("_reverse") for k in m_sd)
    if kw.get("proj_size"):
        assert "weight_hr_l1_reverse" in m_sd
    m.load_state_dict(t_sd)                                       # torch tensors in
    for k, v in m.state_dict().items():
        assert np.array_equal(v, t_sd[k].numpy()), k
    m2 = m_cls(3, 5, seed=4, **kw)                                # numpy back into torch
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m2.state_dict().items()})
    for k, v in tm.state_dict().items():
        assert np.array_equal(v.numpy(), m2.state_dict()[k]), k


@pytest.mark.parametrize("kind", ["tanh", "relu", "lstm"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(kind, batched):
    torch = pytest.importorskip("torch")
    I, H, B = 3, 5, 4
    if kind == "lstm":
        tc, mc = torch.nn.LSTMCell(I, H).double(), minirnn.LSTMCell(I, H)
    else:
        tc = torch.nn.RNNCell(I, H, nonlinearity=kind).double()
        mc = minirnn.RNNCell(I, H, nonlinearity=kind)
    mc.load_state_dict(tc.state_dict())
    shape = (B,) if batched else ()
    x, h, c = (RNG.standard_normal(shape + (n,)) for n in (I, H, H))
    d_h, d_c = RNG.standard_normal(shape + (H,)), RNG.standard_normal(shape + (H,))
    tx, th, tcs = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    if kind == "lstm":
        h1, c1 = tc(tx, (th, tcs))
        (h1 * torch.tensor(d_h)).sum().add((c1 * torch.tensor(d_c)).sum()).backward()
        mh1, mc1 = mc(x, (h, c))
        dx, (dh, dc) = mc.backward(d_h, d_c)
        assert_close(mc1, c1, name="c'")
        assert_close(dc, tcs.grad, name="dc")
    else:
        h1 = tc(tx, th)
        (h1 * torch.tensor(d_h)).sum().backward()
        mh1 = mc(x, h)
        dx, dh = mc.backward(d_h)
    assert mh1.shape == tuple(h1.shape)
    assert_close(mh1, h1, name="h'")
    assert_close(dx, tx.grad, name="dx")
    assert_close(dh, th.grad, name="dh")
    for name, p in tc.named_parameters():
        assert_close(mc.grads[name], p.grad, name=name)
