"""The public cell contract (minirnn.CellSpec) and its registry.

A built-in cell's two required step methods, alone (StepsOnly below: no sequence functions,
no derivatives of its own), go through the contract's generic parts: the sequence driver,
the Jacobians derived from step VJPs, the tangent derived from those, per-sample gradients.
Each must give what the built-in cell's own hand-written sequence code gives, to round-off:
the built-in is the naive twin of the generic path, and the generic path of the built-in.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.cells import BUILTIN, CellSpec, get_cell, register_cell, unregister_cell
from minirnn.testing import assert_close

SETTINGS = settings(max_examples=10, deadline=None)
CONFIGS = [(c, 0) for c in BUILTIN] + [("lstm", 2)]          # (cell, proj_size)


class StepsOnly(CellSpec):
    """A built-in cell's step_forward and step_backward, and nothing else."""

    def __init__(self, inner):
        self.inner = inner
        self.name = f"steps_of_{inner.name}"
        for field in ("gate_names", "state_names", "param_names", "extra_params",
                      "sigmoid_gates", "nonlinearity"):
            setattr(self, field, getattr(inner, field))

    def param_shapes(self, input_size, hidden_size, proj_size=0):
        return self.inner.param_shapes(input_size, hidden_size, proj_size)

    def step_forward(self, x_t, state, params):
        return self.inner.step_forward(x_t, state, params)

    def step_backward(self, cache_t, d_state, params, per_sample=False):
        return self.inner.step_backward(cache_t, d_state, params, per_sample=per_sample)


def _layer(cell, T, B, I, H, P, bias, rng):
    spec = get_cell(cell)
    shapes = spec.param_shapes(I, H, P)
    params = {n: (rng.standard_normal(shapes[n]) * 0.5
                  if n in shapes and (bias or not n.startswith("bias")) else None)
              for n in spec.param_names}
    sizes = spec.state_sizes(H, P)
    state = tuple(rng.standard_normal((B, s)) * 0.5 for s in sizes)
    return spec, params, rng.standard_normal((T, B, I)), state


def _valid(rng, T, B):
    lengths = rng.integers(1, T + 1, size=B)
    return np.arange(T)[:, None] < lengths[None, :]


@pytest.mark.parametrize("cell,P", CONFIGS)
@SETTINGS
@given(T=st.integers(1, 5), B=st.integers(1, 3), bias=st.booleans(), ragged=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_the_generic_driver_is_the_cells_own_sequence_code(cell, P, T, B, bias, ragged, seed):
    rng = np.random.default_rng(seed)
    spec, params, x, state = _layer(cell, T, B, 3, 4, P, bias, rng)
    valid = _valid(rng, T, B) if ragged else None
    generic = StepsOnly(spec)
    out, st_T, cache = spec.forward(x, state, params, valid)
    g_out, g_st_T, g_cache = generic.forward(x, state, params, valid)
    tol = dict(rtol=1e-13, atol=1e-15)
    assert_close(g_out, out, name="out", **tol)
    for a, b in zip(g_st_T, st_T):
        assert_close(a, b, name="state_T", **tol)
    d_out = rng.standard_normal(out.shape)
    d_state = tuple(rng.standard_normal(s.shape) for s in state)
    dx, d0, grads, _ = spec.backward(cache, d_out, d_state)
    g_dx, g_d0, g_grads, steps = generic.backward(g_cache, d_out, d_state, return_steps=True)
    assert_close(g_dx, dx, name="dx", **tol)
    for a, b in zip(g_d0, d0):
        assert_close(a, b, name="d_state0", **tol)
    for n in spec.param_names:
        assert (grads[n] is None) == (g_grads[n] is None), n
        if grads[n] is not None:
            assert_close(g_grads[n], grads[n], name=n, **tol)
    assert steps.dh.shape == out.shape


@pytest.mark.parametrize("cell,P", CONFIGS)
@SETTINGS
@given(B=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_derived_step_jacobians_are_the_cells_own(cell, P, B, bias, seed):
    rng = np.random.default_rng(seed)
    spec, params, x, state = _layer(cell, 1, B, 3, 4, P, bias, rng)
    J, per = spec.step_jacobians(x[0], state, params)
    g_J, g_per = StepsOnly(spec).step_jacobians(x[0], state, params)
    assert_close(g_J, J, rtol=1e-13, atol=1e-15, name="J_state")
    for n in spec.param_names:
        assert (per[n] is None) == (g_per[n] is None), n
        if per[n] is not None:
            assert_close(g_per[n], per[n], rtol=1e-13, atol=1e-15, name=n)


@pytest.mark.parametrize("cell,P", CONFIGS)
@SETTINGS
@given(T=st.integers(1, 4), B=st.integers(1, 3), ragged=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_derived_tangent_is_the_cells_own_forward_jvp(cell, P, T, B, ragged, seed):
    rng = np.random.default_rng(seed)
    spec, params, x, state = _layer(cell, T, B, 3, 4, P, True, rng)
    valid = _valid(rng, T, B) if ragged else None
    generic = StepsOnly(spec)
    assert not generic.has("step_jvp") and spec.has("step_jvp")
    x_dot = rng.standard_normal(x.shape)
    s_dot = tuple(rng.standard_normal(s.shape) for s in state)
    p_dot = {n: None if p is None else rng.standard_normal(p.shape) for n, p in params.items()}
    _, _, cache = spec.forward(x, state, params, valid)
    _, _, g_cache = generic.forward(x, state, params, valid)
    out_dot, st_dot, _ = spec.forward_jvp(cache, x_dot, s_dot, p_dot)
    g_out_dot, g_st_dot, _ = generic.forward_jvp(g_cache, x_dot, s_dot, p_dot)
    assert_close(g_out_dot, out_dot, rtol=1e-12, atol=1e-14, name="out_dot")
    for a, b in zip(g_st_dot, st_dot):
        assert_close(a, b, rtol=1e-12, atol=1e-14, name="state_dot")


@pytest.mark.parametrize("cell,P", CONFIGS)
@SETTINGS
@given(T=st.integers(1, 4), B=st.integers(1, 4), ragged=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_per_sample_gradients_sum_to_the_batch_gradient(cell, P, T, B, ragged, seed):
    """The family's per-sample contraction, the generic per-sample steps and one backward per
    sequence alone all agree; summed over the batch they are the backward's gradients."""
    rng = np.random.default_rng(seed)
    spec, params, x, state = _layer(cell, T, B, 3, 4, P, True, rng)
    valid = _valid(rng, T, B) if ragged else None
    d_out = rng.standard_normal((T, B, spec.state_sizes(4, P)[0]))
    _, _, cache = spec.forward(x, state, params, valid)
    _, _, summed, _ = spec.backward(cache, d_out, (None,) * len(state))
    _, _, per, _ = spec.backward(cache, d_out, (None,) * len(state), per_sample=True)
    _, _, g_cache = StepsOnly(spec).forward(x, state, params, valid)
    _, _, g_per, _ = StepsOnly(spec).backward(g_cache, d_out, (None,) * len(state),
                                              per_sample=True)
    for b in range(B):
        v = None if valid is None else valid[:, b:b + 1]
        one = spec.forward(x[:, b:b + 1], tuple(s[b:b + 1] for s in state), params, v)[2]
        _, _, alone, _ = spec.backward(one, d_out[:, b:b + 1], (None,) * len(state))
        for n, g in alone.items():
            if g is not None:
                assert_close(per[n][b], g, rtol=1e-12, atol=1e-14, name=f"{n}[{b}]")
                assert_close(g_per[n][b], g, rtol=1e-12, atol=1e-14, name=f"generic {n}[{b}]")
    for n, g in summed.items():
        if g is not None:
            assert_close(per[n].sum(axis=0), g, rtol=1e-12, atol=1e-14, name=n)


# ---- the registry ---------------------------------------------------------------------------

class _Tiny(CellSpec):
    name = "tiny_test_cell"

    def step_forward(self, x_t, state, params):
        h = np.tanh(x_t @ params["weight_ih"].T + state[0] @ params["weight_hh"].T)
        return (h,), (x_t, state[0], h)

    def step_backward(self, cache_t, d_state, params):
        x_t, h_prev, h = cache_t
        da = d_state[0] * (1.0 - h * h)
        return (da @ params["weight_ih"], (da @ params["weight_hh"],),
                {"weight_ih": da.T @ x_t, "weight_hh": da.T @ h_prev,
                 "bias_ih": None, "bias_hh": None})


@pytest.fixture
def tiny():
    spec = register_cell(_Tiny())
    yield spec
    unregister_cell(spec.name)


def test_a_registered_cell_is_a_model_every_name_knows(tiny):
    assert minirnn.cells.cell_names()[-1] == tiny.name and get_cell(tiny.name) is tiny
    m = minirnn.nn.make_recurrent(tiny.name, 3, 4, num_layers=2, bias=False, seed=0)
    assert isinstance(m, minirnn.RNNBase) and m.spec is tiny
    assert sorted(m.params) == ["weight_hh_l0", "weight_hh_l1", "weight_ih_l0", "weight_ih_l1"]
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, h_n = m(x, lengths=[5, 3])
    dx, dh0 = m.backward(np.ones_like(out))
    assert out.shape == (5, 2, 4) and h_n.shape == dh0.shape == (2, 2, 4)
    assert np.all(out[3:, 1] == 0) and np.abs(dx).sum() > 0
    assert tiny.backends() == ("numpy",)
    with pytest.raises(ValueError, match="no 'numba' implementation.*register_tier"):
        minirnn.nn.make_recurrent(tiny.name, 3, 4, backend="numba")(x)


def test_a_cell_without_step_jvp_is_not_told_it_has_one(tiny):
    """Its forward mode is derived from its VJPs; has() says so, for gradcheck's dot test."""
    assert not tiny.has("step_jvp") and not tiny.has("step_backward_jvp")
    with pytest.raises(ValueError, match="step_backward_jvp"):
        tiny.backward_jvp(None, None, None, None, (None,), (None,))


def test_registration_refuses_what_would_break_a_tool():
    class NoBackward(CellSpec):
        name = "no_backward"

        def step_forward(self, x_t, state, params):
            return state, None

    with pytest.raises(TypeError, match="must define step_backward"):
        register_cell(NoBackward())
    with pytest.raises(TypeError, match="instance of minirnn.CellSpec"):
        register_cell(_Tiny)
    bad = _Tiny()
    bad.name = "two words"
    with pytest.raises(ValueError, match="spec.name"):
        register_cell(bad)
    bad.name, bad.state_names = "c_first", ("c", "h")
    with pytest.raises(ValueError, match="must be 'h'"):
        register_cell(bad)
    with pytest.raises(ValueError, match="built-in"):
        lstm = get_cell("lstm")
        register_cell(type(lstm)(), replace=True)
    with pytest.raises(ValueError, match="built-in"):
        unregister_cell("gru")


def test_a_name_is_registered_once_unless_replaced(tiny):
    with pytest.raises(ValueError, match="registered already"):
        register_cell(_Tiny())
    again = register_cell(_Tiny(), replace=True)
    assert get_cell(tiny.name) is again


def test_a_twin_is_loaded_once_on_first_use(tiny):
    calls = []

    def load():
        calls.append(1)
        return get_cell("rnn_tanh").reference        # any object with the sequence methods

    minirnn.register_tier(tiny.name, "fast", load)
    assert tiny.backends() == ("numpy", "fast") and calls == []
    assert tiny.twin("fast") is tiny.twin("fast") and calls == [1]
    with pytest.raises(ValueError, match="other than 'numpy'"):
        minirnn.register_tier(tiny.name, "numpy", load)


# ---- every optional argument of the contract, present and absent -----------------------------

def test_contract_optional_arguments():
    """backend (absent = "numpy"), valid, return_steps, input_grad and per_sample on the
    contract's sequence methods, generic and family; proj_size of the shapes; replace;
    RNNBase.stack's lengths and masks; a Tier with and without step_jacobians and rtrl_step."""
    rng = np.random.default_rng(11)
    for spec in (get_cell("lstm"), StepsOnly(get_cell("lstm"))):
        assert spec.param_shapes(3, 4)["weight_hh"] == (16, 4) and "weight_hr" not in \
            spec.param_shapes(3, 4)
        assert spec.param_shapes(3, 4, proj_size=2)["weight_hr"] == (2, 4)
        assert spec.state_sizes(4) == (4, 4) and spec.state_sizes(4, proj_size=2) == (2, 4)
        _, params, x, state = _layer("lstm", 3, 2, 3, 4, 0, True, rng)
        valid = np.array([[True, True], [True, False], [True, False]])
        a = spec.forward(x, state, params)
        b = spec.forward(x, state, params, valid=None, backend="numpy")
        c = spec.forward(x, state, params, valid=valid)
        assert_close(a[0], b[0], rtol=0, name="backend numpy = absent")
        assert np.all(c[0][1:, 1] == 0) and not np.all(a[0][1:, 1] == 0)
        d_out = rng.standard_normal(a[0].shape)
        base = spec.backward(a[2], d_out, (None, None))
        assert base[0] is not None and base[3] is None
        full = spec.backward(a[2], d_out, (None, None), return_steps=True, input_grad=False,
                             backend="numpy", per_sample=True)
        assert full[0] is None and full[3].dh.shape == a[0].shape
        assert full[2]["weight_ih"].shape == (2,) + params["weight_ih"].shape
        step = spec.step_backward(spec.step_forward(x[0], state, params)[1], state, params)
        per = spec.step_backward(spec.step_forward(x[0], state, params)[1], state, params,
                                 per_sample=True)
        assert_close(per[2]["weight_hh"].sum(axis=0), step[2]["weight_hh"], rtol=1e-13)
        J = spec.step_jacobians(x[0], state, params)[0]
        assert_close(spec.step_jacobians(x[0], state, params, backend="numpy")[0], J, rtol=0)
        dots = {n: rng.standard_normal(p.shape) for n, p in params.items() if p is not None}
        t1 = spec.forward_jvp(a[2], None, (None, None), dots)
        t2 = spec.forward_jvp(a[2], None, (None, None), dots, backend="numpy")
        assert_close(t1[0], t2[0], rtol=0, name="forward_jvp backend")
    lstm = get_cell("lstm")
    _, params, x, state = _layer("lstm", 2, 2, 3, 4, 0, True, rng)
    _, _, cache = lstm.forward(x, state, params, backend="numba")
    _, _, tc = lstm.forward_jvp(cache, None, (None, None), {}, backend="numba")
    d = rng.standard_normal((2, 2, 4))
    (dx, *_), _ = lstm.backward_jvp(cache, tc, d, d, (None, None), (None, None))
    (no_dx, *_), _ = lstm.backward_jvp(cache, tc, d, d, (None, None), (None, None),
                                       input_grad=False, backend="numba")
    assert dx is not None and no_dx is None
    assert minirnn.cells.linear_step_grads(d[0], d[0], x[0], state[0], True)["bias_ih"].shape \
        == (4,)
    assert minirnn.cells.linear_step_grads(d[0], d[0], x[0], state[0], False,
                                           per_sample=True)["bias_ih"] is None
    tier = minirnn.cells.Tier(*[lambda *a: None] * 4)
    assert tier.step_jacobians is None and tier.rtrl_step is None
    assert minirnn.cells.Tier(*[None] * 4, step_jacobians=len, rtrl_step=abs).rtrl_step is abs
    m = minirnn.LSTM(3, 4, num_layers=2, seed=0)
    assert m.stack().lengths is None and m.stack().masks == (None, None)
    s = m.stack(lengths=np.array([2, 1]), masks=[None, np.ones((2, 2, 4))])
    assert s.lengths.tolist() == [2, 1] and s.masks[1].shape == (2, 2, 4)
    with pytest.raises(ValueError, match="registered already"):
        register_cell(get_cell("lstm"), replace=False)
