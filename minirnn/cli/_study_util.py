"""Small pieces the `minirnn study` modules share: list flags, the command line a plot is
stamped with, the stamp itself, the picture drawn after the numbers are written, and the
pass/fail line of a study that checks something."""
from __future__ import annotations

from ..cells import BUILTIN


def cells(text, flag="--cells"):
    """'rnn_tanh,lstm' -> ['rnn_tanh', 'lstm'] (registry names), else ValueError naming flag."""
    names = [c.strip() for c in str(text).split(",") if c.strip()]
    bad = [c for c in names if c not in BUILTIN]
    if bad or not names:
        raise ValueError(f"{flag}: expected some of {','.join(BUILTIN)}, got {text!r}")
    return names


def numbers(flag, text, kind=int, low=None):
    """'1,2,4' -> [1, 2, 4] of `kind`, each >= low (when given), else ValueError naming flag."""
    try:
        vals = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated {kind.__name__}s, got {text!r}") \
            from None
    if not vals or (low is not None and any(v < low for v in vals)):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{flag}: expected comma-separated {kind.__name__}s{bound}, got {text!r}")
    return vals


def at_least(args, low=1, **flags):
    """Each args.<attr> (flags: attr -> its flag) must be >= low."""
    for attr, flag in flags.items():
        v = getattr(args, attr)
        if v < low:
            raise ValueError(f"{flag}: expected >= {low}, got {v}")


def command(study, args, flags):
    """The command that reproduces a run: `minirnn study NAME --flag value ...` with every
    flag of `flags` ({attr: flag}) at its parsed value (store_true flags when set)."""
    parts = ["minirnn", "study", study]
    for attr, flag in flags.items():
        v = getattr(args, attr)
        if v is True:
            parts.append(flag)
        elif v is not False and v is not None:
            parts += [flag, str(v)]
    return " ".join(parts)


def stamp(fig, cmd, fontsize=7):
    """Lay the figure out (tight_layout) leaving room at the bottom for the command that made
    it, and write the command there, wrapped to the figure's width."""
    import textwrap
    w, h = fig.get_size_inches()
    per_line = max(40, int(0.97 * w * 72 / (0.66 * fontsize)))   # monospace: ~0.6 em a char
    text = textwrap.fill(cmd, per_line, break_on_hyphens=False, subsequent_indent="  ")
    lines = text.count("\n") + 1
    bottom = (lines * 1.3 * fontsize + 6) / 72 / h
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.text(0.01, 0.004, text, ha="left", va="bottom", fontsize=fontsize, family="monospace",
             color="0.3")


def cosine_bars_axis(ax, labels):
    """An axis of grouped bars of cosines: one tick per group (labels), a line at 0, and
    room from -0.2 (or lower, if a bar goes there) to 1."""
    import numpy as np
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)


def plot_and_list(out, name, written, plot):
    """The numbers are written (the paths in `written`); now the picture: plot(path) draws
    DIR/<name>.png. Without the plot extra that is said and the study still succeeds; then
    one line lists every file written."""
    import os

    from .._io import MissingExtra
    png = os.path.join(out, f"{name}.png")
    try:
        plot(png)
        written = list(written) + [png]
    except MissingExtra as e:
        print(f"plot skipped: {e}")
    print(f"wrote {', '.join(written)}")


def verdict(what, judged, failed, unit, not_judged=(), detail=""):
    """A study's pass/fail line, which counts what it judged -> (line, exit code).

    judged: the names of the items checked; failed: those of them that failed; not_judged:
    items the check could not be applied to. Nothing judged, or anything not judged, is a
    FAILED line (exit 1), never a PASSED one."""
    n, total = len(judged), len(judged) + len(not_judged)
    if not_judged or not n:
        skipped = (f"{len(not_judged)} of {total} {unit} not judged ({', '.join(not_judged)})"
                   if not_judged else f"nothing was judged (0 {unit})")
        bad = f"; failed on {', '.join(failed)}" if failed else ""
        return f"{what}: FAILED: {skipped}{bad}{detail}", 1
    if failed:
        return (f"{what}: FAILED on {len(failed)} of {n} {unit} ({', '.join(failed)})"
                f"{detail}"), 1
    return f"{what}: PASSED on {n} of {n} {unit}{detail}", 0
