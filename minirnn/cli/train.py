"""`minirnn train {names,sentences,hihell,script,char}`: run a tutorial end to end.

Every task writes DIR (default runs/<task>[-<model>][-torch[-cuda]]: the model named when it
is not the task's default, the backend when it is torch): model.npz (the checkpoint to use),
metrics.json, PNG plots (loss.png; names also confusion.png; script/char also perplexity.png);
names, script and char also last.npz, saved after every epoch and on Ctrl-C, which
`--resume DIR` continues exactly. A DIR that
already holds files is refused unless --overwrite. Ctrl-C saves, says where and how to
resume, and exits with code 130. The results (model.npz, metrics.json) are written before
any plot; without matplotlib the plots are skipped with a note naming the extra to install.

Under torchrun (WORLD_SIZE > 1: `torchrun --nproc_per_node=2 -m minirnn train char`) names,
script and char train data-parallel (minirnn.train.distributed): every rank takes its share of
each global batch (--batch-size), the gradients are averaged across ranks before each step,
rank 0 alone logs and writes DIR; an error on one rank ends every rank with its message.
"""
from __future__ import annotations

from ..train.engine import TRAIN_BACKENDS

HELP = "train a tutorial model (names, sentences, hihell, script, char)"
TASKS = ("names", "sentences", "hihell", "script", "char")
DEFAULT_MODEL = {"names": "lstm", "script": "lstm", "char": "lstm", "hihell": "rnn_tanh",
                 "sentences": "rnn_tanh"}


def default_backend():
    """numba when its kernels are importable, else numpy (same numbers, slower)."""
    try:
        import minirnn.kernels  # noqa: F401
        from minirnn.functional import get_backend
        get_backend("numba")
        return "numba"
    except Exception:           # not built / not installed: the reference always works
        return "numpy"


def model_choices():
    """Every registry cell, 'rnn' (= rnn_tanh) and the names tutorial's own 'tutorial-rnn'."""
    from ..cells import CELL_ALIASES, BUILTIN
    return tuple(BUILTIN) + tuple(CELL_ALIASES) + ("tutorial-rnn",)


def add_arguments(parser):
    from .. import _threads
    parser.add_argument("task", choices=TASKS, help="which tutorial")
    parser.add_argument("--model", choices=model_choices(), default=None,
                        help="the recurrent cell (rnn = rnn_tanh); tutorial-rnn: names only, the "
                             "PyTorch tutorial's network. Default: lstm (names, script, char), "
                             "rnn_tanh (hihell, sentences)")
    parser.add_argument("--backend", choices=TRAIN_BACKENDS, default=None,
                        help="compute backend (default: numba if available, else numpy)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="torch backend only (default cpu)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs; names tutorial-rnn: units of 100k steps; hihell, "
                             "sentences: full-batch steps (at most). Default per task")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for init, split and batches (default 0)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default runs/<task>[-<model>][-torch[-cuda]]: "
                             "the model when not the task's default, the backend when torch; "
                             "--resume: the run's own directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in a DIR that already holds one")
    parser.add_argument("--mkdir", action="store_true",
                        help="create --out DIR's parent directories where they are missing "
                             "(without it, only ones under the working directory are created)")
    parser.add_argument("--resume", default=None, metavar="PATH",
                        help="continue the run saved in PATH (a DIR or DIR/last.npz; names, "
                             "script, char), with its settings")
    parser.add_argument("--quick", action="store_true",
                        help="a small run for smoke tests (< 1 min); hihell and sentences are "
                             "always that small")
    parser.add_argument("--log-every", type=int, default=None, metavar="N",
                        help="print the running loss (and a sample) every N steps "
                             "(default: about 20 lines a run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="names, script, char: the global batch (names: 64; script/char "
                             "streams: 32, --quick 8); under torchrun each rank takes B / "
                             "WORLD_SIZE")
    parser.add_argument("--dist-backend", choices=("gloo", "nccl"), default=None,
                        help="under torchrun: the process-group backend (default: nccl with "
                             "--device cuda, else gloo)")
    parser.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                        help="under torchrun: how long a rank waits for the others (rendezvous "
                             "and each collective) before the run ends with an error "
                             "(default 300)")
    _threads.add_argument(parser)


def default_out(task, model=None, backend=None, device="cpu"):
    """The one naming scheme: runs/<task>[-<model>][-torch[-cuda]], the model named when it is
    not the task's default, the backend when it is torch (numba and numpy give the same
    numbers, torch its own last digits)."""
    import os
    name = task
    if model not in (None, DEFAULT_MODEL[task]) and not (model == "rnn" and
                                                         DEFAULT_MODEL[task] == "rnn_tanh"):
        name += f"-{model}"
    if backend == "torch":
        name += "-torch" + ("-cuda" if device == "cuda" else "")
    return os.path.join("runs", name)


def run(args) -> int:
    import os

    from .._io import check_output_path, require
    from ..tutorials._run import Interrupted, resume_path
    for flag in ("epochs", "log_every", "threads", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')}: expected an integer >= 1, got {value}")
    if args.model == "tutorial-rnn" and args.backend not in (None, "numpy"):
        raise ValueError(f"--model tutorial-rnn: runs on numpy only (its own BPTT over Linear "
                         f"layers), got --backend {args.backend}")
    if args.resume is not None and args.task in ("hihell", "sentences"):     # whatever the path
        raise ValueError(f"--resume: {args.task} trains in under a second and keeps no "
                         f"resumable checkpoint; run it again")
    resume = resume_path(args.resume)
    saved = {}
    if resume is not None:                  # a resumed run keeps its backend unless told
        from ..train.checkpoint import load_checkpoint
        saved = load_checkpoint(resume).config or {}
    backend = args.backend or saved.get("backend") or (
        "numpy" if args.model == "tutorial-rnn" else default_backend())
    args.device = args.device or saved.get("device") or "cpu"
    if args.device == "cuda" and backend != "torch":
        raise ValueError(f"--device cuda: needs --backend torch, got --backend {backend}")
    if backend == "torch":
        require("torch", "--backend torch")
    if args.model == "tutorial-rnn" and args.task != "names":
        raise ValueError(f"--model tutorial-rnn: the names tutorial's own network; {args.task} "
                         f"trains a registry cell ({', '.join(model_choices()[:-1])})")
    if resume is not None:
        out = args.out or os.path.dirname(resume) or "."
    else:
        out = args.out or default_out(args.task, args.model, backend, args.device)
    check_output_path("--out", out, mkdir=args.mkdir, directory=True)
    if args.batch_size is not None and args.task in ("hihell", "sentences"):
        raise ValueError(f"--batch-size: {args.task} trains on its whole data set at once; "
                         f"it takes no --batch-size")
    group = _join(args, backend)
    common = dict(backend=backend, epochs=args.epochs, seed=args.seed, out=out,
                  quick=args.quick or None, overwrite=args.overwrite, threads=args.threads)
    ok = False
    try:
        if args.task == "names":
            from ..tutorials import names
            with _guarded(group):
                names.main(model=args.model, device=args.device, resume=resume,
                           every=args.log_every, show_progress=not args.no_progress,
                           batch_size=args.batch_size, group=group, **common)
        elif args.task in ("script", "char"):
            from ..tutorials import script
            with _guarded(group):
                script.main(kind=args.task, model=args.model, device=args.device, resume=resume,
                            every=args.log_every, show_progress=not args.no_progress,
                            batch_size=args.batch_size, group=group, **common)
        else:
            import importlib
            mod = importlib.import_module(f"minirnn.tutorials.{args.task}")
            if args.device != "cpu" or backend == "torch":
                raise ValueError(f"{args.task}: runs on the numpy/numba backends only, "
                                 f"got --backend {backend} --device {args.device}")
            if args.log_every is not None:
                raise ValueError(f"--log-every: {args.task} prints every 20 (hihell) or 50 "
                                 f"(sentences) steps; it takes no --log-every")
            common.update(seed=0 if args.seed is None else args.seed, quick=args.quick)
            mod.main(model=args.model, **common)
        ok = True
    except Interrupted as e:
        import sys
        ok = True                                 # every rank stopped at the same step
        if group is None or group.is_main:
            print(f"\nminirnn train {args.task}: {e}", file=sys.stderr, flush=True)
        return 130
    finally:
        if group is not None:
            group.close(ok=ok)
    return 0


def _join(args, backend):
    """Under torchrun (WORLD_SIZE > 1): check the launch, then join the process group -> Group;
    otherwise None and nothing changes. Every check runs before any rank waits on another."""
    import os

    from ..train import distributed
    if not distributed.launched():               # one process: --dist-* have nothing to do
        return None
    if args.task in ("hihell", "sentences"):
        raise ValueError(f"torchrun: {args.task} trains in under a second and has nothing to "
                         f"share out; data-parallel training is for names, script and char")
    if args.model == "tutorial-rnn":
        raise ValueError("torchrun: --model tutorial-rnn trains one name at a time (batch 1); "
                         "data-parallel training needs a batch (--model lstm, gru, ...)")
    pg = distributed.check_launch(backend, args.device, args.dist_backend)
    if args.batch_size is not None:
        distributed.per_rank_batch(args.batch_size, int(os.environ["WORLD_SIZE"]))
    return distributed.init(pg, args.dist_timeout or distributed.DEFAULT_TIMEOUT)


def _guarded(group):
    """An error inside ends every rank with its message (an agreed Ctrl-C stop is no error)."""
    import contextlib

    from ..tutorials._run import Interrupted
    return contextlib.nullcontext() if group is None else group.guard(quiet=(Interrupted,))
