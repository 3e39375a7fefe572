"""The `minirnn` command. Each subcommand lives in its own module minirnn/cli/<name>.py with

    HELP = "one line for `minirnn --help`"
    def add_arguments(parser): ...     # argparse arguments
    def run(args) -> int: ...          # the exit code

Modules import heavy dependencies (torch, matplotlib) inside run(), so `--help` stays fast.

Errors: bad input ends in one line `minirnn CMD: error: ...` and exit code 2 (a misspelled
option shows that subcommand's usage and the nearest option). Bad input is what the argument
checks refuse: a ValueError (their type), a file that cannot be read or written (OSError), a
missing optional dependency (which names the extra to install). Any other exception is a bug
in minirnn, not a mistake of the user: its traceback is shown, with a line saying so, and the
exit code is 70 (EX_SOFTWARE), apart from the 1 of a failed check. Ctrl-C exits with 130
(`train` saves a resumable checkpoint first). MINIRNN_DEBUG=1 raises instead, both kinds.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> module under minirnn.cli, in the order `minirnn --help` lists them
SUBCOMMANDS = ("parity", "bench", "train", "predict", "generate", "gradcheck", "study", "step",
               "explore")


def cell_kinds(last="and"):
    """The kinds of cell in the registry, for help texts: "Elman RNN, LSTM and GRU" (the head
    of each CellSpec.summary, once each), so that a new cell is named everywhere at once."""
    from ..cells import CELLS
    kinds = list(dict.fromkeys(s.summary.split(",")[0] for s in CELLS.values()))
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} {last} {kinds[-1]}"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default, unless there is none to show or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = not any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if not shown or "default" in text:          # identity: 0 is a default worth showing
            return text
        return super()._get_help_string(action)


def build_parser():
    from .._version import __version__
    parser = argparse.ArgumentParser(
        prog="minirnn",
        description=f"minirnn: {cell_kinds()} in NumPy and Numba, checked against torch.")
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
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def _unrecognized(parser, extra):
    """The subcommand's own usage and error for options it does not know, with the nearest."""
    import difflib
    known = [o for a in parser._actions for o in a.option_strings]
    hints = []
    for word in extra:
        if word.startswith("-"):
            close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]}?")
    parser.error(f"unrecognized arguments: {' '.join(extra)}"
                 + (f" ({'; '.join(hints)})" if hints else ""))


def _message(e):
    """str(e) without the quotes KeyError puts around its message."""
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]
    return str(e)


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(getattr(args, "_parser", None) or parser, extra)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    import os

    from .._io import USER_ERRORS, exit_code
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as e:
        print(f"\nminirnn {args.command}: interrupted", file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError as e:             # `minirnn ... | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_code(e)
    except USER_ERRORS as e:
        # what the argument checks raise: a clear one-line error (MINIRNN_DEBUG=1: traceback)
        if os.environ.get("MINIRNN_DEBUG"):
            raise
        print(f"minirnn {args.command}: error: {_message(e)}", file=sys.stderr)
        return exit_code(e)
    except Exception as e:
        # anything else (TypeError, KeyError, RuntimeError, IndexError, ...) is minirnn's own
        # bug: never reported as the user's mistake
        if os.environ.get("MINIRNN_DEBUG"):
            raise
        import traceback
        traceback.print_exc()
        print(f"minirnn {args.command}: internal error ({type(e).__name__}): this is a bug in "
              f"minirnn, not in your input; please report it with the traceback above",
              file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
