"""`minirnn study NAME`: gradient studies, one module per study.

Each study lives in minirnn/cli/study_<name>.py with

    NAME = "gradflow"                  # the subcommand
    HELP = "one line for `minirnn study --help`"
    def add_arguments(parser): ...     # its argparse arguments (--out DIR among them)
    def step_product(args) -> int: ... # multiply-adds of its per-step product (picks threads)
    def run(args) -> int: ...          # the exit code

and is listed once in STUDIES below; the heavy work lives in minirnn.grad. Every study
writes into its --out DIR; the dispatcher adds --mkdir and --threads, checks DIR before any
work with the rule every output flag follows (minirnn._io.check_output_path), and runs the
study under the BLAS thread count that minirnn._threads picks for its step product.
"""
from __future__ import annotations

import importlib

# the study modules under minirnn.cli, in the order `minirnn study --help` lists them
STUDIES = ("gradflow", "truncation", "twodep", "uoro", "online", "lyapunov", "lags", "float32")

HELP = "gradient studies: " + ", ".join(STUDIES) + " (CSV, PNG and a table each)"


def _module(name):
    return importlib.import_module(f"minirnn.cli.study_{name}")


def add_arguments(p):
    sub = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    for name in STUDIES:
        module = _module(name)
        doc = (module.__doc__ or module.HELP).split("\n\n")
        g = sub.add_parser(name, help=module.HELP,
                           description=doc[1] if len(doc) > 1 else doc[0],
                           formatter_class=p.formatter_class)
        module.add_arguments(g)
        from .. import _threads
        _threads.add_argument(g)
        g.add_argument("--mkdir", action="store_true",
                       help="create --out DIR's parent directories where they are missing "
                            "(without it, only ones under the working directory are created)")
        g.set_defaults(_parser=g, _study=module)


def run(args):
    from .. import _threads
    from .._io import check_output_path
    check_output_path("--out", args.out, mkdir=args.mkdir, directory=True)
    study = args._study
    with _threads.limit(_threads.choose(args.threads, study.step_product(args))):
        return study.run(args)
