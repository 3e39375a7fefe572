"""`minirnn step`: walk a recurrent net step by step, forward and backward, at a prompt
(commands from a terminal or a pipe), or write the whole trace as HTML / a heatmap PNG."""
from __future__ import annotations

import sys

HELP = "step through an RNN/LSTM's forward and backward pass (interactive; --render/--heatmap)"

from ._random_model import add_random_model_arguments, random_model


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
    p.add_argument("--render", default=None, metavar="OUT.html", help="write an HTML page and exit")
    p.add_argument("--heatmap", default=None, metavar="OUT.png",
                   help="write a heatmap PNG and exit (needs matplotlib: extra 'plot')")
    from .. import _threads
    _threads.add_argument(p)


def _hihell(args):
    try:
        from ..tutorials import hihell
        ex = hihell.build_example(seed=args.seed)
    except ImportError as e:
        raise RuntimeError(f"--example hihell needs minirnn.tutorials.hihell and its training "
                           f"dependencies ({e}); use --cell rnn_tanh|rnn_relu|lstm meanwhile") from e
    model, head, x = ex["model"], ex["head"], ex["inputs"]
    itos = ex["itos"]
    loss = "sum"
    target = getattr(hihell, "TARGET", None)
    if target is not None:
        loss = _head_loss(head, [itos.index(ch) for ch in target])
    return model, x, list(ex["tokens"]), loss, head, itos


def _head_loss(head, targets):
    """loss(out) -> (cross-entropy of head(out) against targets, d_out): the gradient the
    trained model really sees, through its output layer."""
    import numpy as np

    from ..nn.losses import cross_entropy

    def loss(out):                                    # out (T, B, H) or (B, T, H), B = 1
        shape = out.shape
        H = shape[-1]
        logits = head(out.reshape(-1, H))             # (T*B, V)
        B = logits.shape[0] // len(targets)
        value, d_logits = cross_entropy(logits, np.repeat(np.asarray(targets), B),
                                        ignore_index=-100)
        return value, head.backward(d_logits).reshape(shape)
    return loss


def _random(args):
    model, x = random_model(args, args.cell or "rnn_tanh", batch=(1,))
    return model, x, None, "sum", None, None


def _checkpoint(args):
    """The checkpoint's model, rebuilt from the constructor arguments it stores; its recurrent
    layer is fed the embedded (or one-hot) text, the vocabulary coming from the checkpoint.
    A language model also predicts the next token at each step through its head, and its
    backward starts from the next-token loss; a classifier predicts the label of each prefix."""
    import numpy as np

    from ..train.engine import load_model
    from ..train.models import LanguageModel
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
    ids = np.array([[stoi[t] for t in toks]])                          # (1, T)
    x = model.embed(ids)[0]                                            # (T, E)
    model.eval()
    rnn = model.rnn
    x = x[None] if rnn.batch_first else x[:, None]                     # (1, T, E) or (T, 1, E)
    head, names, loss = model.fc, None, "sum"
    if isinstance(model, LanguageModel):
        names = itos
        if len(toks) > 1:                                # the next token is the target
            loss = _head_loss(head, list(ids[0, 1:]) + [-100])
    elif rnn.num_directions == 1 and ck.labels:
        names = list(ck.labels)                          # each prefix's label
    return rnn, x, toks, loss, (head if names else None), names


def run(args) -> int:
    import numpy as np

    from .. import _threads
    from ..debug.stepper import Stepper
    from ..debug.tracing import trace
    product = _threads.step_product(1, args.hidden, args.cell) if args.cell else 0
    with _threads.limit(_threads.choose(args.threads, product)):      # tiny products: 1 thread
        return _run(args, np, Stepper, trace)


def _run(args, np, Stepper, trace):
    if args.checkpoint:
        model, x, tokens, loss, head, itos = _checkpoint(args)
    elif args.cell:
        model, x, tokens, loss, head, itos = _random(args)
    else:
        model, x, tokens, loss, head, itos = _hihell(args)
    if args.weight_scale != 1.0:
        for p in model.params.values():
            p *= args.weight_scale
    tr = trace(model, x, loss=loss)
    predicted = None
    if head is not None and itos is not None:
        with np.errstate(all="ignore"):
            logits = head(tr.out.reshape(tr.T, -1))                       # (T, V)
        predicted = [itos[i] for i in np.nan_to_num(logits).argmax(axis=1)]
        if len(predicted) != tr.T:
            predicted = None
    if args.render or args.heatmap:
        from ..debug.render import render_heatmap, render_html
        if args.render:
            print(f"wrote {render_html(tr, args.render, tokens=tokens, predicted=predicted)}")
        if args.heatmap:                      # after the page: a missing matplotlib says so
            print(f"wrote {render_heatmap(tr, args.heatmap, tokens=tokens)}")
        return 0
    Stepper(tr, tokens, stdin=sys.stdin, stdout=sys.stdout, predicted=predicted).cmdloop()
    return 0
