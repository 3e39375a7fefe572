"""Linear, Embedding, Dropout and the losses against torch (float64, <= 1e-12 relative)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.nn.layers import Dropout, Embedding, Linear
from minirnn.nn.losses import cross_entropy, log_softmax, nll_loss
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional

FAST = settings(max_examples=15, deadline=None)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


@FAST
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), n_in=st.integers(1, 6),
       n_out=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_forward_backward_match_torch(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    lin = Linear(n_in, n_out, bias=bias, seed=seed)
    x = rng.standard_normal((*lead, n_in))
    dy = rng.standard_normal((*lead, n_out))
    tl = torch.nn.Linear(n_in, n_out, bias=bias).double()
    with torch.no_grad():
        tl.weight.copy_(t64(lin.params["weight"]))
        if bias:
            tl.bias.copy_(t64(lin.params["bias"]))
    tx = t64(x, grad=True)
    ty = tl(tx)
    ty.backward(t64(dy))
    assert_close(lin.forward(x), ty.detach(), name="y")
    assert_close(lin.backward(dy), tx.grad, name="dx")
    assert_close(lin.grads["weight"], tl.weight.grad, name="dW")
    if bias:
        assert_close(lin.grads["bias"], tl.bias.grad, name="db")
    # gradients accumulate until zero_grad, as torch's do
    lin.forward(x)
    lin.backward(dy)
    assert_close(lin.grads["weight"], 2 * tl.weight.grad, name="dW accumulated")


def test_linear_init_is_torch_style_and_seeded():
    a, b = Linear(50, 40, seed=3), Linear(50, 40, seed=3)
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    bound = 1 / np.sqrt(50)
    assert np.abs(a.params["weight"]).max() <= bound
    assert np.abs(a.params["weight"]).max() > 0.9 * bound        # uses the whole range
    assert list(a.state_dict()) == list(torch.nn.Linear(50, 40).state_dict())


@FAST
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), V=st.integers(2, 9),
       E=st.integers(1, 5), pad=st.booleans(), seed=st.integers(0, 2**16))
def test_embedding_forward_backward_match_torch(shape, V, E, pad, seed):
    rng = np.random.default_rng(seed)
    padding_idx = int(rng.integers(V)) if pad else None
    emb = Embedding(V, E, padding_idx=padding_idx, seed=seed)
    if pad:
        assert not emb.params["weight"][padding_idx].any()
    idx = rng.integers(0, V, size=shape)
    dy = rng.standard_normal((*shape, E))
    te = torch.nn.Embedding(V, E, padding_idx=padding_idx).double()
    with torch.no_grad():
        te.weight.copy_(t64(emb.params["weight"]))
    ty = te(torch.tensor(idx))
    ty.backward(t64(dy))
    assert_close(emb.forward(idx), ty.detach(), name="y")
    assert emb.backward(dy) is None
    assert_close(emb.grads["weight"], te.weight.grad, name="dW")       # repeated ids sum


def test_embedding_init_is_standard_normal():
    w = Embedding(200, 50, seed=0).params["weight"]
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


def test_embedding_refuses_bad_ids():
    emb = Embedding(5, 3, seed=0)
    with pytest.raises(TypeError, match="integer"):
        emb.forward(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 5\).*got 5"):
        emb.forward(np.array([1, 5]))
    with pytest.raises(ValueError, match="got -1"):
        emb.forward(np.array([-1]))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 3, padding_idx=7)


def test_layer_errors_name_the_argument():
    lin = Linear(3, 2, seed=0)
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match="x: expected shape"):
        lin.forward(np.ones((2, 4)))
    lin.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dy: expected shape"):
        lin.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 2)
    with pytest.raises(ValueError, match="p: expected"):
        Dropout(1.5)


def test_dropout_train_eval_and_backward():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 50)) + 3.0
    d = Dropout(0.3, seed=0)
    y = d.forward(x)
    dropped = y == 0
    assert 0.25 < dropped.mean() < 0.35
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-15)
    dy = rng.standard_normal(x.shape)
    dx = d.backward(dy)
    assert not dx[dropped].any()
    np.testing.assert_allclose(dx[~dropped], dy[~dropped] / 0.7, rtol=1e-15)
    d.eval()
    np.testing.assert_array_equal(d.forward(x), x)
    np.testing.assert_array_equal(d.backward(dy), dy)
    assert not Dropout(1.0, seed=0).forward(x).any()


# ---- losses ----------------------------------------------------------------------------------
def test_log_softmax_is_stable_and_matches_torch():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 7)) * 3
    assert_close(log_softmax(z), F.log_softmax(t64(z), dim=-1), name="log_softmax")
    assert_close(log_softmax(z, axis=0), F.log_softmax(t64(z), dim=0), name="log_softmax axis 0")
    big = z + 1e4                                        # naive exp would overflow
    out = log_softmax(big)
    assert np.all(np.isfinite(out))
    assert_close(out, F.log_softmax(t64(big), dim=-1), name="shifted")


@FAST
@given(N=st.integers(1, 8), C=st.integers(2, 6), weighted=st.booleans(), ignore=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 2**16))
def test_cross_entropy_and_nll_match_torch(N, C, weighted, ignore, reduction, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, C)) * 2
    y = rng.integers(0, C, size=N)
    if ignore:
        y[rng.random(N) < 0.3] = -100
        y[0] = 1                                          # at least one target counts
    w = rng.uniform(0.2, 3.0, size=C) if weighted else None
    tz = t64(z, grad=True)
    tl = F.cross_entropy(tz, torch.tensor(y), weight=None if w is None else t64(w),
                         ignore_index=-100, reduction=reduction)
    tl.backward()
    loss, dz = cross_entropy(z, y, weight=w, reduction=reduction)
    assert_close(loss, tl.item(), name="loss")
    assert_close(dz, tz.grad, name="dlogits")
    # nll on log-probabilities, with a custom ignore_index
    lp = log_softmax(z)
    y2 = np.where(y == -100, 2 % C, y)
    if ignore:
        y2[-1] = C - 1
    tlp = t64(lp, grad=True)
    tn = F.nll_loss(tlp, torch.tensor(y2), weight=None if w is None else t64(w),
                    ignore_index=C - 1 if ignore else -100, reduction=reduction)
    tn.backward()
    loss2, dlp = nll_loss(lp, y2, weight=w, ignore_index=C - 1 if ignore else -100,
                          reduction=reduction)
    if np.isnan(tn.item()):
        assert np.isnan(loss2)
    else:
        assert_close(loss2, tn.item(), name="nll")
        assert_close(dlp, tlp.grad, name="dlogp")


def test_loss_errors():
    z = np.zeros((3, 4)) + 0.5
    with pytest.raises(TypeError, match="targets"):
        cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets: expected shape \(3,\)"):
        cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        cross_entropy(z, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="weight"):
        cross_entropy(z, np.array([0, 1, 2]), weight=np.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(z, np.array([0, 1, 2]), reduction="avg")
