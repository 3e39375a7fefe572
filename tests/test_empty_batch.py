"""An empty batch (B = 0) runs as in torch: every cell, layout and backend, forward and
backward, gives empty results of torch's shapes and zero parameter gradients.

torch: `nn.LSTM(3, 4)(torch.zeros(5, 0, 3))` returns out (5, 0, 4), h_n (1, 0, 4), and its
backward runs, leaving every parameter gradient zero. Checked here against live torch for
the sequence modules (layers, directions, batch_first, proj_size, h0 given, dropout, lengths
of length 0), the cells and the functional API. hidden_size = 0 stays refused (see
minirnn/nn/cells.py: DELIBERATE).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minirnn
from minirnn import functional as F
from minirnn.functional.backends import KERNEL_BACKENDS
from minirnn.cells import BUILTIN, get_cell
from minirnn.nn import make_cell, make_recurrent

torch = pytest.importorskip("torch")

T, I, H = 5, 3, 4


def _torch_module(spec, **kw):
    """torch's twin of make_recurrent(spec.name, ...): the registry names its class."""
    return getattr(torch.nn, spec.module)(I, H, **spec.module_kwargs(), **kw,
                                          dtype=torch.float64)


def _zero_grads(model):
    """model.grads with fresh random values, then zero_grad: backward must add exact zeros."""
    rng = np.random.default_rng()
    for g in model.grads.values():
        g[...] = rng.standard_normal(g.shape)
    model.zero_grad()


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(BUILTIN), backend=st.sampled_from(KERNEL_BACKENDS),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans(),
       bias=st.booleans(), proj=st.booleans(), with_h0=st.booleans(), with_lengths=st.booleans(),
       dropout=st.sampled_from([0.0, 0.5]), with_d_state=st.booleans())
def test_module_empty_batch_matches_torch(cell, backend, num_layers, bidirectional, batch_first,
                                          bias, proj, with_h0, with_lengths, dropout,
                                          with_d_state):
    spec = get_cell(cell)
    proj_size = 2 if proj and "weight_hr" in spec.extra_params else 0
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
              bias=bias, dropout=dropout if num_layers > 1 else 0.0)
    extra = {"proj_size": proj_size} if proj_size else {}
    t = _torch_module(spec, **kw, **extra)
    m = make_recurrent(cell, I, H, **kw, **extra, backend=backend, seed=0)
    m.load_state_dict(t.state_dict())
    rng = np.random.default_rng()
    LD, P = num_layers * (2 if bidirectional else 1), proj_size or H
    x = rng.standard_normal((0, T, I) if batch_first else (T, 0, I))
    sizes = tuple(P if n == "h" else H for n in spec.state_names)
    h0 = tuple(rng.standard_normal((LD, 0, s)) for s in sizes) if with_h0 else None

    # torch: forward, then backward through every output
    xt = torch.from_numpy(x).requires_grad_(True)
    hx_t = None if h0 is None else tuple(torch.from_numpy(h) for h in h0)
    out_t, state_t = t(xt, None if hx_t is None else (hx_t if len(hx_t) > 1 else hx_t[0]))
    state_t = state_t if isinstance(state_t, tuple) else (state_t,)
    (out_t.sum() + sum(s.sum() for s in state_t)).backward()

    # minirnn
    _zero_grads(m)
    out, state = m.forward_state(x, h0, lengths=[] if with_lengths else None)
    assert out.shape == tuple(out_t.shape)
    assert [s.shape for s in state] == [tuple(s.shape) for s in state_t]
    assert [s.shape for s in state] == [(LD, 0, s) for s in sizes]
    d_state = tuple(np.ones(s.shape) for s in state) if with_d_state else None
    dx, d_state0 = m.backward_state(np.ones_like(out), d_state)
    assert dx.shape == tuple(xt.grad.shape) == x.shape
    assert [d.shape for d in d_state0] == [(LD, 0, s) for s in sizes]
    for name, p in t.named_parameters():
        assert m.grads[name].shape == tuple(p.grad.shape), name
        assert not np.any(m.grads[name]) and not torch.any(p.grad), name


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("cell", BUILTIN)
def test_module_torch_api_empty_batch(cell, backend):
    """The issue's example, through torch's forward/backward signatures."""
    spec = get_cell(cell)
    t = _torch_module(spec)
    m = make_recurrent(cell, I, H, backend=backend, seed=0)
    m.load_state_dict(t.state_dict())
    out_t, hx_t = t(torch.zeros(T, 0, I, dtype=torch.float64))
    out, hx = m(np.zeros((T, 0, I)))
    assert out.shape == tuple(out_t.shape) == (T, 0, H)
    flat_t = hx_t if isinstance(hx_t, tuple) else (hx_t,)
    flat = hx if isinstance(hx, tuple) else (hx,)
    assert [h.shape for h in flat] == [tuple(h.shape) for h in flat_t]
    dx, dh0 = m.backward(np.zeros_like(out))
    assert dx.shape == (T, 0, I)


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("cell", BUILTIN)
def test_cell_empty_batch_matches_torch(cell, backend, with_hx):
    spec = get_cell(cell)
    t = getattr(torch.nn, spec.cell_module)(I, H, **spec.module_kwargs(), dtype=torch.float64)
    m = make_cell(cell, I, H, backend=backend, seed=0)
    m.load_state_dict(t.state_dict())
    rng = np.random.default_rng()
    hx = tuple(rng.standard_normal((0, H)) for _ in spec.state_names) if with_hx else None
    xt = torch.zeros(0, I, dtype=torch.float64, requires_grad=True)
    hx_t = None if hx is None else tuple(torch.from_numpy(h) for h in hx)
    new_t = t(xt, None if hx_t is None else (hx_t if len(hx_t) > 1 else hx_t[0]))
    new_t = new_t if isinstance(new_t, tuple) else (new_t,)
    sum(s.sum() for s in new_t).backward()
    _zero_grads(m)
    new = m.forward_state(np.zeros((0, I)), hx)
    assert [s.shape for s in new] == [tuple(s.shape) for s in new_t] == [(0, H)] * len(new)
    dx, d_prev = m.backward_state(tuple(np.ones((0, H)) for _ in new))
    assert dx.shape == tuple(xt.grad.shape) == (0, I)
    assert [d.shape for d in d_prev] == [(0, H)] * len(new)
    for name, p in t.named_parameters():
        assert m.grads[name].shape == tuple(p.grad.shape), name
        assert not np.any(m.grads[name]) and not torch.any(p.grad), name


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_functional_empty_batch(backend, with_lengths):
    """rnn/lstm/gru_forward and _backward with B = 0 (and lengths=[]): torch's shapes (the
    module's layer-0 output and state), zero weight gradients."""
    rng = np.random.default_rng()
    x = rng.standard_normal((T, 0, I))
    lengths = [] if with_lengths else None
    w = {G: (rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H)),
             rng.standard_normal(G * H), rng.standard_normal(G * H)) for G in (1, 3, 4)}

    out, h_T, cache = F.rnn_forward(x, np.zeros((0, H)), *w[1], nonlinearity="relu",
                                    lengths=lengths, backend=backend)
    assert out.shape == (T, 0, H) and h_T.shape == (0, H)
    dx, dh0, *dw = F.rnn_backward(cache, np.zeros_like(out), np.ones((0, H)), backend=backend)
    assert dx.shape == (T, 0, I) and dh0.shape == (0, H)
    assert [g.shape for g in dw] == [a.shape for a in w[1]] and not any(np.any(g) for g in dw)

    P = 2
    w_hh = rng.standard_normal((4 * H, P))
    w_hr = rng.standard_normal((P, H))
    out, h_T, c_T, cache = F.lstm_forward(x, np.zeros((0, P)), np.zeros((0, H)), w[4][0], w_hh,
                                          w[4][2], w[4][3], w_hr, lengths=lengths,
                                          backend=backend)
    assert out.shape == (T, 0, P) and h_T.shape == (0, P) and c_T.shape == (0, H)
    dx, dh0, dc0, *dw = F.lstm_backward(cache, np.zeros_like(out), np.ones((0, P)),
                                        np.ones((0, H)), backend=backend)
    assert dx.shape == (T, 0, I) and dh0.shape == (0, P) and dc0.shape == (0, H)
    assert [g.shape for g in dw] == [a.shape for a in (w[4][0], w_hh, w[4][2], w[4][3], w_hr)]
    assert not any(np.any(g) for g in dw)

    out, h_T, cache = F.gru_forward(x, np.zeros((0, H)), *w[3], lengths=lengths,
                                    backend=backend)
    assert out.shape == (T, 0, H) and h_T.shape == (0, H)
    dx, dh0, *dw = F.gru_backward(cache, np.zeros_like(out), backend=backend)
    assert dx.shape == (T, 0, I) and dh0.shape == (0, H)
    assert [g.shape for g in dw] == [a.shape for a in w[3]] and not any(np.any(g) for g in dw)


def test_empty_batch_then_a_real_one():
    """An empty batch leaves nothing behind: the next real batch matches torch."""
    t = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    m = minirnn.LSTM(I, H, num_layers=2, bidirectional=True, backend="numba")
    m.load_state_dict(t.state_dict())
    m(np.zeros((T, 0, I)))
    x = np.random.default_rng().standard_normal((T, 2, I))
    out, _ = m(x)
    with torch.no_grad():
        ref, _ = t(torch.from_numpy(x))
    minirnn.assert_close(out, ref.numpy(), rtol=1e-10, name="out")


def test_hidden_size_zero_stays_refused():
    """DELIBERATE (minirnn/nn/cells.py): a cell with no hidden units is refused, naming why."""
    with pytest.raises(ValueError, match="hidden_size: .*no hidden units"):
        minirnn.LSTMCell(I, 0)
