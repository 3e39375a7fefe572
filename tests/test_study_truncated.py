"""Truncated BPTT (k1, k2): the schedule, the truncated gradient against torch autograd with
the state detached at each loss's window, the identity k2 >= T == full BPTT, training with it
in Engine (k1 = k2 is step_lm on chunks; numpy, numba and torch agree), and the refusals."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minirnn.grad.truncated import (full_gradient, gradient_agreement, tbptt_windows,
                                    truncated_gradient, truncation_bias)
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent
from minirnn.testing import assert_close


def _problem(cell, T=9, B=2, I=3, H=4, seed=0, **kw):
    m = make_recurrent(cell, I, H, seed=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    shape = (B, T) if m.batch_first else (T, B)
    x = rng.standard_normal(shape + (I,))
    d_out = rng.standard_normal(shape + (m.out_size,))
    state = tuple(rng.standard_normal((m.num_layers, B, m.out_size if n == "h" else H))
                  for n in m.spec.state_names)
    return m, x, d_out, state


# ---- the schedule ---------------------------------------------------------------------------
def test_windows_by_hand():
    # chunks of 2, each window one step longer: losses (0,1) from 0; (2,3) from 1; (4,5) from
    # 3; the short last chunk (6) from 5
    assert tbptt_windows(7, 2, 3) == [(0, 0, 1), (1, 2, 3), (3, 4, 5), (5, 6, 6)]
    assert tbptt_windows(5, 2) == [(0, 0, 1), (2, 2, 3), (4, 4, 4)]          # k2 = k1: chunks
    assert tbptt_windows(3, 1, 8) == [(0, 0, 0), (0, 1, 1), (0, 2, 2)]
    assert tbptt_windows(8, 3, 5) == [(0, 0, 2), (1, 3, 5), (4, 6, 7)]      # the short one too


@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 40), k1=st.integers(1, 12), extra=st.integers(0, 12))
def test_windows_tile_the_losses(T, k1, extra):
    k2 = k1 + extra
    win = tbptt_windows(T, k1, k2)
    assert [t for _, s, e in win for t in range(s, e + 1)] == list(range(T))   # each loss once
    for w, s, e in win:
        assert 0 <= w <= s <= e and e - s + 1 <= k1 and e - w + 1 <= k2
        assert w == max(0, s - (k2 - k1))                 # k2 - k1 steps before the chunk
    assert all(e - s + 1 == k1 for _, s, e in win[:-1])  # every k1 steps


@pytest.mark.parametrize("args, err, match", [
    ((5, 3, 2), ValueError, "k2: expected k2 >= k1 = 3"),
    ((5, 0), ValueError, "k1: expected an int >= 1"),
    ((5, 2.0), TypeError, "k1: expected an int"),
    ((0, 1), ValueError, "T: expected an int >= 1"),
])
def test_windows_refuse(args, err, match):
    with pytest.raises(err, match=match):
        tbptt_windows(*args)


# ---- the gradient ---------------------------------------------------------------------------
def _torch_truncated(model, x, d_out, state, k1, k2):
    """torch autograd, one loss at a time, written from the definition: the loss at step t,
    position j = t mod k1 of its chunk, backpropagates over the lags 0 .. j + k2 - k1, i.e. to
    w(t) = max(0, t - j - (k2 - k1)), the state entering w(t) detached."""
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import to_torch
    tw = to_torch(model)
    xt, dt = torch.tensor(model.to_time_major(x)), torch.tensor(model.to_time_major(d_out))
    T = xt.shape[0]
    hx = tuple(torch.tensor(s) for s in state)
    hx = hx[0] if len(hx) == 1 else hx
    tw.batch_first = False
    for t in range(T):
        w = max(0, t - t % k1 - (k2 - k1))
        with torch.no_grad():
            h_w = tw(xt[:w], hx)[1] if w else hx
        h_w = tuple(s.detach() for s in h_w) if isinstance(h_w, tuple) else h_w.detach()
        out, _ = tw(xt[w:t + 1], h_w)
        (out[-1] * dt[t]).sum().backward()            # L_t = <dL/d out_t, out_t>
    return {n: p.grad.numpy() for n, p in tw.named_parameters()}


@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("k1, k2", [(1, 1), (2, 3), (3, 3), (1, 4), (4, 7)])
def test_truncated_gradient_matches_torch_with_detach(cell, k1, k2):
    m, x, d, state = _problem(cell, num_layers=2, seed=k1 + 7 * k2)
    g = truncated_gradient(m, x, d, k1, k2, state=state)
    ref = _torch_truncated(m, x, d, state, k1, k2)
    assert set(g) == set(ref)
    for n in ref:
        assert_close(g[n], ref[n], rtol=1e-12, name=f"{cell} ({k1}, {k2}) {n}")


@settings(max_examples=12, deadline=None)
@given(cell=st.sampled_from(BUILTIN), T=st.integers(1, 8), B=st.integers(1, 3),
       layers=st.integers(1, 2), batch_first=st.booleans(), over=st.integers(0, 3),
       backend=st.sampled_from(["numpy", "numba"]), seed=st.integers(0, 99))
def test_truncation_at_T_or_more_is_full_bptt(cell, T, B, layers, batch_first, over, backend,
                                              seed):
    m, x, d, state = _problem(cell, T=T, B=B, num_layers=layers, batch_first=batch_first,
                              seed=seed, backend=backend)
    m.forward_state(x, state)
    m.zero_grad()
    m.backward_state(d, None)                         # the module's own BPTT
    ref = {n: g.copy() for n, _, g in m.named_parameters()}
    k1 = max(1, T - 1)
    for k1, k2 in ((T + over, None), (1, T + over), (k1, T + k1 - 1 + over)):
        g = truncated_gradient(m, x, d, k1, k2, state=state)
        for n in ref:
            assert_close(g[n], ref[n], rtol=1e-12, name=f"({k1}, {k2}) {n}")
    for n, _, gm in m.named_parameters():             # the caller's gradients untouched
        assert_close(gm, ref[n], rtol=0, name=f"model.grads {n}")


def test_full_gradient_and_defaults():
    m, x, d, state = _problem("lstm", proj_size=2)
    m.forward_state(x, state)
    m.zero_grad()
    m.backward_state(d, None)
    for n, g in full_gradient(m, x, d, state=state).items():
        assert_close(g, m.grads[n], rtol=1e-14, name=n)
    m.forward_state(x, None)
    m.zero_grad()
    m.backward_state(d, None)
    zero_state = full_gradient(m, x, d)               # state=None: zeros
    chunks = truncated_gradient(m, x, d, 20)          # k2 omitted: k2 = k1
    for n in zero_state:
        assert_close(zero_state[n], m.grads[n], rtol=1e-14, name=n)
        assert_close(chunks[n], m.grads[n], rtol=1e-12, name=n)


def test_shorter_window_changes_the_gradient():
    m, x, d, state = _problem("rnn_tanh", T=12)
    full = full_gradient(m, x, d, state)
    cos, rel = gradient_agreement(truncated_gradient(m, x, d, 2, state=state), full)
    assert rel > 1e-3 and cos < 1 - 1e-6              # a cut gradient is a different vector


def test_gradient_agreement_known_answers():
    rng = np.random.default_rng(3)
    g = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    assert gradient_agreement(g, g) == pytest.approx((1.0, 0.0), abs=1e-15)
    neg = {n: -v for n, v in g.items()}
    assert gradient_agreement(neg, g) == pytest.approx((-1.0, 2.0), abs=1e-14)
    u = {"a": np.array([[1.0, 0], [0, 0], [0, 0]]), "b": np.zeros(4)}
    v = {"a": np.array([[0, 1.0], [0, 0], [0, 0]]), "b": np.zeros(4)}
    assert gradient_agreement(u, v) == pytest.approx((0.0, np.sqrt(2)), abs=1e-15)
    with pytest.raises(ValueError, match="grads: expected the parameters"):
        gradient_agreement({"a": g["a"]}, g)


@pytest.mark.parametrize("k1", [None, 1])
@pytest.mark.parametrize("with_state", [False, True])
def test_truncation_bias(k1, with_state):
    m, x, d, state = _problem("gru", T=10)
    state = state if with_state else None
    bias = truncation_bias(m, x, d, [1, 3, 10, 14], k1=k1, state=state)
    full = full_gradient(m, x, d, state)
    for i, k in enumerate(bias.k2):
        g = truncated_gradient(m, x, d, k if k1 is None else k1, int(k), state)
        c, r = gradient_agreement(g, full)
        assert bias.cosine[i] == c and bias.rel_error[i] == r
    assert np.allclose(bias.cosine[2:], 1, atol=1e-13) and np.all(bias.rel_error[2:] < 1e-12)
    assert bias.k1 == ("k2" if k1 is None else 1) and set(bias.param_rel_error) == set(full)
    with pytest.raises(ValueError, match="lengths: expected at least one"):
        truncation_bias(m, x, d, [])


def test_refusals():
    m, x, d, _ = _problem("lstm")
    bi = make_recurrent("rnn_tanh", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="model: expected a unidirectional model"):
        truncated_gradient(bi, x, np.zeros(x.shape[:2] + (8,)), 2)
    with pytest.raises(TypeError, match="model: expected minirnn.RNN, LSTM or GRU"):
        truncated_gradient(object(), x, d, 2)
    with pytest.raises(ValueError, match="d_out: expected shape"):
        truncated_gradient(m, x, d[:, :, :2], 2)
    with pytest.raises(ValueError, match="x: expected a batch"):
        truncated_gradient(m, x[:, 0], d[:, 0], 2)
    with pytest.raises(ValueError, match="k2: expected k2 >= k1"):
        truncated_gradient(m, x, d, 3, 2)
