"""How exact the exact derivatives are: the worst errors of minirnn's JVP, HVP and Gauss-Newton
product over a grid of configurations, against torch (float64, CPU), central differences and
each other.

    python benchmarks/derivatives_accuracy.py              # ~1 min here
    python benchmarks/derivatives_accuracy.py --cells gru --seeds 1     # a few seconds

Grid: every registry cell (the LSTM with and without proj_size) x {1 layer, 2 layers
bidirectional} x {full length, lengths} x {time-major, batch_first} x 3 seeds; T=6, B=3, I=3,
H=5; fresh random weights, states, tangents, directions and targets. Errors (relative, by
norm, per tensor; the worst over the grid):

  jvp/torch   ȯut, ḣ_n, ċ_n against torch.func.jvp (packed sequences: torch's double VJP)
  dot         |⟨J u, w⟩ - ⟨u, Jᵀ w⟩| / Σ|terms|, u over every input and parameter
  jvp/fd      the JVP against central differences of the forward (eps 1e-6)
  hvp/torch   H v against torch's double backward of the MSE
  gn/torch    Jᵀ H_L J v against torch (J v by double VJP, then one VJP)
  hvp/fd      H v against central differences of minirnn's own gradient (eps 1e-5)
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from minirnn.testing import central_hvp, central_jvp


# ---- the problem: a model, its data, tangents and lengths ----------------------------------

def _case(cell, layers, bidirectional, batch_first, use_lengths, proj, T, B, I, H, seed):
    """(model, x, state, lengths, tangents): fresh random weights, x, state and a tangent for
    every input (x, the initial states, each parameter), in the model's layout."""
    from minirnn.nn import make_recurrent
    rng = np.random.default_rng(seed)
    model = make_recurrent(cell, I, H, num_layers=layers, bidirectional=bidirectional,
                           batch_first=batch_first, seed=seed,
                           **({"proj_size": H - 1} if proj else {}))
    LD = model.num_layers * model.num_directions
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    state = tuple(rng.standard_normal((LD, B, model.out_size if n == "h" else H))
                  for n in model.spec.state_names)
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    tangents = {"x": rng.standard_normal(x.shape)}
    tangents.update({f"{n}0": rng.standard_normal(s.shape)
                     for n, s in zip(model.spec.state_names, state)})
    tangents.update({k: rng.standard_normal(p.shape) for k, p in model.params.items()})
    return model, x, state, lengths, tangents


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a)


# ---- torch's side: the model's twin (minirnn.interop.torch.to_torch), float64 ---------------

def _torch_outputs(twin, model, params, x, state, lengths):
    """(out, *state_n) of the twin with parameters `params` (name -> tensor); lengths go
    through the twin's packed sequence."""
    import torch
    hx = state[0] if len(state) == 1 else tuple(state)
    out, hn = torch.func.functional_call(twin, params, (x, hx), {"lengths": lengths})
    return (out,) + ((hn,) if len(state) == 1 else tuple(hn))


def torch_jvp(model, x, state, tangents, lengths):
    """torch's tangents of (out, *state_n): torch.func.jvp, or, where forward-mode AD has no
    formula (packed sequences), the double-VJP trick J v = d/du <Jᵀu, v>."""
    import torch
    from minirnn.interop.torch import to_torch
    twin, T = to_torch(model), torch.from_numpy
    names = [k for k, _ in twin.named_parameters()]
    primal = [*(p.detach() for _, p in twin.named_parameters()), T(x), *map(T, state)]
    tang = [*(T(tangents[k]) for k in names), T(tangents["x"]),
            *(T(tangents[f"{n}0"]) for n in model.spec.state_names)]

    def f(*leaves):
        return _torch_outputs(twin, model, dict(zip(names, leaves)), leaves[len(names)],
                              leaves[len(names) + 1:], lengths)
    if lengths is None:
        return [o.numpy() for o in torch.func.jvp(f, tuple(primal), tuple(tang))[1]]
    leaves = [a.clone().requires_grad_(True) for a in primal]
    outs = f(*leaves)
    us = [torch.zeros_like(o, requires_grad=True) for o in outs]
    vjp = torch.autograd.grad(outs, leaves, us, create_graph=True, allow_unused=True)
    total = sum((g * v).sum() for g, v in zip(vjp, tang) if g is not None)
    return [g.numpy() for g in torch.autograd.grad(total, us)]


def torch_products(model, x, state, lengths, target, v):
    """torch's H v (double backward) and Jᵀ H_L J v for L = mean((out - target)^2)."""
    import torch
    from minirnn.interop.torch import to_torch
    twin, T = to_torch(model), torch.from_numpy
    names = [k for k, _ in twin.named_parameters()]
    leaves = {k: p.detach().clone().requires_grad_(True) for k, p in twin.named_parameters()}
    vs = [T(v[k]) for k in names]

    def outputs():
        return _torch_outputs(twin, model, leaves, T(x), [T(s) for s in state], lengths)[0]
    g = torch.autograd.grad(((outputs() - T(target)) ** 2).mean(), list(leaves.values()),
                            create_graph=True)
    hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, vs)), list(leaves.values()))
    out = outputs()
    u = torch.zeros_like(out, requires_grad=True)
    vjp = torch.autograd.grad(out, list(leaves.values()), u, create_graph=True)
    jv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(vjp, vs)), u)[0]
    gn = torch.autograd.grad(outputs(), list(leaves.values()), 2.0 * jv / jv.numel(),
                             allow_unused=True)
    return ({k: a.numpy() for k, a in zip(names, hv)},
            {k: (torch.zeros_like(leaves[k]) if a is None else a).numpy()
             for k, a in zip(names, gn)})


def measure(cfg):
    from minirnn.grad import MSELoss, gnvp, hvp, jvp
    model, x, state, lengths, tangents = _case(**cfg)
    model.eval()
    err = {}
    res = jvp(model, x, state, tangents, lengths)
    want = torch_jvp(model, x, state, tangents, lengths)
    got = [res.out_dot, *res.state_dot]
    err["jvp/torch"] = max(_rel(a, b) for a, b in zip(got, want))
    # dot-product test
    rng = np.random.default_rng(cfg["seed"] + 7)
    w = [rng.standard_normal(np.shape(o)) for o in (res.out, *res.state)]
    model.zero_grad()
    model.forward_state(x, state, lengths)
    dx, d_state = model.backward_state(w[0], tuple(w[1:]))
    grads = {"x": dx, **{f"{n}0": d for n, d in zip(model.spec.state_names, d_state)},
             **model.grads}
    lhs = sum(np.vdot(a, b) for a, b in zip(got, w))
    rhs = sum(np.vdot(tangents[k], grads[k]) for k in tangents)
    err["dot"] = abs(lhs - rhs) / sum(np.abs(a * b).sum() for a, b in zip(got, w))
    # JVP against central differences
    err["jvp/fd"] = max(_rel(a, fd) for a, fd in
                        zip(got, central_jvp(model, x, state, lengths, tangents, eps=1e-6)))
    # second order
    target = rng.standard_normal(res.out.shape)
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    loss = MSELoss(target)
    hv, gv = hvp(model, x, loss, v, state, lengths), gnvp(model, x, loss, v, state, lengths)
    want_hv, want_gv = torch_products(model, x, state, lengths, target, v)
    err["hvp/torch"] = max(_rel(hv[k], want_hv[k]) for k in hv)
    err["gn/torch"] = max(_rel(gv[k], want_gv[k]) for k in gv)
    fd = central_hvp(model, x, state, lengths, loss, v, eps=1e-5)
    err["hvp/fd"] = max(_rel(hv[k], fd[k]) for k in hv)
    return err


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn_tanh,rnn_relu,lstm,gru",
                        help="comma-separated registry cells (default: %(default)s; the LSTM "
                             "runs with and without proj_size)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per configuration (default: %(default)s)")
    args = parser.parse_args(argv)
    import torch

    from minirnn.parity.torch_ref import load_forward_ad
    load_forward_ad()              # torch.func.jvp, without torch's TorchScript warnings
    torch.set_num_threads(1)
    start = time.perf_counter()
    cases = [(c, p) for c in args.cells.split(",") for p in ((False, True) if c == "lstm"
                                                            else (False,))]
    worst, count = {}, 0
    for (cell, proj), (layers, bi), use_len, bf, seed in itertools.product(
            cases, [(1, False), (2, True)], [False, True], [False, True], range(args.seeds)):
        cfg = dict(cell=cell, layers=layers, bidirectional=bi, batch_first=bf,
                   use_lengths=use_len, proj=proj, T=6, B=3, I=3, H=5, seed=seed)
        label = cell + (" proj" if proj else "")
        for k, e in measure(cfg).items():
            worst.setdefault(label, {})[k] = max(worst.get(label, {}).get(k, 0.0), e)
        count += 1
    names = list(next(iter(worst.values())))
    print(f"worst relative error over {count} configurations (T=6, B=3, I=3, H=5; layers, "
          f"directions, lengths, layouts, seeds), float64, torch {torch.__version__}, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"{'cell':10} " + " ".join(f"{n:>10}" for n in names))
    for label, row in worst.items():
        print(f"{label:10} " + " ".join(f"{row[n]:10.2e}" for n in names))
    print(f"{'all':10} " + " ".join(f"{max(r[n] for r in worst.values()):10.2e}" for n in names))


if __name__ == "__main__":
    main()
