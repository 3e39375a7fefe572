"""The `minirnn` command. Each subcommand lives in its own module minirnn/cli/<name>.py with

    HELP = "one line for `minirnn --help`"
    def add_arguments(parser): ...     # argparse arguments
    def run(args) -> int: ...          # the exit code

Modules import heavy dependencies (torch, matplotlib) inside run(), so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> module under minirnn.cli, in the order `minirnn --help` lists them
SUBCOMMANDS = ("parity", "bench", "train", "predict", "generate", "gradcheck", "study", "step",
               "explore")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default, unless there is none to show or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = not any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if not shown or "default" in text:          # identity: 0 is a default worth showing
            return text
        return super()._get_help_string(action)


def build_parser():
    from .. import __version__
    parser = argparse.ArgumentParser(
        prog="minirnn",
        description="minirnn: Elman RNN and LSTM in NumPy and Numba, checked against torch.")
    parser.add_argument("--version", action="version", version=f"minirnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:          # a subcommand not written yet
            if e.name != f"{__name__}.{name}":
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=_HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, KeyError, FileNotFoundError, RuntimeError) as e:
        # a clear one-line error for bad input; tracebacks are for bugs (MINIRNN_DEBUG=1)
        import os
        if os.environ.get("MINIRNN_DEBUG"):
            raise
        print(f"minirnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
