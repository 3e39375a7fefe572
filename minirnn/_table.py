"""One aligned text table for every terminal report (parity, gradcheck, studies, tutorials)."""
from __future__ import annotations


def text_table(headers, rows, align="left"):
    """A header line, a rule, one line per row; cells are str()-ed. align: "left" or "right"
    (numbers read better right-aligned). Trailing spaces are stripped."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    pad = str.rjust if align == "right" else str.ljust
    line = lambda r: "  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])
