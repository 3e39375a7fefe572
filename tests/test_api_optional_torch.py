"""The recurrent modules and cells against torch autograd (float64, and float32 at a float32
tolerance), with each optional argument of the constructor, of forward / forward_state and of backward / backward_state present and absent:
hx, lengths (through a packed sequence in torch), the final-state gradients
d_h_n / d_c_n (each alone, both, neither), return_steps and input_grad.

The upstream gradients enter torch as the loss sum(out * d_out) + sum(h_n * d_h_n)
[+ sum(c_n * d_c_n)]; minirnn gets them as arguments. After the comparison, None is checked
to be explicit zeros (bitwise), and toggling return_steps to change nothing else.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn import assert_close
from minirnn.functional.backends import KERNEL_BACKENDS
from minirnn.cells import BUILTIN, get_cell

torch = pytest.importorskip("torch")
pytest.importorskip("numba")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

BACKENDS = list(KERNEL_BACKENDS)
I, H, P = 3, 4, 2
SEEDS = st.integers(0, 2**31 - 1)
RTOL = 1e-10                       # float64 against torch (parity measures <= 1e-15)
RTOL32 = 1e-4                      # float32 (parity measures <= 5e-7 on larger sizes)
# every combination of given / absent final-state gradients, per cell and backend: swept
UPSTREAM = [pytest.param(cell, backend, given_, id="-".join(
                [cell, backend] + ([f"d_{n}_n" for n, g in zip(get_cell(cell).state_names, given_)
                                    if g] or ["none"])))
            for cell in BUILTIN for backend in BACKENDS
            for given_ in itertools.product((False, True), repeat=len(get_cell(cell).state_names))]


def maybe(data, kw, name, value, default):
    """Pass `name` when it differs from its default; at the default, pass it or leave it out."""
    at_default = value is None if default is None else (
        not isinstance(value, np.ndarray) and value == default)
    if not at_default or data.draw(st.booleans(), f"say {name}"):
        kw[name] = value


def equal(a, b, what):
    assert (a is None) == (b is None), what
    if a is not None:
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{what} differs"


def tensor(a, grad=False):
    """A torch copy of `a`, in a's dtype."""
    return torch.from_numpy(np.array(a)).requires_grad_(grad)


def torch_twin(model, spec, cell=False):
    """torch's module (or cell) with the model's weights, through state_dict."""
    if cell:
        t = getattr(torch.nn, spec.cell_module)(model.input_size, model.hidden_size,
                                                bias=model.bias, **spec.module_kwargs())
    else:
        kw = dict(num_layers=model.num_layers, bias=model.bias, batch_first=model.batch_first,
                  bidirectional=model.bidirectional, **spec.module_kwargs())
        if model.proj_size:
            kw["proj_size"] = model.proj_size
        t = getattr(torch.nn, spec.module)(model.input_size, model.hidden_size, **kw)
    t = t.to(getattr(torch, model.dtype.name)).train(model.training)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return t


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("cell, backend, d_given", UPSTREAM)
@settings(max_examples=6, deadline=None)
@given(data=st.data(), layers=st.integers(1, 2), bidirectional=st.booleans(),
       batch_first=st.booleans(), bias=st.booleans(), T=st.integers(1, 4), B=st.integers(1, 3),
       seed=SEEDS)
def test_module_matches_torch_autograd(cell, backend, d_given, data, layers, bidirectional,
                                       batch_first, bias, T, B, seed):
    """Constructor keywords; forward (hx, lengths) or forward_state (state, lengths);
    backward / backward_state (d_state: d_h_n, d_c_n each alone, both or neither;
    return_steps, input_grad), all against torch autograd."""
    spec = get_cell(cell)
    dtype = data.draw(st.sampled_from(["float64", "float32"]), "dtype")
    # dropout acts in training only: with dropout the model runs in eval mode (training
    # mode's masks are checked in test_torch_fidelity_forward and test_core_api)
    dropout = data.draw(st.sampled_from([0.0, 0.5]), "dropout") if layers > 1 else 0.0
    kw = {}
    for name, value, default in (("num_layers", layers, 1), ("bias", bias, True),
                                 ("batch_first", batch_first, False),
                                 ("bidirectional", bidirectional, False),
                                 ("dtype", dtype, "float64"), ("backend", backend, "numpy"),
                                 ("dropout", dropout, 0.0), ("seed", seed, None)):
        maybe(data, kw, name, value, default)
    if spec.nonlinearity:
        maybe(data, kw, "nonlinearity", spec.nonlinearity, "tanh")
    if "weight_hr" in spec.extra_params:
        maybe(data, kw, "proj_size", data.draw(st.sampled_from([0, P]), "proj"), 0)
    model = getattr(minirnn, spec.module)(I, H, **kw)
    if dropout:
        model.eval()
    tm = torch_twin(model, spec)
    rtol = RTOL if dtype == "float64" else RTOL32
    rng = np.random.default_rng(seed)
    LD, out_size = model.num_layers * model.num_directions, model.out_size
    unbatched = data.draw(st.booleans(), "unbatched")
    ragged = not unbatched and data.draw(st.booleans(), "lengths")
    x = rng.standard_normal((T, I) if unbatched else (B, T, I) if batch_first else (T, B, I))
    x = x.astype(dtype)
    lead = (LD,) if unbatched else (LD, B)
    state_sizes = [out_size if n == "h" else H for n in spec.state_names]
    hx = tuple(rng.standard_normal(lead + (s,)).astype(dtype) for s in state_sizes)
    with_hx = data.draw(st.booleans(), "hx")
    lengths = rng.integers(1, T + 1, size=B) if ragged else None
    state_api = data.draw(st.booleans(), "the uniform state API")

    fkw = {}
    if state_api:
        maybe(data, fkw, "state", hx if with_hx else None, None)
    else:
        maybe(data, fkw, "hx", model.state_value(hx) if with_hx else None, None)
    maybe(data, fkw, "lengths", lengths, None)
    fwd = model.forward_state if state_api else model.forward
    out, state_n = fwd(x, **fkw)
    state_n = state_n if state_api else model.state_tuple(state_n)

    # torch: always an explicit hx (zeros where minirnn got None) so that dh0 is comparable
    xt = tensor(x, grad=True)
    ht = [tensor(h if with_hx else np.zeros_like(h), grad=True) for h in hx]
    t_in = xt if lengths is None else pack_padded_sequence(
        xt, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
    t_out, t_state = tm(t_in, ht[0] if len(ht) == 1 else tuple(ht))
    if lengths is not None:
        t_out = pad_packed_sequence(t_out, batch_first=batch_first, total_length=T)[0]
    t_state = (t_state,) if len(ht) == 1 else t_state
    assert out.dtype == dtype
    assert_close(out, t_out.detach(), rtol=rtol, name="out")
    for n, a, b in zip(spec.state_names, state_n, t_state):
        assert_close(a, b.detach(), rtol=rtol, name=f"{n}_n")

    d_out = rng.standard_normal(out.shape).astype(dtype)
    d_state = tuple(rng.standard_normal(s.shape).astype(dtype) if g else None
                    for g, s in zip(d_given, state_n))
    return_steps = data.draw(st.booleans(), "return_steps")
    input_grad = data.draw(st.booleans(), "input_grad")
    bkw = {}
    given_d = None if all(d is None for d in d_state) else (
        d_state if state_api else model.state_value(d_state))
    maybe(data, bkw, "d_state", given_d, None)
    maybe(data, bkw, "return_steps", return_steps, False)
    maybe(data, bkw, "input_grad", input_grad, True)
    bwd = model.backward_state if state_api else model.backward
    res = bwd(d_out, retain_graph=True, **bkw)          # kept: the same backward runs again
    assert len(res) == 2 + return_steps
    dx, d_state0 = res[0], res[1] if state_api else model.state_tuple(res[1])

    loss = (t_out * tensor(d_out)).sum()
    for s, d in zip(t_state, d_state):
        if d is not None:
            loss = loss + (s * tensor(d)).sum()
    loss.backward()
    if input_grad:
        assert_close(dx, xt.grad, rtol=rtol, name="dx")
    else:
        assert dx is None
    for n, a, b in zip(spec.state_names, d_state0, ht):
        assert_close(a, b.grad, rtol=rtol, name=f"d{n}0")
    for name, p in tm.named_parameters():
        assert_close(model.grads[name], p.grad, rtol=rtol, name=f"d{name}")

    if return_steps:           # one record per layer-direction, adding up to the plain grads
        steps = res[2]
        assert len(steps) == LD
        for k, (rec, cache) in enumerate(zip(steps, model.last_caches)):
            dg = getattr(rec, spec.dgates_field)
            sfx = f"_l{k // model.num_directions}{'_reverse' if k % model.num_directions else ''}"
            assert_close(np.einsum("tbg,tbi->gi", dg, cache.x), model.grads["weight_ih" + sfx],
                         rtol=rtol, name="dW_ih" + sfx)
    # the same backward again: None as explicit zeros, return_steps toggled -> same numbers
    grads = model.grad_dict()
    model.zero_grad()
    zeros = tuple(np.zeros_like(s) if d is None else d for s, d in zip(state_n, d_state))
    again = bwd(d_out, zeros if state_api else model.state_value(zeros),
                return_steps=not return_steps, input_grad=input_grad)
    assert len(again) == 2 + (not return_steps)
    equal(again[0], dx, "dx with explicit zeros")
    for a, b in zip(again[1] if state_api else model.state_tuple(again[1]), d_state0):
        equal(a, b, "d_state0 with explicit zeros")
    for k, g in model.grad_dict().items():
        equal(g, grads[k], f"d{k} with explicit zeros")
    if not with_hx:            # and a forward without hx is one with zero states
        z = tuple(np.zeros_like(h) for h in hx)
        out0, state0 = fwd(x, z if state_api else model.state_value(z), lengths)
        equal(out0, out, "out with explicit zero hx")
        for a, b in zip(state0 if state_api else model.state_tuple(state0), state_n):
            equal(a, b, "state_n with explicit zero hx")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", BUILTIN)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), bias=st.booleans(), B=st.integers(1, 3), seed=SEEDS)
def test_cell_matches_torch_autograd(cell, backend, data, bias, B, seed):
    """Constructor keywords; forward (hx) or forward_state (state); the LSTMCell's backward
    (d_c given or not), all against torch autograd."""
    spec = get_cell(cell)
    dtype = data.draw(st.sampled_from(["float64", "float32"]), "dtype")
    kw = {}
    for name, value, default in (("bias", bias, True), ("dtype", dtype, "float64"),
                                 ("backend", backend, "numpy"), ("seed", seed, None)):
        maybe(data, kw, name, value, default)
    if spec.nonlinearity:
        maybe(data, kw, "nonlinearity", spec.nonlinearity, "tanh")
    model = getattr(minirnn, spec.cell_module)(I, H, **kw)
    tm = torch_twin(model, spec, cell=True)
    rtol = RTOL if dtype == "float64" else RTOL32
    rng = np.random.default_rng(seed)
    unbatched = data.draw(st.booleans(), "unbatched")
    lead = () if unbatched else (B,)
    x = rng.standard_normal(lead + (I,)).astype(dtype)
    hx = tuple(rng.standard_normal(lead + (H,)).astype(dtype) for _ in spec.state_names)
    with_hx = data.draw(st.booleans(), "hx")
    state_api = data.draw(st.booleans(), "the uniform state API")
    single = len(spec.state_names) == 1
    fkw = {}
    if state_api:
        maybe(data, fkw, "state", hx if with_hx else None, None)
        new = model.forward_state(x, **fkw)
    else:
        maybe(data, fkw, "hx", (hx[0] if single else hx) if with_hx else None, None)
        new = model.forward(x, **fkw)
        new = (new,) if single else new

    xt = tensor(x, grad=True)
    ht = [tensor(h if with_hx else np.zeros_like(h), grad=True) for h in hx]
    t_new = tm(xt, ht[0] if single else tuple(ht))
    t_new = (t_new,) if single else t_new
    for n, a, b in zip(spec.state_names, new, t_new):
        assert a.dtype == dtype
        assert_close(a, b.detach(), rtol=rtol, name=f"{n}'")

    # the first state's gradient always comes (a cell's output); the LSTM's d_c may not
    d_new = [rng.standard_normal(new[0].shape).astype(dtype)] + [
        rng.standard_normal(s.shape).astype(dtype) if data.draw(st.booleans(), "d_c") else None
        for s in new[1:]]
    keep = dict(retain_graph=True)                  # the same backward runs again below
    if state_api:
        dx, d_prev = model.backward_state(tuple(d_new), **keep)
    elif single:
        dx, dh = model.backward(d_new[0], **keep)
        d_prev = (dh,)
    else:
        bkw = {}
        maybe(data, bkw, "d_c", d_new[1], None)
        dx, d_prev = model.backward(d_new[0], **bkw, **keep)
    loss = sum((s * tensor(d)).sum() for s, d in zip(t_new, d_new) if d is not None)
    loss.backward()
    assert_close(dx, xt.grad, rtol=rtol, name="dx")
    for n, a, b in zip(spec.state_names, d_prev, ht):
        assert_close(a, b.grad, rtol=rtol, name=f"d{n}")
    for name, p in tm.named_parameters():
        assert_close(model.grads[name], p.grad, rtol=rtol, name=f"d{name}")
    # None is zeros, bitwise (forward's hx, backward's d_c)
    grads = model.grad_dict()
    if not with_hx:
        z = tuple(np.zeros_like(h) for h in hx)
        for a, b in zip(model.forward_state(x, z), new):
            equal(a, b, "state' with explicit zero hx")
    model.zero_grad()
    dx2, d_prev2 = model.backward_state(tuple(np.zeros_like(s) if d is None else d
                                              for s, d in zip(new, d_new)))
    equal(dx2, dx, "dx with explicit zeros")
    for a, b in zip(d_prev2, d_prev):
        equal(a, b, "d_state with explicit zeros")
    for k, g in model.grad_dict().items():
        equal(g, grads[k], f"d{k} with explicit zeros")
