"""`minirnn study uoro`: UORO's rank-one online gradient estimate, against the exact gradient.

Per cell (one layer, torch's init, a random input and a random linear loss on every output):
  1. unbiasedness at T steps: N estimates (minirnn.grad.uoro_gradients), the error of their
     mean in standard errors (Hotelling's T² over all components against the χ² 99.9%
     quantile; along the exact gradient's direction; the largest per component), and the RMS
     error of a mean of n estimates for n = 1, 10, ... (slope -1/2 on log-log: 1/sqrt(n));
  2. the variance of one estimate, E‖ĝ - g‖²/‖g‖², as T grows;
  3. alignment: the cosine of one UORO estimate with the exact gradient, beside truncated
     BPTT's (chunks of k steps, minirnn.grad.truncated) at the same T.
The exact gradient is BPTT's (model.backward); RTRL's, from the same step Jacobians, is
checked equal to it. Writes DIR/uoro.csv and DIR/uoro.png and prints a table.
"""
from __future__ import annotations

from ..cells import BUILTIN

NAME = "uoro"
HELP = "UORO: unbiasedness, variance against T, alignment beside truncated BPTT"
FLAGS = {"cells": "--cells", "T": "--T", "hidden": "--hidden", "input_size": "--input-size",
         "samples": "--samples", "variance_T": "--variance-T",
         "variance_samples": "--variance-samples", "truncation": "--truncation",
         "seed": "--seed", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default=",".join(BUILTIN), help="comma-separated cells")
    g.add_argument("--T", type=int, default=8, help="steps of the unbiasedness test")
    g.add_argument("--hidden", type=int, default=4, help="hidden size")
    g.add_argument("--input-size", type=int, default=2, help="input features")
    g.add_argument("--samples", type=int, default=10000,
                   help="estimates N of the unbiasedness test")
    g.add_argument("--variance-T", default="2,4,8,16,32,64,128",
                   help="comma-separated lengths T of the variance and alignment curves")
    g.add_argument("--variance-samples", type=int, default=4000, help="estimates per length")
    g.add_argument("--truncation", default="1,2,4,8",
                   help="comma-separated truncation lengths k of the truncated-BPTT comparison")
    g.add_argument("--seed", type=int, default=0, help="seed of models, data and signs")
    g.add_argument("--out", required=True, metavar="DIR", help="where uoro.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    return 1                                                    # tiny products: 1 thread


def _problem(cell, T, args):
    """The cell's model, and the first T steps of one long random input and loss (every
    length is a prefix of the same sequence, so the curves over T follow one problem)."""
    import numpy as np

    from ..nn import make_recurrent
    model = make_recurrent(cell, args.input_size, args.hidden, seed=args.seed)
    longest = max([args.T] + [int(v) for v in str(args.variance_T).split(",") if v.strip()])
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((longest, 1, args.input_size))
    d_out = rng.standard_normal((longest, 1, args.hidden))
    return model, x[:T], d_out[:T]


def _truncated(model, x, d_out, k, layout):
    import numpy as np

    from ..grad.truncated import truncated_gradient
    g = truncated_gradient(model, x, d_out, k)
    return np.concatenate([np.ravel(g[f"{n}_l0"]) for n, _ in layout])


def run(args):
    import os

    import numpy as np

    from .._io import write_text
    from .._progress import progress
    from .._table import text_table
    from ..grad.uoro import chi2_quantile, cosine, normal_quantile, uoro_gradients
    from . import _study_util as u

    cells = u.cells(args.cells)
    u.at_least(args, T="--T", hidden="--hidden", input_size="--input-size")
    u.at_least(args, low=100, samples="--samples")
    u.at_least(args, low=2, variance_samples="--variance-samples")
    lengths = u.numbers("--variance-T", args.variance_T, int, low=1)
    ks = u.numbers("--truncation", args.truncation, int, low=1)
    os.makedirs(args.out, exist_ok=True)
    ns = [n for n in (1, 10, 100, 1000, 10000) if n <= args.samples // 10] or [1]
    unbiased, curves = {}, {}
    csv = ["cell,part,T,n,method,value"]
    bar = progress(total=len(cells) * (1 + len(lengths)), desc="UORO study", unit="run")
    for cell in cells:
        model, x, d_out = _problem(cell, args.T, args)
        est = uoro_gradients(model, x, d_out, n_samples=args.samples, seed=args.seed)
        t2, rank = est.hotelling()
        P = est.exact.size
        rms = [est.rms_error(n) for n in ns]
        slope = float(np.polyfit(np.log(ns), np.log(rms), 1)[0]) if len(ns) > 1 else np.nan
        unbiased[cell] = dict(
            P=P, t2=t2, rank=rank, t2_limit=chi2_quantile(rank, 0.999) if rank else np.nan,
            z_dir=est.z_along_exact(), max_z=float(np.abs(est.z_scores()).max()),
            z_limit=normal_quantile(1 - 0.0005 / P), ns=ns, rms=rms, slope=slope,
            rtrl=float(np.abs(est.rtrl - est.exact).max() / np.abs(est.exact).max()))
        csv += [f"{cell},rms_error,{args.T},{n},uoro,{r:.6e}" for n, r in zip(ns, rms)]
        csv.append(f"{cell},hotelling_t2,{args.T},{args.samples},uoro,{t2:.6e}")
        bar.update(1)
        rows = []
        for T in lengths:
            model, x, d_out = _problem(cell, T, args)
            e = uoro_gradients(model, x, d_out, n_samples=args.variance_samples,
                               seed=args.seed + T)
            cos = e.cosines()
            tb = {k: cosine(_truncated(model, x, d_out, k, e.layout), e.exact) for k in ks}
            rows.append(dict(T=T, relvar=e.relative_variance(), cos=float(cos.mean()),
                             cos_sd=float(cos.std()), tbptt=tb))
            csv.append(f"{cell},relative_variance,{T},{args.variance_samples},uoro,"
                       f"{rows[-1]['relvar']:.6e}")
            csv.append(f"{cell},cosine,{T},{args.variance_samples},uoro,{rows[-1]['cos']:.6e}")
            csv += [f"{cell},cosine,{T},1,tbptt_k{k},{c:.6e}" for k, c in tb.items()]
            bar.update(1)
        curves[cell] = rows
    bar.close()
    csv_path = os.path.join(args.out, "uoro.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    _print(args, cells, unbiased, curves, ks, text_table)
    line, code = unbiased_verdict(unbiased)
    print(line)
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "uoro", [csv_path],
                    lambda png: _plot(png, cells, unbiased, curves, ks, cmd, args))
    return code


def unbiased_verdict(unbiased):
    """{cell: dict(t2, rank, t2_limit)} -> the unbiasedness test's line and exit code. A cell
    whose estimates span no direction (rank 0: no χ² quantile to compare with) is not judged,
    and that is no pass."""
    import numpy as np

    from ._study_util import verdict
    judged = [c for c, d in unbiased.items() if d["rank"] > 0 and np.isfinite(d["t2_limit"])]
    failed = [c for c in judged if not unbiased[c]["t2"] <= unbiased[c]["t2_limit"]]
    return verdict("UORO unbiased (Hotelling T2 <= the chi2 99.9% quantile)", judged, failed,
                   "cells", not_judged=[c for c in unbiased if c not in judged])


def _print(args, cells, unbiased, curves, ks, text_table):
    print(f"UORO unbiasedness: T={args.T}, H={args.hidden}, I={args.input_size}, "
          f"N={args.samples} estimates; exact = BPTT (RTRL agrees to the rel. error shown)")
    print(text_table(
        ("cell", "params", "T2 (rank)", "chi2 99.9%", "z along g", "max |z| (limit)",
         "slope of rms err", "RTRL vs BPTT"),
        [(c, d["P"], f"{d['t2']:.1f} ({d['rank']})", f"{d['t2_limit']:.1f}", f"{d['z_dir']:+.2f}",
          f"{d['max_z']:.2f} ({d['z_limit']:.2f})", f"{d['slope']:+.3f}", f"{d['rtrl']:.1e}")
         for c, d in unbiased.items()], align="right"))
    T = curves[cells[0]][-1]["T"]
    print(f"\nalignment with the exact gradient at T={T} (cosine; UORO: mean ± sd of one "
          f"estimate) and UORO's relative variance E|g^ - g|^2/|g|^2")
    print(text_table(("cell", "UORO cos", "UORO rel. var.") + tuple(f"tBPTT k={k}" for k in ks),
                     [(c, f"{r['cos']:.3f} ± {r['cos_sd']:.3f}", f"{r['relvar']:.3g}")
                      + tuple(f"{r['tbptt'][k]:.3f}" for k in ks)
                      for c in cells for r in curves[c][-1:]], align="right"))


def _plot(path, cells, unbiased, curves, ks, cmd, args):
    import numpy as np

    from .._io import pyplot, savefig
    from ._study_util import cosine_bars_axis, stamp
    plt = pyplot("the UORO plot (uoro.png)")
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(17, 5.2))
    colors = dict(zip(BUILTIN, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for c in cells:
        d = unbiased[c]
        a1.loglog(d["ns"], d["rms"], marker="o", color=colors.get(c),
                  label=f"{c} (slope {d['slope']:+.2f})")
        a1.loglog(d["ns"], d["rms"][0] / np.sqrt(d["ns"]), color=colors.get(c), linestyle=":",
                  linewidth=1)
        Ts = [r["T"] for r in curves[c]]
        a2.loglog(Ts, [r["relvar"] for r in curves[c]], marker="o", color=colors.get(c), label=c)
    a1.plot([], [], color="gray", linestyle=":", label="1/sqrt(n) from n = 1")
    a1.set_xlabel("n, estimates averaged")
    a1.set_ylabel("RMS of ||mean of n - exact|| / ||exact||")
    a1.set_title(f"unbiased: the mean converges as 1/sqrt(n) (T={args.T})")
    a1.legend(fontsize=8)
    a2.set_xscale("log", base=2)
    a2.set_xticks(Ts, [str(t) for t in Ts])
    a2.minorticks_off()
    a2.set_xlabel("sequence length T (steps; prefixes of one sequence)")
    a2.set_ylabel("relative variance E||g^ - g||^2 / ||g||^2 (one estimate)")
    a2.set_title(f"UORO's variance against T ({args.variance_samples} estimates each)")
    a2.legend(fontsize=8)
    T = curves[cells[0]][-1]["T"]
    methods = ["UORO"] + [f"tBPTT k={k}" for k in ks]
    width = 0.8 / len(methods)
    shades = plt.get_cmap("Greys")(np.linspace(0.35, 0.85, len(ks)))
    for j, m in enumerate(methods):
        vals, errs = [], []
        for c in cells:
            r = curves[c][-1]
            vals.append(r["cos"] if j == 0 else r["tbptt"][ks[j - 1]])
            errs.append(r["cos_sd"] if j == 0 else 0.0)
        a3.bar(np.arange(len(cells)) + (j - (len(methods) - 1) / 2) * width, vals, width,
               yerr=errs if j == 0 else None, capsize=3, label=m,
               color="tab:orange" if j == 0 else shades[j - 1])
    cosine_bars_axis(a3, cells)
    a3.set_ylabel("cosine with the exact gradient")
    a3.set_title(f"alignment at T={T} (UORO: mean ± sd of one estimate)")
    a3.legend(fontsize=8, loc="lower right")
    for ax in (a1, a2):
        ax.grid(True, which="major", alpha=0.3)
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)
