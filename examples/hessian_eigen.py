"""The Hessian's top eigenvalue of an LSTM over training, by power iteration on exact
Hessian-vector products (minirnn.grad.hvp) -- and the Gauss-Newton matrix's (gnvp).

    python examples/hessian_eigen.py                        # docs/hessian.png, ~1 min here
    python examples/hessian_eigen.py --lrs 0.5 --steps 300 --out /tmp/h.png

The task: a delayed copy, y_t = x_{t-3} for white-noise x (32 sequences of 30 steps), learned
by an LSTM(1, 16, proj_size=1) -- the projection makes the output one number per step, so the
loss is minirnn.grad.MSELoss on the model's own output. Full-batch gradient descent at each
learning rate η; every --every steps the top eigenvalue λ_max of the Hessian of the loss in
all parameters (and of the Gauss-Newton matrix) is found by power iteration: v <- H v / |H v|,
λ = vᵀ H v, warm-started from the last vector. Classic gradient descent is stable on a
quadratic only while λ_max < 2/η; the picture shows λ_max rising during training until it
meets 2/η and then staying there ("edge of stability", Cohen et al. 2021).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import minirnn
from minirnn.grad import MSELoss, gnvp, hvp


def top_eigenvalue(product, model, x, loss, v, iters):
    """Power iteration on v -> product(v) (H or G times v) -> (λ, v): the Rayleigh quotient
    and the unit vector it came from."""
    lam = 0.0
    for _ in range(iters):
        norm = np.sqrt(sum(float(np.vdot(a, a)) for a in v.values()))
        v = {k: a / norm for k, a in v.items()}
        hv = product(model, x, loss, v)
        lam = sum(float(np.vdot(hv[k], v[k])) for k in v)
        v = hv
    return lam, v


def task(seed, T=30, B=32, delay=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 1))
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x, y


def run(lr, steps, every, iters, seed, backend, bar=None):
    x, y = task(seed)
    model = minirnn.LSTM(1, 16, proj_size=1, seed=seed, backend=backend)
    loss, opt = MSELoss(y), minirnn.SGD(model, lr=lr)
    rng = np.random.default_rng(seed + 1)
    start = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    v_h, v_g = start, dict(start)
    rows = []
    for step in range(steps + 1):
        if step % every == 0:
            model.eval()
            lam_h, v_h = top_eigenvalue(hvp, model, x, loss, v_h, iters)
            lam_g, v_g = top_eigenvalue(gnvp, model, x, loss, v_g, iters)
            model.train()
            out, _ = model(x)
            rows.append((step, loss.value(out), lam_h, lam_g))
        model.zero_grad()
        out, _ = model(x)
        model.backward(loss.grad(out))
        opt.step()
        if bar is not None:
            bar.update(1)
    return np.array(rows)


def plot(results, path, command):
    from minirnn._io import pyplot, savefig
    plt = pyplot("the Hessian plot")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    for (lr, rows), color in zip(results.items(), ("C0", "C1", "C2", "C3", "C4")):
        top.plot(rows[:, 0], rows[:, 2], color=color, label=f"η = {lr:g}: λ_max(Hessian)")
        top.plot(rows[:, 0], rows[:, 3], color=color, ls="--", lw=1,
                 label=f"η = {lr:g}: λ_max(Gauss-Newton)")
        top.axhline(2.0 / lr, color=color, ls=":", lw=1)
        top.text(rows[-1, 0], 2.0 / lr, f" 2/η = {2 / lr:g}", color=color, va="bottom",
                 ha="right", fontsize=8)
        bottom.plot(rows[:, 0], rows[:, 1], color=color, label=f"η = {lr:g}")
    top.set_ylabel("top eigenvalue (loss units per parameter unit²)")
    top.set_title("LSTM(1, 16, proj_size=1), delayed copy, full-batch gradient descent")
    top.legend(fontsize=7, ncol=2)
    bottom.set_xlabel("gradient-descent step")
    bottom.set_ylabel("MSE loss")
    bottom.legend(fontsize=8)
    fig.text(0.01, 0.005, command, fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    savefig(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lrs", default="0.5,0.25,0.1", help="learning rates, comma-separated")
    p.add_argument("--steps", type=int, default=1500, help="gradient-descent steps per rate")
    p.add_argument("--every", type=int, default=25, help="steps between eigenvalue estimates")
    p.add_argument("--iters", type=int, default=20, help="power iterations per estimate")
    p.add_argument("--backend", choices=("numpy", "numba"), default="numba")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("docs", "hessian.png"), help="the PNG to write")
    args = p.parse_args(argv)
    lrs = [float(s) for s in args.lrs.split(",") if s]
    from tqdm import tqdm
    t0 = time.perf_counter()
    results = {}
    with tqdm(total=len(lrs) * (args.steps + 1), desc="training", unit="step") as bar:
        for lr in lrs:
            results[lr] = run(lr, args.steps, args.every, args.iters, args.seed, args.backend,
                              bar)
    print(f"{'lr':>6} {'2/lr':>7} {'final loss':>11} {'max λ(H)':>9} {'last λ(H)':>10} "
          f"{'last λ(G)':>10}")
    for lr, rows in results.items():
        print(f"{lr:6g} {2 / lr:7.2f} {rows[-1, 1]:11.4f} {rows[:, 2].max():9.2f} "
              f"{rows[-1, 2]:10.2f} {rows[-1, 3]:10.2f}")
    command = "python examples/hessian_eigen.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:])
    plot(results, args.out, command.strip())
    print(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
