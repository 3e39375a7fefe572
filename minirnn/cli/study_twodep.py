"""`minirnn study twodep`: which truncation windows learn which dependency of a task whose
best losses are known in advance.

The task (minirnn.studies.seqtask): X_t ~ Bernoulli(1/2), Y_t ~ Bernoulli(1/2 + X_{t-3}/2 -
X_{t-8}/4); its three cross-entropy floors (nothing learned, X_{t-3} only, both) are exact.
For each cell, hidden size, truncation window k and seed: a one-layer language model trained
with truncated BPTT (k1 = k2 = k by default: chunks, the state carried across) and Adam, then
its cross-entropy on fresh data. Writes DIR/twodep.csv (one row per run), DIR/twodep_curves.csv
(the training loss as it went) and DIR/twodep.png, and prints a table against the floors.
"""
from __future__ import annotations

from ..cells import BACKENDS

NAME = "twodep"
HELP = "the two-dependency task: which truncation windows learn which dependency"
DEFAULTS = dict(hidden="4,32", windows="2,3,4,5,6,8,9,12", steps=10000, seeds="0")
FULL = dict(hidden="4,8,32", windows="1,2,3,4,5,6,7,8,9,10,12,16", steps=20000, seeds="0,1,2")
FLAGS = {"cells": "--cells", "hidden": "--hidden", "windows": "--windows", "k1": "--k1",
         "steps": "--steps", "batch": "--batch", "lr": "--lr", "seeds": "--seeds",
         "eval_steps": "--eval-steps", "backend": "--backend", "out": "--out"}


def add_arguments(g):
    g.add_argument("--cells", default="rnn_tanh", help="comma-separated cells")
    g.add_argument("--hidden", default=None,
                   help=f"comma-separated hidden sizes (default {DEFAULTS['hidden']})")
    g.add_argument("--windows", default=None,
                   help=f"comma-separated truncation windows k2 (default {DEFAULTS['windows']})")
    g.add_argument("--k1", type=int, default=None,
                   help="steps between updates (default: k1 = k2, chunks; 1: every loss sees "
                        "its last k2 steps, slower)")
    g.add_argument("--steps", type=int, default=None,
                   help=f"training steps per sequence (default {DEFAULTS['steps']})")
    g.add_argument("--batch", type=int, default=32, help="sequences trained side by side")
    g.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    g.add_argument("--seeds", default=None,
                   help=f"comma-separated seeds, one run each (default {DEFAULTS['seeds']})")
    g.add_argument("--eval-steps", type=int, default=1000,
                   help="steps of each of 64 fresh test sequences")
    g.add_argument("--backend", choices=BACKENDS, default="numpy")
    g.add_argument("--full", action="store_true",
                   help=f"the larger study: hidden {FULL['hidden']}, windows {FULL['windows']}, "
                        f"{FULL['steps']} steps, seeds {FULL['seeds']} (flags given still win)")
    g.add_argument("--out", required=True, metavar="DIR", help="where twodep.csv/.png go")


def step_product(args):
    """Multiply-adds of the study's per-step recurrent product (the thread rule's input)."""
    from .. import _threads
    return _threads.step_product(args.batch, 32)


def _settings(args):
    """Fill the flags left unset from DEFAULTS, or FULL with --full."""
    base = FULL if args.full else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def verdict(ce, floors):
    """What a test cross-entropy says was learned, against the floors."""
    nothing, first, both = floors
    if ce > (nothing + first) / 2:
        return "nothing"
    if ce > first - 0.25 * (first - both):
        return "t-3"
    if ce > both + 0.25 * (first - both):
        return "t-3, part of t-8"
    return "t-3 and t-8"


def run(args):
    import os
    import time

    import numpy as np

    from .._io import write_text
    from .._progress import progress
    from .._table import text_table
    from ..studies.seqtask import dependency_floors, memory_probe, task_model, train_two_dependency
    from . import _study_util as u

    _settings(args)
    cells = u.cells(args.cells)
    hidden = u.numbers("--hidden", args.hidden, int, low=1)
    windows = u.numbers("--windows", args.windows, int, low=1)
    seeds = u.numbers("--seeds", args.seeds, int, low=0)
    u.at_least(args, steps="--steps", batch="--batch", eval_steps="--eval-steps")
    if args.k1 is not None and (args.k1 < 1 or args.k1 > min(windows)):
        raise ValueError(f"--k1: expected 1 <= k1 <= the smallest window {min(windows)}, "
                         f"got {args.k1}")
    if not args.lr > 0:
        raise ValueError(f"--lr: expected a positive learning rate, got {args.lr}")
    os.makedirs(args.out, exist_ok=True)
    floors = dependency_floors()
    runs = [(c, h, k, s) for c in cells for h in hidden for k in windows for s in seeds]
    bar = progress(total=len(runs) * args.steps, desc="twodep", unit="step", unit_scale=True)
    results, t0 = {}, time.perf_counter()
    for c, h, k, s in runs:
        bar.set_description(f"twodep {c} H={h} k={k} seed={s}")
        results[c, h, k, s] = train_two_dependency(
            k, hidden=h, k1=args.k1, cell=c, steps=args.steps, batch=args.batch, lr=args.lr,
            seed=s, backend=args.backend, eval_steps=args.eval_steps, progress=bar.update)
    bar.close()
    wall = time.perf_counter() - t0
    init = {(c, h, s): memory_probe(task_model(h, c, s, args.backend), seed=s + 3)
            for c in cells for h in hidden for s in seeds}       # the untrained state's memory
    csv = ["cell,hidden,k1,k2,seed,test_ce,train_ce_last,floor_nothing,floor_t3,floor_both,"
           "verdict,probe_x3,probe_x8,init_probe_x3,init_probe_x8"]
    curves = ["cell,hidden,k2,seed,steps_seen,train_ce"]
    for (c, h, k, s), r in results.items():
        csv.append(f"{c},{h},{r.k1},{k},{s},{r.test_ce:.6f},{r.train_ce[-1]:.6f},"
                   f"{floors.nothing:.6f},{floors.first:.6f},{floors.both:.6f},"
                   f"{verdict(r.test_ce, floors)},{r.memory[3]:.4f},{r.memory[8]:.4f},"
                   f"{init[c, h, s][3]:.4f},{init[c, h, s][8]:.4f}")
        curves += [f"{c},{h},{k},{s},{n},{v:.6f}" for n, v in zip(r.seen, r.train_ce)]
    csv_path = os.path.join(args.out, "twodep.csv")
    write_text(csv_path, "\n".join(csv) + "\n")
    write_text(os.path.join(args.out, "twodep_curves.csv"), "\n".join(curves) + "\n")
    print(f"two-dependency task, test cross-entropy (nats) per window; floors: nothing "
          f"{floors.nothing:.4f}, X(t-3) only {floors.first:.4f}, both {floors.both:.4f}; "
          f"{args.steps} steps x {args.batch} sequences, k1 = "
          f"{'k2' if args.k1 is None else args.k1}, {wall:.0f} s")
    print("X(t-j) in h: a linear read-out of X_{t-j} from the state h_t, accuracy on held-out "
          "data (0.5 = chance), untrained -> trained (mean over seeds)")
    rows = []
    for c in cells:
        for h in hidden:
            for k in windows:
                ces = [results[c, h, k, s].test_ce for s in seeds]
                m = float(np.mean(ces))
                mem = {j: (np.mean([init[c, h, s][j] for s in seeds]),
                           np.mean([results[c, h, k, s].memory[j] for s in seeds])) for j in (3, 8)}
                rows.append((c, h, k, f"{m:.4f}", " ".join(f"{v:.4f}" for v in ces),
                             f"{m - floors.first:+.4f}", f"{m - floors.both:+.4f}",
                             verdict(m, floors),
                             *(f"{a:.2f} -> {b:.2f}" for a, b in mem.values())))
    print(text_table(("cell", "H", "k", "test CE", "per seed", "- t-3 floor", "- both floor",
                      "learned", "X(t-3) in h", "X(t-8) in h"), rows))
    cmd = u.command(NAME, args, FLAGS)
    u.plot_and_list(args.out, "twodep", [csv_path],
                    lambda png: _plot(png, cells, hidden, windows, seeds, results, init, floors,
                                      cmd, args))
    return 0


def _plot(path, cells, hidden, windows, seeds, results, init, floors, cmd, args):
    import numpy as np

    from .._io import pyplot, savefig
    from ._study_util import stamp
    plt = pyplot("the two-dependency plot (twodep.png)")
    fig, (ax, ax3, ax2) = plt.subplots(1, 3, figsize=(20, 5.8),
                                       gridspec_kw={"width_ratios": [1.25, 1, 1]})
    floor_lines = ((floors.nothing, "nothing learned", "tab:red"),
                   (floors.first, "X(t-3) only", "tab:orange"),
                   (floors.both, "both dependencies", "tab:green"))
    for a in (ax, ax2):
        for v, label, color in floor_lines:
            a.axhline(v, color=color, linestyle="--", linewidth=1,
                      label=f"floor: {label} ({v:.4f})")
    markers = ["o", "s", "^", "D", "v", "P"]
    cmap = plt.get_cmap("viridis")
    lines = [(c, h) for c in cells for h in hidden]
    for i, (c, h) in enumerate(lines):
        color = cmap(i / max(1, len(lines) - 1) * 0.85)
        mean = [np.mean([results[c, h, k, s].test_ce for s in seeds]) for k in windows]
        ax.plot(windows, mean, color=color, marker=markers[i % len(markers)],
                label=f"{c}, H={h}" + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
        if len(seeds) > 1:
            for k in windows:
                ax.scatter([k] * len(seeds), [results[c, h, k, s].test_ce for s in seeds],
                           color=color, s=10, alpha=0.5)
    top = floors.nothing + 0.25 * (floors.nothing - floors.both)
    for k, text in ((4, "lag 3 reachable (k >= 4)"), (9, "lag 8 reachable (k >= 9)")):
        ax.axvline(k - 0.5, color="0.5", linestyle=":", linewidth=1)
        ax.text(k - 0.4, top, text, fontsize=8, color="0.3", va="top")
    ax.set_xlabel("truncation window k, steps (" + ("chunks: k1 = k2 = k" if args.k1 is None
                                                   else f"k1 = {args.k1}, k2 = k") + ")")
    ax.set_ylabel("test cross-entropy (nats per step)")
    ax.set_title("Y ~ Bern(1/2 + X(t-3)/2 - X(t-8)/4): test loss after training")
    ax.set_xticks(windows)
    ax.set_ylim(floors.both - 0.03, top + 0.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    for i, (c, h) in enumerate(lines):
        color = cmap(i / max(1, len(lines) - 1) * 0.85)
        for j, style in ((3, "--"), (8, "-")):
            acc = [np.mean([results[c, h, k, s].memory[j] for s in seeds]) for k in windows]
            ax3.plot(windows, acc, color=color, linestyle=style, marker=markers[i % len(markers)],
                     label=f"{c}, H={h}: X(t-{j}) after training")
            ax3.axhline(np.mean([init[c, h, s][j] for s in seeds]), color=color, linestyle=style,
                        linewidth=0.8, alpha=0.5)
    ax3.axhline(0.5, color="0.5", linewidth=0.8)
    ax3.text(windows[0], 0.505, "chance", fontsize=8, color="0.4")
    ax3.set_xticks(windows)
    ax3.set_xlabel("truncation window k, steps")
    ax3.set_ylabel("accuracy of a linear read-out of X(t-j) from h_t")
    ax3.set_title("is the input still in the state? (thin lines: untrained)")
    ax3.set_ylim(0.45, 1.02)
    ax3.grid(True, alpha=0.3)
    ax3.legend(fontsize=7, loc="center right")
    h_big, c0, s0 = max(hidden), cells[0], seeds[0]
    for j, k in enumerate(windows):
        r = results[c0, h_big, k, s0]
        ax2.semilogx(r.seen, r.train_ce, color=plt.get_cmap("plasma")(j / len(windows)),
                     label=f"k = {k}")
    ax2.set_xlabel("training steps per sequence (log scale)")
    ax2.set_ylabel("training cross-entropy (nats per step, mean of each stretch)")
    ax2.set_title(f"how {c0}, H={h_big} (seed {s0}) learned, per window")
    ax2.set_ylim(floors.both - 0.03, top + 0.01)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, cmd)
    savefig(fig, path, dpi=110)
    plt.close(fig)

