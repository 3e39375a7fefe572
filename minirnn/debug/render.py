"""Static views of a `Trace`: one self-contained HTML page to scroll through the steps, and a
matplotlib heatmap of gates and states over time.

    render_html(trace, "steps.html", tokens=list("hihell"))
    render_heatmap(trace, "steps.png", tokens=list("hihell"))

The HTML page has inline CSS only: no scripts, no fonts, no links to anything outside it, so it
opens offline and is safe to attach to a bug report. One <section class="step"> per time step,
holding one table per layer and direction (rows = variables, columns = units); each cell is
tinted by its value (red > 0, blue < 0) relative to the largest |value| that variable takes over
the whole trace (so small gradients still show their pattern); non-finite cells are marked.
A legend at the top says so. Numbers are formatted as in the terminal debugger (stepper.fmt:
3 decimals, or 2 significant digits such as 5.6e-04 when tiny or huge). A one-hot input row
is shown as the token it encodes ('h', one-hot index 0 of 5), not as a row of zeros.
"""
from __future__ import annotations

import html

import numpy as np

from .._io import check_overwrite, require, savefig, write_text
from .stepper import fmt

CSS = """
body { font: 13px/1.35 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px;
       color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; } .summary { color: #555; margin-bottom: 16px; }
.alert { background: #fde2e2; border: 1px solid #e99; padding: 6px 10px; margin: 8px 0; }
section.step { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px;
               margin: 0 0 14px; }
section.step h2 { font-size: 15px; margin: 4px 0 8px; }
.token { font-family: Menlo, Consolas, monospace; background: #eef; padding: 1px 6px;
         border-radius: 3px; }
.pad { color: #999; font-weight: normal; }
table { border-collapse: collapse; margin: 4px 0 10px; font-family: Menlo, Consolas, monospace;
        font-size: 12px; }
caption { text-align: left; color: #555; font-size: 12px; padding-bottom: 2px; }
th { font-weight: normal; color: #666; padding: 1px 6px; text-align: right; }
td { padding: 1px 6px; text-align: right; min-width: 48px; }
tr.grad th, tr.grad td { border-top: 2px solid #999; }
td.nonfinite { background: #000; color: #ff0; }
td.onehot { text-align: left; color: #333; }
.norms { color: #555; font-size: 12px; margin: 0 0 8px; }
.legend { color: #444; font-size: 12px; margin: 0 0 14px; }
.swatch { display: inline-block; width: 28px; text-align: center; border: 1px solid #ccc;
          font-family: Menlo, Consolas, monospace; margin: 0 2px; }
"""

LEGEND = ('<p class="legend">Colour: <span class="swatch" style="background: rgba(40,90,220,0.60)">'
          '&minus;</span> negative, <span class="swatch">0</span> zero, '
          '<span class="swatch" style="background: rgba(220,60,40,0.60)">+</span> positive; '
          'the stronger the tint, the larger |value| relative to the largest |value| the same '
          'variable takes over the whole trace (per layer and direction); '
          '<span class="swatch" style="background: #000; color: #ff0">inf</span> non-finite. '
          'Numbers: 3 decimals, or 2 significant digits (5.6e-04) below 0.001 and from 1e5. '
          'x: the input of the step (a one-hot input is shown as its token).</p>')


def _cell(v, scale):
    """A table cell tinted by v / scale: red for positive, blue for negative."""
    if not np.isfinite(v):
        return f'<td class="nonfinite">{v}</td>'
    a = min(abs(float(v)) / scale, 1.0) * 0.6
    rgb = "220,60,40" if v > 0 else "40,90,220"
    return f'<td style="background: rgba({rgb},{a:.2f})">{fmt(v, 0).strip()}</td>'


def _one_hot_index(row):
    """The index of the 1 in a one-hot row (everything else exactly 0), else None."""
    if row.size < 2 or not np.isfinite(row).all():
        return None
    hot = np.flatnonzero(row)
    return int(hot[0]) if hot.size == 1 and row[hot[0]] == 1.0 else None


def _token(tokens, t, batch):
    if tokens is None:
        return None
    return tokens[batch][t] if isinstance(tokens[0], (list, tuple)) else tokens[t]


def render_html(trace, path, tokens=None, batch=0, title="minirnn step trace", predicted=None,
                overwrite=False):
    """Write ONE self-contained HTML page with a section per time step; returns the path.

    tokens: what was fed at each step (a list of T strings, or one such list per batch element).
    batch: which batch element's numbers to show. predicted: the model's prediction per step.
    overwrite: replace an existing file at `path` (else it is refused, as `minirnn step
    --render` refuses without --overwrite).
    """
    check_overwrite("path", path, overwrite)
    if tokens is not None and len(tokens) not in (trace.T, trace.B):
        raise ValueError(f"tokens: expected {trace.T} tokens (one per step), got {len(tokens)}")
    if not 0 <= batch < trace.B:
        raise ValueError(f"batch: expected 0..{trace.B - 1}, got {batch}")
    esc = html.escape
    D = trace.num_directions
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(title)}</title>", f"<style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="summary">{esc(trace.mode)}, {trace.num_layers} layer(s), {D} direction(s), '
             f"T={trace.T}, batch element {batch} of {trace.B}"
             f"{', forward and backward' if trace.has_backward else ', forward only'}.</p>"]
    bad = trace.first_nonfinite()
    if bad is not None:
        parts.append(f'<p class="alert">First non-finite value: {bad.phase}, layer {bad.layer}, '
                     f"direction {bad.direction}, t={bad.t}, {esc(bad.tensor)}{list(bad.index)} = "
                     f"{bad.value}</p>")
    parts.append(LEGEND)
    variables = list(trace.variables("forward"))
    if trace.has_backward:
        variables += list(trace.variables("backward"))
    with np.errstate(all="ignore"):
        scales = {}                                # (layer, direction, var) -> max finite |v|
        for layer in range(trace.num_layers):
            for d in range(D):
                for v in variables:
                    a = np.abs(trace.series(v, layer, d)[:, batch])
                    a = a[np.isfinite(a)]
                    scales[layer, d, v] = float(a.max()) if a.size and a.max() > 0 else 1.0
        for t in range(trace.T):
            tok = _token(tokens, t, batch)
            head = f"t = {t}" + (f' &middot; token <span class="token">{esc(repr(tok))}</span>'
                                 if tok is not None else "")
            if predicted is not None:
                head += f' &rarr; predicts <span class="token">{esc(repr(predicted[t]))}</span>'
            if not trace.valid[t, batch]:
                head += ' <span class="pad">(past the end of this sequence)</span>'
            parts.append(f'<section class="step" id="t{t}"><h2>{head}</h2>')
            for layer in range(trace.num_layers):
                for d in range(D):
                    rec = trace.step(t, layer, d)
                    rows = {v: getattr(rec, v)[batch] for v in variables}
                    onehot = _one_hot_index(rows["x"]) if "x" in rows else None
                    n = max(r.size for v, r in rows.items() if not (v == "x" and onehot is not None))
                    parts.append(f"<table><caption>layer {layer}"
                                 f"{', reverse direction' if d else ''}</caption>")
                    parts.append("<tr><th></th>" + "".join(f"<th>{j}</th>" for j in range(n)) + "</tr>")
                    for v in variables:
                        row = rows[v]
                        cls = ' class="grad"' if v == "dh" else ""     # a rule above the backward rows
                        if v == "x" and onehot is not None:
                            what = f"{esc(repr(tok))} " if tok is not None and layer == 0 else ""
                            parts.append(f'<tr><th>x</th><td class="onehot" colspan="{n}">{what}'
                                         f"(one-hot, index {onehot} of {row.size})</td></tr>")
                            continue
                        cells = "".join(_cell(a, scales[layer, d, v]) for a in row)
                        rest = n - row.size
                        parts.append(f"<tr{cls}><th>{esc(v)}</th>{cells}"
                                     + (f'<td colspan="{rest}"></td>' if rest > 0 else "") + "</tr>")
                    parts.append("</table>")
                    if trace.has_backward:
                        norms = ", ".join(f"{k} {fmt(val, 0).strip()}" for k, val in rec.dW_norms.items())
                        parts.append(f'<p class="norms">running |dW| (backward so far): {esc(norms)}</p>')
            parts.append("</section>")
    parts.append("</body></html>")
    write_text(path, "\n".join(parts) + "\n")
    return path


def heatmap_figure(trace, tokens=None, layer=0, direction=0, batch=0):
    """A matplotlib Figure: a heatmap (units x time) of each gate/state (and dh, dc after a
    backward). Built without pyplot, so a notebook's plotting backend is left as it is."""
    Figure = require("matplotlib.figure", "the heatmap (--heatmap)").Figure
    names = [v for v in trace.variables("forward") if v not in ("x", "out")]
    if trace.has_backward:
        names += ["dh"] + (["dc"] if trace.spec.has_cell_state else [f"d{trace.spec.gate_names[0]}"])
    fig = Figure(figsize=(max(6, 0.5 * trace.T + 2), 1.3 * len(names) + 1))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)
    labels = [str(t) if tokens is None else f"{t}\n{_token(tokens, t, batch)!r}" for t in range(trace.T)]
    with np.errstate(all="ignore"):
        for ax, name in zip(axes[:, 0], names):
            data = trace.series(name, layer, direction)[:, batch, :].T          # (units, T)
            finite = data[np.isfinite(data)]
            lim = float(np.abs(finite).max()) if finite.size else 1.0
            # sigmoid gates live in [0, 1]: a sequential map; signed values: a diverging one
            gate = name in trace.spec.sigmoid_gates
            im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis" if gate else "RdBu_r",
                           vmin=0.0 if gate else -(lim or 1.0), vmax=1.0 if gate else lim or 1.0,
                           interpolation="nearest")
            ax.set_ylabel(name, rotation=0, ha="right", va="center")
            fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    axes[-1, 0].set_xticks(range(trace.T))
    axes[-1, 0].set_xticklabels(labels)
    axes[-1, 0].set_xlabel("t")
    fig.suptitle(f"{trace.mode}: layer {layer}, direction {direction}, batch {batch}")
    fig.tight_layout()
    return fig


def render_heatmap(trace, path, tokens=None, layer=0, direction=0, batch=0, overwrite=False):
    """A PNG heatmap (units x time) of each gate/state (and dh, dc after a backward).
    overwrite: replace an existing file at `path` (else it is refused)."""
    check_overwrite("path", path, overwrite)
    fig = heatmap_figure(trace, tokens, layer, direction, batch)
    savefig(fig, path, dpi=100)
    return path


__all__ = ["render_html", "render_heatmap", "heatmap_figure"]
