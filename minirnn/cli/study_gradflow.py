"""`minirnn study gradflow`: the vanishing/exploding-gradient picture, measured by the engine.

For each cell and recurrent weight scale: a one-layer model (torch's uniform init, then every
W_hh multiplied by the scale — nothing else changes), a random input of T steps, a loss on the
last output; ||dL/dh_t|| against the distance T-1-t from the loss, its fitted per-step factor
(decay_rate), written to DIR/gradflow.csv and plotted (log scale) in DIR/gradflow.png. Then the
exploding-gradient demonstration: SGD without and with clipping by global norm.
"""
from __future__ import annotations

from ..cells import BACKENDS

from ..cells import BUILTIN as CELLS

NAME = "gradflow"
HELP = "gradient norm vs distance from the loss, per cell and scale"
COLUMNS = ("cell", "weight_scale", "distance", "grad_norm", "cell_grad_norm", "jac_norm",
           "jac_sigma", "decay_rate")


def add_arguments(g):
    g.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    g.add_argument("--T", type=int, default=200, help="time steps")
    g.add_argument("--hidden", type=int, default=64, help="hidden size")
    g.add_argument("--input-size", type=int, default=8, help="input features")
    g.add_argument("--batch", type=int, default=1, help="sequences (norms are over the batch)")
    g.add_argument("--weight-scale", default="0.5,1,2,4",
                   help="comma-separated factors multiplying W_hh after its uniform init")
    g.add_argument("--out", required=True, metavar="DIR", help="where gradflow.csv/.png go")
    g.add_argument("--seed", type=int, default=0, help="seed of the models and inputs")
    g.add_argument("--backend", choices=BACKENDS, default="numpy")
    g.add_argument("--demo-cell", choices=CELLS, default="rnn_relu",
                   help="cell of the exploding-gradient demonstration")
    g.add_argument("--demo-scale", type=float, default=4.0, help="its W_hh scale")
    g.add_argument("--demo-steps", type=int, default=20, help="its SGD steps")
    g.add_argument("--max-norm", type=float, default=1.0, help="its clipping threshold")
    g.add_argument("--no-demo", action="store_true", help="skip the demonstration")


def _floats(name, text):
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise ValueError(f"{name}: expected positive numbers, got {text!r}")
    return vals


def _table(head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    from .. import _threads
    return _threads.step_product(args.batch, args.hidden)


def run(args):
    import os

    import numpy as np

    from .._io import write_text
    from ..nn import make_recurrent
    from ..studies import flow as gf
    from ..studies.flow import exploding_demo, gradient_flow, scale_recurrent

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise ValueError(f"--cells: expected some of {','.join(CELLS)}, got {args.cells!r}")
    scales = _floats("--weight-scale", args.weight_scale)
    for name in ("T", "hidden", "input_size", "batch"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, "
                             f"got {getattr(args, name)}")
    if args.T < 2:                  # one step: no distance to fit a rate over (it would be nan)
        raise ValueError(f"--T: expected at least 2 time steps (the rate per step is fitted "
                         f"over the distances 0..T-1 from the loss), got {args.T}")
    os.makedirs(args.out, exist_ok=True)
    x = np.random.default_rng(args.seed).standard_normal((args.T, args.batch, args.input_size))
    lines, csv = [], [",".join(COLUMNS)]
    for cell in cells:
        for scale in scales:
            m = make_recurrent(cell, args.input_size, args.hidden, seed=args.seed,
                               backend=args.backend)
            flow = gradient_flow(scale_recurrent(m, scale), x, loss="last", seed=args.seed)
            g = flow.norms_by_distance()                                  # (T,) distance 0..T-1
            gc = flow.norms_by_distance(state="c") if flow.dc_norm is not None else None
            jn = np.sqrt((flow.jac_norm[0] ** 2).sum(axis=1))[::-1]      # over the batch
            js = flow.jac_sigma[0].max(axis=1)[::-1]
            rate = gf.decay_rate(g)
            lines.append((cell, scale, g, rate))
            for s in range(args.T):
                csv.append(",".join([cell, f"{scale:g}", str(s), f"{g[s]:.6e}",
                                     "" if gc is None else f"{gc[s]:.6e}",
                                     f"{jn[s]:.6e}", f"{js[s]:.6e}", f"{rate:.6f}"]))
    csv_path = os.path.join(args.out, "gradflow.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    print(f"gradient flow: T={args.T} hidden={args.hidden} batch={args.batch}, loss on the last "
          f"output, W_hh x scale (after uniform init)")
    print(_table(("cell", "scale", "|dL/dh| at loss", f"at distance {args.T - 1}",
                  "rate per step", "behaviour"),
                 [(c, f"{s:g}", f"{g[0]:.2e}", f"{g[-1]:.2e}", f"{r:.4f}", gf.behaviour(r))
                  for c, s, g, r in lines]))
    print(f"behaviour of the rate per step: {gf.band_text()}")
    demo = None
    if not args.no_demo:
        try:
            demo = exploding_demo(args.demo_cell, args.demo_scale, steps=args.demo_steps,
                                  max_norm=args.max_norm, seed=args.seed, backend=args.backend)
        except ImportError as e:              # minirnn.train.optim missing: say so, keep the rest
            print(f"\nexploding-gradient demonstration skipped: it needs "
                  f"minirnn.train.optim.clip_grad_norm ({e})")
    if demo is not None:
        _print_demo(demo, _table)
        rows = ["run,step,loss,grad_norm"]
        for name, r in demo["runs"].items():
            rows += [f"{name},{i},{lo:.6e},{gn:.6e}"              # SGD steps count from 1
                     for i, (lo, gn) in enumerate(zip(r["loss"], r["grad_norm"]), start=1)]
        write_text(os.path.join(args.out, "exploding.csv"), "\n".join(rows) + "\n")
    from ._study_util import plot_and_list
    written = [csv_path] + ([] if demo is None else [os.path.join(args.out, "exploding.csv")])
    plot_and_list(args.out, "gradflow", written, lambda png: _plot(png, lines, demo, args))
    return 0


def _print_demo(demo, table):
    import math
    r1, rs = demo["rate_by_scale"].get(1.0), demo["rate_by_scale"][demo["weight_scale"]]
    print(f"\nexploding gradients: {demo['cell']}, W_hh x {demo['weight_scale']:g}, T={demo['T']}, "
          f"SGD lr={demo['lr']:g}; per-step gradient factor {rs:.3f} (x1 scale: {r1:.3f})")
    rows = []
    for name, r in demo["runs"].items():
        label = "no clipping" if name == "no_clip" else f"clip_grad_norm({demo['max_norm']:g})"
        top = max((g for g in r["grad_norm"] if math.isfinite(g)), default=float("nan"))
        rows.append((label, len(r["loss"]), f"{r['grad_norm'][0]:.2e}", f"{top:.2e}",
                     f"{r['loss'][0]:.3e}", f"{r['loss'][-1]:.3e}",
                     "finite" if r["finite"] else f"DIVERGED at step {len(r['loss'])} (inf/nan)"))
    head = ("run", "steps", "grad norm 1", "max grad norm", "loss 1", "last loss", "result")
    print(table(head, rows))


def _plot(path, lines, demo, args):
    import numpy as np

    from .._io import pyplot, savefig
    from ..studies.flow import band_text, behaviour
    plt = pyplot("the gradient-flow plot (gradflow.png)")

    fig, axes = plt.subplots(1, 2 if demo else 1, figsize=(13 if demo else 8, 5), squeeze=False)
    ax = axes[0, 0]
    colors = dict(zip(CELLS, ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")))
    styles = ["-", "--", "-.", ":", (0, (1, 3))]
    scales = sorted({s for _, s, _, _ in lines})
    for cell, scale, g, rate in lines:
        pos = np.where(g > 0, g, np.nan)                      # log scale: zeros are not drawn
        ax.semilogy(np.arange(len(g)), pos, color=colors.get(cell),
                    linestyle=styles[scales.index(scale) % len(styles)],
                    label=f"{cell} x{scale:g}  ({rate:.3f}/step, {behaviour(rate)})")
    ax.set_xlabel("distance from the loss (steps)")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(f"gradient flow through time (T={args.T}, H={args.hidden}, W_hh x scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, title=f"rate per step: {band_text()}", title_fontsize=7)
    if demo:
        _plot_demo(axes[0, 1], demo)
    fig.tight_layout()
    savefig(fig, path, dpi=110)
    plt.close(fig)


def _plot_demo(ax, demo):
    """Both SGD runs' global gradient norm (before clipping), log scale; where the unclipped
    run turns inf/nan a red X at the top edge marks it, with the step written next to it.
    Steps count from 1, as in the table (step k = the k-th update's gradient)."""
    import numpy as np
    finite_all = [g for r in demo["runs"].values() for g in r["grad_norm"]
                  if np.isfinite(g) and g > 0]
    top = max(finite_all + [demo["max_norm"]]) * 30
    low = min(finite_all + [demo["max_norm"]]) / 3
    from matplotlib.ticker import MaxNLocator
    runs = sorted(demo["runs"].items(), key=lambda kv: kv[0] == "no_clip")   # no_clip on top
    for name, r in runs:
        gn = np.asarray(r["grad_norm"], dtype=float)
        ok = np.isfinite(gn) & (gn > 0)
        step = np.arange(1, gn.size + 1)                                  # 1-based
        label = ("no clipping" if name == "no_clip" else f"clip_grad_norm({demo['max_norm']:g})")
        color = "tab:red" if name == "no_clip" else "tab:blue"
        top_run = name == "no_clip"
        ax.semilogy(step[ok], gn[ok], marker="o", color=color, label=label,
                    markersize=9 if top_run else 5, zorder=3 if top_run else 2,
                    markerfacecolor="none" if top_run else color, markeredgewidth=2)
        bad = np.flatnonzero(~np.isfinite(gn))
        if bad.size:
            i = int(bad[0])
            k = int(step[i])
            good = np.flatnonzero(ok[:i])
            if good.size:                       # the climb from the last finite norm to inf
                ax.plot([step[good[-1]], k], [gn[good[-1]], top / 2], color=color,
                        linestyle="--", zorder=3)
            ax.plot([k], [top / 2], marker="X", markersize=14, color=color, linestyle="none",
                    label=f"{label}: inf/nan at step {k} (diverged)", zorder=4)
            ax.annotate(f"diverged at step {k}", (k, top / 2), textcoords="offset points",
                        xytext=(10, -4), color=color, fontsize=9)
            ax.axvline(k, color=color, alpha=0.3, linestyle=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(demo["max_norm"], color="gray", linestyle="--", linewidth=1,
               label=f"clipping threshold {demo['max_norm']:g}")
    ax.set_ylim(low, top)
    ax.set_xlim(0.5, max(len(r["grad_norm"]) for r in demo["runs"].values()) + 0.5)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("global gradient norm (before clipping, log scale)")
    ax.set_title(f"exploding gradients: {demo['cell']}, W_hh x {demo['weight_scale']:g}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
