"""`minirnn study lags`: where each cell's gradient comes from, by time lag.

For each cell: the one-layer language model of the two-dependency task (minirnn.studies.seqtask),
its mean cross-entropy on a fresh batch, and the gradient of the recurrent layer's parameters
split by lag k = t - tau (minirnn.grad.gradient_by_lag; Pascanu et al. 2013, eq. 3-5): at
torch's initial scale, and again after training on the task with chunks of --window steps.
The parts sum to the BPTT gradient (checked here on every run). Writes DIR/lags.csv (norm per
lag and parameter) and DIR/lags.png, and prints a table.
"""
from __future__ import annotations

from ..cells import BACKENDS

from ..cells import BUILTIN

NAME = "lags"
HELP = "the gradient split by time lag t - tau, per cell, at init and after training"
PHASES = ("init", "trained")
# the parts are the same sums as the BPTT gradient, regrouped: only round-off separates them
SUM_RTOL = 1e-10
FLAGS = {"cells": "--cells", "hidden": "--hidden", "T": "--T", "batch": "--batch",
         "window": "--window", "train_steps": "--train-steps", "seed": "--seed",
         "backend": "--backend", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default=",".join(BUILTIN), help="comma-separated cells")
    g.add_argument("--hidden", type=int, default=16, help="hidden size")
    g.add_argument("--T", type=int, default=40, help="time steps of the measured batch")
    g.add_argument("--batch", type=int, default=16, help="sequences of the measured batch")
    g.add_argument("--window", type=int, default=16,
                   help="truncation window (k1 = k2) of the training")
    g.add_argument("--train-steps", type=int, default=6000,
                   help="training steps per sequence (32 sequences)")
    g.add_argument("--seed", type=int, default=0, help="seed of the models and data")
    g.add_argument("--backend", choices=BACKENDS, default="numpy")
    g.add_argument("--out", required=True, metavar="DIR", help="where lags.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    from .. import _threads
    return _threads.step_product(args.batch * args.T, args.hidden)


def run(args):
    import os

    from .._io import write_text
    from .._progress import progress
    from .._table import text_table
    from ..grad.lags import language_model_lags
    from ..studies.seqtask import (cross_entropy_on_task, task_model, train_two_dependency,
                                   two_dependency_data)
    from . import _study_util as u

    cells = u.cells(args.cells)
    u.at_least(args, hidden="--hidden", T="--T", batch="--batch", window="--window",
               train_steps="--train-steps")
    os.makedirs(args.out, exist_ok=True)
    x, y, _ = two_dependency_data(args.batch, args.T, seed=args.seed + 7)   # the measured batch
    results, ces, errors = {}, {}, {}
    bar = progress(total=len(cells) * (args.train_steps + 2), desc="lags", unit="step",
                   unit_scale=True)
    for cell in cells:
        bar.set_description(f"lags {cell}")
        models = {"init": task_model(args.hidden, cell, args.seed, args.backend)}
        # the untrained model's test loss, on the data the trained one is scored on below
        ces[cell, "init"] = cross_entropy_on_task(models["init"], seed=args.seed + 2,
                                                  backend=args.backend)
        run = train_two_dependency(args.window, hidden=args.hidden, cell=cell,
                                   steps=args.train_steps, seed=args.seed, backend=args.backend,
                                   progress=bar.update)
        models["trained"], ces[cell, "trained"] = run.model, run.test_ce
        for phase, model in models.items():
            lag = language_model_lags(model, x, y)
            results[cell, phase] = lag
            errors[cell, phase] = _sum_error(model, x, y, lag)
            bar.update()
    bar.close()
    csv = ["cell,phase,lag,param,norm"]
    for (cell, phase), lag in results.items():
        pn = lag.param_norms()
        total = lag.norms()
        for k in lag.lags:
            csv += [f"{cell},{phase},{k},{n},{v[k]:.6e}" for n, v in pn.items()]
            csv.append(f"{cell},{phase},{k},all,{total[k]:.6e}")
    csv_path = os.path.join(args.out, "lags.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    show = [k for k in (1, 3, 8, 9, 15) if k < args.T]
    print(f"gradient by lag, two-dependency loss, H={args.hidden}, batch {args.batch} x "
          f"{args.T} steps; ||g_k|| / ||g_0|| (recurrent parameters); test CE on fresh data")
    rows = []
    for cell in cells:
        for phase in PHASES:
            n = results[cell, phase].norms()
            rows.append((cell, phase, f"{ces[cell, phase]:.4f}",
                         *(f"{n[k] / n[0]:.2e}" for k in show)))
    print(text_table(("cell", "phase", "test CE") + tuple(f"k={k}" for k in show), rows))
    line, code = sum_verdict(errors)
    print(line)
    u.plot_and_list(args.out, "lags", [csv_path],
                    lambda png: _plot(png, cells, results, ces, u.command(NAME, args, FLAGS), args))
    return code


def sum_verdict(errors):
    """{(cell, phase): relative error of the summed parts} -> the check's line and exit code:
    the parts must sum to the BPTT gradient within SUM_RTOL on every run."""
    from ._study_util import verdict
    judged = [f"{c} {ph}" for c, ph in errors]
    failed = [f"{c} {ph}" for (c, ph), e in errors.items() if not e <= SUM_RTOL]   # NaN fails
    worst = max(errors.values(), default=float("nan"))
    return verdict("parts sum to the BPTT gradient", judged, failed, "runs",
                   detail=f" (worst relative error {worst:.1e}, limit {SUM_RTOL:g})")


def _sum_error(model, x, y, lag):
    """max over parameters of ||sum_k g_k - g|| / ||g||, g from the model's own backward."""
    import numpy as np

    from ..nn.losses import cross_entropy
    rnn = model.rnn
    with rnn.preserve_record():
        model.eval()
        logits, _ = model.forward(x)
        B, T, V = logits.shape
        _, d = cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        saved = {n: g.copy() for n, _, g in rnn.named_parameters()}
        rnn.zero_grad()
        rnn.backward(d.reshape(B, T, V) @ model.fc.params["weight"])
        ref = {n: g.copy() for n, _, g in rnn.named_parameters()}
        for n, _, g in rnn.named_parameters():
            g[...] = saved[n]
        model.train()
    total = lag.total()
    return max(float(np.linalg.norm(total[n] - ref[n]) / np.linalg.norm(ref[n])) for n in ref)


def _plot(path, cells, results, ces, cmd, args):
    from .._io import pyplot, savefig
    from ._study_util import stamp
    plt = pyplot("the lag plot (lags.png)")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    colors = dict(zip(BUILTIN, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for ax, phase in zip(axes, PHASES):
        for cell in cells:
            lag = results[cell, phase]
            n = lag.norms()
            g = float(sum((v ** 2).sum() for v in lag.total().values()) ** 0.5)
            label = f"{cell} (test CE {ces[cell, phase]:.3f})"
            ax.semilogy(lag.lags, [v / g if v > 0 else float("nan") for v in n],
                        color=colors.get(cell), marker="o", markersize=3, label=label)
        for k in (3, 8):
            ax.axvline(k, color="0.5", linestyle=":", linewidth=1)
            ax.text(k + 0.2, 0.98, f"lag {k}", transform=ax.get_xaxis_transform(),
                    fontsize=8, color="0.3", va="top")
        ax.set_xlabel("lag k = t - tau (steps between the loss and the parameter use)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("||g_k|| / ||g||  (recurrent parameters)")
    axes[0].set_title(f"at torch's initial scale (H={args.hidden})")
    axes[1].set_title(f"after training on the two-dependency task (k = {args.window}, "
                      f"{args.train_steps} steps)")
    fig.suptitle("where the gradient of the two-dependency loss comes from, by time lag",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)
