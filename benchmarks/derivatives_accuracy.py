"""How exact the exact derivatives are: the worst errors of minirnn's JVP, HVP and Gauss-Newton
product over a grid of configurations, against torch (float64, CPU), central differences and
each other.

    python benchmarks/derivatives_accuracy.py              # ~1 min here

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

import importlib.util
import itertools
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _helpers():
    """The torch twins of tests/test_forward_mode.py and tests/test_second_order.py."""
    mods = []
    for name in ("test_forward_mode", "test_second_order"):
        spec = importlib.util.spec_from_file_location(f"_{name}", ROOT / "tests" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def measure(cfg, fm, so):
    from minirnn.grad import MSELoss, gnvp, hvp, jvp
    model, x, state, lengths, tangents = fm._case(**cfg)
    model.eval()
    err = {}
    res = jvp(model, x, state, tangents, lengths)
    want = fm.torch_jvp(model, x, state, tangents, lengths)
    got = [res.out_dot, *res.state_dot]
    err["jvp/torch"] = max(fm._rel(a, b) for a, b in zip(got, want))
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
    err["jvp/fd"] = max(fm._rel(a, fd) for a, fd in
                        zip(got, fm.central_jvp(model, x, state, lengths, tangents, eps=1e-6)))
    # second order
    target = rng.standard_normal(res.out.shape)
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    loss = MSELoss(target)
    hv, gv = hvp(model, x, loss, v, state, lengths), gnvp(model, x, loss, v, state, lengths)
    want_hv, want_gv = so._torch_products(model, x, state, lengths, target, v, "mse")
    err["hvp/torch"] = max(fm._rel(hv[k], want_hv[k]) for k in hv)
    err["gn/torch"] = max(fm._rel(gv[k], want_gv[k]) for k in gv)
    fd = so.central_hvp(model, x, state, lengths, loss, v, eps=1e-5)
    err["hvp/fd"] = max(fm._rel(hv[k], fd[k]) for k in hv)
    return err


def main():
    import torch
    fm, so = _helpers()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cases = [("rnn_tanh", False), ("rnn_relu", False), ("lstm", False), ("lstm", True),
             ("gru", False)]
    worst, count = {}, 0
    for (cell, proj), (layers, bi), use_len, bf, seed in itertools.product(
            cases, [(1, False), (2, True)], [False, True], [False, True], range(3)):
        cfg = dict(cell=cell, layers=layers, bidirectional=bi, batch_first=bf,
                   use_lengths=use_len, unbatched=False, proj=proj, bias=True, T=6, B=3, I=3,
                   H=5, seed=seed)
        label = cell + (" proj" if proj else "")
        for k, e in measure(cfg, fm, so).items():
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
