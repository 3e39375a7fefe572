"""Forward mode and second order: random models, states and tangents in every configuration,
the torch twin (float64) and torch's JVP, Hessian-vector and Gauss-Newton products (the central
differences of the forward and of the gradient are minirnn.testing's). Used by tests/grad/test_forward_mode.py
and tests/grad/test_second_order.py.

Needs torch: a test module imports this after pytest.importorskip("torch")."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from minirnn.cells import BUILTIN, get_cell
from minirnn.nn import make_recurrent

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_model(cell, I, H, layers=1, bidirectional=False, batch_first=False, proj=False,
               bias=True, seed=0, backend="numpy"):
    kw = {"proj_size": H - 1} if proj and cell == "lstm" else {}
    return make_recurrent(cell, I, H, num_layers=layers, bidirectional=bidirectional,
                          batch_first=batch_first, bias=bias, seed=seed, backend=backend, **kw)


def make_data(model, T, B, rng, unbatched=False):
    """Fresh non-zero x and state (uniform tuple) in the model's layout."""
    LD = model.num_layers * model.num_directions
    x = rng.standard_normal((T, model.input_size) if unbatched else
                            ((B, T, model.input_size) if model.batch_first else
                             (T, B, model.input_size)))
    lead = (LD,) if unbatched else (LD, B)
    state = tuple(rng.standard_normal(lead + (model.out_size if n == "h" else model.hidden_size,))
                  for n in model.spec.state_names)
    return x, state


def make_tangents(model, x, state, rng):
    t = {"x": rng.standard_normal(x.shape)}
    t.update({f"{n}0": rng.standard_normal(s.shape) for n, s in zip(model.spec.state_names, state)})
    t.update({k: rng.standard_normal(p.shape) for k, p in model.params.items()})
    return t


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a)


def torch_twin(model):
    """torch's module with the same configuration and weights (float64)."""
    kw = dict(model.spec.module_kwargs())
    if model.proj_size:
        kw["proj_size"] = model.proj_size
    t = getattr(torch.nn, model.spec.module)(
        model.input_size, model.hidden_size, num_layers=model.num_layers, bias=model.bias,
        batch_first=model.batch_first, bidirectional=model.bidirectional, dtype=torch.float64,
        **kw)
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return t


def torch_outputs(t, model, params, x, state, lengths):
    """(out, *state_n) of torch's module with parameters `params` (name -> tensor)."""
    hx = state[0] if len(state) == 1 else tuple(state)
    if lengths is None:
        out, hn = torch.func.functional_call(t, params, (x, hx))
    else:
        packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=model.batch_first,
                                      enforce_sorted=False)
        out, hn = torch.func.functional_call(t, params, (packed, hx))
        out = pad_packed_sequence(out, batch_first=model.batch_first,
                                  total_length=x.shape[1 if model.batch_first else 0])[0]
    return (out,) + ((hn,) if len(state) == 1 else tuple(hn))


def torch_jvp(model, x, state, tangents, lengths):
    """torch's tangents of (out, *state_n): torch.func.jvp, or, where forward-mode AD has no
    formula (packed sequences), the double-VJP trick J v = d/du <Jᵀu, v>."""
    t = torch_twin(model)
    T = torch.from_numpy
    names = [k for k, _ in t.named_parameters()]
    primal = ({k: p.detach() for k, p in t.named_parameters()}, T(x), *map(T, state))
    tang = ({k: T(tangents[k]) for k in names}, T(tangents["x"]),
            *[T(tangents[f"{n}0"]) for n in model.spec.state_names])
    if lengths is None:
        f = lambda p, xx, *ss: torch_outputs(t, model, p, xx, ss, None)     # noqa: E731
        return [o.numpy() for o in torch.func.jvp(f, primal, tang)[1]]
    leaves = [a.clone().requires_grad_(True) for a in [*primal[0].values(), *primal[1:]]]
    params = dict(zip(names, leaves[:len(names)]))
    outs = torch_outputs(t, model, params, leaves[len(names)], leaves[len(names) + 1:], lengths)
    us = [torch.zeros_like(o, requires_grad=True) for o in outs]
    vjp = torch.autograd.grad(outs, leaves, us, create_graph=True, allow_unused=True)
    flat = [*tang[0].values(), *tang[1:]]
    total = sum((g * v).sum() for g, v in zip(vjp, flat) if g is not None)
    return [g.numpy() for g in torch.autograd.grad(total, us)]


CONFIGS = dict(cell=st.sampled_from(BUILTIN), layers=st.integers(1, 2),
               bidirectional=st.booleans(), batch_first=st.booleans(), use_lengths=st.booleans(),
               unbatched=st.booleans(), proj=st.booleans(), bias=st.booleans(),
               T=st.integers(1, 4), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(2, 4),
               seed=st.integers(0, 2**16))



def make_case(cell, layers, bidirectional, batch_first, use_lengths, unbatched, proj, bias, T, B,
              I, H, seed, backend="numpy"):
    """(model, x, state, lengths, tangents) for one draw of CONFIGS."""
    rng = np.random.default_rng(seed)
    model = make_model(cell, I, H, layers, bidirectional, batch_first, proj, bias, seed, backend)
    x, state = make_data(model, T, B, rng, unbatched)
    lengths = None
    if use_lengths and not unbatched:
        lengths = rng.integers(1, T + 1, size=B)
    return model, x, state, lengths, make_tangents(model, x, state, rng)


def make_layer(cell, T, B, I, H, P, rng, bias=True):
    """One layer's spec, parameters (reference names), time-major x and state, at random."""
    spec = get_cell(cell)
    G, Pp = spec.gates, P or H
    params = {"weight_ih": rng.standard_normal((G * H, I)) * 0.6,
              "weight_hh": rng.standard_normal((G * H, Pp)) * 0.6}
    if bias:
        params.update(bias_ih=rng.standard_normal(G * H), bias_hh=rng.standard_normal(G * H))
    if P:
        params["weight_hr"] = rng.standard_normal((P, H)) * 0.6
    x = rng.standard_normal((T, B, I))
    state = tuple(rng.standard_normal((B, Pp if n == "h" else H)) for n in spec.state_names)
    return spec, params, x, state


# ---- second order ---------------------------------------------------------------------------

def torch_products(model, x, state, lengths, target, v, kind):
    """torch's H v (double backward) and Jᵀ H_L J v for L = mean((out - target)^2) or
    sum(target * out) (kind "linear")."""
    t = torch_twin(model)
    T = torch.from_numpy
    names = [k for k, _ in t.named_parameters()]
    leaves = {k: p.detach().clone().requires_grad_(True) for k, p in t.named_parameters()}
    vs = [T(v[k]) for k in names]

    def outputs():
        return torch_outputs(t, model, leaves, T(x), [T(s) for s in state], lengths)[0]

    def loss(out):
        return ((out - T(target)) ** 2).mean() if kind == "mse" else (T(target) * out).sum()
    g = torch.autograd.grad(loss(outputs()), list(leaves.values()), create_graph=True)
    hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, vs)), list(leaves.values()))
    out = outputs()
    u = torch.zeros_like(out, requires_grad=True)
    vjp = torch.autograd.grad(out, list(leaves.values()), u, create_graph=True)
    jv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(vjp, vs)), u)[0]
    h_jv = 2.0 * jv / jv.numel() if kind == "mse" else torch.zeros_like(jv)
    gn = torch.autograd.grad(outputs(), list(leaves.values()), h_jv, allow_unused=True)
    zero = lambda a, k: torch.zeros_like(leaves[k]) if a is None else a     # noqa: E731
    return ({k: a.numpy() for k, a in zip(names, hv)},
            {k: zero(a, k).numpy() for k, a in zip(names, gn)})
