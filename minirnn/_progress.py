"""Progress bars on long work: tqdm when it is installed (extra 'plot' or 'all'), else silent.

Text printed while a bar is shown goes through `bar.write(text)`, so it never tears the bar.
"""
from __future__ import annotations

import sys


def progress(iterable=None, **kwargs):
    """tqdm(iterable, **kwargs), or a silent stand-in without tqdm; disable=True is honoured.
    Either way the result has update, set_postfix, set_description, write and close."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable)
    bar = tqdm(iterable, **kwargs)
    if bar.disable:                              # tqdm.write would still work; keep it plain
        bar.write = _print
    else:
        bar.write = lambda text: tqdm.write(text, file=sys.stdout)
    return bar


def _print(text):
    print(text, flush=True)


class _Silent:
    """The subset of tqdm's interface our code uses, doing nothing (write prints)."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def write(self, text):
        _print(text)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
