"""`minirnn study float32`: how much float32 loses against float64 as the sequence grows.

For each cell and length T (log-spaced, 1 to 10,000): one layer with torch's init, float32
data, the relative error ‖a32 - a64‖/‖a64‖ of out, dx and the parameter gradients of each
backend (minirnn numpy, minirnn numba, torch CPU) against minirnn's float64 numpy reference
with the very same numbers (minirnn.studies.precision). Writes DIR/float32.csv and
DIR/float32.png and prints a table. The default (B=4, H=32) keeps the numpy reference's
10,000 steps at batch 4 inside the 2-minute budget on a 2-core machine.
"""
from __future__ import annotations

from ..cells import BUILTIN

NAME = "float32"
HELP = "float32 vs float64 error of outputs and gradients as T grows, per backend"
DEFAULT_T = "1,3,10,30,100,300,1000,3000,10000"
FLAGS = {"cells": "--cells", "T": "--T", "hidden": "--hidden", "batch": "--batch",
         "input_size": "--input-size", "backends": "--backends", "weight_scale": "--weight-scale",
         "seed": "--seed", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default=",".join(BUILTIN), help="comma-separated cells")
    g.add_argument("--T", default=DEFAULT_T, help="comma-separated sequence lengths")
    g.add_argument("--hidden", type=int, default=32, help="hidden size")
    g.add_argument("--batch", type=int, default=4, help="sequences per run")
    g.add_argument("--input-size", type=int, default=8, help="input features")
    g.add_argument("--backends", default="numpy,numba,torch",
                   help="comma-separated: numpy, numba, torch (torch skipped if not installed)")
    g.add_argument("--weight-scale", type=float, default=1.0,
                   help="factor on W_hh after torch's init (> 1: towards chaos)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    g.add_argument("--out", required=True, metavar="DIR", help="where float32.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    from .. import _threads
    return _threads.step_product(args.batch, args.hidden)


def run(args):
    import os

    from .._io import write_text
    from .._table import text_table
    from ..studies.precision import BACKENDS, QUANTITIES, float32_error_growth, torch_available
    from . import _study_util as u

    cells = u.cells(args.cells)
    steps = u.numbers("--T", args.T, int, low=1)
    u.at_least(args, hidden="--hidden", batch="--batch", input_size="--input-size")
    if not args.weight_scale > 0:
        raise ValueError(f"--weight-scale: expected a positive number, got {args.weight_scale}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in BACKENDS for b in backends):
        raise ValueError(f"--backends: expected some of {','.join(BACKENDS)}, got "
                         f"{args.backends!r}")
    if "torch" in backends and not torch_available():
        print("torch is not installed: the torch backend is skipped "
              "(pip install 'minirnn[torch]')")
        backends.remove("torch")
        if not backends:
            raise ValueError("--backends: only torch was asked for, and it is not installed")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for cell in cells:
        rows += float32_error_growth(cell, steps, backends, hidden=args.hidden,
                                     input_size=args.input_size, batch=args.batch,
                                     weight_scale=args.weight_scale, seed=args.seed,
                                     progress=True)
    csv = ["cell,backend,T,quantity,rel_error"] + [
        f"{r.cell},{r.backend},{r.T},{r.quantity},{r.rel_error:.6e}" for r in rows]
    csv_path = os.path.join(args.out, "float32.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    lo, hi = min(steps), max(steps)
    err = {(r.cell, r.backend, r.T, r.quantity): r.rel_error for r in rows}
    print(f"float32 vs float64 relative error, B={args.batch} H={args.hidden} "
          f"I={args.input_size}, W_hh x {args.weight_scale:g}; at T={lo} -> T={hi}")
    print(text_table(("cell", "backend") + QUANTITIES,
                     [(c, b) + tuple(f"{err[c, b, lo, q]:.1e} -> {err[c, b, hi, q]:.1e}"
                                     for q in QUANTITIES)
                      for c in cells for b in backends]))
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "float32", [csv_path],
                    lambda png: _plot(png, cells, backends, steps, err, cmd, args))
    return 0


def _plot(path, cells, backends, steps, err, cmd, args):
    import numpy as np

    from .._io import pyplot, savefig
    from ..studies.precision import QUANTITIES
    from ._study_util import stamp
    plt = pyplot("the float32 plot (float32.png)")
    n = len(cells)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.2 * rows + 0.4),
                             squeeze=False, sharey=True)
    colors = {"numpy": "tab:blue", "numba": "tab:orange", "torch": "tab:green"}
    styles = {"out": "-", "dx": "--", "params": ":"}
    markers = {"out": "o", "dx": "s", "params": "^"}
    T = np.array(steps)
    for ax, cell in zip(axes.ravel(), cells):
        for b in backends:
            for q in QUANTITIES:
                ax.loglog(T, [err[cell, b, t, q] for t in steps], color=colors[b],
                          linestyle=styles[q], marker=markers[q], markersize=4,
                          label=f"{b}: {q if q != 'params' else 'param grads'}")
        ax.axhline(2.0 ** -24, color="gray", linewidth=0.8, linestyle="-.",
                   label="float32 unit roundoff 2^-24")
        ax.set_title(f"{cell}: float32 vs float64 (W_hh x {args.weight_scale:g})")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("relative error ||a32 - a64|| / ||a64||")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, ncol=2)
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)
