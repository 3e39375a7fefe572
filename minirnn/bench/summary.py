"""What a bench run says in ten seconds: which rows can be judged, the summary per regime, and
the narrow table (within 120 columns) that `minirnn bench` prints by default (put together
with the warnings by report.format_report).

A row is judged only when the bench left it free of the row flags: "order" and "peak" mark
numbers that cannot be right, "load" a busy machine (rows.row_flags). A flagged row shows "!"
in place of its ratios and % peak and stays out of every summary. A ratio is judged only when
both rows are judged and its own per-round values agree ("spread": they span more than
rows.SPREAD_LIMIT of their median). Spread is a property of one ratio, not of a row: a batch-1
numba row whose rounds agree against torch@1 is judged there even when torch@2's own
scheduling makes the ratio to torch@2 wander. Every summary line counts what it judged
("faster in 10 of 12 rows; 4 of 16 not judged: 4 spread").
"""
from __future__ import annotations

import statistics
import textwrap

from .rows import spreads

ROW_FLAGS = ("order", "load", "peak")            # flags that keep a row out of every verdict
UNJUDGED = ("order", "load", "spread", "peak")   # ... and what can keep one ratio out
WIDTH = 120                                       # the terminal width the default output fits
MIN_JUDGED = 0.5                                  # the share of ratio rows a run must judge
SHORT_DTYPE = {"float32": "f32", "float64": "f64"}


def flag_codes(row):
    return [f["code"] for f in row.get("flags", ())]


def judged(row):
    """May this row's times, GFLOP/s and % peak be reported as results? (Its ratios: ratio_of.)"""
    return row.get("valid", True) and not any(c in ROW_FLAGS for c in flag_codes(row))


def references(result):
    """(torch at the run's thread count -- torch@1 when that is all there is --, jax@N or
    None): the engines the summary compares with."""
    refs = result["meta"].get("ratio_references", [])
    jax = next((r for r in refs if r.startswith("jax@")), None)
    torch = next((r for r in refs if r.startswith("torch") and r != "torch@1"),
                 "torch@1" if "torch@1" in refs else None)
    return torch, jax


def ratio_of(row, ref, by_id):
    """The judged fwd+bwd ratio of row to ref: {median, min, max, ...}, or None when there is
    none, either row is flagged or its rounds disagree."""
    d = (row.get("ratio") or {}).get(ref, {}).get("fwd_bwd")
    other = by_id.get((row["id"], ref))
    if not d or not judged(row) or (other is not None and not judged(other)) or spreads(d):
        return None
    return d


def _index(result):
    return {(r["id"], r["engine"]): r for r in result["rows"]}


def why_not(row, ref, by_id):
    """The flags that keep row's ratio to ref out (its own and the reference row's), or
    ["no ratio"]."""
    other = by_id.get((row["id"], ref)) or {}
    d = (row.get("ratio") or {}).get(ref, {}).get("fwd_bwd") or {}
    codes = [c for c in ROW_FLAGS if c in flag_codes(row) or c in flag_codes(other)]
    if spreads(d):
        codes.append("spread")
    return codes or ["no ratio"]


def count_codes(reasons):
    """[[code, ...] per row] -> '3 load, 1 order' (rows per code, most first)."""
    out = {}
    for codes in reasons:
        for c in codes:
            out[c] = out.get(c, 0) + 1
    return ", ".join(f"{n} {c}" for c, n in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def minirnn_engines(result):
    return [e["name"] for e in result["meta"]["engines"] if e["kind"] == "numba"]


def summarise(result):
    """-> [dict(regime, engine, ref, rows, judged, faster, median, min, max, not_judged)]: per
    regime, per minirnn (numba) engine, per reference, the judged ratios."""
    by_id, out = _index(result), []
    regimes = list(dict.fromkeys(r["regime"] for r in result["rows"]))
    for ref in (x for x in references(result) if x):
        for eng in minirnn_engines(result):
            for reg in regimes:
                rows = [r for r in result["rows"] if r["engine"] == eng and r["regime"] == reg]
                if not rows:
                    continue
                ratios = [ratio_of(r, ref, by_id) for r in rows]
                vals = [d["median"] for d in ratios if d]
                unjudged = [why_not(r, ref, by_id) for r, d in zip(rows, ratios) if d is None]
                out.append(dict(regime=reg, engine=eng, ref=ref, rows=len(rows),
                                judged=len(vals), faster=sum(v > 1 for v in vals),
                                median=statistics.median(vals) if vals else None,
                                min=min(vals, default=None), max=max(vals, default=None),
                                not_judged=count_codes(unjudged)))
    return out


def judged_share(result):
    """(ratio rows judged, ratio rows) over every summary line: what the run can claim."""
    s = summarise(result)
    return sum(x["judged"] for x in s), sum(x["rows"] for x in s)


def summary_lines(result):
    lines = wrap("summary (forward+backward; x = the other engine's time / numba's, the median "
                 "of per-round ratios; rows flagged " + ", ".join(ROW_FLAGS) + ", and ratios "
                 "whose rounds disagree (spread), are left out):")
    s = summarise(result)
    if not s:
        why = ("no minirnn engine (numba) in this run" if not minirnn_engines(result) else
               "no reference engine (torch or jax) in this run: times only")
        return lines + [f"  {why}"]
    wide = max(len(x["regime"]) for x in s)
    for x in s:
        head = f"  {x['regime']:<{wide}}  {x['engine']} vs {x['ref']}: "
        left = x["rows"] - x["judged"]
        tail = f"; {left} of {x['rows']} not judged: {x['not_judged']}" if left else ""
        if not x["judged"]:
            lines += wrap(head + f"no row judged; {x['rows']} of {x['rows']} not judged: "
                          f"{x['not_judged']}", " " * 6)
            continue
        lines += wrap(head + f"faster in {x['faster']} of {x['judged']} rows, median "
                      f"{x['median']:.2f}x, range {x['min']:.2f}-{x['max']:.2f}x" + tail, " " * 6)
    problem = too_few(result)
    if problem:
        lines += wrap(f"  {problem}", " " * 6)
    return lines


def too_few(result):
    """A line saying the run judged too few ratios to be a result, or None."""
    done, total = judged_share(result)
    if not total or done >= MIN_JUDGED * total and done > 0:
        return None
    return (f"too few rows judged: {done} of {total} ratios (at least {100 * MIN_JUDGED:.0f}% "
            f"needed; foreign load during the run: mean "
            f"{_num(result['meta']['load']['during'].get('mean'))} cores): not a result; rerun "
            f"on a quieter machine")


def _num(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def align(head, lines, left):
    """Columns padded to their widest cell (left-aligned where `left` has the index), a
    dashed rule under the head; trailing blanks cut."""
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    fmt = lambda cols: "  ".join(c.ljust(w) if i in left else c.rjust(w)     # noqa: E731
                                 for i, (c, w) in enumerate(zip(cols, widths))).rstrip()
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.4g}"


def narrow_table(result):
    """One line per problem and engine, within WIDTH columns: the times, the ratios to torch
    (and jax), % of the GEMM peak, the flags; "!" where a flag keeps a number out."""
    torch, jax = references(result)
    one = "torch@1" if torch and torch != "torch@1" and "torch@1" in \
        result["meta"].get("ratio_references", []) else None
    by_id = _index(result)
    head = ["regime", "cell", "dt", "TxBxIxH", "engine", "f+b ms", "+-%"]
    refs = [r for r in (torch, one, jax) if r]
    head += [f"x {r}" for r in refs] + ["%peak", "flags"]
    lines = []
    for r in result["rows"]:
        sec, ok = r["seconds"].get("fwd_bwd"), judged(r)
        lo, hi = r["spread"].get("fwd_bwd", [None, None])
        pm = f"{100 * (hi - lo) / sec:.0f}" if lo is not None and sec else "-"
        cells = [r["regime"], r["cell"], SHORT_DTYPE.get(r["dtype"], r["dtype"]),
                 f"{r['T']}x{r['B']}x{r['I']}x{r['H']}", r["engine"], _ms(sec), pm]
        for ref in refs:
            d = ratio_of(r, ref, by_id)
            has = (r.get("ratio") or {}).get(ref, {}).get("fwd_bwd")
            cells.append(f"{d['median']:.2f}" if d else ("!" if has else "-"))
        pf = r.get("peak_fraction", {}).get("fwd_bwd")
        cells += [("!" if not ok else _num(pf and 100 * pf, ".1f")),
                  ",".join(flag_codes(r)) or "-"]
        lines.append(cells)
    out = align(head, lines, {0, 1, 2, 3, 4, len(head) - 1})
    return [_fit(line) for line in out]


def _fit(line):
    """A table line longer than WIDTH (only ever its flags column): the flags cut, "+"."""
    return line if len(line) <= WIDTH else line[:WIDTH - 1] + "+"


def wrap(text, indent="  "):
    return textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def title(result):
    meta, m = result["meta"], result["meta"]["machine"]
    d = meta["load"]["during"]
    return (f"minirnn bench{' --quick' if meta['quick'] else ''}: {len(result['rows'])} rows, "
            f"{meta['rounds']} rounds, {meta.get('wall_s', 0):.0f} s; {m['cpu_model']}, "
            f"{m['usable_cores']} cores, {meta['threads']} threads; foreign load mean "
            f"{_num(d.get('mean'))}, max {_num(d.get('max'))} cores "
            f"(limit {meta['load']['limit_cores']})")
