"""`minirnn.explore`: one self-contained HTML page to scrub through a recurrent model's trace.

    minirnn.explore(model, x, "explore.html", tokens=list("hello"), head=fc, vocab=itos)
    minirnn.explore(language_model, ids, vocab=itos)          # a LanguageModel: x = token ids
    minirnn.explore(classifier, ids, vocab=alphabet, labels=languages)
    page = read_page("explore.html")                          # the numbers back, for checks

The page (template: explore_page.html beside this file) has no network access of any kind:
no scripts, styles or fonts from elsewhere; the data is embedded (see explore_data for the
format: float32, identical arrays once, deflated) and it works opened from file://.
It shows, at a time cursor moved by a slider, the arrow keys (Home / End) or play/pause:
every gate, state and output of the chosen layer and direction with their gradients, the text
coloured by a chosen unit, the top-k predictions, the connectivity strip, ||dL/dh_t|| over
time (backward mode plays it from the end back to the start), and Karpathy et al.'s gate
saturation scatter. Nothing is recomputed in the browser: it only displays these numbers.
"""
from __future__ import annotations

import html
import json
import os
import re

import numpy as np

from .._io import check_overwrite, write_text
from . import explore_data as ed

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explore_page.html")
_DATA_RE = re.compile(r'<script type="application/json" id="minirnn-data">(.*?)</script>', re.S)

CONNECT_NOTE = {
    "head": "Each input step s is shaded by ‖∂(u·out_t)/∂x_s‖ for the cursor's step t, where u is "
            "the output weights of the prediction at t: the darker a step, the more a small "
            "change of that input would move the prediction made at t",
    "classifier": "Each input step s is shaded by ‖∂(u·out_t)/∂x_s‖ for the cursor's step t, "
                  "where u is the output weights of the class the loss scores: the darker a "
                  "step, the more a small change of that input would move that class's score "
                  "had the sequence ended at t",
    "none": "Each input step s is shaded by ‖∂(u·out_t)/∂x_s‖ for the cursor's step t, where "
            "u = out_t/‖out_t‖: the darker a step, the more a small change of that input would "
            "move the output at t",
}


def display_tokens(tokens, level):
    """What each token looks like on the page, and after which steps a line breaks."""
    from ..text import TOKEN_LOOKUP
    punct = {v: k for k, v in TOKEN_LOOKUP.items() if k != "\n"}
    out = []
    for tok in tokens:
        if tok in ("\n", "||return||"):
            out.append("↵")
        elif level == "word":
            out.append(punct.get(tok, "‹unk›" if tok == "||unk||" else tok))
        else:
            out.append({" ": "\u00a0", "\t": "⇥"}.get(tok, tok))
    return out


def _level(tokens, level):
    if level is not None:
        if level not in ("char", "word"):
            raise ValueError(f"token_level: expected 'char', 'word' or None, got {level!r}")
        return level
    return "char" if all(len(t) == 1 for t in tokens) else "word"


def build(model, x, tokens=None, head=None, vocab=None, labels=None, targets=None, hx=None,
          top_k=5, title=None, token_level=None, connect=True, chunk=32, loss="model"):
    """-> (payload dict, Trace): everything the page embeds, and the trace it came from."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k: expected an integer >= 1, got {top_k!r}")
    sub = ed.prepare(model, x, tokens, head, vocab, labels, targets, hx)
    rnn, spec = sub.rnn, sub.rnn.spec
    with ed.preserved(sub), ed.one_blas_thread():
        tr, loss_note, loss_value = ed.trace_loss(sub, loss)
        ids, probs, final, follow = ed.predictions(sub, tr, int(top_k))
        U = ed.direction_rows(sub, tr, follow)
        C = ed.connectivity(rnn, sub.x_tm, U, sub.hx, chunk) if connect else None
    L, D = tr.num_layers, tr.num_directions
    arrays, sat = {}, {}
    for layer in range(L):
        for d in range(D):
            k = layer * D + d
            for phase in ("forward", "backward"):
                for name in tr.variables(phase):
                    arrays[f"{k}:{name}"] = tr.series(name, layer, d)[:, 0]
            for name in ("dh", "dc"):
                if name in tr.variables("backward"):
                    with np.errstate(all="ignore"):        # a diverged model: Inf, shown
                        g = np.linalg.norm(tr.series(name, layer, d)[:, 0], axis=1)
                    arrays[f"norm:{k}:{name}"] = g
    for gate, kind in ed.bounded_gates(spec):
        sat[gate] = {"kind": kind, "left": [], "right": [], "n": 0}
        for layer in range(L):
            for d in range(D):
                left, right, n = ed.saturation(tr, gate, kind, layer, d)
                sat[gate]["left"].append(left.tolist())
                sat[gate]["right"].append(right.tolist())
                sat[gate]["n"] = n
    if C is not None:
        arrays["connect"] = C
    if probs is not None:
        arrays["topk_p"] = probs
    if final is not None:
        arrays["final_p"] = final[1]
    level = None if sub.tokens is None else _level(sub.tokens, token_level)
    names = sub.names
    if names is None and sub.W is not None:
        names = [str(i) for i in range(len(sub.W))]
    pred_display = None
    if names is not None:
        pred_display = names if sub.kind == "classifier" else \
            [{"\u00a0": "␣"}.get(n, n) for n in display_tokens(names, level or "char")]
    bad = tr.first_nonfinite()
    meta = {
        "title": title or f"minirnn explore: {spec.name}",
        "cell": spec.name, "summary": spec.summary, "kind": sub.kind,
        "layers": L, "directions": D, "T": tr.T, "hidden": rnn.hidden_size,
        "out_size": rnn.out_size,
        "input_size": rnn.input_size, "gate_names": list(spec.gate_names),
        "sigmoid_gates": list(spec.sigmoid_gates), "has_cell_state": spec.has_cell_state,
        "fvars": list(tr.variables("forward")), "bvars": list(tr.variables("backward")),
        "has_backward": tr.has_backward, "loss_note": loss_note, "loss": loss_value,
        "tokens": sub.tokens,
        "display": None if sub.tokens is None else display_tokens(sub.tokens, level),
        "token_level": level, "top_k": None if ids is None else ids.tolist(),
        "pred_names": pred_display, "final_top": None if final is None else final[0].tolist(),
        "connect_note": (CONNECT_NOTE["none" if sub.W is None else
                                      "classifier" if sub.kind == "classifier" else "head"]
                         + ("; the model is bidirectional, so later steps count too."
                            if D == 2 else "; steps after t are blank: it has not read them yet.")),
        "saturation": sat, "thresholds": [ed.LEFT, ed.RIGHT],
        "nonfinite": None if bad is None else (f"{bad.phase}, layer {bad.layer}, direction "
                                               f"{bad.direction}, t={bad.t}, {bad.tensor}"),
    }
    if sub.kind == "lm":
        meta["pred_caption"] = "top-k next tokens"
    elif sub.kind == "classifier":
        meta["pred_caption"] = "top-k classes if the sequence ended here"
    else:
        meta["pred_caption"] = "top-k predictions"
    return {"meta": meta, **ed.pack(arrays)}, tr


def page_html(payload):
    """The template with the payload embedded (`<` escaped, so no text can end the script)."""
    with open(TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    data = json.dumps(payload, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(payload["meta"]["title"])
    return template.replace("__TITLE__", title).replace("__DATA__", data)


def explore(model, x, path="explore.html", *, tokens=None, head=None, vocab=None, labels=None,
            targets=None, hx=None, top_k=5, title=None, token_level=None, connect=True,
            loss="model", overwrite=False):
    """Write the explorer page for one sequence and return its path.

    model: a minirnn RNN / LSTM / GRU (x: its input for ONE sequence, (T, I) or with a batch
        axis of 1), or a SequenceClassifier / LanguageModel (x: token ids (T,) or (1, T); the
        model's fc is the head).
    tokens: the T strings fed (default: vocab[id] for token ids); colours the text view.
    head: a minirnn Linear from the RNN's output to logits (e.g. hihell's), for predictions.
    vocab: the names of the tokens (LanguageModel, or the head's outputs); labels: the class
        names of a SequenceClassifier.
    targets: what the loss scores (the backward mode's gradients): per-step ids for a head /
        language model (default: the next token for a language model, else the model's own top
        prediction), or a class index / label for a classifier (default: the predicted class).
    hx: the initial state, as the model's forward takes it. top_k: predictions per step.
    token_level: "char" | "word" (default: "char" when every token is one character).
    connect: compute the connectivity strip (one engine backward per step).
    loss: what the backward mode differentiates: "model" (the cross-entropy that `targets`
        describes where there is a head, else the sum of the outputs) or "sum" (d_out = ones);
        the page names it.
    overwrite: replace an existing file at `path`; without it an existing file is refused
        before any work, as `minirnn explore` refuses it without --overwrite.
    The model is left as found: its training mode and accumulated gradients are restored.
    """
    check_overwrite("path", path, overwrite)
    payload, _ = build(model, x, tokens, head, vocab, labels, targets, hx, top_k, title,
                       token_level, connect, loss=loss)
    write_text(path, page_html(payload))
    return os.fspath(path)


def read_page(path):
    """An explorer page -> {"meta": ..., "arrays": name -> float32 (rows, cols)}."""
    with open(path, encoding="utf-8") as f:
        m = _DATA_RE.search(f.read())
    if m is None:
        raise ValueError(f"path: expected a page written by minirnn.explore, found no data "
                         f"in {path}")
    payload = json.loads(m.group(1))
    return {"meta": payload["meta"], "arrays": ed.unpack(payload)}


__all__ = ["explore", "build", "read_page", "page_html", "display_tokens"]
