"""The batch-1 speed targets, read off a `minirnn bench` JSON: met or missed, per row.

    minirnn bench --regimes targets --backends numba,torch --blas both --json bench-targets.json
    python benchmarks/targets.py bench-targets.json

Targets (forward+backward, one layer, B=1, T=20, I=64; numba against torch on 1 thread, each
in its own process): float64 >= 5x for H <= 128 and >= 2.5x at H=256; float32 >= 4x at H=32,
>= 3x at H=64, >= 1.5x at H=128, >= 1x at H=256; and the time within 1.3x of the
memory-bandwidth floor (W_hh streamed twice a step) for H >= 64. The ratio is the bench's
median of per-round ratios; [min-max] is its spread over rounds. With jax in the run
(`--backends numba,torch,jax`): "x jax@N" and the target "jax" (numba ahead of JAX wherever it
is ahead of torch); `--floor 1.2` judges the floor at 1.2x.

Two floor columns: "x floor" is the whole forward+backward (the input projection, the weight
gradients and the Python around the kernels included) over the floor, as the bench reports
it; "loops x floor" is the time-loop phases alone (recurrent forward + backward-data, from the
split timing; backward-data still holds the dx = dz W_ih product) over the same floor -- the
closer measure of the kernels themselves. The floor target is judged on the second.

Only rows the bench left unflagged are judged: a row flagged order, load or peak (impossible
numbers, a busy machine), or whose per-round ratios to torch@1 disagree (spread: the ratio
judged here; a spread against torch@2 does not concern it), shows "!" and "not judged", and
the closing lines count them ("3 of 32 rows not judged: 3 load"); a row flagged split has no
floor verdict. A run where fewer than --min-judged of the rows (default half) can be judged
says so and exits 1, and so does a run that judged nothing: that is never a success. A
missing or malformed JSON is a one-line error.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import NamedTuple

from minirnn.bench.rows import spreads
from minirnn.bench.summary import ROW_FLAGS

SPEED = {"float64": {32: 5.0, 64: 5.0, 128: 5.0, 256: 2.5},
         "float32": {32: 4.0, 64: 3.0, 128: 1.5, 256: 1.0}}
FLOOR = 1.3                      # x the bandwidth floor, for H >= FLOOR_FROM
FLOOR_FROM = 64
MIN_JUDGED = 0.5                 # the share of rows that must be judged for a verdict


class Judgement(NamedTuple):
    lines: list                  # the table: a header and one line per row
    rows: int                    # the engine's rows in the targets regime
    rows_judged: int
    not_judged: dict             # reason (a flag code, or "no target") -> rows
    judged: int                  # targets judged (speed, floor, jax)
    missed: int


def rows_of(doc, engine):
    return [r for r in doc["rows"] if r["regime"] == "targets" and r["engine"] == engine]


def _loops_floor(row):
    """(recurrent forward + backward-data seconds) / the fwd+bwd floor, or None."""
    sec, floor = row.get("seconds", {}), (row.get("floor_s") or {}).get("fwd_bwd")
    if not floor or sec.get("rec") is None or sec.get("bwd_data") is None:
        return None
    return (sec["rec"] + sec["bwd_data"]) / floor


def verdict(value, ok):
    return f"{value} {'met' if ok else 'MISSED'}"


def jax_ref(doc):
    """The jax engine the bench compared with ("jax@N"), or None."""
    return next((n for n in doc.get("meta", {}).get("ratio_references", [])
                 if n.startswith("jax@")), None)


def _codes(row):
    return [f["code"] for f in row.get("flags", [])]


def _key(row):
    return row["cell"], row["dtype"], row["H"], row.get("T"), row.get("B"), row.get("I")


def _ratio_cell(ratio):
    return f"{ratio['median']:7.2f} [{ratio['min']:5.2f}-{ratio['max']:5.2f}]"


def judge(doc, engine, floor_limit=FLOOR) -> Judgement:
    """Every row of `engine` in the targets regime against its targets; rows the bench flagged
    (ROW_FLAGS) or whose ratio to torch@1 spread are shown and counted but not judged. With a jax engine in the run, a
    column "x jax" and the target "jax": numba ahead of JAX (ratio >= 1) on every row where it
    is ahead of torch@1, unless JAX's own row was flagged."""
    jx = jax_ref(doc)
    jax_flags = {_key(r): _codes(r) for r in doc["rows"] if jx and r["engine"] == jx}
    lines = [f"{'cell':9} {'dtype':8} {'H':>4}  {'x torch@1 [range]':>22}  {'target':>6}  "
             + (f"{'x ' + jx + ' [range]':>22}  " if jx else "")
             + f"{'x floor':>8}  {'loops x floor':>13}  result"]
    rows = sorted(rows_of(doc, engine), key=lambda r: (r["cell"], r["dtype"], r["H"]))
    not_judged, rows_judged, judged, missed = {}, 0, 0, 0
    for r in rows:
        ratio = r["ratio"].get("torch@1", {}).get("fwd_bwd")
        target = SPEED.get(r["dtype"], {}).get(r["H"])
        flags = _codes(r)
        # the row's own flags, and spread only where the ratio judged here (to torch@1) spread
        why = [c for c in ROW_FLAGS if c in flags] + ["spread"] * bool(ratio and spreads(ratio))
        if not why and (ratio is None or target is None):
            why = ["no target" if target is None else "no ratio"]
        for c in why:
            not_judged[c] = not_judged.get(c, 0) + 1
        floor = (r.get("floor_ratio") or {}).get("fwd_bwd")
        loops = _loops_floor(r)
        jr = (r["ratio"].get(jx) or {}).get("fwd_bwd") if jx else None
        show = lambda d: "!" if why else _ratio_cell(d)              # noqa: E731
        jcol = (f"{'-' if jr is None else show(jr):>22}  " if jx else "")
        cells = (f"{r['cell']:9} {r['dtype']:8} {r['H']:>4}  "
                 f"{'-' if ratio is None else show(ratio):>22}  "
                 f"{'-' if target is None else f'{target:.1f}':>6}  {jcol}"
                 f"{'-' if floor is None or why else f'{floor:.2f}':>8}  "
                 f"{'-' if loops is None or why else f'{loops:.2f}':>13}  ")
        if why:
            lines.append(cells + f"not judged: {', '.join(why)}"
                         + (f"  ({','.join(flags)})" if flags else ""))
            continue
        rows_judged += 1
        speed_ok = ratio["median"] >= target
        notes, results = [verdict("speed", speed_ok)], [speed_ok]
        if jr is not None and ratio["median"] >= 1:    # ahead of torch: must be ahead of jax too
            if any(c in ROW_FLAGS for c in jax_flags.get(_key(r), [])) or spreads(jr):
                notes.append("jax not judged (its row flagged)")
            else:
                results.append(jr["median"] >= 1)
                notes.append(verdict("jax", results[-1]))
        if loops is not None and r["H"] >= FLOOR_FROM and "split" not in flags:
            results.append(loops <= floor_limit)
            notes.append(verdict("floor", results[-1]))
        judged += len(results)
        missed += results.count(False)
        lines.append(cells + ", ".join(notes) + (f"  ({','.join(flags)})" if flags else ""))
    return Judgement(lines, len(rows), rows_judged, not_judged, judged, missed)


def table(doc, engine, floor_limit=FLOOR):
    """-> (lines, missed): judge()'s table and the targets it found missed."""
    j = judge(doc, engine, floor_limit)
    return j.lines, j.missed


def load(path):
    """The bench JSON at path, or SystemExit with one line saying what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        sys.exit(f"{path}: no such file; write one with `minirnn bench --regimes targets "
                 f"--backends numba,torch --json {path}`")
    except OSError as e:
        sys.exit(f"{path}: cannot read it ({e.strerror or e})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        sys.exit(f"{path}: not a JSON file ({e})")
    need = {"regime", "engine", "cell", "dtype", "H", "ratio"}
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and need <= set(r)
                                             and isinstance(r["ratio"], dict) for r in rows):
        sys.exit(f"{path}: not a `minirnn bench` JSON (expected an object whose \"rows\" are "
                 f"bench rows with {', '.join(sorted(need))})")
    return doc


def summary(j, engine, min_judged=MIN_JUDGED):
    """-> (lines for stdout, the error for stderr or None)."""
    counts = ", ".join(f"{n} {c}" for c, n in sorted(j.not_judged.items(),
                                                      key=lambda kv: (-kv[1], kv[0])))
    out = [f"{j.rows_judged} of {j.rows} rows judged"
           + (f"; {j.rows - j.rows_judged} of {j.rows} rows not judged: {counts}"
              if j.rows_judged < j.rows else "")]
    if j.judged:
        out.append(f"{j.missed} target(s) missed of {j.judged} judged")
    if j.judged == 0 or j.rows_judged == 0:
        return out, (f"no target judged: all {j.rows} '{engine}' rows were flagged or had no "
                     f"target ({counts}); rerun the bench on a quieter machine")
    if j.rows_judged < min_judged * j.rows:
        return out, (f"too few rows judged: {j.rows_judged} of {j.rows} (at least "
                     f"{100 * min_judged:.0f}% needed, --min-judged {min_judged}); not judged: "
                     f"{counts}; rerun the bench on a quieter machine")
    return out, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="a `minirnn bench` JSON with the targets regime")
    parser.add_argument("--engine", default="numba",
                        help="the engine row to judge: numba, or numba:native (default numba)")
    parser.add_argument("--floor", type=float, default=FLOOR,
                        help=f"the floor target: loops x floor at most this for H >= "
                             f"{FLOOR_FROM} (default {FLOOR})")
    parser.add_argument("--min-judged", type=float, default=MIN_JUDGED, metavar="SHARE",
                        help=f"the share of rows that must be judged (not flagged by the bench) "
                             f"for a verdict, in (0, 1] (default {MIN_JUDGED})")
    args = parser.parse_args(argv)
    if not 0 < args.min_judged <= 1:
        parser.error(f"--min-judged: expected a share in (0, 1], got {args.min_judged}")
    doc = load(args.json)
    if not rows_of(doc, args.engine):
        sys.exit(f"{args.json}: no '{args.engine}' rows in the targets regime; run "
                 f"minirnn bench --regimes targets --backends numba,torch")
    j = judge(doc, args.engine, args.floor)
    lines, error = summary(j, args.engine, args.min_judged)
    print("\n".join(j.lines + lines))
    if error:
        sys.exit(error)


if __name__ == "__main__":
    main()
