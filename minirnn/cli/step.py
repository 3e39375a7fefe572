"""`minirnn step`: walk a recurrent net step by step, forward and backward, at a prompt
(commands from a terminal or a pipe), or write the whole trace as HTML / a heatmap PNG."""
from __future__ import annotations

import sys

HELP = "step through an RNN/LSTM's forward and backward pass (interactive; --render/--heatmap)"

from ..registry import CELL_NAMES as CELLS


def add_arguments(p):
    src = p.add_argument_group("what to step through (default: --example hihell)")
    src.add_argument("--example", choices=("hihell",), default=None,
                     help="a tiny trained Elman RNN reading 'hihell' and predicting 'ihello'")
    src.add_argument("--checkpoint", default=None, help="a checkpoint from `minirnn train` (with --text)")
    src.add_argument("--text", default=None, help="the text fed to the checkpoint's model")
    src.add_argument("--cell", choices=CELLS, default=None, help="a random model of this cell")
    src.add_argument("--hidden", type=int, default=6, help="hidden size of the random model")
    src.add_argument("--input-size", type=int, default=4, help="input size of the random model")
    src.add_argument("--layers", type=int, default=1, help="layers of the random model")
    src.add_argument("--bidirectional", action="store_true", help="a bidirectional random model")
    src.add_argument("--T", type=int, default=8, help="time steps of the random input")
    src.add_argument("--seed", type=int, default=0, help="seed of the random model and input")
    p.add_argument("--weight-scale", type=float, default=1.0,
                   help="multiply every weight by this (e.g. 1e200 to watch a model blow up)")
    p.add_argument("--render", default=None, metavar="OUT.html", help="write an HTML page and exit")
    p.add_argument("--heatmap", default=None, metavar="OUT.png", help="write a heatmap PNG and exit")


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

    def loss(out):                                    # out (T, B, H)
        T, B, H = out.shape
        logits = head(out.reshape(T * B, H))          # (T*B, V)
        value, d_logits = cross_entropy(logits, np.repeat(np.asarray(targets), B))
        return value, head.backward(d_logits).reshape(T, B, H)
    return loss


def _random(args):
    import numpy as np

    from ..registry import make_recurrent
    if args.T < 1:
        raise ValueError(f"--T: expected at least 1 time step, got {args.T}")
    model = make_recurrent(args.cell or "rnn_tanh", args.input_size, args.hidden,
                           num_layers=args.layers, bidirectional=args.bidirectional,
                           seed=args.seed)
    x = np.random.default_rng(args.seed).normal(size=(args.T, 1, args.input_size))
    return model, x, None, "sum", None, None


def _checkpoint(args):
    """The checkpoint's model, rebuilt from the constructor arguments it stores; its recurrent
    layer is fed the embedded (or one-hot) text, the vocabulary coming from the checkpoint."""
    import numpy as np

    from ..train.engine import load_model
    if args.text is None or not args.text.strip():
        raise ValueError("--text: expected the text to feed the checkpoint's model, got none")
    model, ck = load_model(args.checkpoint)
    vocab = ck.vocab
    if isinstance(vocab, dict):
        stoi = vocab.get("stoi", vocab)
        itos = sorted(stoi, key=stoi.get)
    else:
        itos = list(vocab or [])
    stoi = {s: i for i, s in enumerate(itos)}
    char_level = all(len(s) == 1 for s in itos)
    toks = list(args.text) if char_level else args.text.split()
    unknown = sorted({t for t in toks if t not in stoi})
    if unknown:
        raise ValueError(f"--text: tokens {unknown} are not in the checkpoint's vocabulary "
                         f"({len(itos)} entries)")
    ids = np.array([[stoi[t] for t in toks]])                          # (1, T)
    x = model.embed(ids)[0]                                            # (T, E)
    model.eval()
    rnn = model.rnn
    x = x[None] if rnn.batch_first else x[:, None]                     # (1, T, E) or (T, 1, E)
    return rnn, x, toks, "sum", None, None


def run(args) -> int:
    import numpy as np

    from ..debug.stepper import Stepper
    from ..debug.tracing import trace
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
    if args.render or args.heatmap:
        from ..debug.render import render_heatmap, render_html
        if args.render:
            print(f"wrote {render_html(tr, args.render, tokens=tokens, predicted=predicted)}")
        if args.heatmap:
            print(f"wrote {render_heatmap(tr, args.heatmap, tokens=tokens)}")
        return 0
    Stepper(tr, tokens, stdin=sys.stdin, stdout=sys.stdout, predicted=predicted).cmdloop()
    return 0
