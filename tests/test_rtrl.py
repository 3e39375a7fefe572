"""RTRL: each cell's step Jacobians against torch autograd's (through the registry and
called directly), the exact RTRL gradient against BPTT (the model's own backward) over cells,
sizes, layouts, lengths, losses and both backends, and the refusals. float64 throughout,
fresh random data. The online form and the kernel: tests/test_rtrl_online.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.cells import BUILTIN, get_cell
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=12, deadline=None)
RTOL = 1e-12
# (cell, proj_size): every registry cell, the LSTM with and without a projection
CONFIGS = [(c, 0) for c in BUILTIN] + [("lstm", 2)]
seeds = st.integers(0, 2**31 - 1)


def _params(rng, spec, I, H, P, bias):
    """Fresh random weights in the registry's names (missing optional ones as None)."""
    G, P = spec.gates, P or H
    p = {"weight_ih": rng.standard_normal((G * H, I)) * 0.6,
         "weight_hh": rng.standard_normal((G * H, P)) * 0.6,
         "bias_ih": rng.standard_normal(G * H) * 0.5 if bias else None,
         "bias_hh": rng.standard_normal(G * H) * 0.5 if bias else None}
    if spec.extra_params:
        p["weight_hr"] = rng.standard_normal((P, H)) * 0.6 if P != H else None
    return p


def _state(rng, spec, B, H, P):
    sizes = {"h": P or H, "c": H}
    return tuple(rng.standard_normal((B, sizes[n])) * 0.8 for n in spec.state_names)


def _torch_step_jacobians(spec, x_t, state, params, H, P):
    """torch.func.jacrev of torch's own one-step module -> J_state (B, S, S), {name: J}."""
    from torch.func import functional_call, jacrev

    from minirnn.interop.torch import torch_recurrent
    I = x_t.shape[1]
    tm = torch_recurrent(spec.name, I, H, bias=params["bias_ih"] is not None,
                         proj_size=P).double()
    names = [n for n in spec.param_names if params.get(n) is not None]
    tp = {n: torch.from_numpy(params[n]) for n in names}
    x = torch.from_numpy(x_t)[None]

    def step(tparams, *st):
        hx = tuple(s[None] for s in st)
        _, hn = functional_call(tm, {f"{n}_l0": v for n, v in tparams.items()},
                                (x, hx if len(hx) > 1 else hx[0]))
        hn = hn if isinstance(hn, tuple) else (hn,)
        return torch.cat([s[0] for s in hn], dim=-1)                      # (B, S)

    ts = tuple(torch.from_numpy(s) for s in state)
    jac = jacrev(step, argnums=tuple(range(len(ts) + 1)))(tp, *ts)
    B = x_t.shape[0]
    rows = np.arange(B)
    # the state Jacobian is (B, S, B, S_k) per state: sequences do not mix, keep the diagonal
    J_state = np.concatenate([j.numpy()[rows, :, rows, :] for j in jac[1:]], axis=-1)
    return J_state, {n: jac[0][n].numpy() for n in names}


# ---- the step Jacobians, through the registry's uniform call --------------------------------

@pytest.mark.parametrize("cell,proj", CONFIGS)
@pytest.mark.parametrize("bias", [True, False])
@SETTINGS
@given(B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 5), seed=seeds)
def test_step_jacobians_match_torch_autograd(cell, proj, bias, B, I, H, seed):
    spec, rng = get_cell(cell), np.random.default_rng(seed)
    H = max(H, proj + 1)
    params = _params(rng, spec, I, H, proj, bias)
    state = _state(rng, spec, B, H, proj)
    x_t = rng.standard_normal((B, I))
    J_state, J = spec.step_jacobians(x_t, state, params)
    ref_state, ref = _torch_step_jacobians(spec, x_t, state, params, H, proj)
    assert_close(J_state, ref_state, rtol=RTOL, atol=1e-15, name=f"{cell} J_state")
    assert list(J) == list(spec.param_names)
    for name in spec.param_names:
        if params.get(name) is None:
            assert J[name] is None, name
            continue
        assert J[name].shape == (B, J_state.shape[1]) + params[name].shape
        assert_close(J[name], ref[name], rtol=RTOL, atol=1e-15, name=f"{cell} J_{name}")


def test_reference_step_jacobians_optional_arguments():
    """Each family's step_jacobians called directly, every optional argument present and
    absent (b_ih, b_hh: no bias when absent; nonlinearity: tanh by default, relu; w_hr: no
    projection when absent), against torch autograd."""
    from minirnn.cells import gru, lstm, rnn
    rng = np.random.default_rng(12)
    B, I, H, P = 2, 3, 4, 2
    x_t = rng.standard_normal((B, I))

    def check(cell, proj, params, state, got):
        ref_state, ref = _torch_step_jacobians(get_cell(cell), x_t, state, params, H, proj)
        assert_close(got[0], ref_state, rtol=RTOL, name=f"{cell} J_state")
        for J, name in zip(got[1:], get_cell(cell).param_names):
            if name in ref:
                assert_close(J, ref[name], rtol=RTOL, name=f"{cell} J_{name}")
            else:
                assert J is None, name

    for cell, proj in (("rnn_tanh", 0), ("rnn_relu", 0), ("gru", 0), ("lstm", 0), ("lstm", P)):
        spec = get_cell(cell)
        for bias in (False, True):
            p = _params(rng, spec, I, H, proj, bias)
            state = _state(rng, spec, B, H, proj)
            kw = {"b_ih": p["bias_ih"], "b_hh": p["bias_hh"]} if bias else {}
            w = (x_t, *state, p["weight_ih"], p["weight_hh"])
            if spec.family == "rnn":
                if cell == "rnn_relu" or bias:
                    kw["nonlinearity"] = spec.nonlinearity
                got = rnn.step_jacobians(*w, **kw)
            elif spec.family == "gru":
                got = gru.step_jacobians(*w, **kw)
            else:
                got = lstm.step_jacobians(*w, **kw, **({"w_hr": p["weight_hr"]} if proj else {}))
            check(cell, proj, p, state, got)


def test_registry_step_jacobians_takes_a_module_and_a_missing_optional_param():
    """fns given explicitly (the reference module), and params without the optional keys."""
    spec, rng = get_cell("gru"), np.random.default_rng(7)
    params = _params(rng, spec, 3, 4, 0, True)
    state = _state(rng, spec, 2, 4, 0)
    x_t = rng.standard_normal((2, 3))
    J_state, J = spec.step_jacobians(x_t, state, params)
    bare = {k: params[k] for k in ("weight_ih", "weight_hh")}         # no bias keys at all
    J_state0, J0 = spec.step_jacobians(x_t, state, bare)
    assert J0["bias_ih"] is None and J0["bias_hh"] is None
    # the bias-free step is another function: its state Jacobian differs, its shape does not
    assert J_state0.shape == J_state.shape == (2, 4, 4)
    assert not np.allclose(J_state0, J_state)


# ---- RTRL against BPTT ------------------------------------------------------------------------

def _model(cell, proj, I, H, bias, layout, backend, seed, dtype="float64"):
    from minirnn.nn import make_recurrent
    kw = dict(bias=bias, batch_first=layout == "batch_first", dtype=dtype, seed=seed,
              backend=backend)
    if proj:
        kw["proj_size"] = proj
    return make_recurrent(cell, I, H, **kw)


def _data(rng, model, T, B, layout, ragged):
    """x, target in the model's layout; a state tuple of (B, size) (or (size,)); lengths."""
    I, P, H = model.input_size, model.out_size, model.hidden_size
    shape = {"time_major": (T, B), "batch_first": (B, T), "unbatched": (T,)}[layout]
    x = rng.standard_normal(shape + (I,))
    target = rng.standard_normal(shape + (P,))
    lead = () if layout == "unbatched" else (B,)
    state = tuple(rng.standard_normal(lead + ((P if n == "h" else H),)) * 0.8
                  for n in model.spec.state_names)
    lengths = None
    if ragged and layout != "unbatched" and B > 1:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
    return x, target, state, lengths


def _cubic(out_t, y_t):
    """A custom per-step loss: Σ (out - y)^3 / 3, gradient (out - y)^2."""
    d = out_t - y_t
    return float(np.sum(d ** 3) / 3.0), d * d


def _d_out(loss, out, target):
    if loss == "squared_error":
        return out - target
    if loss == "projection":
        return target
    return (out - target) ** 2


def _bptt(model, x, target, state, lengths, loss):
    """The model's own BPTT for the same summed loss -> {key: grad}, out, final state."""
    model.zero_grad()
    out, state_n = model.forward_state(x, tuple(s[None] for s in state), lengths=lengths)
    model.backward_state(_d_out(loss, out, target))
    return {k: g.copy() for k, g in model.grads.items()}, out, tuple(s[0] for s in state_n)


@pytest.mark.parametrize("cell,proj", CONFIGS)
@settings(max_examples=10, deadline=None)
@given(T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 5),
       bias=st.booleans(), layout=st.sampled_from(["time_major", "batch_first", "unbatched"]),
       ragged=st.booleans(), loss=st.sampled_from(["squared_error", "projection", _cubic]),
       backend=st.sampled_from(["numpy", "numba"]), give_state=st.booleans(), seed=seeds)
def test_rtrl_equals_bptt(cell, proj, T, B, I, H, bias, layout, ragged, loss, backend,
                          give_state, seed):
    from minirnn.grad import rtrl_gradient
    rng = np.random.default_rng(seed)
    model = _model(cell, proj, I, max(H, proj + 1), bias, layout, backend, seed)
    x, target, state, lengths = _data(rng, model, T, B, layout, ragged)
    res = rtrl_gradient(model, x, target, loss=loss, state=state if give_state else None,
                        lengths=lengths)
    if not give_state:
        state = tuple(np.zeros_like(s) for s in state)
    name = loss if isinstance(loss, str) else "custom"
    grads, out, state_n = _bptt(model, x, target, state, lengths, name)
    assert list(res.grads) == list(grads)
    for key in grads:
        assert_close(res.grads[key], grads[key], rtol=RTOL, atol=1e-15, name=f"{cell} {key}")
    assert_close(res.out, out, rtol=RTOL, atol=1e-15, name="out")
    for s, ref in zip(res.state, state_n):
        assert_close(s, ref, rtol=RTOL, atol=1e-15, name="state")


def _loss_value(loss, out, target, valid):
    """Σ_t L_t over the valid (t, b), computed here from the outputs."""
    m = np.ones(out.shape[:-1], bool) if valid is None else valid
    d = (out - target)[m]
    return {"squared_error": 0.5 * np.sum(d ** 2),
            "projection": np.sum((target * out)[m])}.get(loss, np.sum(d ** 3) / 3.0)


@pytest.mark.parametrize("loss", ["squared_error", "projection", _cubic])
def test_rtrl_loss_value_counts_only_steps_inside_each_sequence(loss):
    from minirnn.grad import rtrl_gradient
    rng = np.random.default_rng(3)
    model = _model("gru", 0, 3, 4, True, "time_major", "numpy", 3)
    x, target, state, _ = _data(rng, model, 5, 3, "time_major", False)
    lengths = np.array([5, 2, 4])
    res = rtrl_gradient(model, x, target, loss=loss, state=state, lengths=lengths)
    valid = np.arange(5)[:, None] < lengths[None, :]
    expected = _loss_value(loss if isinstance(loss, str) else "custom", res.out, target, valid)
    assert abs(res.loss - expected) <= 1e-12 * abs(expected)
    assert np.all(res.out[~valid] == 0.0)


def test_rtrl_on_a_cell_equals_the_sequence_module():
    """A one-step cell module (RNNCell, LSTMCell, GRUCell) runs over time-major x as well."""
    from minirnn.grad import rtrl_gradient
    from minirnn.nn import make_cell, make_recurrent
    rng = np.random.default_rng(4)
    for cell in BUILTIN:
        one = make_cell(cell, 3, 4, seed=1)
        seq = make_recurrent(cell, 3, 4, seed=2)
        seq.load_state_dict({f"{k}_l0": v for k, v in one.params.items()})
        x, target, state, _ = _data(rng, seq, 5, 2, "time_major", False)
        res = rtrl_gradient(one, x, target, state=state)
        grads, _, _ = _bptt(seq, x, target, state, None, "squared_error")
        for k in one.params:
            assert_close(res.grads[k], grads[f"{k}_l0"], rtol=RTOL, name=f"{cell} {k}")


# ---- refusals ----------------------------------------------------------------------------------

def test_memory_refusal_names_the_size_and_the_limit():
    import minirnn
    from minirnn.grad import RTRLOnline, rtrl_gradient
    from minirnn.grad.rtrl import MEMORY_LIMIT
    big = minirnn.LSTM(64, 256)
    need = 1 * (256 + 256) * (4 * 256 * (64 + 256) + 2 * 4 * 256) * 8   # B S |θ| bytes
    x, y = np.ones((2, 1, 64)), np.ones((2, 1, 256))
    with pytest.raises(ValueError, match=rf"model: .*would need {need} bytes "
                                         rf"\({need / 2**20:.1f} MiB.*"
                                         rf"memory_limit={MEMORY_LIMIT} bytes \(1024\.0 MiB\)"
                                         r".*hidden_size"):
        rtrl_gradient(big, x, y)
    small = minirnn.GRU(3, 4)
    need = 2 * 4 * (12 * 3 + 12 * 4 + 2 * 12) * 8                     # B = 2
    xs, ys = np.ones((2, 2, 3)), np.ones((2, 2, 4))
    with pytest.raises(ValueError, match=rf"would need {need} bytes"):
        rtrl_gradient(small, xs, ys, memory_limit=need - 1)
    assert rtrl_gradient(small, xs, ys, memory_limit=need).loss > 0
    with pytest.raises(ValueError, match="memory_limit=100 bytes"):
        RTRLOnline(small, 0.1, memory_limit=100)


def test_refusals_name_the_argument():
    import minirnn
    from minirnn.grad import RTRLOnline, rtrl_gradient, rtrl_online
    x, y = np.ones((3, 2, 2)), np.ones((3, 2, 4))
    with pytest.raises(ValueError, match="model: .*num_layers=2"):
        rtrl_gradient(minirnn.GRU(2, 4, num_layers=2), x, y)
    with pytest.raises(ValueError, match="model: .*bidirectional=True"):
        rtrl_online(minirnn.RNN(2, 4, bidirectional=True), x, y, 0.1)
    with pytest.raises(TypeError, match="model: expected a minirnn recurrent"):
        RTRLOnline(object(), 0.1)
    m = minirnn.LSTM(2, 4)
    with pytest.raises(ValueError, match="loss: expected one of"):
        rtrl_gradient(m, x, y, loss="mse")
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0"):
        rtrl_online(m, x, y, -1.0)
    with pytest.raises(ValueError, match="target"):
        rtrl_gradient(m, x, np.ones((3, 2, 5)))
    with pytest.raises(ValueError, match="x: expected"):
        rtrl_gradient(m, np.ones((3, 2, 7)), y)
    with pytest.raises(TypeError, match=r"state: expected a tuple of 2 array\(s\)"):
        rtrl_gradient(m, x, y, state=np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"state\[1\]: expected shape \(1, 2, 4\)"):
        rtrl_gradient(m, x, y, state=(np.ones((2, 4)), np.ones((2, 2, 4))))   # two layers
    with pytest.raises(ValueError, match="lengths"):
        rtrl_gradient(m, x, y, lengths=[3])
    with pytest.raises(ValueError, match="backend"):
        rtrl_gradient(m, x, y, backend="cuda")
    trainer = RTRLOnline(m, 0.1, batch_size=2)
    with pytest.raises(ValueError, match="x_t"):
        trainer.step(np.ones((3, 2)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="valid"):
        trainer.step(np.ones((2, 2)), np.ones((2, 4)), valid=[True])
    with pytest.raises(ValueError, match="batch_size"):
        RTRLOnline(m, 0.1, batch_size=0)
