"""SGD (momentum, Nesterov, weight decay), Adam and clip_grad_norm against torch, step by step."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.nn.layers import Linear
from minirnn.nn.module import Module
from minirnn.train.optim import SGD, Adam, clip_grad_norm
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")


class Two(Module):
    """Two linear layers, so the optimiser sees several named parameters of different shapes."""

    def __init__(self, seed):
        super().__init__(seed=seed)
        self.a = self.add_module("a", Linear(4, 3, seed=seed))
        self.b = self.add_module("b", Linear(3, 2, bias=False, seed=seed + 1))


def _twin(model):
    params = {n: torch.tensor(p.copy(), requires_grad=True) for n, p, _ in model.named_parameters()}
    return params


def _run(make_ours, make_torch, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    model = Two(seed)
    tp = _twin(model)
    opt = make_ours(model)
    topt = make_torch(list(tp.values()))
    for k in range(steps):
        for (name, _, g) in model.named_parameters():         # fresh random gradients
            g[...] = rng.standard_normal(g.shape) * (1 + k)
            tp[name].grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        for name, p, _ in model.named_parameters():
            assert_close(p, tp[name].detach(), name=f"step {k + 1} {name}")
    return opt


@settings(max_examples=12, deadline=None)
@given(lr=st.floats(1e-3, 0.5), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       wd=st.sampled_from([0.0, 0.01]), nesterov=st.booleans(), seed=st.integers(0, 1000))
def test_sgd_matches_torch(lr, momentum, wd, nesterov, seed):
    nesterov = nesterov and momentum > 0
    _run(lambda m: SGD(m, lr, momentum=momentum, weight_decay=wd, nesterov=nesterov),
         lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum, weight_decay=wd, nesterov=nesterov),
         seed=seed)


@settings(max_examples=12, deadline=None)
@given(lr=st.floats(1e-4, 0.1), b1=st.sampled_from([0.0, 0.9]), b2=st.sampled_from([0.99, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), wd=st.sampled_from([0.0, 0.05]), seed=st.integers(0, 1000))
def test_adam_matches_torch(lr, b1, b2, eps, wd, seed):
    _run(lambda m: Adam(m, lr, betas=(b1, b2), eps=eps, weight_decay=wd),
         lambda ps: torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
         steps=8, seed=seed)


def test_optimizer_state_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4 * 3 + 3 + 3 * 2) for _ in range(6)]

    def feed(model, k):
        flat = grads[k]
        i = 0
        for _, _, g in model.named_parameters():
            g[...] = flat[i:i + g.size].reshape(g.shape)
            i += g.size

    for make in (lambda m: Adam(m, 0.01), lambda m: SGD(m, 0.1, momentum=0.9, nesterov=True)):
        ref, ref_opt = Two(1), None
        ref_opt = make(ref)
        for k in range(6):
            feed(ref, k)
            ref_opt.step()
        a = Two(1)
        opt_a = make(a)
        for k in range(3):
            feed(a, k)
            opt_a.step()
        b = Two(7)
        b.load_state_dict(a.state_dict())
        opt_b = make(b)
        opt_b.load_state_dict(opt_a.state_dict())
        for k in range(3, 6):
            feed(b, k)
            opt_b.step()
        for (n, p, _), (_, q, _) in zip(ref.named_parameters(), b.named_parameters()):
            np.testing.assert_array_equal(q, p, err_msg=n)
        assert opt_b.steps == 6


def test_optimizer_errors():
    m = Two(0)
    with pytest.raises(ValueError, match="lr"):
        SGD(m, lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(m, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="type Adam"):
        Adam(m).load_state_dict(SGD(m, 0.1).state_dict())


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(2)
    model = Two(0)
    tp = _twin(model)
    for name, _, g in model.named_parameters():
        g[...] = rng.standard_normal(g.shape)
        tp[name].grad = torch.tensor(g.copy())
    total = clip_grad_norm(model, max_norm)
    t_total = torch.nn.utils.clip_grad_norm_(list(tp.values()), max_norm)
    assert_close(total, t_total.item(), name="total_norm")
    for name, _, g in model.named_parameters():
        assert_close(g, tp[name].grad, name=f"clipped {name}")
    if max_norm < total:
        after = np.sqrt(sum(float((g ** 2).sum()) for _, _, g in model.named_parameters()))
        assert after == pytest.approx(max_norm, rel=1e-5)
