"""`minirnn generate {script,char} --checkpoint ... --prime TEXT --length N [--temperature T] [--top-k K]`."""
from __future__ import annotations

HELP = "generate text from a trained script/char language model"


def add_arguments(parser):
    parser.add_argument("task", choices=("script", "char"), help="word- or character-level model")
    parser.add_argument("--checkpoint", required=True, help="model.npz from `minirnn train script|char`")
    parser.add_argument("--prime", default="first citizen", help="text to start from")
    parser.add_argument("--length", type=int, default=100, help="tokens (words or characters) to add")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = always the most likely")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the K most likely")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    from .. import _threads
    _threads.add_argument(parser)


def run(args) -> int:
    import os

    from .. import _threads
    from ..train.checkpoint import load_checkpoint
    from ..tutorials.script import generate
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint: no such file {args.checkpoint}")
    config = load_checkpoint(args.checkpoint).config or {}
    task = config.get("task")
    if task != args.task:
        raise ValueError(f"--checkpoint: expected a {args.task} model, got one trained for {task}")
    product = _threads.step_product(1, config.get("hidden_size", 256), config.get("cell", "lstm"))
    with _threads.limit(_threads.choose(args.threads, product)):
        text = generate(args.checkpoint, args.prime, length=args.length,
                        temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    print(text)
    return 0
