"""`minirnn study lyapunov`: the Lyapunov spectrum of each cell, and two checks of it.

  1. per cell and W_hh scale (torch's init, then W_hh times the scale), driven by a random
     input: the spectrum by the QR method (minirnn.grad.lyapunov_spectrum, all S exponents)
     and λ_1 again by direct simulation (perturbation_growth: a copy ε away, renormalised
     every step, on the same trajectory, started along the QR method's first direction);
  2. the fixed point: a tanh RNN with zero input and zero bias sits at h = 0, where the
     exponents must be log|eig(W_hh)|; the running estimates converge to them (eigenvalues of
     distinct modulus at round-off; each member of a complex pair like 1/T, its pair's sum at
     round-off);
  3. the training-time readout (Vogt et al. 2022): a small character language model on
     tinyshakespeare trained by Engine, λ_1 logged every N steps by a LyapunovReadout hook.
Writes DIR/lyapunov.csv and DIR/lyapunov.png and prints tables.
"""
from __future__ import annotations

from ..cells import BUILTIN

NAME = "lyapunov"
HELP = "Lyapunov spectrum per cell and W_hh scale; fixed-point and direct-simulation checks"
FLAGS = {"cells": "--cells", "hidden": "--hidden", "input_size": "--input-size", "T": "--T",
         "warmup": "--warmup", "weight_scale": "--weight-scale", "fixed_T": "--fixed-T",
         "readout_steps": "--readout-steps", "readout_every": "--readout-every",
         "seed": "--seed", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default=",".join(BUILTIN), help="comma-separated cells")
    g.add_argument("--hidden", type=int, default=16, help="hidden size")
    g.add_argument("--input-size", type=int, default=4, help="input features")
    g.add_argument("--T", type=int, default=1000, help="steps driven by a random input")
    g.add_argument("--warmup", type=int, default=200, help="of them, steps not counted")
    g.add_argument("--weight-scale", default="0.5,1,2,4,8",
                   help="comma-separated factors multiplying W_hh after its uniform init")
    g.add_argument("--fixed-T", type=int, default=3000, help="steps of the fixed-point check")
    g.add_argument("--readout-steps", type=int, default=300,
                   help="training steps of the readout demonstration (0: skip it)")
    g.add_argument("--readout-every", type=int, default=25, help="log λ_1 every N steps")
    g.add_argument("--seed", type=int, default=0, help="seed of models and inputs")
    g.add_argument("--out", required=True, metavar="DIR", help="where lyapunov.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    return 1                                                    # small products: 1 thread


def run(args):
    import os

    import numpy as np

    from .._io import write_text
    from .._progress import progress
    from .._table import text_table
    from ..studies.flow import scale_recurrent
    from ..grad.lyapunov import lyapunov_spectrum, perturbation_growth
    from ..nn import make_recurrent
    from . import _study_util as u

    cells = u.cells(args.cells)
    scales = u.numbers("--weight-scale", args.weight_scale, float)
    if any(not s > 0 for s in scales):
        raise ValueError(f"--weight-scale: expected positive numbers, got {args.weight_scale!r}")
    u.at_least(args, hidden="--hidden", input_size="--input-size", T="--T",
               fixed_T="--fixed-T", readout_every="--readout-every")
    u.at_least(args, low=0, warmup="--warmup", readout_steps="--readout-steps")
    if args.warmup >= args.T:
        raise ValueError(f"--warmup: expected fewer than --T={args.T} steps, got {args.warmup}")
    os.makedirs(args.out, exist_ok=True)
    x = np.random.default_rng(args.seed).standard_normal((args.T, 1, args.input_size))
    csv = ["part,cell,weight_scale,index,value"]
    runs = {}
    bar = progress(total=len(cells) * len(scales), desc="Lyapunov spectra", unit="run")
    for cell in cells:
        for sc in scales:
            m = scale_recurrent(make_recurrent(cell, args.input_size, args.hidden,
                                               seed=args.seed), sc)
            spec = lyapunov_spectrum(m, x, warmup=args.warmup, seed=args.seed)
            sim = perturbation_growth(m, x, warmup=args.warmup, seed=args.seed)  # same start
            runs[cell, sc] = (spec.exponents[0], float(sim.rate[0]), spec.diverged_at)
            csv += [f"spectrum,{cell},{sc:g},{i},{v:.8e}" for i, v in enumerate(spec.exponents[0])]
            csv.append(f"direct_simulation,{cell},{sc:g},0,{sim.rate[0]:.8e}")
            bar.update(1)
    bar.close()
    fixed = _fixed_point(args)
    csv += [f"fixed_point,rnn_tanh,,{i},{v:.8e}" for i, v in enumerate(fixed["est"])]
    readouts = {}
    if args.readout_steps:
        for cell in progress(cells, desc="training readout", unit="cell"):
            readouts[cell] = _readout(cell, args)
            csv += [f"readout,{cell},,{step},{lam:.8e}" for step, lam, _ in readouts[cell][0]]
    csv_path = os.path.join(args.out, "lyapunov.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    _print(args, cells, scales, runs, fixed, readouts, text_table)
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "lyapunov", [csv_path],
                    lambda png: _plot(png, cells, scales, runs, fixed, readouts, cmd, args))
    return 0


def _fixed_point(args):
    """tanh RNN, zero input and bias, W_hh of spectral radius 0.9: exponents vs log|eig|."""
    import numpy as np

    from ..grad.lyapunov import lyapunov_spectrum
    from ..nn import make_recurrent
    H = min(args.hidden, 8)
    m = make_recurrent("rnn_tanh", args.input_size, H, seed=args.seed)
    for n in ("bias_ih_l0", "bias_hh_l0"):
        m.params[n][...] = 0.0
    W = np.random.default_rng(args.seed).standard_normal((H, H))
    W *= 0.9 / np.abs(np.linalg.eigvals(W)).max()
    m.params["weight_hh_l0"][...] = W
    eig = np.linalg.eigvals(W)
    order = np.argsort(-np.abs(eig), kind="stable")
    want = np.log(np.abs(eig[order]))
    complex_ = np.abs(eig[order].imag) > 1e-12
    warmup = args.fixed_T // 4          # the frame settles first: then real ones are exact
    spec = lyapunov_spectrum(m, np.zeros((args.fixed_T + warmup, 1, args.input_size)),
                             warmup=warmup, seed=args.seed)
    err = np.abs(spec.running[:, 0, :] - want)                       # (T, H)
    return dict(H=H, want=want, complex=complex_, est=spec.exponents[0], err=err,
                warmup=warmup)


def _readout(cell, args):
    """A character LM (1 layer, H=32) on tinyshakespeare, λ_1 of its recurrent layer driven
    by 4 probe sequences, every readout_every steps -> (history, losses)."""
    import numpy as np

    from ..grad.lyapunov import LyapunovReadout
    from ..train.engine import Engine
    from ..nn.models import LanguageModel
    from ..tutorials.data import load_shakespeare
    text = np.array(list(load_shakespeare()[:200_000]))
    vocab = np.unique(text)                                            # sorted characters
    ids = np.searchsorted(vocab, text).astype(np.int64)
    rng = np.random.default_rng(args.seed)
    B, T = 16, 32
    model = LanguageModel(len(vocab), 16, 32, cell=cell, num_layers=1, seed=args.seed)
    engine = Engine(model, optimizer="adam", lr=3e-3, clip=5.0, backend="numpy")
    starts = rng.integers(0, len(ids) - 200, size=4)
    readout = LyapunovReadout(np.stack([ids[s:s + 200] for s in starts]), warmup=50,
                              seed=args.seed)
    readout(engine)                                                   # step 0: the init
    engine.add_hook(readout, every=args.readout_every)
    losses = []
    for _ in range(args.readout_steps):
        s = rng.integers(0, len(ids) - T - 1, size=B)
        chunk = np.stack([ids[i:i + T + 1] for i in s])
        loss, _ = engine.step_lm(chunk[:, :-1], chunk[:, 1:])
        losses.append(float(loss))
    return readout.history, losses


def _print(args, cells, scales, runs, fixed, readouts, text_table):
    import numpy as np
    print(f"largest Lyapunov exponent (nats/step), H={args.hidden}, driven by N(0,1) input, "
          f"T={args.T} ({args.warmup} warm-up): QR method / direct simulation")
    rows = []
    for c in cells:
        row = [c]
        for s in scales:
            ex, sim, div = runs[c, s]
            row.append(overflow_text(div) if div is not None else f"{ex[0]:+.4f} / {sim:+.4f}")
        rows.append(row)
    print(text_table(["cell"] + [f"W_hh x {s:g}" for s in scales], rows, align="right"))
    print(agreement_line(runs))
    e = fixed["err"][-1]
    c = fixed["complex"]
    print(f"\nfixed point (tanh, zero input and bias, H={fixed['H']}, W_hh spectral radius "
          f"0.9) after {args.fixed_T} steps ({fixed['warmup']} more of warm-up): "
          f"|λ_i - log|eig_i|| at most "
          f"{e[~c].max() if (~c).any() else float('nan'):.1e} (real eigenvalues), "
          f"{e[c].max() if c.any() else float('nan'):.1e} (complex pairs, ~1/T)")
    for cell, (hist, losses) in readouts.items():
        print(f"readout {cell}: λ_1 " + ", ".join(f"{lam:+.3f}@{st}" for st, lam, _ in hist)
              + f"  (loss {np.mean(losses[:10]):.2f} -> {np.mean(losses[-10:]):.2f})")


def overflow_text(step):
    """What the table says for a run whose state overflowed: no exponent is averaged."""
    return f"state overflow (step {step})"


def agreement_line(runs):
    """|QR - direct simulation| over the runs that stayed bounded, counting them: a run whose
    state overflowed has no exponent to compare, and is counted as not compared."""
    bounded = [abs(ex[0] - sim) for ex, sim, div in runs.values() if div is None]
    skipped = len(runs) - len(bounded)
    note = f" ({skipped} state overflow: not compared)" if skipped else ""
    if not bounded:
        return f"|QR - direct simulation|: not compared on any of {len(runs)} runs{note}"
    return (f"|QR - direct simulation| over {len(bounded)} of {len(runs)} runs: at most "
            f"{max(bounded):.1e}{note}")


def _plot(path, cells, scales, runs, fixed, readouts, cmd, args):
    import numpy as np

    from .._io import pyplot, savefig
    from ._study_util import stamp
    plt = pyplot("the Lyapunov plot (lyapunov.png)")
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    (a1, a2), (a3, a4) = axes
    colors = dict(zip(BUILTIN, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for c in cells:
        qr = [runs[c, s][0][0] if runs[c, s][2] is None else np.nan for s in scales]
        sim = [runs[c, s][1] if runs[c, s][2] is None else np.nan for s in scales]
        a1.plot(scales, qr, marker="o", color=colors[c], label=f"{c}: QR method")
        a1.plot(scales, sim, marker="x", markersize=10, linestyle="none", color=colors[c],
                label=f"{c}: direct simulation")
        for s in scales:
            if runs[c, s][2] is not None:
                a1.annotate(f"{c}: state overflow", (s, 0), xytext=(0, -6),
                            textcoords="offset points", color=colors[c], fontsize=7,
                            rotation=90, ha="center", va="top")
    a1.axhline(0, color="black", linewidth=0.8)
    a1.set_xscale("log", base=2)
    # the scales set the limits: where every run overflowed, no drawn point would
    a1.set_xlim(min(scales) / 1.5, max(scales) * 1.5)
    a1.set_xticks(scales, [f"{s:g}" for s in scales])
    a1.set_xlabel("W_hh scale (x torch's uniform init)")
    a1.set_ylabel("largest Lyapunov exponent λ_1 (nats/step)")
    a1.set_title(f"λ_1 > 0: chaotic, < 0: contracting (H={args.hidden}, T={args.T})")
    a1.legend(fontsize=7, ncol=2)
    styles = ["-", "--", "-.", ":", (0, (1, 3)), (0, (5, 1))]
    for c in cells:
        for j, s in enumerate(scales):
            ex = runs[c, s][0]
            if runs[c, s][2] is None:
                a2.plot(np.arange(1, ex.size + 1) / ex.size, ex, color=colors[c],
                        linestyle=styles[j % len(styles)], label=f"{c} x{s:g}")
    a2.axhline(0, color="black", linewidth=0.8)
    a2.set_yscale("symlog", linthresh=1.0)          # dead relu units sit far below the rest
    a2.set_xlabel("exponent index i / S (S = state size)")
    a2.set_ylabel("λ_i (nats/step; symlog: linear within ±1)")
    a2.set_title("the whole spectrum, per cell and W_hh scale (dead relu units, -inf: not drawn)",
                 fontsize=10)
    if any(runs[k][2] is None for k in runs):      # no spectrum when every run overflowed
        a2.legend(fontsize=6, ncol=len(cells))
    err, steps = fixed["err"], np.arange(1, fixed["err"].shape[0] + 1)
    for i in range(err.shape[1]):
        kind = "complex pair" if fixed["complex"][i] else "real"
        a3.loglog(steps, np.maximum(err[:, i], 1e-17),
                  color="tab:orange" if fixed["complex"][i] else "tab:blue",
                  label=kind if kind not in [t.get_label() for t in a3.lines] else None)
    a3.loglog(steps, 1.0 / steps, color="gray", linestyle=":", label="1/T")
    a3.set_xlabel(f"steps T counted (after {fixed['warmup']} warm-up steps)")
    a3.set_ylabel("|running λ_i - log|eig_i(W_hh)||")
    a3.set_title(f"fixed point h=0 (tanh, zero input and bias, H={fixed['H']})")
    a3.legend(fontsize=8)
    for c, (hist, _) in readouts.items():
        a4.plot([h[0] for h in hist], [h[1] for h in hist], marker="o", color=colors[c], label=c)
    a4.axhline(0, color="black", linewidth=0.8)
    a4.set_xlabel("training step (Adam, lr 3e-3, batch 16 x 32 characters)")
    a4.set_ylabel("λ_1 of the recurrent layer (nats/step)")
    a4.set_title("training-time readout: char LM on tinyshakespeare (H=32)"
                 if readouts else "training-time readout: skipped (--readout-steps 0)")
    if readouts:
        a4.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(True, which="major", alpha=0.3)
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)
