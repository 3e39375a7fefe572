"""`minirnn explore`: write one self-contained HTML page to scrub through a model's trace in a
browser: gates, states and their gradients per step, the text coloured by a unit, top-k
predictions, the connectivity strip and the gate saturation scatter.

    minirnn explore --checkpoint runs/names/model.npz --text "Nguyen"
    minirnn explore --checkpoint runs/char/model.npz --text "First Citizen:"
    minirnn explore --example char          # trains a tiny character LSTM first (a few seconds)
    minirnn explore --example hihell        # the Elman RNN that reads "hihell"
    minirnn explore --cell gru --layers 2   # a random model on random input
"""
from __future__ import annotations

from ..cells import BACKENDS

HELP = "write an interactive HTML page to explore a model's trace (time scrubber, gates, text)"

from ._random_model import add_random_model_arguments, random_model

EXAMPLES = ("char", "hihell")
CHAR_TEXT = 240                # --example char without --text: the first 240 characters


def add_arguments(p):
    src = p.add_argument_group("what to explore (default: --example hihell)")
    src.add_argument("--example", choices=EXAMPLES, default=None,
                     help="char: a tiny 2-layer character LSTM trained here on tinyshakespeare "
                          "(a few seconds; --train-steps); hihell: the trained Elman RNN")
    src.add_argument("--checkpoint", default=None,
                     help="a checkpoint from `minirnn train names|char|script` (with --text)")
    src.add_argument("--text", default=None,
                     help="the text fed to the model: --checkpoint (required) or --example char "
                          f"(default: the first {CHAR_TEXT} characters of tinyshakespeare)")
    src.add_argument("--label", default=None,
                     help="a classifier's class for the loss (default: its predicted class)")
    add_random_model_arguments(src, hidden=16, T=20, seed_help="seed of the random model / training")
    src.add_argument("--train-steps", type=int, default=150,
                     help="--example char: Adam steps of its training")
    p.add_argument("--top-k", type=int, default=5, help="predictions shown under each token")
    p.add_argument("--no-connectivity", action="store_true",
                   help="skip the connectivity strip (one backward per step)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="the engine that traces (and trains --example char): default numba "
                        "when its kernels load, else numpy; the same numbers to rounding")
    from ..debug.explore_data import LOSS_HELP, LOSSES
    p.add_argument("--loss", choices=LOSSES, default="model",
                   help=LOSS_HELP + "; the same loss as `minirnn step`, named on the page")
    p.add_argument("--title", default=None, help="the page's title")
    p.add_argument("-o", "--out", default="explore.html", metavar="OUT.html", help="the page")
    p.add_argument("--overwrite", action="store_true", help="replace an existing page")
    p.add_argument("--mkdir", action="store_true",
                   help="create the page's directory where it is missing (without it, only one "
                        "under the working directory is created)")


def char_example(steps=150, seed=0, backend="numpy", log=None):
    """A tiny character LSTM (2 layers, hidden 64) trained `steps` Adam steps on the first 20k
    characters of tinyshakespeare -> (LanguageModel, itos). Seeded: the same model each time."""
    import numpy as np

    from ..debug.explore_data import one_blas_thread
    from ..train.engine import Engine
    from ..nn.models import LanguageModel
    from ..tutorials.data import char_vocab, lm_batches, load_shakespeare
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"--train-steps: expected an integer >= 0, got {steps!r}")
    text = load_shakespeare()[:20_000]
    stoi, itos = char_vocab(text)
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    model = LanguageModel(len(itos), 16, 64, cell="lstm", num_layers=2, seed=seed, backend=backend)
    engine = Engine(model, optimizer="adam", lr=1e-2, clip=5.0, backend=backend, seed=seed)
    batches, state, loss = lm_batches(ids, 16, 32), None, float("nan")
    with one_blas_thread():                            # small products: see one_blas_thread
        for step in range(steps):
            x, y = batches[step % len(batches)]
            if step % len(batches) == 0:
                state = None                           # a new pass starts from zeros
            loss, state = engine.step_lm(x, y, state=state)
    if log:
        log(f"--example char: trained a 2-layer LSTM(64) for {steps} steps on tinyshakespeare "
            f"(train loss {float(loss):.3f})")
    model.eval()
    return model, list(itos)


def _tokens(task, text, itos):
    """The checkpoint's tokenisation of --text -> (tokens, ids, "char" | "word")."""
    from ..tutorials.data import tokenize_words, unicode_to_ascii
    stoi = {s: i for i, s in enumerate(itos)}
    if task == "names":
        toks, level = list(unicode_to_ascii(text).strip()), "char"
    elif task == "script":
        toks, level = tokenize_words(text), "word"
        if "||unk||" in stoi:
            toks = [t if t in stoi else "||unk||" for t in toks]
    elif all(len(s) == 1 for s in itos):
        toks, level = list(text), "char"
    else:
        toks, level = text.split(), "word"
    if not toks:
        raise ValueError(f"--text: expected at least one token of the vocabulary, got {text!r}")
    unknown = sorted({t for t in toks if t not in stoi})
    if unknown:
        raise ValueError(f"--text: tokens {unknown} are not in the checkpoint's vocabulary "
                         f"({len(itos)} entries)")
    return toks, [stoi[t] for t in toks], level


def _checkpoint(args):
    import numpy as np

    from ..train.engine import load_model
    if args.text is None or not args.text.strip():
        raise ValueError("--text: expected the text to feed the checkpoint's model, got none")
    model, ck = load_model(args.checkpoint, backend=args.backend)
    vocab = ck.vocab
    if isinstance(vocab, dict):
        stoi = vocab.get("stoi", vocab)
        vocab = sorted(stoi, key=stoi.get)
    itos = [str(s) for s in (vocab or [])]
    if not itos:
        raise ValueError(f"--checkpoint: expected a vocabulary in {args.checkpoint}, found none")
    task = (ck.config or {}).get("task")
    toks, ids, level = _tokens(task, args.text, itos)
    labels = list(ck.labels) if ck.labels is not None else None
    return dict(model=model, x=np.array(ids), tokens=toks, vocab=itos, labels=labels,
                targets=args.label, token_level=level)


def _source(args):
    """The model and what explore needs, from the arguments."""
    import numpy as np
    if args.checkpoint:
        return _checkpoint(args)
    if args.cell:
        model, x = random_model(args, args.cell, backend=args.backend)
        return dict(model=model, x=x)
    if args.example == "char":
        from ..tutorials.data import load_shakespeare
        model, itos = char_example(args.train_steps, args.seed, args.backend, log=print)
        text = args.text if args.text is not None else load_shakespeare()[:CHAR_TEXT]
        toks, ids, level = _tokens("char", text, itos)
        return dict(model=model, x=np.array(ids), tokens=toks, vocab=itos, token_level=level)
    from ..tutorials import hihell
    ex = hihell.build_example(seed=args.seed, backend=args.backend)
    targets = np.array([ex["itos"].index(c) for c in hihell.TARGET])
    return dict(model=ex["model"], x=ex["inputs"], tokens=ex["tokens"], head=ex["head"],
                vocab=ex["itos"], targets=targets)


def run(args) -> int:
    import os
    import time

    from .._io import check_output_path
    from ..debug.explore import explore
    if args.top_k < 1:
        raise ValueError(f"--top-k: expected at least 1, got {args.top_k}")
    check_output_path("-o/--out", args.out, mkdir=args.mkdir, overwrite=args.overwrite)
    from .train import default_backend
    if args.backend is None:
        args.backend = default_backend()
    t0 = time.perf_counter()
    kw = _source(args)
    path = explore(kw.pop("model"), kw.pop("x"), args.out, top_k=args.top_k, title=args.title,
                   connect=not args.no_connectivity, loss=args.loss, overwrite=args.overwrite,
                   **kw)
    size = os.path.getsize(path)
    print(f"wrote {path} ({size / 1e6:.2f} MB, {time.perf_counter() - t0:.1f} s); open it in a "
          f"browser (works offline, from file://)")
    return 0
