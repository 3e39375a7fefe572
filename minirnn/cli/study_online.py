"""`minirnn study online`: every online method on every cell -- how well each one's gradient
lines up with the exact one while it learns, and what loss it learns to.

For each task, cell and method (minirnn.grad.online_gradient's: rtrl, snap-1, snap-2, uoro,
kf-rtrl, rflo, e-prop): one recurrent layer and a linear read-out trained online (Adam after
every step with a loss; minirnn.studies.online.train_online), with exact RTRL run beside it
on the same states and parameters. Reported: the alignment, the cosine between the method's
gradient for a step's loss and the exact one (the mean over the run, and over its first and
last fifth), and the loss reached (the mean over the last quarter of the run) against the
loss of learning nothing and the best possible. Tasks: twodep (Y_t depends on X_{t-3} and
X_{t-8}; a loss every step), add (the adding problem, episodes of --add-length steps, a loss
at the end of each), and the chaotic series henon, lorenz, mackey-glass (next-step
prediction; --anchor: the sketched-RTRL benchmark's setting). Writes DIR/online.csv,
DIR/online_curves.csv and DIR/online.png and prints a table.
"""
from __future__ import annotations

NAME = "online"
HELP = "online methods (RTRL, SnAp, UORO, KF-RTRL, RFLO, e-prop): alignment and loss reached"
ANCHOR = dict(cells="rnn_tanh", methods="snap-1,kf-rtrl,rflo:0.9,uoro,e-prop",
              tasks="henon,lorenz,mackey-glass", hidden=64, lr=0.001, steps=400)
FLAGS = {"cells": "--cells", "methods": "--methods", "tasks": "--tasks", "hidden": "--hidden",
         "batch": "--batch", "steps": "--steps", "add_steps": "--add-steps",
         "add_length": "--add-length", "lr": "--lr", "sparsity": "--sparsity", "seed": "--seed",
         "anchor": "--anchor", "common": "--common", "out": "--out"}


def add_arguments(g):
    from ..cells import BUILTIN
    from ..grad.online import METHODS
    g.add_argument("--cells", default=None, help=f"comma-separated cells (default all: "
                   f"{','.join(BUILTIN)})")
    g.add_argument("--methods", default=None,
                   help=f"comma-separated methods (default {','.join(METHODS)}); snap-n for "
                        f"any n; rflo:G is RFLO with a fixed trace decay G")
    g.add_argument("--tasks", default=None, help="comma-separated tasks of twodep, add, henon, "
                   "lorenz, mackey-glass (default twodep,add)")
    g.add_argument("--hidden", type=int, default=None, help="hidden size (default 8)")
    g.add_argument("--batch", type=int, default=8, help="sequences learned side by side")
    g.add_argument("--steps", type=int, default=None,
                   help="steps of the twodep and chaotic streams (default 2000; --anchor 400)")
    g.add_argument("--add-steps", type=int, default=3200, help="steps of the add stream")
    g.add_argument("--add-length", type=int, default=8, help="steps of an add episode")
    g.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default 0.01)")
    g.add_argument("--sparsity", type=float, default=0.0,
                   help="the fraction of W_hh fixed at 0 for every method (SnAp-2 is RTRL on "
                        "a dense W_hh: its pattern is full after two steps)")
    g.add_argument("--seed", type=int, default=0, help="seed of models, data and signs")
    g.add_argument("--anchor", action="store_true",
                   help="the sketched-RTRL benchmark's setting: rnn_tanh, H=64, lr 0.001, the "
                        "three chaotic series, RFLO with its fixed decay 0.9 (RFLO with the "
                        "cell's own leak is e-prop on this cell); flags given still win; about "
                        "ten minutes here")
    g.add_argument("--common", action="store_true",
                   help="also run every method beside exact RTRL's own run, on its states and "
                        "parameters (not steering them): each method's alignment on one common "
                        "trajectory (DIR/online_common.csv and a table)")
    g.add_argument("--out", required=True, metavar="DIR", help="where online.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    return 1                                                    # small products: 1 thread


def _settings(args):
    base = dict(ANCHOR) if args.anchor else dict(
        cells=None, methods=None, tasks="twodep,add", hidden=8, lr=0.01, steps=2000)
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _methods(text):
    """'snap-1,rflo:0.9' -> [(label, method, options)], each checked."""
    from ..grad.online import check_options, parse_method
    out = []
    for token in (t.strip() for t in str(text).split(",") if t.strip()):
        name, _, decay = token.partition(":")
        try:
            family, _ = parse_method(name)
            opts = {"decay": float(decay)} if decay else {}
            check_options(family, opts)
        except (ValueError, TypeError) as e:
            raise ValueError(f"--methods: {e} (in {token!r})") from None
        out.append((f"rflo(decay {decay})" if decay else name, name, opts))
    if not out:
        raise ValueError(f"--methods: expected comma-separated methods, got {text!r}")
    return out


def _streams(args, tasks):
    from ..studies import online_tasks as ot
    out = {}
    for task in tasks:
        if task == "twodep":
            out[task] = ot.two_dependency_stream(args.batch, args.steps, seed=args.seed + 1)
        elif task == "add":
            out[task] = ot.adding_stream(args.batch, args.add_steps, seed=args.seed + 1,
                                         length=args.add_length)
        elif task in ot.CHAOTIC:
            out[task] = ot.chaotic_stream(task, args.batch, args.steps, seed=args.seed + 1)
        else:
            raise ValueError(f"--tasks: expected some of twodep,add,"
                             f"{','.join(ot.CHAOTIC)}, got {task!r}")
    return out


def run(args):
    import os

    import numpy as np

    from .._io import write_text
    from .._progress import progress
    from ..grad.online import recurrent_mask
    from ..cells import BUILTIN
    from ..nn import make_recurrent
    from ..studies.online import train_online
    from . import _study_util as u

    _settings(args)
    cells = u.cells(args.cells or ",".join(BUILTIN))
    methods = _methods(args.methods or "rtrl,snap-1,snap-2,uoro,kf-rtrl,rflo,e-prop")
    tasks = [t.strip() for t in str(args.tasks).split(",") if t.strip()]
    u.at_least(args, hidden="--hidden", batch="--batch", steps="--steps",
               add_steps="--add-steps")
    u.at_least(args, low=2, add_length="--add-length")
    if not args.lr > 0:
        raise ValueError(f"--lr: expected a positive learning rate, got {args.lr}")
    if not 0 <= args.sparsity < 1:
        raise ValueError(f"--sparsity: expected a number in [0, 1), got {args.sparsity}")
    watch = {label: (m, o) for label, m, o in methods if m != "rtrl"}
    if args.common and len(watch) == len(methods):
        raise ValueError(f"--common: measures the methods on exact RTRL's run, so --methods "
                         f"needs rtrl, got {args.methods!r}")
    streams = _streams(args, tasks)
    os.makedirs(args.out, exist_ok=True)
    runs = [(t, c, m) for t in tasks for c in cells for m in methods]
    total = sum(len(streams[t].x) for t, _, _ in runs)
    bar = progress(total=total, desc="online study", unit="step", unit_scale=True)
    results = {}
    for task, cell, (label, method, opts) in runs:
        bar.set_description(f"online {task} {cell} {label}")
        mask = None
        if args.sparsity > 0:      # the same fixed pattern for every method on this cell
            probe = make_recurrent(cell, streams[task].x.shape[-1], args.hidden)
            mask = recurrent_mask(probe, args.sparsity, seed=args.seed)
        results[task, cell, label] = train_online(
            streams[task], cell, method, hidden=args.hidden, lr=args.lr, seed=args.seed,
            options=opts, mask=mask, progress=bar.update,
            watch=watch if args.common and method == "rtrl" else None)
    bar.close()
    rows = _csv_rows(results, streams, args)
    csv_path = os.path.join(args.out, "online.csv")
    write_text(csv_path, "\n".join(rows[0]) + "\n")
    write_text(os.path.join(args.out, "online_curves.csv"), "\n".join(rows[1]) + "\n")
    _print(results, streams, tasks, cells, [m[0] for m in methods], args)
    written = [csv_path, os.path.join(args.out, "online_curves.csv")]
    if args.common:
        written.append(_common(results, tasks, cells, list(watch), args))
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "online", written,
                    lambda png: _plot(png, results, streams, tasks, cells,
                                      [m[0] for m in methods], cmd, np))
    return 0


def _fifths(r):
    """The mean alignment over the first and the last fifth of a run's steps."""
    import numpy as np
    c = r.cosines[np.isfinite(r.cosines)]
    n = max(1, len(c) // 5)
    return (float(c[:n].mean()), float(c[-n:].mean())) if c.size else (np.nan, np.nan)


def _csv_rows(results, streams, args):
    head = ("task,cell,method,hidden,batch,steps,lr,sparsity,seed,alignment,alignment_first,"
            "alignment_last,loss_reached,loss_nothing,loss_floor,influence_numbers,wall_s")
    rows, curves = [head], ["task,cell,method,step,alignment,loss"]
    for (task, cell, label), r in results.items():
        first, last = _fifths(r)
        s = streams[task]
        rows.append(f"{task},{cell},{label},{args.hidden},{args.batch},{len(s.x)},{args.lr},"
                    f"{args.sparsity},{args.seed},{r.alignment():.6f},{first:.6f},{last:.6f},"
                    f"{r.final_loss():.6f},{s.nothing:.6f},{s.floor:.6f},{r.numbers},"
                    f"{r.wall:.2f}")
        curves += [f"{task},{cell},{label},{step},{c:.6f},{loss:.6f}"
                   for step, c, loss in r.binned()]
    return rows, curves


def _common(results, tasks, cells, labels, args):
    """Each method's alignment on exact RTRL's run: a table per task, and the CSV's path."""
    import os

    from .._io import write_text
    from .._table import text_table
    csv = ["task,cell,method,alignment,alignment_first,alignment_last"]
    for t in tasks:
        print(f"\n{t}: each method's alignment on exact RTRL's own run, the same states and "
              f"parameters for all (mean, first>last fifth)")
        rows = []
        for c in cells:
            run = results[t, c, "rtrl"]
            row = [c]
            for m in labels:
                r = run._replace(cosines=run.watched[m])
                first, last = _fifths(r)
                row.append(f"{r.alignment():.2f} {first:.2f}>{last:.2f}")
                csv.append(f"{t},{c},{m},{r.alignment():.6f},{first:.6f},{last:.6f}")
            rows.append(row)
        print(text_table(["cell"] + labels, rows, align="right"))
    path = os.path.join(args.out, "online_common.csv")
    write_text(path, "\n".join(csv) + "\n")
    return path


def _print(results, streams, tasks, cells, labels, args):
    import textwrap

    from .._table import text_table
    say = lambda text: print(textwrap.fill(text, 118, subsequent_indent="  "))  # noqa: E731
    say(f"online learning: H={args.hidden}, batch {args.batch}, Adam lr {args.lr}, W_hh "
        f"sparsity {args.sparsity}, seed {args.seed}. cos: the mean cosine of the method's "
        f"gradient for a step's loss with exact RTRL's (over the whole run; over its first and "
        f"last fifth); loss: the mean over the last quarter of the run")
    for t in tasks:
        s = streams[t]
        print()
        say(f"{t}: {len(s.x)} steps, {int(s.has_target.sum())} with a loss; learning nothing "
            f"scores {s.nothing:.4f}, the best possible {s.floor:.4f}")
        rows = []
        for c in cells:
            for m in labels:
                r = results[t, c, m]
                first, last = _fifths(r)
                rows.append((c, m, f"{r.alignment():.3f}", f"{first:.2f} -> {last:.2f}",
                             f"{r.final_loss():.4f}", f"{r.numbers:,}", f"{r.wall:.1f}"))
        print(text_table(("cell", "method", "cos", "first -> last fifth", "loss reached",
                          "influence floats", "seconds"), rows, align="right"))


def _plot(path, results, streams, tasks, cells, labels, cmd, np):
    from .._io import pyplot, savefig
    from ._study_util import cosine_bars_axis, stamp
    plt = pyplot("the online-learning plot (online.png)")
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.5 * len(tasks), 9.5), squeeze=False)
    colors = plt.get_cmap("tab10")
    markers = dict(zip(cells, "osD^v"))
    width = 0.8 / len(labels)
    for j, t in enumerate(tasks):
        top, bottom = axes[0, j], axes[1, j]
        for k, m in enumerate(labels):
            vals = [results[t, c, m].alignment() for c in cells]
            top.bar(np.arange(len(cells)) + (k - (len(labels) - 1) / 2) * width, vals, width,
                    color=colors(k), label=m)
            for c in cells:
                r = results[t, c, m]
                bottom.scatter(r.alignment(), r.final_loss(), color=colors(k),
                               marker=markers.get(c, "o"), s=40,
                               label=c if k == 0 else None)
        cosine_bars_axis(top, cells)
        top.set_ylim(top.get_ylim()[0], 1.32)                      # room for the legend
        top.set_ylabel("mean cosine with the exact (RTRL) step gradient")
        top.set_title(f"{t}: alignment while learning ({len(streams[t].x)} steps)")
        top.legend(fontsize=7, ncol=4, loc="upper center")
        s = streams[t]
        bottom.axhline(s.nothing, color="tab:red", linestyle="--", linewidth=1,
                       label=f"learning nothing ({s.nothing:.3f})")
        bottom.axhline(s.floor, color="tab:green", linestyle="--", linewidth=1,
                       label=f"best possible ({s.floor:.3f})")
        bottom.set_xlabel("alignment (mean cosine; colour: method as above)")
        bottom.set_ylabel("loss reached (mean over the last quarter)")
        bottom.set_title(f"{t}: does alignment explain the loss reached?")
        bottom.legend(fontsize=7, loc="upper right")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
    stamp(fig, cmd)
    savefig(fig, path, dpi=100)
    plt.close(fig)
