"""An interactive step-through debugger over a `Trace` (minirnn.debug.tracing): a small REPL that
reads commands from any file-like stdin, so a pipe or a StringIO drives it as well as a person.

    next / n, prev / p, goto T       move in time (the backward walk goes from the last step down)
    show VAR                         x, gates, c, h, out, dh, dc, dgates (or any traced name:
                                     a gate, e.g. f, or its gradient, e.g. df)
    watch EXPR / unwatch [N]         print EXPR at every step, e.g. `watch norm(h)`
    break WHEN / delete [N]          stop `continue` when WHEN holds, e.g. `break max(abs(h)) > 0.99`,
                                     `break nonfinite`
    continue / c                     run to the next break (or the end)
    backward / forward               walk the backward / forward pass
    layer L, dir D, batch B, where   choose what is shown; re-show the step
    help, quit / q (or Ctrl-D)       Ctrl-C cancels the command or the line being typed, as in pdb

Expressions are evaluated safely (minirnn.debug.expr): a whitelisted syntax tree (arithmetic,
comparisons, calls of a few numpy functions, indexing) over the step's own variables; no
attributes, no builtins.
"""
from __future__ import annotations

import cmd
import sys

import numpy as np

from .expr import FUNCS, compile_expr, safe_eval

MAX_UNITS = 8                     # columns a step's table shows; `show VAR` prints them all


def fmt(v, width=9):
    """A number right-aligned in `width` characters: 3 decimals, or 2 significant digits when
    it is tiny or huge (small gradients must not read as 0.000). The widest form, -9.2e-05,
    takes 8 characters, so a width of 9 always leaves a space between columns."""
    if not np.isfinite(v):
        return f"{v!s:>{width}}"
    return f"{v:{width}.3f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:{width}.1e}"


class Stepper(cmd.Cmd):
    """The REPL; `Stepper(trace, tokens).cmdloop()`, or `run_session(trace, script)`."""

    def __init__(self, trace, tokens=None, stdin=None, stdout=None, batch=0, predicted=None,
                 loss_note=None):
        """tokens: what was fed at each step (T strings, or one such list per batch element);
        predicted: optionally, the model's prediction at each step (T strings); loss_note:
        what the backward differentiates ("L = ..."), shown at the start and at `backward`."""
        super().__init__(stdin=stdin or sys.stdin, stdout=stdout or sys.stdout)
        self.tr, self.tokens, self.predicted = trace, tokens, predicted
        for name, seq in (("tokens", tokens), ("predicted", predicted)):
            per_batch = seq is not None and len(seq) and isinstance(seq[0], (list, tuple))
            if seq is not None and not per_batch and len(seq) != trace.T:
                raise ValueError(f"{name}: expected one entry per time step ({trace.T}), got {len(seq)}")
        self.interactive = hasattr(self.stdin, "isatty") and self.stdin.isatty()
        self.use_rawinput = self.interactive and self.stdin is sys.stdin
        # piped sessions echo each command, so that a transcript reads like the session
        self.prompt = "(step) " if self.interactive else ""
        self.phase, self.t, self.layer, self.direction, self.batch = "forward", 0, 0, 0, batch
        self.watches, self.breaks = [], []          # [(text, code)], [(text, code or None)]
        spec = trace.spec
        kind = spec.module + (f" ({spec.nonlinearity})" if spec.nonlinearity else "")
        self.intro = (f"minirnn step: {kind}, {trace.num_layers} layer(s), {trace.num_directions} "
                      f"direction(s), T={trace.T}, batch={trace.B}"
                      f"{', backward traced' if trace.has_backward else ''}. Type help.")
        self.loss_note = loss_note if trace.has_backward else None
        if self.loss_note:
            self.intro += f"\nbackward of {self.loss_note}"
        bad = trace.first_nonfinite()
        if bad is not None:
            self.intro += (f"\nfirst non-finite value: {bad.phase} layer {bad.layer} dir "
                           f"{bad.direction} t={bad.t} {bad.tensor}{list(bad.index)} = {bad.value}")
            self.phase, self.t, self.layer, self.direction = bad.phase, bad.t, bad.layer, bad.direction
            self.batch = bad.index[0]

    # ---- the REPL's plumbing ---------------------------------------------------------------
    def cmdloop(self, intro=None):
        """cmd's loop, where Ctrl-C cancels the line or the command and stays (as pdb does);
        quit, q or Ctrl-D (end of input) leave."""
        while True:
            try:
                return super().cmdloop(intro)
            except KeyboardInterrupt:
                self.print("\n(cancelled; quit or Ctrl-D leaves)")

    def preloop(self):
        if self.intro is None:                # back in the loop after a Ctrl-C
            return
        self.print(self.intro)
        self.intro = None
        self.render()

    def precmd(self, line):
        if not self.interactive and line != "EOF":
            self.print(f"(step) {line.rstrip()}")
        return line

    def onecmd(self, line):
        try:
            return super().onecmd(line)
        except Exception as e:                # a bad command never ends the session
            self.print(f"error: {e}")
            return False

    def emptyline(self):
        return False

    def commands(self):
        return sorted(n[3:] for n in self.get_names() if n.startswith("do_") and n != "do_EOF")

    def default(self, line):
        import difflib
        word = line.split()[0]
        close = difflib.get_close_matches(word, [c for c in self.commands() if len(c) > 1],
                                          n=1, cutoff=0.5)
        hint = f" did you mean {close[0]}?" if close else ""
        self.print(f"error: unknown command {word!r};{hint} type help")

    def print(self, text=""):
        self.stdout.write(text + "\n")

    # ---- where we are ------------------------------------------------------------------------
    def order(self):
        """Time positions in walking order: the forward direction runs 0 -> T-1, the reverse one
        T-1 -> 0; the backward pass visits them the other way round."""
        ts = list(range(self.tr.T))
        if (self.direction == 1) != (self.phase == "backward"):
            ts.reverse()
        return ts

    def token(self, t):
        if self.tokens is None:
            return None
        tok = self.tokens[self.batch][t] if isinstance(self.tokens[0], (list, tuple)) else self.tokens[t]
        return repr(tok)

    def record(self):
        return self.tr.step(self.t, self.layer, self.direction)

    def namespace(self):
        rec = self.record()
        ns = {k: v[self.batch] for k, v in vars(rec).items()
              if isinstance(v, np.ndarray) and v.ndim == 2}
        ns.update(t=self.t, layer=self.layer, direction=self.direction)
        return ns

    def rows(self):
        f = self.tr.variables("forward")
        if self.phase == "forward":
            return f
        return ("h", "c") + self.tr.variables("backward") if "c" in f else ("h",) + self.tr.variables("backward")

    def render(self):
        rec = self.record()
        tok = self.token(self.t)
        head = (f"{self.phase:8s} t={self.t}/{self.tr.T - 1}" + (f"  token {tok}" if tok else "")
                + (f"  predicts {self.predicted[self.t]!r}" if self.predicted is not None else "")
                + f"  layer {self.layer} dir {self.direction} batch {self.batch}")
        if not rec.valid[self.batch]:
            head += "  (past this sequence's end)"
        self.print(head)
        width = max(4, max(len(r) for r in self.rows()))
        n = max(getattr(rec, r).shape[1] for r in self.rows())
        self.print(" " * width + "".join(f"{j:>9d}" for j in range(min(n, MAX_UNITS))))
        with np.errstate(all="ignore"):
            for r in self.rows():
                v = getattr(rec, r)[self.batch]
                more = " ..." if v.size > MAX_UNITS else ""
                self.print(f"{r:<{width}}" + "".join(fmt(a) for a in v[:MAX_UNITS]) + more)
            if self.phase == "backward":
                self.print("|dW| " + "  ".join(f"{k} {fmt(v, 0)}" for k, v in rec.dW_norms.items()))
        self.show_watches()

    def show_watches(self):
        for n, (text, code) in enumerate(self.watches):
            try:
                self.print(f"watch {n}: {text} = {self.value_str(safe_eval(code, self.namespace()))}")
            except Exception as e:
                self.print(f"watch {n}: {text}: error: {e}")

    @staticmethod
    def value_str(v):
        v = np.asarray(v)
        with np.errstate(all="ignore"):
            return fmt(float(v), 0) if v.ndim == 0 and v.dtype.kind == "f" else np.array2string(
                v, precision=3, suppress_small=True)

    def move(self, delta):
        ts = self.order()
        i = ts.index(self.t) + delta
        if not 0 <= i < len(ts):
            self.print(f"at the {'end' if delta > 0 else 'start'} of the {self.phase} walk")
            return False
        self.t = ts[i]
        self.render()
        return True

    def hit(self):
        """The first breakpoint that holds at the current step, or None."""
        for n, (text, code) in enumerate(self.breaks):
            if code is None:                  # break nonfinite: any value of this step, any batch
                rec = self.record()
                arrays = [v for v in vars(rec).values() if isinstance(v, np.ndarray) and v.ndim == 2]
                if not all(np.isfinite(a).all() for a in arrays):
                    return n, text
                continue
            value = np.asarray(safe_eval(code, self.namespace()))
            if value.size != 1:
                raise ValueError(f"break {n} ({text}): expected one truth value, got shape "
                                 f"{value.shape}; wrap it in any(...) or all(...)")
            if bool(value):
                return n, text
        return None

    # ---- commands ------------------------------------------------------------------------
    def do_next(self, arg):
        """next [N]: N steps forward in the walk (default 1)."""
        for _ in range(int(arg) if arg.strip() else 1):
            if not self.move(+1):
                break

    def do_prev(self, arg):
        """prev [N]: N steps back in the walk."""
        for _ in range(int(arg) if arg.strip() else 1):
            if not self.move(-1):
                break

    do_n, do_p = do_next, do_prev

    def do_goto(self, arg):
        """goto T: jump to time position T (0..T-1)."""
        try:
            t = int(arg)
        except ValueError:
            raise ValueError(f"goto: expected a time step 0..{self.tr.T - 1}, got {arg!r}") from None
        if not 0 <= t < self.tr.T:
            raise ValueError(f"goto: expected a time step 0..{self.tr.T - 1}, got {t}")
        self.t = t
        self.render()

    def do_show(self, arg):
        """show VAR: every unit of x, gates, c, h, out, dh, dc, dgates (or any traced name);
        gates and dgates show each gate (d<gate>: the gradient of its pre-activation)."""
        name = arg.strip()
        rec = self.record()
        spec = self.tr.spec
        groups = {"gates": spec.gate_names, "dgates": tuple(f"d{g}" for g in spec.gate_names)}
        names = groups.get(name, (name,))
        if name in ("c", "dc") and not spec.has_cell_state:
            kind = "an Elman RNN" if spec.family == "rnn" else f"a {spec.module}"
            raise ValueError(f"show {name}: {kind} has no cell state c -- its only state is h "
                             f"(show h{', show dh' if name == 'dc' else ''}); the cell state "
                             f"c belongs to the LSTM")
        for n in names:
            if not isinstance(getattr(rec, n, None), np.ndarray):
                import difflib
                known = [k for k, v in vars(rec).items() if isinstance(v, np.ndarray) and v.ndim == 2]
                choices = sorted(set(known) | set(groups))
                close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
                hint = "" if self.tr.has_backward else " (no backward in this trace)"
                raise ValueError(f"show: expected one of {choices}, got {name!r}"
                                 f"{f'; did you mean {close[0]}?' if close else ''}{hint}")
        if name == "gates" and spec.gates == 1:
            self.print("(an Elman RNN has no gates: its pre-activation a_t)")
        for n in names:
            v = getattr(rec, n)[self.batch]
            for start in range(0, v.size, MAX_UNITS):
                label = f"{n}[{start}:{min(start + MAX_UNITS, v.size)}]"
                self.print(f"{label:<10}" + "".join(fmt(a) for a in v[start:start + MAX_UNITS]))

    def do_watch(self, arg):
        """watch EXPR: print EXPR at every step; `watch` alone lists the watches."""
        if not arg.strip():
            for n, (text, _) in enumerate(self.watches):
                self.print(f"watch {n}: {text}")
            return
        self.watches.append((arg.strip(), compile_expr(arg, self.namespace())))
        self.show_watches()

    def do_unwatch(self, arg):
        """unwatch [N]: remove watch N (all without N)."""
        self._remove("watch", self.watches, arg)

    def do_break(self, arg):
        """break WHEN: stop `continue` where WHEN holds (or `break nonfinite`); alone: list them."""
        text = arg.strip()
        if not text:
            for n, (t, _) in enumerate(self.breaks):
                self.print(f"break {n}: {t}")
            return
        code = None if text == "nonfinite" else compile_expr(text, self.namespace())
        if code is not None:                       # refuse a vector condition now, not later
            value = np.asarray(safe_eval(code, self.namespace()))
            if value.size != 1:
                raise ValueError(f"break: expected a condition with one truth value, got shape "
                                 f"{value.shape} for {text!r}; wrap it in any(...) or all(...)")
        self.breaks.append((text, code))
        self.print(f"break {len(self.breaks) - 1}: {text}")

    def do_delete(self, arg):
        """delete [N]: remove breakpoint N (all without N)."""
        self._remove("break", self.breaks, arg)

    @staticmethod
    def _remove(kind, items, arg):
        """Remove entry N of a watch / break list, or all of them when no N is given."""
        text = arg.strip()
        if not text:
            items.clear()
            return
        if not text.isdigit() or int(text) >= len(items):
            have = f"0..{len(items) - 1}" if items else f"none (no {kind} set)"
            raise ValueError(f"expected a {kind} number, one of {have}; got {text!r}")
        del items[int(text)]

    def do_continue(self, arg):
        """continue: walk on until a breakpoint holds, or to the end of the walk."""
        ts = self.order()
        for t in ts[ts.index(self.t) + 1:]:
            self.t = t
            found = self.hit()
            if found is not None:
                self.print(f"break {found[0]} ({found[1]}) at t={t}")
                self.render()
                return
        self.print(f"end of the {self.phase} walk (no break hit)")
        self.render()

    do_c = do_continue

    def do_backward(self, arg):
        """backward: walk the backward pass, from the step it starts at."""
        if not self.tr.has_backward:
            raise ValueError("backward: this trace has no backward pass (trace with d_out or loss)")
        self.phase = "backward"
        self.t = self.order()[0]
        if self.loss_note:
            self.print(f"backward of {self.loss_note}")
        self.render()

    def do_forward(self, arg):
        """forward: walk the forward pass from its first step."""
        self.phase = "forward"
        self.t = self.order()[0]
        self.render()

    def _choose(self, name, arg, n):
        try:
            v = int(arg)
        except ValueError:
            raise ValueError(f"{name}: expected an integer 0..{n - 1}, got {arg!r}") from None
        if not 0 <= v < n:
            raise ValueError(f"{name}: expected 0..{n - 1}, got {v}")
        return v

    def do_layer(self, arg):
        """layer L: show layer L."""
        self.layer = self._choose("layer", arg, self.tr.num_layers)
        self.render()

    def do_dir(self, arg):
        """dir D: show direction D (1 = the reverse direction of a bidirectional model)."""
        self.direction = self._choose("dir", arg, self.tr.num_directions)
        self.render()

    def do_batch(self, arg):
        """batch B: show batch element B."""
        self.batch = self._choose("batch", arg, self.tr.B)
        self.render()

    def do_where(self, arg):
        """where: show the current step again."""
        self.render()

    def do_help(self, arg):
        """help: the commands."""
        self.print(__doc__.split("\n\n")[1])

    def do_quit(self, arg):
        """quit: leave."""
        return True

    do_q = do_exit = do_quit

    def do_EOF(self, arg):
        if self.interactive:                  # Ctrl-D: end the prompt's line
            self.print()
        return True


def run_session(trace, script, tokens=None, batch=0, predicted=None, loss_note=None):
    """Drive a session from a string of commands; returns the transcript (for tests, docs)."""
    import io
    out = io.StringIO()
    Stepper(trace, tokens, stdin=io.StringIO(script), stdout=out, batch=batch,
            predicted=predicted, loss_note=loss_note).cmdloop()
    return out.getvalue()


__all__ = ["Stepper", "run_session", "compile_expr", "safe_eval", "FUNCS"]
