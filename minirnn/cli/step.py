"""`minirnn step`: walk a recurrent net step by step, forward and backward, at a prompt
(commands from a terminal or a pipe), or write the whole trace as HTML / a heatmap PNG."""
from __future__ import annotations

import sys

HELP = "step through an RNN/LSTM's forward and backward pass (interactive; --render/--heatmap)"

CELLS = ("rnn_tanh", "rnn_relu", "lstm")


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

    def loss(out):                                    # out (T, 1, H)
        T, B, H = out.shape
        logits = head(out.reshape(T * B, H))          # (T*B, V)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        idx = np.arange(T * B), np.repeat(np.asarray(targets), B)
        value = float(-np.log(p[idx]).mean())
        p[idx] -= 1.0
        return value, head.backward(p / (T * B)).reshape(T, B, H)
    return loss


def _random(args):
    import numpy as np

    from ..nn.recurrent import LSTM, RNN
    cell = args.cell or "rnn_tanh"
    kw = dict(num_layers=args.layers, bidirectional=args.bidirectional, seed=args.seed)
    if args.T < 1:
        raise ValueError(f"--T: expected at least 1 time step, got {args.T}")
    if cell == "lstm":
        model = LSTM(args.input_size, args.hidden, **kw)
    else:
        model = RNN(args.input_size, args.hidden, nonlinearity=cell[4:], **kw)
    x = np.random.default_rng(args.seed).normal(size=(args.T, 1, args.input_size))
    return model, x, None, "sum", None, None


def _checkpoint(args):
    """Rebuild the checkpoint's recurrent layer (keys 'rnn.*') from its shapes and feed it the
    embedded (or one-hot) text; the vocabulary comes from the checkpoint."""
    import numpy as np

    from ..checkpoint import load_checkpoint
    from ..nn.recurrent import LSTM, RNN
    if args.text is None or not args.text.strip():
        raise ValueError("--text: expected the text to feed the checkpoint's model, got none")
    ck = load_checkpoint(args.checkpoint)
    sd = {k[4:]: v for k, v in ck.state_dict.items() if k.startswith("rnn.")}
    if "weight_ih_l0" not in sd:
        raise ValueError(f"--checkpoint: expected a recurrent layer 'rnn.weight_ih_l0' in "
                         f"{args.checkpoint}, got keys {sorted(ck.state_dict)[:8]}")
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
    ids = np.array([stoi[t] for t in toks])
    emb = ck.state_dict.get("embedding.weight")
    x = np.asarray(emb)[ids] if emb is not None else np.eye(len(itos))[ids]
    config = ck.config or {}
    cell = str(config.get("cell", config.get("model", ""))).lower()
    layers = 1 + max(int(k.split("_l")[-1].split("_")[0]) for k in sd if k.startswith("weight_ih_l"))
    rows, P = np.asarray(sd["weight_hh_l0"]).shape
    is_lstm = "lstm" in cell or "weight_hr_l0" in sd or (rows == 4 * P and "rnn" not in cell)
    H = rows // 4 if is_lstm else rows
    kw = dict(num_layers=layers, bias="bias_ih_l0" in sd,
              bidirectional="weight_ih_l0_reverse" in sd, dtype=np.asarray(sd["weight_ih_l0"]).dtype.name)
    if is_lstm:
        model = LSTM(x.shape[1], H, proj_size=P if P != H else 0, **kw)
    else:
        model = RNN(x.shape[1], H, nonlinearity="relu" if "relu" in cell else "tanh", **kw)
    model.load_state_dict(sd)
    model.eval()
    return model, x[:, None, :].astype(model.dtype), toks, "sum", None, None


def run(args) -> int:
    import numpy as np

    from ..stepper import Stepper
    from ..tracing import trace
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
        from ..stepper_render import render_heatmap, render_html
        if args.render:
            print(f"wrote {render_html(tr, args.render, tokens=tokens, predicted=predicted)}")
        if args.heatmap:
            print(f"wrote {render_heatmap(tr, args.heatmap, tokens=tokens)}")
        return 0
    Stepper(tr, tokens, stdin=sys.stdin, stdout=sys.stdout, predicted=predicted).cmdloop()
    return 0
