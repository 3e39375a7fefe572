"""Forward mode (JVP through time): each cell's hand-written tangents, composed over layers,
directions, lengths and layouts, against torch (float64), central differences, the BPTT
(the dot-product test) and the Numba twin. Fresh random weights, states and tangents."""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.cells import gru as gru_ref
from minirnn.cells import lstm as lstm_ref
from minirnn.cells import rnn as rnn_ref
from minirnn.grad import JVPResult, jvp
from minirnn.nn import make_recurrent
from minirnn.testing import central_jvp

torch = pytest.importorskip("torch")
from minirnn.parity.torch_ref import load_forward_ad  # noqa: E402
from tests.helpers.derivatives import (CONFIGS, SETTINGS, make_case,  # noqa: E402
                                       make_data, make_layer, make_model, make_tangents,
                                       rel, torch_jvp)

load_forward_ad()           # torch.func.jvp below, without torch's TorchScript warnings


@settings(max_examples=25, **SETTINGS)
@given(**CONFIGS)
def test_jvp_matches_torch(**cfg):
    """≤ 1e-12 relative on every output tangent, any cell, layout, lengths and direction."""
    model, x, state, lengths, tangents = make_case(**cfg)
    res = jvp(model, x, state, tangents, lengths)
    out, state_n = model.forward_state(x, state, lengths)
    np.testing.assert_array_equal(res.out, out)
    want = torch_jvp(model, x, state, tangents, lengths)
    for name, got, ref in zip(["out", *model.spec.state_names], [res.out_dot, *res.state_dot],
                              want):
        assert rel(got, ref) <= 1e-12, (name, rel(got, ref))


@settings(max_examples=12, **SETTINGS)
@given(**CONFIGS)
def test_jvp_against_central_differences(**cfg):
    """The JVP along all tangents at once against (f(p + eps v) - f(p - eps v)) / 2 eps."""
    model, x, state, lengths, tangents = make_case(**cfg)
    res = model.jvp(x, state, tangents, lengths)
    for got, fd in zip([res.out_dot, *res.state_dot],
                       central_jvp(model, x, state, lengths, tangents, eps=1e-6)):
        assert rel(got, fd) <= 1e-7


@settings(max_examples=15, **SETTINGS)
@given(**CONFIGS)
def test_dot_product_test_links_jvp_and_bptt(**cfg):
    """⟨J u, w⟩ = ⟨u, Jᵀ w⟩ to round-off (≤ 1e-13 of the terms' size), u over every input."""
    model, x, state, lengths, u = make_case(**cfg)
    rng = np.random.default_rng(cfg["seed"] + 1)
    res = jvp(model, x, state, u, lengths)
    w = [rng.standard_normal(np.shape(o)) for o in (res.out, *res.state)]
    model.zero_grad()
    model.forward_state(x, state, lengths)
    dx, d_state = model.backward_state(w[0], tuple(w[1:]))
    grads = {"x": dx, **{f"{n}0": d for n, d in zip(model.spec.state_names, d_state)},
             **model.grads}
    lhs = sum(np.vdot(a, b) for a, b in zip([res.out_dot, *res.state_dot], w))
    rhs = sum(np.vdot(u[k], grads[k]) for k in u)
    scale = sum(np.abs(a * b).sum() for a, b in zip([res.out_dot, *res.state_dot], w))
    assert abs(lhs - rhs) <= 1e-13 * scale


@settings(max_examples=15, **SETTINGS)
@given(**CONFIGS, big_batch=st.booleans())
def test_numba_tangent_kernels_match_the_reference(big_batch, **cfg):
    """The Numba twin (loop kernels; the reference past LOOP_MAX_BATCH) gives the reference's
    tangents to round-off."""
    if big_batch:
        cfg["B"], cfg["unbatched"] = 9, False
    model, x, state, lengths, tangents = make_case(**cfg)
    ref = jvp(model, x, state, tangents, lengths)
    model.backend = "numba"
    fast = jvp(model, x, state, tangents, lengths)
    for a, b in zip([fast.out_dot, *fast.state_dot], [ref.out_dot, *ref.state_dot]):
        minirnn.assert_close(a, b, rtol=1e-13, atol=1e-14, name="numba tangent")


def test_model_jvp_method_defaults_and_untouched_record():
    rng = np.random.default_rng(5)
    model = make_model("lstm", 3, 4, layers=2, bidirectional=True, seed=5)
    x, state = make_data(model, 4, 2, rng)
    model.forward_state(x)
    record, grads = model.last_forward, model.grad_dict()
    none = model.jvp(x)                                   # no tangents: all zero, zero state
    assert isinstance(none, JVPResult)
    assert all(not np.any(t) for t in (none.out_dot, *none.state_dot))
    np.testing.assert_array_equal(none.out, model.forward_state(x)[0])
    tangents = make_tangents(model, x, state, rng)
    a = model.jvp(x, state, tangents, lengths=[4, 2])
    b = jvp(model, x, state=state, tangents=tangents, lengths=[4, 2])
    np.testing.assert_array_equal(a.out_dot, b.out_dot)
    model.forward_state(x)
    record = model.last_forward
    model.jvp(x, state, tangents)
    assert model.last_forward is record                   # backward() still sees its forward
    assert all(np.array_equal(g, grads[k]) for k, g in model.grad_dict().items())


def test_jvp_linear_in_tangents_and_partial_tangents():
    """A missing tangent is zero: the JVP of a sum of tangents is the sum of the JVPs."""
    rng = np.random.default_rng(6)
    model = make_model("gru", 2, 3, layers=2, seed=6)
    x, state = make_data(model, 5, 2, rng)
    t = make_tangents(model, x, state, rng)
    whole = jvp(model, x, state, t).out_dot
    parts = sum(jvp(model, x, state, {k: v}).out_dot for k, v in t.items())
    minirnn.assert_close(parts, whole, rtol=1e-13)


def test_jvp_refusals():
    rng = np.random.default_rng(7)
    model = make_model("lstm", 3, 4, layers=2, seed=7)
    x, state = make_data(model, 3, 2, rng)
    with pytest.raises(ValueError, match="weight_nope"):
        jvp(model, x, state, {"weight_nope": np.ones(3)})
    with pytest.raises(ValueError, match=r"tangents\['weight_hh_l0'\]"):
        jvp(model, x, state, {"weight_hh_l0": np.ones((3, 3))})
    with pytest.raises(TypeError, match="tangents"):
        jvp(model, x, state, [np.ones(3)])
    with pytest.raises(TypeError, match="model"):
        jvp(minirnn.LSTMCell(3, 4), x[0], None, {})
    dropout = make_recurrent("gru", 3, 4, num_layers=2, dropout=0.5, seed=1)
    with pytest.raises(ValueError, match="eval"):
        jvp(dropout, x, None, {"x": x})
    jvp(dropout.eval(), x, None, {"x": x})               # eval mode: fine
    f32 = make_recurrent("rnn_tanh", 3, 4, dtype="float32")
    with pytest.raises(TypeError, match="float64"):
        jvp(f32, x.astype(np.float32), None, {"x": x})


# ---- the reference functions themselves -------------------------------------------------

@pytest.mark.parametrize("cell,P", [("rnn_tanh", 0), ("rnn_relu", 0), ("lstm", 0), ("lstm", 2),
                                    ("gru", 0)])
def test_reference_forward_jvp_each_tangent_alone(cell, P):
    """forward_jvp with each of x_dot, h0_dot, c0_dot, w_ih_dot, w_hh_dot, b_ih_dot, b_hh_dot,
    w_hr_dot given alone (the others absent, i.e. zero) against torch.func.jvp of one layer."""
    rng = np.random.default_rng(8)
    spec, params, x, state = make_layer(cell, 4, 2, 3, 4, P, rng)
    ref = importlib.import_module("minirnn.cells." + spec.family)
    out, _, cache = spec.forward(x, state, params)
    kw = {"proj_size": P} if P else {}
    t = getattr(torch.nn, spec.module)(3, 4, dtype=torch.float64, **spec.module_kwargs(), **kw)
    t.load_state_dict({f"{k}_l0": torch.from_numpy(v) for k, v in params.items()})
    T_ = torch.from_numpy
    args = {"x_dot": "x", **{f"{n}0_dot": f"{n}0" for n in spec.state_names},
            "w_ih_dot": "weight_ih", "w_hh_dot": "weight_hh", "b_ih_dot": "bias_ih",
            "b_hh_dot": "bias_hh", **({"w_hr_dot": "weight_hr"} if P else {})}
    for arg, what in args.items():
        shape = x.shape if what == "x" else (state[spec.state_names.index(what[0])].shape
                                             if what.endswith("0") else params[what].shape)
        dot = rng.standard_normal(shape)
        res = ref.forward_jvp(cache, **{arg: dot})
        tang = {k: torch.zeros_like(p) for k, p in t.named_parameters()}
        if what.startswith(("weight", "bias")):
            tang[f"{what}_l0"] = T_(dot)
        x_t = T_(dot) if what == "x" else torch.zeros(x.shape, dtype=torch.float64)
        s_t = [T_(dot) if what == f"{n}0" else torch.zeros(s.shape, dtype=torch.float64)
               for n, s in zip(spec.state_names, state)]

        def f(p, xx, *ss):
            hx = ss[0][None] if len(ss) == 1 else tuple(s[None] for s in ss)
            o, hn = torch.func.functional_call(t, p, (xx, hx))
            return (o, *((hn,) if len(ss) == 1 else hn))
        primal = ({k: p.detach() for k, p in t.named_parameters()}, T_(x), *map(T_, state))
        want = torch.func.jvp(f, primal, (tang, x_t, *s_t))[1]
        assert rel(res[0], want[0]) <= 1e-12, arg
        for got, w in zip(res[1:-1], want[1:]):
            assert rel(got, w[0]) <= 1e-12, arg


@pytest.mark.parametrize("cell,P", [("rnn_tanh", 0), ("rnn_relu", 0), ("lstm", 0), ("lstm", 2),
                                    ("gru", 0)])
def test_reference_step_jvp_is_the_sequence_at_one_step(cell, P):
    """step_jvp (nonlinearity; w_hr, w_hr_dot for the LSTM) is forward_jvp at T = 1."""
    rng = np.random.default_rng(9)
    spec, params, x, state = make_layer(cell, 1, 3, 2, 4, P, rng)
    ref = importlib.import_module("minirnn.cells." + spec.family)
    _, _, cache = spec.forward(x, state, params)
    dots = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    x_dot, s_dot = rng.standard_normal(x.shape), tuple(rng.standard_normal(s.shape) for s in state)
    seq = spec.forward_jvp(cache, x_dot, s_dot, dots)
    w, wd = params, dots
    if spec.family == "rnn":
        h_dot, _ = rnn_ref.step_jvp(x[0], state[0], cache.a[0], cache.h[0], x_dot[0], s_dot[0],
                                    w["weight_ih"], w["weight_hh"], wd["weight_ih"],
                                    wd["weight_hh"], wd["bias_ih"] + wd["bias_hh"],
                                    nonlinearity=spec.nonlinearity)
        step = (h_dot,)
    elif spec.family == "lstm":
        h_dot, c_dot, _ = lstm_ref.step_jvp(
            x[0], *state, cache.gates[0], cache.c[0], x_dot[0], *s_dot, w["weight_ih"],
            w["weight_hh"], wd["weight_ih"], wd["weight_hh"], wd["bias_ih"] + wd["bias_hh"],
            w_hr=w.get("weight_hr"), w_hr_dot=wd.get("weight_hr"))
        step = (h_dot, c_dot)
    else:
        h_dot, _, _ = gru_ref.step_jvp(x[0], state[0], cache.gates[0], cache.hn[0], x_dot[0],
                                       s_dot[0], w["weight_ih"], w["weight_hh"],
                                       wd["weight_ih"], wd["weight_hh"], wd["bias_ih"],
                                       wd["bias_hh"])
        step = (h_dot,)
    for a, b in zip(step, seq[1]):
        minirnn.assert_close(a, b, rtol=1e-15, name="step_jvp")
    if spec.family == "rnn":                              # the relu/tanh default
        default = rnn_ref.step_jvp(x[0], state[0], cache.a[0], cache.h[0], x_dot[0], s_dot[0],
                                   w["weight_ih"], w["weight_hh"], wd["weight_ih"],
                                   wd["weight_hh"], 0.0)
        assert default[0].shape == step[0].shape
