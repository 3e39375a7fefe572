"""Static views of a `Trace`: one self-contained HTML page to scroll through the steps, and a
matplotlib heatmap of gates and states over time.

    render_html(trace, "steps.html", tokens=list("hihell"))
    render_heatmap(trace, "steps.png", tokens=list("hihell"))

The HTML page has inline CSS only: no scripts, no fonts, no links to anything outside it, so it
opens offline and is safe to attach to a bug report. One <section class="step"> per time step,
holding one table per layer and direction (rows = variables, columns = units); each cell is
tinted by its value (red > 0, blue < 0) relative to the largest |value| that variable takes over
the whole trace (so small gradients still show their pattern); non-finite cells are marked.
"""
from __future__ import annotations

import html

import numpy as np

from .._io import savefig, write_text

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
.norms { color: #555; font-size: 12px; margin: 0 0 8px; }
"""


def _cell(v, scale):
    """A table cell tinted by v / scale: red for positive, blue for negative."""
    if not np.isfinite(v):
        return f'<td class="nonfinite">{v}</td>'
    a = min(abs(float(v)) / scale, 1.0) * 0.6
    rgb = "220,60,40" if v > 0 else "40,90,220"
    text = f"{v:.3f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"   # tiny grads readable
    return f'<td style="background: rgba({rgb},{a:.2f})">{text}</td>'


def _token(tokens, t, batch):
    if tokens is None:
        return None
    return tokens[batch][t] if isinstance(tokens[0], (list, tuple)) else tokens[t]


def render_html(trace, path, tokens=None, batch=0, title="minirnn step trace", predicted=None):
    """Write ONE self-contained HTML page with a section per time step; returns the path.

    tokens: what was fed at each step (a list of T strings, or one such list per batch element).
    batch: which batch element's numbers to show. predicted: the model's prediction per step.
    """
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
                    n = max(getattr(rec, v).shape[1] for v in variables)
                    parts.append(f"<table><caption>layer {layer}"
                                 f"{', reverse direction' if d else ''}</caption>")
                    parts.append("<tr><th></th>" + "".join(f"<th>{j}</th>" for j in range(n)) + "</tr>")
                    for v in variables:
                        row = getattr(rec, v)[batch]
                        cls = ' class="grad"' if v == "dh" else ""     # a rule above the backward rows
                        parts.append(f"<tr{cls}><th>{esc(v)}</th>" + "".join(_cell(a, scales[layer, d, v]) for a in row)
                                     + "<td></td>" * (n - row.size) + "</tr>")
                    parts.append("</table>")
                    if trace.has_backward:
                        norms = ", ".join(f"{k} {val:.3g}" for k, val in rec.dW_norms.items())
                        parts.append(f'<p class="norms">running |dW| (backward so far): {esc(norms)}</p>')
            parts.append("</section>")
    parts.append("</body></html>")
    write_text(path, "\n".join(parts) + "\n")
    return path


def render_heatmap(trace, path, tokens=None, layer=0, direction=0, batch=0):
    """A PNG heatmap (units x time) of each gate/state (and dh, dc after a backward)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [v for v in trace.variables("forward") if v not in ("x", "out")]
    if trace.has_backward:
        names += ["dh"] + (["dc"] if trace.spec.has_cell_state else [f"d{trace.spec.gate_names[0]}"])
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6, 0.5 * trace.T + 2), 1.3 * len(names) + 1),
                             sharex=True, squeeze=False)
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
    savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["render_html", "render_heatmap"]
