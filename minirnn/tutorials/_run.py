"""What every tutorial run shares: its output directory, Ctrl-C, the running-loss log, plots.

Output directory. A run writes DIR/model.npz (the checkpoint to use: the best epoch where
there is a validation split), DIR/last.npz (where training stands, written every epoch and on
Ctrl-C; `--resume DIR` continues from it), DIR/metrics.json and PNG plots. It refuses a DIR
that already holds files unless overwrite=True (then the files a run writes are replaced and
anything else is left alone) or it resumes the run in that DIR.

Ctrl-C. While a loop runs inside `Interrupt()`, the first SIGINT only sets a flag: the loop
finishes the step it is in, saves last.npz and raises Interrupted, which the command turns
into a message (where the checkpoint is, how to resume) and exit code 130. A second Ctrl-C
stops at once (KeyboardInterrupt).

The log. `Meter` keeps the running loss: a line every `every` steps in the style of the
seed tutorials (`5000 5% (0m 3s) 2.70 Nguyen / Vietnamese ✓`), the smoothed per-step curve
(the mean of each window of `curve_every` steps) for metrics.json and the plots.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

RUN_FILES = ("model.npz", "last.npz", "metrics.json", "loss.png", "confusion.png",
             "perplexity.png")


class Interrupted(Exception):
    """Training stopped at a step boundary on Ctrl-C; `checkpoint` holds where it stands."""

    def __init__(self, checkpoint, where, resume):
        self.checkpoint, self.where, self.resume = checkpoint, where, resume
        super().__init__(f"interrupted {where}; saved {checkpoint}\n"
                         f"continue with: {resume}")


def resume_path(path):
    """--resume DIR or DIR/last.npz (or any checkpoint a run wrote) -> the file."""
    if path is None:
        return None
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "last.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--resume: no such checkpoint {path}")
    return path


def prepare_out(out, overwrite=False, resume=None, resumable=True):
    """Make `out` ready for a run; refuse a non-empty one (the module docstring says when)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out: {out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    if resume is not None and os.path.samefile(os.path.dirname(os.path.abspath(resume)), out):
        return out
    present = sorted(f for f in os.listdir(out) if not f.startswith("."))
    if present and not overwrite:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ValueError(f"--out: {out} already holds a run ({shown}); nothing was written. "
                         f"Pass --overwrite to replace it"
                         + (", --out DIR for a fresh directory, or --resume "
                            f"{out} to continue it" if resumable else
                            " or --out DIR for a fresh directory"))
    if overwrite:
        for f in RUN_FILES:                       # a stale file must not pass for this run's
            if os.path.isfile(os.path.join(out, f)):
                os.remove(os.path.join(out, f))
    return out


class Interrupt:
    """`with Interrupt() as stop:` ... `if stop.requested: save; raise Interrupted(...)`.

    distributed=True (under torchrun): SIGTERM asks to stop too, and the signals of the first
    two seconds count as one Ctrl-C -- the terminal signals every rank and torchrun passes the
    same Ctrl-C on again, then gives the ranks 30 s to save before it kills them."""

    def __init__(self, distributed=False):
        self.requested, self.distributed = False, distributed
        self._old, self._first = {}, None

    def _handler(self, signum, frame):
        if self.requested and not (self.distributed and (
                signum != signal.SIGINT or time.monotonic() - self._first < 2.0)):
            raise KeyboardInterrupt               # the second Ctrl-C: stop now
        if not self.requested:
            self.requested, self._first = True, time.monotonic()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM) if self.distributed else (signal.SIGINT,):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
        return False


def elapsed(seconds):
    """'(1m 3s)' as the seed tutorial's timeSince prints it."""
    m, s = divmod(int(seconds), 60)
    return f"({m}m {s}s)"


def nice_every(total, lines=20):
    """A round step interval giving about `lines` log lines over `total` steps."""
    raw = max(1, total // lines)
    if raw < 10:
        return raw
    mag = 10 ** int(math.log10(raw))
    return int(max(m * mag for m in (1, 2, 2.5, 5) if m * mag <= raw))


def check_mark(ok):
    """'✓' / '✗' where the terminal can print them, else 'ok' / 'x'."""
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(enc)
        return "✓" if ok else "✗"
    except (UnicodeEncodeError, LookupError):
        return "ok" if ok else "x"


class Meter:
    """The running loss: log windows of `every` steps, curve windows of `curve_every`."""

    def __init__(self, total, every, curve_every, state=None):
        self.total, self.every, self.curve_every = int(total), int(every), int(curve_every)
        self.step, self.log_sum, self.log_n, self.curve_sum, self.curve_n = 0, 0.0, 0, 0.0, 0
        self.curve = []                          # [[step, mean loss of the window], ...]
        self.last = None                         # the mean of the last logged window
        if state:
            for k in ("step", "log_sum", "log_n", "curve_sum", "curve_n", "curve"):
                setattr(self, k, state[k])
            self.last = state.get("last")        # absent from older checkpoints

    def state(self):
        return {k: getattr(self, k) for k in ("step", "log_sum", "log_n", "curve_sum",
                                                "curve_n", "curve", "last")}

    def add(self, loss):
        """Count one step's loss; True when this step is a log step."""
        loss = float(loss)
        self.step += 1
        self.log_sum, self.log_n = self.log_sum + loss, self.log_n + 1
        self.curve_sum, self.curve_n = self.curve_sum + loss, self.curve_n + 1
        if self.curve_n >= self.curve_every:
            self.curve.append([self.step, self.curve_sum / self.curve_n])
            self.curve_sum, self.curve_n = 0.0, 0
        return self.step % self.every == 0

    def running(self):
        """The mean loss since the last log line (and starts a new window)."""
        value = self.log_sum / max(self.log_n, 1)
        self.log_sum, self.log_n = 0.0, 0
        self.last = value
        return value

    def peek(self):
        """The running loss for the progress bar, without starting a new window. Right after
        a log line the window is empty: the logged mean stands in, since a bare nan there
        reads as divergence; the last curve point after a resume from an older checkpoint."""
        if self.log_n:
            return self.log_sum / self.log_n
        if self.last is not None:
            return self.last
        return self.curve[-1][1] if self.curve else float("nan")

    def line(self, seconds, extra=""):
        pct = 100.0 * self.step / max(self.total, 1)
        return f"{self.step} {pct:.0f}% {elapsed(seconds)} {self.running():.4f}" + \
            (f" {extra}" if extra else "")


class Clock:
    """Training seconds across a resume: `base` from the checkpoint plus this process's."""

    def __init__(self, base=0.0):
        self.base, self.t0 = float(base), time.perf_counter()

    def __call__(self):
        return self.base + time.perf_counter() - self.t0


def say_through(bar, log):
    """The log function to use while `bar` is shown: print goes through the bar."""
    if log is None:
        return lambda text: None
    return bar.write if log is print else log


def epoch_bar(start, total, epoch, epochs, log, show_progress=True):
    """One epoch's progress bar over batches start..total-1 (a resumed run starts part-way
    through), and the log function that prints through it -> (bar, say)."""
    from .._progress import progress
    bar = progress(range(start, total), total=total, initial=start, desc=f"epoch {epoch}/{epochs}",
                   leave=False, disable=log is None or not show_progress)
    return bar, say_through(bar, log)


def try_plots(log, *plots):
    """Call each plot (a zero-argument function returning the path it wrote); a missing
    matplotlib skips them with one note naming the extra -> the paths written."""
    from .._io import MissingExtra
    written = []
    for plot in plots:
        try:
            written.append(plot())
        except MissingExtra as e:
            if log:
                log(f"plots skipped: {e}")
            break
    return written
