"""`minirnn step`: walk a recurrent net step by step, forward and backward, at a prompt
(commands from a terminal or a pipe), or write the whole trace as HTML / a heatmap PNG."""
from __future__ import annotations

import sys

from . import cell_kinds
from ..cells import BUILTIN
from ._random_model import add_random_model_arguments, random_model

HELP = (f"step through an {cell_kinds('or')}'s forward and backward pass (interactive; "
        f"--render/--heatmap)")


def add_arguments(p):
    src = p.add_argument_group("what to step through (default: --example hihell)")
    src.add_argument("--example", choices=("hihell",), default=None,
                     help="a tiny trained Elman RNN reading 'hihell' and predicting 'ihello'")
    src.add_argument("--checkpoint", default=None, help="a checkpoint from `minirnn train` (with --text)")
    src.add_argument("--text", default=None,
                     help="the text fed to the checkpoint's model (default: its example text, "
                          "for hihell and sentences)")
    add_random_model_arguments(src, hidden=6, T=8, seed_help="seed of the random model and input")
    p.add_argument("--weight-scale", type=float, default=1.0,
                   help="multiply every weight by this (e.g. 1e200 to watch a model blow up)")
    from ..debug.explore_data import LOSS_HELP, LOSSES
    p.add_argument("--loss", choices=LOSSES, default="model",
                   help=LOSS_HELP + "; the same loss as `minirnn explore`")
    p.add_argument("--render", default=None, metavar="OUT.html", help="write an HTML page and exit")
    p.add_argument("--heatmap", default=None, metavar="OUT.png",
                   help="write a heatmap PNG and exit (needs matplotlib: extra 'plot')")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --render / --heatmap file")
    p.add_argument("--mkdir", action="store_true",
                   help="create the directory of --render / --heatmap where it is missing "
                        "(without it, only one under the working directory is created)")
    from .. import _threads
    _threads.add_argument(p)


def _hihell(args):
    try:
        from ..tutorials import hihell
        ex = hihell.build_example(seed=args.seed)
    except ImportError as e:
        raise RuntimeError(f"--example hihell needs minirnn.tutorials.hihell and its training "
                           f"dependencies ({e}); use --cell {'|'.join(BUILTIN)} "
                           f"meanwhile") from e
    itos = ex["itos"]
    return dict(model=ex["model"], x=ex["inputs"], tokens=list(ex["tokens"]), head=ex["head"],
                vocab=itos, targets=[itos.index(ch) for ch in hihell.TARGET])


def _random(args):
    model, x = random_model(args, args.cell or "rnn_tanh", batch=(1,))
    return dict(model=model, x=x)


def _checkpoint(args):
    """The checkpoint's model, rebuilt from the constructor arguments it stores, fed the
    text's token ids (its embedding, or one-hot, feeds the recurrent layer), the vocabulary
    coming from the checkpoint. A language model predicts the next token at each step, a
    classifier the label of each prefix; the loss is explore's (minirnn.debug.explore_data)."""
    import numpy as np

    from ..train.engine import load_model
    from ..nn.models import LanguageModel
    model, ck = load_model(args.checkpoint)
    text = args.text
    if text is None:
        text = (ck.config or {}).get("example_text") if isinstance(ck.config, dict) else None
    if text is None or not text.strip():
        raise ValueError("--text: expected the text to feed the checkpoint's model, got none")
    vocab = ck.vocab
    if isinstance(vocab, dict):
        stoi = vocab.get("stoi", vocab)
        itos = sorted(stoi, key=stoi.get)
    else:
        itos = list(vocab or [])
    stoi = {s: i for i, s in enumerate(itos)}
    char_level = all(len(s) == 1 for s in itos)
    toks = list(text) if char_level else text.split()
    unknown = sorted({t for t in toks if t not in stoi})
    if unknown:
        raise ValueError(f"--text: tokens {unknown} are not in the checkpoint's vocabulary "
                         f"({len(itos)} entries)")
    model.eval()
    kw = dict(model=model, x=np.array([stoi[t] for t in toks]), tokens=toks)
    if isinstance(model, LanguageModel):
        kw["vocab"] = itos
    elif ck.labels:
        kw["labels"] = list(ck.labels)
    return kw


def _predicted(sub, tr, np):
    """The model's prediction at each step (a language model's next token, a unidirectional
    classifier's label of each prefix, a head's top output), or None."""
    from ..debug.explore_data import outputs
    if sub.W is None or sub.names is None or (sub.kind == "classifier" and sub.D == 2):
        return None
    with np.errstate(all="ignore"):
        logits = sub.head.forward(outputs(tr))                           # (T, V)
    return [sub.names[i] for i in np.nan_to_num(logits).argmax(axis=1)]


def run(args) -> int:
    import numpy as np

    from .. import _threads
    from .._io import check_output_path
    for flag in ("render", "heatmap"):                       # before any work
        if getattr(args, flag):
            check_output_path(f"--{flag}", getattr(args, flag), mkdir=args.mkdir,
                              overwrite=args.overwrite)
    if not np.isfinite(args.weight_scale):
        raise ValueError(f"--weight-scale: expected a finite number (it multiplies every "
                         f"weight), got {args.weight_scale!r}")
    from ..debug.stepper import Stepper
    product = _threads.step_product(1, args.hidden, args.cell) if args.cell else 0
    with _threads.limit(_threads.choose(args.threads, product)):      # tiny products: 1 thread
        return _run(args, np, Stepper)


def _run(args, np, Stepper):
    from ..debug import explore_data as ed
    if args.checkpoint:
        src = _checkpoint(args)
    elif args.cell:
        src = _random(args)
    else:
        src = _hihell(args)
    sub = ed.prepare(**src)
    if args.weight_scale != 1.0:
        for p in sub.rnn.params.values():
            p *= args.weight_scale
    tr, note, value = ed.trace_loss(sub, args.loss)
    note += "" if value is None else f" = {value:.4g}"
    tokens, predicted = sub.tokens, _predicted(sub, tr, np)
    if args.render or args.heatmap:
        from ..debug.render import render_heatmap, render_html
        if args.render:
            page = render_html(tr, args.render, tokens=tokens, predicted=predicted,
                               overwrite=args.overwrite)
            print(f"wrote {page}")
        if args.heatmap:                      # after the page: a missing matplotlib says so
            heat = render_heatmap(tr, args.heatmap, tokens=tokens, overwrite=args.overwrite)
            print(f"wrote {heat}")
        return 0
    Stepper(tr, tokens, stdin=sys.stdin, stdout=sys.stdout, predicted=predicted,
            loss_note=note).cmdloop()
    return 0
