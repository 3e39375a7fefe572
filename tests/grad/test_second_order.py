"""Second order: the Hessian-vector product (R-operator on the hand-written BPTT) and the
Gauss-Newton product, against torch's double backward (float64, its non-cuDNN CPU path),
central differences of the gradient, and the Numba twin; the losses; the refusals."""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.grad import LinearLoss, MSELoss, gnvp, hvp
from minirnn.grad.output_losses import check_loss
from minirnn.grad.second_order import hessian_vector
from minirnn.cells import get_cell
from minirnn.testing import central_hvp

torch = pytest.importorskip("torch")
from tests.helpers import derivatives as fm  # noqa: E402  (the torch twin and the configurations)


@settings(max_examples=20, **fm.SETTINGS)
@given(**fm.CONFIGS, kind=st.sampled_from(["mse", "linear"]))
def test_hvp_and_gnvp_match_torch_double_backward(kind, **cfg):
    """≤ 1e-10 relative for every parameter, any cell, layout, lengths and direction."""
    model, x, state, lengths, _ = fm.make_case(**cfg)
    model.eval()
    rng = np.random.default_rng(cfg["seed"] + 2)
    out, _ = model.forward_state(x, state, lengths)
    target = rng.standard_normal(out.shape)
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    loss = MSELoss(target) if kind == "mse" else LinearLoss(target)
    hv = hvp(model, x, loss, v, state, lengths)
    gv = gnvp(model, x, loss, v, state, lengths)
    assert list(hv) == list(model.grads) == list(gv)
    want_hv, want_gv = fm.torch_products(model, x, state, lengths, target, v, kind)
    for k in model.params:
        assert fm.rel(hv[k], want_hv[k]) <= 1e-10, (k, fm.rel(hv[k], want_hv[k]))
        if kind == "linear":
            assert not np.any(gv[k])                       # a linear loss has no curvature
        else:
            assert fm.rel(gv[k], want_gv[k]) <= 1e-10, k


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_hvp_against_central_differences_of_the_gradient(cell):
    """H v against (∇L(θ + eps v) - ∇L(θ - eps v)) / 2 eps, ≤ 1e-6 relative; ∇L from the
    model's own backward."""
    rng = np.random.default_rng(10)
    model = fm.make_model(cell, 3, 5, layers=2, bidirectional=True, proj=cell == "lstm", seed=10)
    x, state = fm.make_data(model, 6, 3, rng)
    lengths = [6, 2, 4]
    out, _ = model.forward_state(x, state, lengths)
    loss = MSELoss(rng.standard_normal(out.shape))
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    hv = hvp(model, x, loss, v, state=state, lengths=lengths)
    fd = central_hvp(model, x, state, lengths, loss, v, eps=1e-5)
    for k in model.params:
        assert fm.rel(hv[k], fd[k]) <= 1e-6, k


@settings(max_examples=12, **fm.SETTINGS)
@given(**fm.CONFIGS)
def test_numba_twin_hvp_matches_the_reference(**cfg):
    model, x, state, lengths, _ = fm.make_case(**cfg)
    model.eval()
    rng = np.random.default_rng(cfg["seed"] + 3)
    out, _ = model.forward_state(x, state, lengths)
    loss = MSELoss(rng.standard_normal(out.shape))
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    ref = hvp(model, x, loss, v, state, lengths)
    ref_gn = gnvp(model, x, loss, v, state, lengths)
    model.backend = "numba"
    fast, fast_gn = hvp(model, x, loss, v, state, lengths), gnvp(model, x, loss, v, state, lengths)
    for k in model.params:
        minirnn.assert_close(fast[k], ref[k], rtol=1e-12, atol=1e-14, name=k)
        minirnn.assert_close(fast_gn[k], ref_gn[k], rtol=1e-12, atol=1e-14, name=k)


def test_hvp_is_symmetric_and_gauss_newton_is_psd():
    rng = np.random.default_rng(11)
    model = fm.make_model("lstm", 3, 4, layers=2, seed=11)
    x, state = fm.make_data(model, 5, 2, rng)
    out, _ = model.forward_state(x, state)
    loss = MSELoss(rng.standard_normal(out.shape))
    u, v = ({k: rng.standard_normal(p.shape) for k, p in model.params.items()} for _ in range(2))
    dot = lambda a, b: sum(np.vdot(a[k], b[k]) for k in a)              # noqa: E731
    hu, hv = hvp(model, x, loss, u, state), hvp(model, x, loss, v, state)
    assert abs(dot(u, hv) - dot(v, hu)) <= 1e-12 * (abs(dot(u, hv)) + 1e-300)
    for w in (u, v):
        assert dot(w, gnvp(model, x, loss, w, state)) >= 0.0


@pytest.mark.parametrize("cell,P", [("rnn_tanh", 0), ("rnn_relu", 0), ("lstm", 0), ("lstm", 2),
                                    ("gru", 0)])
def test_reference_backward_jvp_arguments(cell, P):
    """backward_jvp with d_hT, d_cT, d_hT_dot, d_cT_dot present (and absent = zero), and
    input_grad=False, against torch's double backward through one layer; the R-terms of
    step_backward_jvp (nonlinearity; w_hr, w_hr_dot) through the sequence at T = 1."""
    rng = np.random.default_rng(12)
    spec, params, x, state = fm.make_layer(cell, 4, 2, 3, 4, P, rng)
    ref = importlib.import_module("minirnn.cells." + spec.family)
    out, st_T, cache = spec.forward(x, state, params)
    dots = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    x_dot, s_dot = rng.standard_normal(x.shape), tuple(rng.standard_normal(s.shape) for s in state)
    _, _, tcache = spec.forward_jvp(cache, x_dot, s_dot, dots)
    u = rng.standard_normal(out.shape)
    w_T = tuple(rng.standard_normal(s.shape) for s in st_T)
    # L = sum(u out) + ½ |out|² + sum(w_T state_T) + ½ |state_T|²: R{d_out} = ȯut, R{d_T} = ṡ_T
    out_dot, st_dot, _ = spec.forward_jvp(cache, x_dot, s_dot, dots)
    S = len(st_T)
    kw = {"d_hT": w_T[0] + st_T[0], "d_hT_dot": st_dot[0]}
    if S == 2:
        kw.update(d_cT=w_T[1] + st_T[1], d_cT_dot=st_dot[1])
    res, res_dot = ref.backward_jvp(cache, tcache, u + out, out_dot, **kw)
    # torch
    kwt = {"proj_size": P} if P else {}
    t = getattr(torch.nn, spec.module)(3, 4, dtype=torch.float64, **spec.module_kwargs(), **kwt)
    t.load_state_dict({f"{k}_l0": torch.from_numpy(v) for k, v in params.items()})
    T_ = torch.from_numpy
    leaves = [T_(x).requires_grad_(True), *[T_(s).requires_grad_(True) for s in state],
              *[p for _, p in t.named_parameters()]]
    hx = leaves[1][None] if S == 1 else (leaves[1][None], leaves[2][None])
    o, hn = t(leaves[0], hx)
    hn = (hn,) if S == 1 else hn
    L = (T_(u) * o).sum() + 0.5 * (o ** 2).sum() + sum(
        (T_(w) * h[0]).sum() + 0.5 * (h[0] ** 2).sum() for w, h in zip(w_T, hn))
    g = torch.autograd.grad(L, leaves, create_graph=True)
    vs = [T_(x_dot), *map(T_, s_dot), *[T_(dots[k[:-3]]) for k, _ in t.named_parameters()]]
    hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, vs)), leaves)
    got = [res[0], *res[1:1 + S], *[r for r in res[1 + S:] if r is not None]]
    got_dot = [res_dot[0], *res_dot[1:1 + S], *[r for r in res_dot[1 + S:] if r is not None]]
    for a, b in zip(got, g):
        assert fm.rel(a, b.detach().numpy()) <= 1e-12
    for a, b in zip(got_dot, hv):
        assert fm.rel(a, b.numpy()) <= 1e-12
    # absent final-state gradients are zeros; input_grad=False drops dx and its tangent
    bare, bare_dot = ref.backward_jvp(cache, tcache, u, None, input_grad=False)
    zeros = ref.backward_jvp(cache, tcache, u, np.zeros_like(u),
                             **{k: np.zeros_like(v) for k, v in kw.items()})
    assert bare[0] is None and bare_dot[0] is None
    for a, b in zip(bare[1:] + bare_dot[1:], zeros[0][1:] + zeros[1][1:]):
        assert (a is None and b is None) or np.array_equal(a, b)
    _step_backward_jvp_is_the_sequence_at_one_step(spec, params, rng)


def _step_backward_jvp_is_the_sequence_at_one_step(spec, params, rng):
    """step_backward_jvp (nonlinearity; w_hr, w_hr_dot) is backward_jvp at T = 1."""
    ref = importlib.import_module("minirnn.cells." + spec.family)
    x = rng.standard_normal((1, 2, params["weight_ih"].shape[1]))
    P = params["weight_hh"].shape[1]
    state = tuple(rng.standard_normal((2, P if n == "h" else params["weight_ih"].shape[0]
                                       // spec.gates)) for n in spec.state_names)
    _, _, cache = spec.forward(x, state, params)
    dots = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    _, _, tc = spec.forward_jvp(cache, rng.standard_normal(x.shape),
                              tuple(rng.standard_normal(s.shape) for s in state), dots)
    d, d_dot = rng.standard_normal(cache.h.shape), rng.standard_normal(cache.h.shape)
    seq, seq_dot = ref.backward_jvp(cache, tc, d, d_dot)
    w, wd = params, dots
    if spec.family == "rnn":
        step, step_dot = ref.step_backward_jvp(d[0], d_dot[0], cache.a[0], cache.h[0],
                                               tc.a_dot[0], w["weight_ih"], w["weight_hh"],
                                               wd["weight_ih"], wd["weight_hh"],
                                               nonlinearity=cache.nonlinearity)
        pairs = [(step[0], seq[0][0]), (step_dot[0], seq_dot[0][0]), (step_dot[1], seq_dot[1])]
    elif spec.family == "lstm":
        zero = np.zeros_like(cache.c0)
        step, step_dot = ref.step_backward_jvp(
            d[0], zero, d_dot[0], zero, cache.c0, tc.c0_dot, cache.gates[0], tc.gates_dot[0],
            cache.c[0], tc.c_dot[0], w["weight_ih"], w["weight_hh"], wd["weight_ih"],
            wd["weight_hh"], w_hr=w.get("weight_hr"), w_hr_dot=wd.get("weight_hr"))
        pairs = [(step[0], seq[0][0]), (step_dot[0], seq_dot[0][0]), (step_dot[1], seq_dot[1]),
                 (step_dot[2], seq_dot[2])]
        if w.get("weight_hr") is not None:
            pairs.append((step_dot[4], seq_dot[7]))
    else:
        step, step_dot = ref.step_backward_jvp(d[0], d_dot[0], cache.h0, tc.h0_dot,
                                               cache.gates[0], tc.gates_dot[0], cache.hn[0],
                                               tc.hn_dot[0], w["weight_ih"], w["weight_hh"],
                                               wd["weight_ih"], wd["weight_hh"])
        pairs = [(step[0], seq[0][0]), (step_dot[0], seq_dot[0][0]), (step_dot[1], seq_dot[1])]
    for a, b in pairs:
        minirnn.assert_close(a, b, rtol=1e-14, name="step_backward_jvp")


def test_losses_value_grad_hvp():
    rng = np.random.default_rng(13)
    out, target, v = (rng.standard_normal((4, 3, 2)) for _ in range(3))
    mse = MSELoss(target)
    o = torch.from_numpy(out).requires_grad_(True)
    val = torch.nn.functional.mse_loss(o, torch.from_numpy(target))
    g, = torch.autograd.grad(val, o, create_graph=True)
    hv, = torch.autograd.grad((g * torch.from_numpy(v)).sum(), o)
    assert abs(mse.value(out) - val.item()) <= 1e-14
    minirnn.assert_close(mse.grad(out), g.detach().numpy(), rtol=1e-14)
    minirnn.assert_close(mse.hvp(out, v), hv.numpy(), rtol=1e-14)
    lin = LinearLoss(target)
    assert lin.value(out) == pytest.approx(float((target * out).sum()), rel=1e-14)
    np.testing.assert_array_equal(lin.grad(out), target)
    assert not np.any(lin.hvp(out, v))
    with pytest.raises(ValueError, match="target"):
        mse.grad(out[:2])
    with pytest.raises(TypeError, match="target"):
        MSELoss(np.array(["a"]))
    assert check_loss(mse) is mse
    with pytest.raises(TypeError, match="hvp"):
        check_loss(object())


def test_hvp_refusals_and_what_it_leaves_alone():
    rng = np.random.default_rng(14)
    model = fm.make_model("gru", 3, 4, layers=2, seed=14)
    x, state = fm.make_data(model, 4, 2, rng)
    out, _ = model.forward_state(x)
    loss = MSELoss(rng.standard_normal(out.shape))
    with pytest.raises(TypeError, match="loss"):
        hvp(model, x, object(), {})
    with pytest.raises(ValueError, match="weight_nope"):
        hvp(model, x, loss, {"weight_nope": np.ones(2)})
    with pytest.raises(ValueError, match=r"v\['bias_ih_l0'\]"):
        gnvp(model, x, loss, {"bias_ih_l0": np.ones(2)})
    with pytest.raises(TypeError, match="dict"):
        hvp(model, x, loss, [np.ones(2)])
    train = minirnn.GRU(3, 4, num_layers=2, dropout=0.3, seed=1)
    with pytest.raises(ValueError, match="eval"):
        gnvp(train, x, loss, {})
    model.forward_state(x, state)
    record, grads = model.last_forward, model.grad_dict()
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    hv = hvp(model, x, loss, v)                     # state=None: zero initial states
    assert model.last_forward is record
    assert all(np.array_equal(g, grads[k]) for k, g in model.grad_dict().items())
    partial = hvp(model, x, loss, {"weight_hh_l1": v["weight_hh_l1"]})
    defaults = gnvp(model, x, loss, v)              # state=None, lengths=None
    assert list(defaults) == list(model.grads)
    assert set(partial) == set(model.params) and all(np.isfinite(a).all() for a in hv.values())
    # the gradient comes with it, equal to the model's own backward
    grad, _ = hessian_vector(model, x, loss, v, state, lengths=[4, 1])
    model.zero_grad()
    out, _ = model.forward_state(x, state, lengths=[4, 1])
    model.backward_state(loss.grad(out))
    for k in model.params:
        minirnn.assert_close(grad[k], model.grads[k], rtol=1e-14, name=k)


def test_numba_tangent_modules_cover_every_family():
    for name in ("rnn_tanh", "lstm", "gru"):
        mod = importlib.import_module(f"minirnn.kernels._{get_cell(name).family}_tangent")
        assert callable(mod.forward_jvp) and callable(mod.backward_jvp)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_empty_batch_gives_empty_tangents_and_zero_products(backend):
    """B = 0 is a valid batch (as in torch): tangents are empty, the products zero."""
    model = fm.make_model("lstm", 3, 4, layers=2, bidirectional=True, seed=15, backend=backend)
    x = np.zeros((5, 0, 3))
    res = minirnn.grad.jvp(model, x, tangents={"x": x})
    assert res.out_dot.shape == (5, 0, 8) and res.state_dot[1].shape == (4, 0, 4)
    v = {k: np.ones_like(p) for k, p in model.params.items()}
    loss = LinearLoss(np.zeros_like(res.out))
    for product in (hvp, gnvp):
        assert not any(np.any(a) for a in product(model, x, loss, v).values())
