"""`minirnn study truncation`: how wrong the truncated-BPTT gradient is, per truncation length.

For each cell and W_hh scale: a one-layer model (torch's init, then W_hh x scale), a random
input of T steps and a loss at every step (a fixed random projection of each output); the
gradient truncated BPTT (k1, k2) uses (minirnn.grad.truncated_gradient) against the full BPTT
gradient, as cosine similarity and relative error, for each truncation length k: chunks
(k1 = k2 = k, the state carried across) and a sliding window (k1 = 1, k2 = k: every loss sees
its last k steps). Writes DIR/truncation.csv and DIR/truncation.png and prints a table.
"""
from __future__ import annotations

from ..cells import BACKENDS

from ..cells import BUILTIN

NAME = "truncation"
HELP = "truncated-BPTT (k1, k2) gradient vs the full gradient: cosine and relative error"
STYLES = ("chunks", "sliding")          # k1 = k2 = k;  k1 = 1, k2 = k
FLAGS = {"cells": "--cells", "T": "--T", "hidden": "--hidden", "input_size": "--input-size",
         "batch": "--batch", "lengths": "--lengths", "weight_scale": "--weight-scale",
         "seed": "--seed", "backend": "--backend", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default=",".join(BUILTIN), help="comma-separated cells")
    g.add_argument("--T", type=int, default=100, help="time steps")
    g.add_argument("--hidden", type=int, default=32, help="hidden size")
    g.add_argument("--input-size", type=int, default=8, help="input features")
    g.add_argument("--batch", type=int, default=4, help="sequences")
    g.add_argument("--lengths", default=None,
                   help="comma-separated truncation lengths k (default: about 1.5x apart, 1..T)")
    g.add_argument("--weight-scale", default="1,2",
                   help="comma-separated factors on W_hh after its uniform init")
    g.add_argument("--seed", type=int, default=0, help="seed of the models and data")
    g.add_argument("--backend", choices=BACKENDS, default="numpy")
    g.add_argument("--out", required=True, metavar="DIR", help="where truncation.csv/.png go")


def default_lengths(T):
    """1, 2, 3, 5, 8, ... about x1.5 apart, and T itself."""
    ks, k = [], 1
    while k < T:
        ks.append(k)
        k = max(k + 1, int(round(k * 1.5)))
    return ks + [T]


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    from .. import _threads
    return _threads.step_product(args.batch, args.hidden)


def run(args):
    import os

    import numpy as np

    from .._io import write_text
    from .._progress import progress
    from .._table import text_table
    from ..studies.flow import scale_recurrent
    from ..grad.truncated import truncation_bias
    from ..nn import make_recurrent
    from . import _study_util as u

    cells = u.cells(args.cells)
    u.at_least(args, T="--T", hidden="--hidden", input_size="--input-size", batch="--batch")
    scales = u.numbers("--weight-scale", args.weight_scale, float)
    if any(not s > 0 for s in scales):
        raise ValueError(f"--weight-scale: expected positive numbers, got {args.weight_scale!r}")
    ks = default_lengths(args.T) if args.lengths is None else \
        u.numbers("--lengths", args.lengths, int, low=1)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.T, args.batch, args.input_size))
    results = {}
    work = len(cells) * len(scales) * len(STYLES)
    bar = progress(total=work, desc="truncation", unit="run")
    for cell in cells:
        for scale in scales:
            m = scale_recurrent(make_recurrent(cell, args.input_size, args.hidden, seed=args.seed,
                                               backend=args.backend), scale)
            d_out = np.random.default_rng(args.seed + 1).standard_normal(
                (args.T, args.batch, m.out_size))           # L = sum_t <u_t, out_t>
            for style in STYLES:
                bar.set_description(f"truncation {cell} x{scale:g} {style}")
                results[cell, scale, style] = truncation_bias(
                    m, x, d_out, ks, k1=None if style == "chunks" else 1)
                bar.update()
    bar.close()
    csv = ["cell,weight_scale,style,k1,k2,cosine,rel_error"]
    for (cell, scale, style), b in results.items():
        for i, k in enumerate(b.k2):
            csv.append(f"{cell},{scale:g},{style},{k if style == 'chunks' else 1},{k},"
                       f"{b.cosine[i]:.12f},{b.rel_error[i]:.6e}")
    csv_path = os.path.join(args.out, "truncation.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    show = sorted({ks[int(round(i))] for i in np.linspace(0, len(ks) - 1, min(6, len(ks)))})
    print(f"truncated BPTT vs full BPTT: T={args.T} H={args.hidden} B={args.batch}, a loss at "
          f"every step; cosine / relative error at truncation length k")
    at = {k: i for i, k in enumerate(ks)}
    print(text_table(("cell", "W_hh x", "style") + tuple(f"k={k}" for k in show),
                     [(c, f"{s:g}", st) + tuple(f"{b.cosine[at[k]]:.3f} / {b.rel_error[at[k]]:.1e}"
                                                for k in show)
                      for (c, s, st), b in results.items()]))
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "truncation", [csv_path],
                    lambda png: _plot(png, cells, scales, results, cmd, args))
    return 0


def _plot(path, cells, scales, results, cmd, args):
    from .._io import pyplot, savefig
    from ._study_util import stamp
    plt = pyplot("the truncation plot (truncation.png)")
    fig, axes = plt.subplots(2, len(scales), figsize=(6.2 * len(scales), 8.2), squeeze=False,
                             sharex=True)
    colors = dict(zip(BUILTIN, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    styles = {"chunks": "-", "sliding": "--"}
    labels = {"chunks": "chunks k1 = k2 = k", "sliding": "sliding k1 = 1, k2 = k"}
    for j, scale in enumerate(scales):
        top, bottom = axes[0, j], axes[1, j]
        for cell in cells:
            for style in STYLES:
                b = results[cell, scale, style]
                kw = dict(color=colors.get(cell), linestyle=styles[style], marker="o",
                          markersize=3, label=f"{cell}, {labels[style]}")
                top.semilogx(b.k2, b.cosine, **kw)
                rel = [r if r > 0 else float("nan") for r in b.rel_error]
                bottom.loglog(b.k2, rel, **kw)
        top.set_title(f"truncated vs full BPTT gradient, W_hh x {scale:g} "
                      f"(T={args.T}, H={args.hidden})")
        top.set_ylabel("cosine similarity with the full gradient")
        bottom.set_ylabel("relative error ||g_k - g|| / ||g||")
        bottom.set_xlabel("truncation length k (steps)")
        for ax in (top, bottom):
            ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)
