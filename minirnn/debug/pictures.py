"""Pictures of a trace for a notebook: gates and states over time, and one step's values.

    from minirnn.debug.pictures import step_view, trace_view
    tr = minirnn.trace(model, x, d_out=d)
    tr                                        # a notebook shows it: trace_view(tr)
    trace_view(tr, tokens=list("hihell"), layer=1)
    step_view(tr, 3, tokens=list("hihell"))   # step t=3: every gate, state and gradient as bars

Each view has `_repr_html_`, which is all a notebook needs to display it (nothing here imports
IPython). The pictures are matplotlib figures built without pyplot, so the notebook's own
plotting backend is left alone, embedded as PNG data. minirnn.debug.notebook adds the explorer
page and re-exports these.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from .._io import require
from .render import _token, heatmap_figure


class HTML:
    """An HTML fragment that a notebook displays (`_repr_html_`); `.html` is the text."""

    def __init__(self, text):
        self.html = text

    def _repr_html_(self):
        return self.html

    def __repr__(self):
        return f"<{type(self).__name__}: {len(self.html)} characters of HTML>"


def _png(fig):
    """A matplotlib Figure -> an <img> holding it as PNG data."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(fig.get_suptitle())}">'


def _summary(trace):
    return (f"{trace.mode}, {trace.num_layers} layer(s), {trace.num_directions} direction(s), "
            f"T={trace.T}, batch {trace.B}, "
            f"{'forward and backward' if trace.has_backward else 'forward only'}")


def trace_view(trace, tokens=None, layer=0, direction=0, batch=0):
    """Gates and states (and their gradients after a backward) over time, units x steps, as a
    picture: what a notebook shows for a Trace. tokens: what was fed at each step."""
    fig = heatmap_figure(trace, tokens, layer, direction, batch)
    return HTML(f"<p>minirnn trace: {html.escape(_summary(trace))}</p>{_png(fig)}")


def _limits(name, values, spec):
    """The y range of one panel: [0, 1] for a sigmoid gate, else symmetric around 0."""
    if name in spec.sigmoid_gates:
        return 0.0, 1.05
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return -1.1 * top, 1.1 * top                  # a little room above the tallest bar


def step_figure(trace, t, tokens=None, layer=0, direction=0, batch=0):
    """One step of one layer and direction as a matplotlib Figure: a bar per unit for each gate
    and state (and the state gradients and the first gate's, after a backward), each panel on
    the scale that variable takes at that step (a sigmoid gate on [0, 1])."""
    rec = trace.step(t, layer, direction)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or \
            not 0 <= batch < trace.B:
        raise ValueError(f"batch: expected an int, 0 <= batch < {trace.B}, got {batch!r}")
    names = [v for v in trace.variables("forward") if v not in ("x", "out")]
    if trace.has_backward:
        names += [v for v in trace.variables("backward") if v in ("dh", "dc")
                  or v == f"d{trace.spec.gate_names[0]}"]
    Figure = require("matplotlib.figure", "step_view").Figure
    cols = 2
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(9, 1.6 * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = np.asarray(getattr(rec, name)[batch], dtype=float)           # (units,)
        colours = np.where(values >= 0, "#d24a2c", "#2c5ad2")
        ax.bar(np.arange(values.size), np.nan_to_num(values), color=colours, width=0.8)
        ax.set_ylim(*_limits(name, values, trace.spec))
        ax.axhline(0.0, color="#888", linewidth=0.6)
        ax.set_title(name, loc="left", fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    tok = _token(tokens, t, batch) if tokens is not None else None
    fig.suptitle(f"t = {t}" + (f", token {tok!r}" if tok is not None else "")
                 + f" (layer {layer}, direction {direction}, batch {batch})")
    fig.tight_layout()
    return fig


def step_view(trace, t, tokens=None, layer=0, direction=0, batch=0):
    """step_figure as a picture a notebook shows inline (the same arguments)."""
    return HTML(_png(step_figure(trace, t, tokens, layer, direction, batch)))


def trace_repr_html(trace):
    """Trace._repr_html_: the picture of its first layer and direction, or, without
    matplotlib, a line that says how to get it."""
    try:
        return trace_view(trace).html
    except ImportError as e:                    # MissingExtra: no matplotlib
        return f"<p>minirnn trace: {html.escape(_summary(trace))} ({html.escape(str(e))})</p>"


__all__ = ["HTML", "trace_view", "step_view", "step_figure", "trace_repr_html"]
