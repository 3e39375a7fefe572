"""Inline views for Jupyter: the explorer page, a trace's gates and states, one step's values.

    from minirnn.debug.notebook import explorer, step_view, trace_view
    page = explorer(model, ids, vocab=itos)   # the explorer page itself, inline in the notebook
    page.trace                                # the trace it shows (a notebook draws a trace)
    step_view(page.trace, 3, tokens=list("hihell"))   # step t=3 as bars (minirnn.debug.pictures)
    page.save("explore.html")                 # the same page as a file

The explorer page is self-contained (see minirnn.explore), so it travels whole inside an
iframe's `srcdoc`: no server, no file, and it works in an exported HTML notebook too. Nothing
here imports IPython: a notebook displays any object that has `_repr_html_`.
"""
from __future__ import annotations

import html

import numpy as np

from .._io import check_overwrite, write_text
from .explore import build, page_html
from .pictures import HTML, step_figure, step_view, trace_view


class ExplorerPage(HTML):
    """One explorer page: shown inline as an iframe holding the whole page (its `srcdoc`);
    `.page` is the page's own HTML, `.trace` the Trace its numbers come from (the model's own
    loss in backward mode), `.save(path)` writes the page as `minirnn.explore` does."""

    def __init__(self, page, height, trace=None):
        self.page, self.height, self.trace = page, height, trace
        # allow-scripts alone: the page runs its own script, and can reach nothing else
        super().__init__(f'<iframe srcdoc="{html.escape(page, quote=True)}" '
                         f'style="width: 100%; height: {height}px; border: 1px solid #ddd" '
                         f'sandbox="allow-scripts" title="minirnn explorer"></iframe>')

    def save(self, path, overwrite=False):
        """Write the page to `path` (an existing file only with overwrite=True) -> the path."""
        check_overwrite("path", path, overwrite)
        write_text(path, self.page)
        return path


def explorer(model, x, *, height=760, **options):
    """The explorer page of `model` on one sequence `x`, for a notebook to show inline.

    model, x and the keywords in `options` (tokens, head, vocab, labels, targets, hx, top_k,
    title, token_level, connect, loss) are those of minirnn.explore, which writes the same
    page to a file. height: the inline frame's height in pixels.
    """
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 100:
        raise ValueError(f"height: expected an integer number of pixels >= 100, got {height!r}")
    payload, trace = build(model, x, **options)
    return ExplorerPage(page_html(payload), int(height), trace)


__all__ = ["HTML", "ExplorerPage", "explorer", "trace_view", "step_view", "step_figure"]
