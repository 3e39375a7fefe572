"""`minirnn train {names,sentences,hihell,script,char}`: run a tutorial end to end.

names writes DIR/model.npz, metrics.json, confusion.png, loss.png; script/char write
model.npz, metrics.json, loss.png, perplexity.png; sentences and hihell print their result.
"""
from __future__ import annotations

HELP = "train a tutorial model (names, sentences, hihell, script, char)"
TASKS = ("names", "sentences", "hihell", "script", "char")


def default_backend():
    """numba when its kernels are importable, else numpy (same numbers, slower)."""
    try:
        import minirnn.kernels  # noqa: F401
        from minirnn.functional import get_backend
        get_backend("numba")
        return "numba"
    except Exception:           # not built / not installed: the reference always works
        return "numpy"


def add_arguments(parser):
    parser.add_argument("task", choices=TASKS, help="which tutorial")
    parser.add_argument("--model", choices=("lstm", "rnn", "tutorial-rnn"), default="lstm",
                        help="names only: the classifier")
    parser.add_argument("--backend", choices=("numba", "numpy", "torch"), default=None,
                        help="compute backend (default: numba if available, else numpy)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="torch backend only")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (names tutorial-rnn: units of 100k steps); default per task")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, split and batches")
    parser.add_argument("--out", default=None, help="output directory (default runs/<task>)")
    parser.add_argument("--quick", action="store_true", help="a small run for smoke tests (< 1 min)")


def run(args) -> int:
    import os
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs: expected an integer >= 1, got {args.epochs}")
    if args.device == "cuda" and args.backend != "torch":
        raise ValueError(f"--device cuda: needs --backend torch, got --backend {args.backend}")
    backend = args.backend or default_backend()
    out = args.out or os.path.join("runs", args.task)
    if args.task == "names":
        from ..tutorials import names
        names.main(model=args.model, backend=backend, device=args.device, epochs=args.epochs,
                   seed=args.seed, out=out, quick=args.quick)
    elif args.task in ("script", "char"):
        from ..tutorials import script
        script.main(kind=args.task, backend=backend, device=args.device, epochs=args.epochs,
                    seed=args.seed, out=out, quick=args.quick)
    else:
        import importlib
        mod = importlib.import_module(f"minirnn.tutorials.{args.task}")
        if args.device != "cpu" or backend == "torch":
            raise ValueError(f"{args.task}: runs on the numpy/numba backends only, "
                             f"got --backend {backend} --device {args.device}")
        mod.main(seed=args.seed, backend=backend, out=args.out, quick=args.quick)
    return 0
