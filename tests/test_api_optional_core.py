"""Every optional argument of the functional API, the recurrent modules (torch's API and the
uniform state API) and the cells, each present and absent (issue 20).

A result is compared with a second path that does not share the argument's code: the
functional layer with the one-layer module holding the same weights (bitwise: one backend
computes both), the modules and cells with torch autograd (float64, the upstream gradients of
the final states included), None with explicit zeros (bitwise), return_steps' per-step records
with the weight gradients they add up to, input_grad=False with input_grad=True. Which test
covers which argument is listed in tests/test_api_optional.py.
"""
from __future__ import annotations

import itertools

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn.functional as F
from minirnn import assert_close
from minirnn.functional.backends import KERNEL_BACKENDS, get_backend
from minirnn.cells import BUILTIN, get_cell
from minirnn.nn import make_recurrent

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

BACKENDS = list(KERNEL_BACKENDS)                        # numpy (the reference) and numba
I, H, P = 3, 4, 2                                       # input, hidden, proj_size (LSTM)
SEEDS = st.integers(0, 2**31 - 1)
# every combination of given / absent final-state gradients, for every cell and backend:
# the hole of issue 20 (d_hT / d_cT crashed), so swept, not left to chance
UPSTREAM = [pytest.param(cell, backend, given_, id="-".join(
                [cell, backend] + ([f"d_{n}T" for n, g in zip(get_cell(cell).state_names, given_)
                                    if g] or ["none"])))
            for cell in BUILTIN for backend in BACKENDS
            for given_ in itertools.product((False, True), repeat=len(get_cell(cell).state_names))]


def maybe(data, kw, name, value, default):
    """Pass `name` when it differs from its default; at the default, pass it or leave it out
    (both spellings must mean the same)."""
    at_default = value is None if default is None else (
        not isinstance(value, np.ndarray) and value == default)
    if not at_default or data.draw(st.booleans(), f"say {name}"):
        kw[name] = value


def same(a, b, what):
    """Equal, element by element (None only with None; -0.0 equals 0.0: a module's
    accumulated gradient is 0.0 + g)."""
    assert (a is None) == (b is None), f"{what}: {a is None=} {b is None=}"
    if a is not None:
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape} {b.shape}"
        assert np.array_equal(a, b), f"{what} differs"


def sizes(spec, out_size):
    """Feature size of each state: h is P wide (proj_size or H), c is H wide."""
    return [out_size if n == "h" else H for n in spec.state_names]


def record_adds_up(spec, cache, steps, grads, bias):
    """The per-step record's gate gradients summed over steps are the weight gradients."""
    dg = getattr(steps, spec.dgates_field)                         # (T, B, G*H)
    dgh = spec.hidden_dgates(dg, getattr(cache, spec.gates_field))
    h_prev = np.concatenate([cache.h0[None], cache.h[:-1]])
    assert_close(np.einsum("tbg,tbi->gi", dg, cache.x), grads["weight_ih"], name="dW_ih")
    assert_close(np.einsum("tbg,tbp->gp", dgh, h_prev), grads["weight_hh"], name="dW_hh")
    if bias:
        assert_close(dg.sum((0, 1)), grads["bias_ih"], name="db_ih")
        assert_close(dgh.sum((0, 1)), grads["bias_hh"], name="db_hh")


# ---- the functional layer, the backend protocol and the one-layer module -------------------

@pytest.mark.parametrize("cell, backend, d_given", UPSTREAM)
@settings(max_examples=6, deadline=None)
@given(data=st.data(), bias=st.booleans(), T=st.integers(1, 5), B=st.integers(1, 4),
       ragged=st.booleans(), return_steps=st.booleans(), seed=SEEDS)
def test_functional_layer_is_the_one_layer_module(cell, backend, d_given, data, bias, T, B,
                                                  ragged, return_steps, seed):
    """The validating forward (b_ih, b_hh, nonlinearity, w_hr, lengths, backend) and backward
    (d_hT, d_cT each alone, both or neither; backend, return_steps) against the one-layer
    module; the reference and kernel tiers through Backend.forward (valid) and
    Backend.backward (return_steps, input_grad); explicit zeros against None."""
    spec = get_cell(cell)
    proj = "weight_hr" in spec.extra_params and data.draw(st.booleans(), "proj")
    model = make_recurrent(spec, I, H, bias=bias, backend=backend, seed=seed,
                           **({"proj_size": P} if proj else {}))
    p = {n: model.params[f"{n}_l0"] for n in spec.param_names if f"{n}_l0" in model.params}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    state0 = tuple(rng.standard_normal((B, s)) for s in sizes(spec, model.out_size))
    lengths = rng.integers(1, T + 1, size=B) if ragged else None

    kw = {f"{n}0": s for n, s in zip(spec.state_names, state0)}
    kw.update(w_ih=p["weight_ih"], w_hh=p["weight_hh"])
    if bias or data.draw(st.booleans(), "say no biases"):
        kw.update(b_ih=p.get("bias_ih"), b_hh=p.get("bias_hh"))
    if "weight_hr" in spec.extra_params:
        maybe(data, kw, "w_hr", p.get("weight_hr"), None)
    if spec.nonlinearity:
        maybe(data, kw, "nonlinearity", spec.nonlinearity, "tanh")
    maybe(data, kw, "lengths", lengths, None)
    maybe(data, kw, "backend", backend, "numpy")
    res = getattr(F, spec.family + "_forward")(x, **kw)
    out, state_T, cache = res[0], res[1:-1], res[-1]

    m_out, m_state = model.forward_state(x, tuple(s[None] for s in state0), lengths)
    same(out, m_out, "out")
    for n, a, b in zip(spec.state_names, state_T, m_state):
        same(a, b[0], f"{n}_T")
    # the backend protocol: valid (T, B) instead of lengths, absent when every step counts
    valid = None if lengths is None else np.arange(T)[:, None] < lengths[None, :]
    b_out, b_state, _ = get_backend(backend).forward(spec, x, state0, p,
                                                     *(() if valid is None else (valid,)))
    same(b_out, out, "Backend.forward out")
    for a, b in zip(b_state, state_T):
        same(a, b, "Backend.forward state")

    # backward: each final-state gradient present or absent, return_steps given or not
    d_out = rng.standard_normal(out.shape)
    d_state = tuple(rng.standard_normal(s.shape) if g else None for g, s in zip(d_given, state0))
    bkw = {f"d_{n}T": d for n, d in zip(spec.state_names, d_state) if d is not None}
    maybe(data, bkw, "backend", backend, "numpy")
    maybe(data, bkw, "return_steps", return_steps, False)
    backward = getattr(F, spec.family + "_backward")
    got = backward(cache, d_out, **bkw)
    S = len(spec.state_names)
    grads = dict(zip(spec.param_names, got[1 + S:1 + S + len(spec.param_names)]))

    model.zero_grad()
    m_dx, m_d0, *m_steps = model.backward_state(
        d_out, None if all(d is None for d in d_state) and data.draw(st.booleans(), "no d_state")
        else tuple(None if d is None else d[None] for d in d_state), return_steps=return_steps)
    same(got[0], m_dx, "dx")
    for j, n in enumerate(spec.state_names):
        same(got[1 + j], m_d0[j][0], f"d{n}0")
    for n, g in grads.items():
        same(g, model.grads[f"{n}_l0"] if f"{n}_l0" in model.params else None, f"d{n}")
    assert len(got) == 1 + S + len(spec.param_names) + return_steps
    if return_steps:
        for field, a, b in zip(got[-1]._fields, got[-1], m_steps[0][0]):
            same(a, b, f"steps.{field}")
        record_adds_up(spec, cache, got[-1], grads, bias)

    # None is zeros, bitwise; input_grad=False drops dx and nothing else
    zeros = {f"d_{n}T": np.zeros_like(s) for n, s, d in zip(spec.state_names, state0, d_state)
             if d is None}
    for a, b in zip(backward(cache, d_out, **bkw, **zeros), got):
        if isinstance(a, tuple):
            for fa, fb in zip(a, b):
                same(fa, fb, "steps with explicit zeros")
        else:
            same(a, b, "explicit zero final-state gradient vs None")
    be = get_backend(backend)
    plain = be.backward(spec, cache, d_out, d_state)
    no_dx = be.backward(spec, cache, d_out, d_state, return_steps, input_grad=False)
    same(plain[0], got[0], "Backend.backward dx")
    assert no_dx[0] is None and (no_dx[3] is not None) == return_steps
    for a, b in zip(plain[1] + no_dx[1], got[1:1 + S] * 2):
        same(a, b, "Backend.backward d_state0")
    for n in spec.param_names:
        same(plain[2][n], grads[n], f"Backend.backward d{n}")
        same(no_dx[2][n], grads[n], f"input_grad=False d{n}")
    # the validating backward's input_grad: spelled out True is the default; False drops dx only
    assert all(a is b or np.array_equal(a, b) for a, b in
               zip(backward(cache, d_out, **bkw, input_grad=True)[:1 + S], got[:1 + S]))
    fn_no_dx = backward(cache, d_out, **bkw, input_grad=False)
    assert fn_no_dx[0] is None and len(fn_no_dx) == len(got)
    for a, b in zip(fn_no_dx[1:1 + S + len(spec.param_names)], got[1:]):
        same(a, b, "validating backward with input_grad=False")


# ---- the reference's step functions are its sequence functions at T = 1 ----------------------

def _steps(spec, ref, x, state, p, opt, d_h, d_c):
    """-> (step_forward's results, the T = 1 forward's), (step_backward's, the backward's):
    the three families' step signatures differ, so each is spelled out."""
    out, *_, cache = ref.forward(x[None], *state, p["weight_ih"], p["weight_hh"],
                                 p.get("bias_ih"), p.get("bias_hh"),
                                 *[v for k, v in opt.items() if k in ("nonlinearity", "w_hr")])
    bwd = ref.backward(cache, d_h[None], None, *([d_c] if spec.has_cell_state else []),
                       return_steps=True)
    steps, w = bwd[-1], (p["weight_ih"], p["weight_hh"])
    if spec.family == "rnn":
        nl = {k: v for k, v in opt.items() if k == "nonlinearity"}
        fwd = ref.step_forward(x, *state, *w, **opt)
        bck = ref.step_backward(d_h, cache.a[0], cache.h[0], *w, **nl)
        return (fwd, (cache.h[0], cache.a[0])), (bck, (bwd[0][0], bwd[1], steps.da[0]))
    if spec.family == "lstm":
        wr = {k: v for k, v in opt.items() if k == "w_hr"}
        fwd = ref.step_forward(x, *state, *w, **opt)
        bck = ref.step_backward(d_h, d_c, state[1], cache.gates[0], cache.c[0], *w, **wr)
        return (fwd, (cache.h[0], cache.c[0], cache.gates[0])), (
            bck, (bwd[0][0], bwd[1], bwd[2], steps.dz[0], steps.dc[0], bwd[-2]))
    fwd = ref.step_forward(x, *state, *w, **opt)
    bck = ref.step_backward(d_h, state[0], cache.gates[0], cache.hn[0], *w)
    return (fwd, (cache.h[0], cache.gates[0], cache.hn[0])), (
        bck, (bwd[0][0], bwd[1], steps.dg[0], ref.hidden_side_grad(steps.dg[0], cache.gates[0])))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), cell=st.sampled_from(BUILTIN), bias=st.booleans(),
       B=st.integers(1, 3), seed=SEEDS)
def test_reference_steps_are_the_sequence_at_one_step(data, cell, bias, B, seed):
    """step_forward (b_ih, b_hh, nonlinearity, w_hr) and step_backward (nonlinearity, w_hr)
    are forward and backward at T = 1."""
    spec = get_cell(cell)
    proj = "weight_hr" in spec.extra_params and data.draw(st.booleans(), "proj")
    model = make_recurrent(spec, I, H, bias=bias, seed=seed, **({"proj_size": P} if proj else {}))
    p = {n: model.params[f"{n}_l0"] for n in spec.param_names if f"{n}_l0" in model.params}
    rng = np.random.default_rng(seed)
    state = tuple(rng.standard_normal((B, s)) for s in sizes(spec, model.out_size))
    opt = {}
    if bias or data.draw(st.booleans(), "say no biases"):
        opt.update(b_ih=p.get("bias_ih"), b_hh=p.get("bias_hh"))
    if spec.nonlinearity:
        maybe(data, opt, "nonlinearity", spec.nonlinearity, "tanh")
    if "weight_hr" in spec.extra_params:
        maybe(data, opt, "w_hr", p.get("weight_hr"), None)
    x, d_h = rng.standard_normal((B, I)), rng.standard_normal((B, model.out_size))
    d_c = rng.standard_normal((B, H))
    for got, want in _steps(spec, importlib.import_module("minirnn.cells." + spec.family), x, state, p, opt, d_h, d_c):
        assert len(got) == len(want)
        for k, (a, b) in enumerate(zip(got, want)):
            if a is None or b is None:
                assert a is None and b is None, k
            else:
                assert_close(a, b, rtol=1e-14, name=f"{cell} step result {k}")


# ---- the validating API names what it refuses ---------------------------------------------------

def test_functional_refuses_bad_arguments_by_name():
    """Each check of the validating layer: the message starts with the argument's name. With a
    projection h and c differ in width, so d_hT and d_cT are each checked against their own
    initial state (the check that crashed before issue 20's fix)."""
    rng = np.random.default_rng(0)
    model = make_recurrent("lstm", I, H, proj_size=P, seed=0)
    p = {n: model.params[f"{n}_l0"] for n in get_cell("lstm").param_names}
    x, h0, c0 = rng.standard_normal((3, 2, I)), rng.standard_normal((2, P)), rng.standard_normal((2, H))
    args = (x, h0, c0, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"], p["weight_hr"])
    out, _, _, cache = F.lstm_forward(*args)
    d_out = rng.standard_normal(out.shape)
    with pytest.raises(ValueError, match=r"^d_hT: expected shape \(2, 2\)"):
        F.lstm_backward(cache, d_out, d_hT=rng.standard_normal((2, H)))
    with pytest.raises(ValueError, match=r"^d_cT: expected shape \(2, 4\)"):
        F.lstm_backward(cache, d_out, d_cT=rng.standard_normal((2, P)))
    with pytest.raises(ValueError, match=r"^d_out: expected shape"):
        F.lstm_backward(cache, d_out[:, :1])
    with pytest.raises(ValueError, match=r"^b_ih, b_hh: give both biases or neither"):
        F.lstm_forward(*args[:5], b_ih=p["bias_ih"], w_hr=p["weight_hr"])
    with pytest.raises(ValueError, match=r"^x: expected shape \(T, B, I\)"):
        F.lstm_forward(x[0], *args[1:])
    rnn = make_recurrent("rnn_tanh", I, H, seed=0)
    w = (rnn.params["weight_ih_l0"], rnn.params["weight_hh_l0"])
    with pytest.raises(ValueError, match=r"^nonlinearity: expected one of"):
        F.rnn_forward(x, rng.standard_normal((2, H)), *w, nonlinearity="sigmoid")
    _, _, rnn_cache = F.rnn_forward(x, rng.standard_normal((2, H)), *w)
    with pytest.raises(TypeError, match=r"^cache: expected the LSTMCache returned by "
                                        r"lstm_forward, got RNNCache"):
        F.lstm_backward(rnn_cache, d_out)
    with pytest.raises(TypeError, match=r"^cache: expected the GRUCache"):
        F.gru_backward(rnn_cache, rng.standard_normal((3, 2, H)))
