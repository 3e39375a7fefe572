"""Per-sample gradients (minirnn.grad.per_sample_gradients) against torch autograd run on each
example alone, at its own length; their sum against the model's own backward; the refusals.
float64, fresh random data, every cell and layout."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.cells import BUILTIN, get_cell
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
SETTINGS = settings(max_examples=8, deadline=None)


def _model(cell, layers, bidirectional, proj, batch_first, backend, seed):
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
              backend=backend, seed=seed)
    if proj:
        kw["proj_size"] = 2
    return minirnn.nn.make_recurrent(cell, 3, 4, **kw)


@pytest.mark.parametrize("cell", BUILTIN)
@SETTINGS
@given(layers=st.integers(1, 2), bidirectional=st.booleans(), proj=st.booleans(),
       batch_first=st.booleans(), backend=st.sampled_from(["numpy", "numba"]),
       B=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_each_sequence_alone_in_torch(cell, layers, bidirectional, proj, batch_first, backend,
                                      B, seed):
    """Example b's gradient is torch's for that example alone, run at its own length (no
    padding at all), with its own rows of d_out: within 1e-12."""
    from minirnn.interop.torch import to_torch
    proj = proj and get_cell(cell).supports_proj
    m = _model(cell, layers, bidirectional, proj, batch_first, backend, seed)
    rng = np.random.default_rng(seed)
    T = 5
    lengths = rng.integers(1, T + 1, size=B)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    out, _ = m(x, lengths=lengths)
    d_out = rng.standard_normal(out.shape)
    got = minirnn.grad.per_sample_gradients(m, x, d_out, lengths=lengths)
    twin = to_torch(m)
    for b in range(B):
        n = int(lengths[b])
        xb = x[b:b + 1, :n] if batch_first else x[:n, b:b + 1]
        db = d_out[b:b + 1, :n] if batch_first else d_out[:n, b:b + 1]
        twin.zero_grad()
        t_out, _ = twin(torch.from_numpy(np.ascontiguousarray(xb)))
        (t_out * torch.from_numpy(np.ascontiguousarray(db))).sum().backward()
        for name, p in twin.named_parameters():
            assert_close(got[name][b], p.grad.numpy(), rtol=1e-12, atol=1e-14,
                         name=f"{name}[{b}]")


@pytest.mark.parametrize("cell", BUILTIN)
def test_the_sum_is_the_backward_and_nothing_is_touched(cell):
    m = _model(cell, 2, True, False, False, "numpy", 1)
    rng = np.random.default_rng(2)
    x, lengths = rng.standard_normal((6, 3, 3)), [6, 2, 4]
    out, _ = m(x, lengths=lengths)
    d_out = rng.standard_normal(out.shape)
    m.zero_grad()
    record = m.last_forward
    g = minirnn.grad.per_sample_gradients(m, x, d_out, lengths=lengths)
    assert m.last_forward is record and all(not gr.any() for gr in m.grads.values())
    m.backward(d_out)
    for name, grad in m.grads.items():
        assert g[name].shape == (3,) + grad.shape
        assert_close(g[name].sum(axis=0), grad, rtol=1e-12, atol=1e-14, name=name)


def test_unbatched_input_is_one_sequence_and_state_is_taken():
    m = minirnn.GRU(3, 4, seed=0)
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((5, 3)), rng.standard_normal((1, 4))
    d_out = rng.standard_normal((5, 4))
    g = minirnn.grad.per_sample_gradients(m, x, d_out, state=(h0,))
    m.zero_grad()
    m(x, h0)
    m.backward(d_out)
    for name, grad in m.grads.items():
        assert g[name].shape == (1,) + grad.shape
        assert_close(g[name][0], grad, rtol=1e-13, name=name)


def test_dropout_masks_are_the_forwards():
    """In training mode with dropout the masks are drawn as forward draws them: the per-sample
    gradients then sum to the backward of a forward drawn from the same generator state."""
    m = minirnn.LSTM(3, 4, num_layers=2, dropout=0.5, seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 3))
    d_out = rng.standard_normal((5, 3, 4))
    state = m.rng.bit_generator.state
    g = minirnn.grad.per_sample_gradients(m, x, d_out)
    m.rng.bit_generator.state = state
    m.zero_grad()
    m(x)
    m.backward(d_out)
    for name, grad in m.grads.items():
        assert_close(g[name].sum(axis=0), grad, rtol=1e-12, atol=1e-14, name=name)


def test_refusals_name_the_argument():
    m = minirnn.RNN(3, 4, seed=0)
    x = np.ones((2, 8, 3))
    with pytest.raises(ValueError, match=r"x: per-sample gradients of 8 sequences would need "
                                         r"\d+ bytes.*memory_limit=100"):
        minirnn.grad.per_sample_gradients(m, x, np.ones((2, 8, 4)), memory_limit=100)
    with pytest.raises(ValueError, match="d_out: expected shape"):
        minirnn.grad.per_sample_gradients(m, x, np.ones((2, 8, 5)))
    with pytest.raises(TypeError, match="model: expected"):
        minirnn.grad.per_sample_gradients(minirnn.RNNCell(3, 4), x[0], np.ones((8, 4)))
    g = minirnn.grad.per_sample_gradients(m, x, np.ones((2, 8, 4)), memory_limit=10**9)
    assert g["weight_ih_l0"].shape == (8, 4, 3)
