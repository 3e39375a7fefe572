"""Progress bars on long work: tqdm when it is installed (extra 'plot' or 'all'), else silent."""
from __future__ import annotations


def progress(iterable=None, **kwargs):
    """tqdm(iterable, **kwargs), or the iterable itself without tqdm; disable=True is honoured."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable)
    return tqdm(iterable, **kwargs)


class _Silent:
    """The subset of tqdm's interface our code uses, doing nothing."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
