"""backward(..., input_grad=False): the input needs no gradient (one-hot characters), so dx
is None and never computed; every other gradient is bitwise what input_grad=True gives."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.functional.backends import KERNEL_BACKENDS
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent
from minirnn.nn.models import SequenceClassifier

pytest.importorskip("numba")
BACKENDS = list(KERNEL_BACKENDS)                     # numpy (the reference) and numba


def _run(model, x, d_out, input_grad):
    model.zero_grad()
    model.forward_state(x)
    dx, d_state0 = model.backward_state(d_out, input_grad=input_grad)
    return dx, d_state0, {k: g.copy() for k, g in model.grads.items()}


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(BUILTIN), backend=st.sampled_from(BACKENDS),
       layers=st.integers(1, 2), bidirectional=st.booleans(), B=st.sampled_from([1, 3, 7]),
       T=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_same_gradients_without_dx(cell, backend, layers, bidirectional, B, T, seed):
    model = make_recurrent(cell, 4, 5, num_layers=layers, bidirectional=bidirectional,
                           backend=backend, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 4))
    d_out = rng.standard_normal((T, B, 5 * (2 if bidirectional else 1)))
    dx, ds, grads = _run(model, x, d_out, True)
    none, ds2, grads2 = _run(model, x, d_out, False)
    assert dx is not None and dx.shape == x.shape
    assert none is None
    for a, b in zip(ds, ds2):
        assert a.tobytes() == b.tobytes()
    for k in grads:
        assert grads[k].tobytes() == grads2[k].tobytes(), f"{k} differs without dx"


def test_torch_style_backward_passes_it_on():
    model = make_recurrent("lstm", 3, 4, seed=0)
    x = np.random.default_rng(1).standard_normal((2, 1, 3))
    model.forward(x)
    dx, (dh0, dc0) = model.backward(np.ones((2, 1, 4)), input_grad=False)
    assert dx is None and dh0.shape == (1, 1, 4) and dc0.shape == (1, 1, 4)


@pytest.mark.parametrize("embedding_dim", [None, 3])
def test_classifier_gradients_unchanged(embedding_dim, monkeypatch):
    """The one-hot classifier skips dx; its gradients equal those of a run that computes it."""
    tokens = np.random.default_rng(2).integers(0, 6, size=(4, 5))
    d_logits = np.random.default_rng(3).standard_normal((4, 3))

    def grads(force_dx):
        model = SequenceClassifier(6, 3, 4, embedding_dim=embedding_dim, seed=0)
        if force_dx:
            original = model.rnn.backward_state
            monkeypatch.setattr(model.rnn, "backward_state",
                                lambda *a, **k: original(*a, **dict(k, input_grad=True)))
        model.forward(tokens)
        model.backward(d_logits)
        return model.grad_dict()

    plain, forced = grads(False), grads(True)
    assert plain.keys() == forced.keys()
    for k in plain:
        assert plain[k].tobytes() == forced[k].tobytes(), k
