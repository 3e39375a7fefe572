"""The batch-1 speed targets, read off a `minirnn bench` JSON: met or missed, per row.

    minirnn bench --regimes targets --backends numba,torch --blas both --json bench-targets.json
    python benchmarks/targets.py bench-targets.json

Targets (forward+backward, one layer, B=1, T=20, I=64; numba against torch on 1 thread, each
in its own process): float64 >= 5x for H <= 128 and >= 2.5x at H=256; float32 >= 4x at H=32,
>= 3x at H=64, >= 1.5x at H=128, >= 1x at H=256; and the time within 1.3x of the
memory-bandwidth floor (W_hh streamed twice a step) for H >= 64. The ratio is the bench's
median of per-round ratios; [min-max] is its spread over rounds. With jax in the run
(`--backends numba,torch,jax`): "x jax@N" and the target "jax" (numba ahead of JAX wherever it
is ahead of torch); `--floor 1.2` judges the floor at issue 23's 1.2x.

Two floor columns: "x floor" is the whole forward+backward (the input projection, the weight
gradients and the Python around the kernels included) over the floor, as the bench reports
it; "loops x floor" is the time-loop phases alone (recurrent forward + backward-data, from the
split timing; backward-data still holds the dx = dz W_ih product) over the same floor -- the
closer measure of the kernels themselves. The floor target is judged on the second.
"""
from __future__ import annotations

import argparse
import json
import sys

SPEED = {"float64": {32: 5.0, 64: 5.0, 128: 5.0, 256: 2.5},
         "float32": {32: 4.0, 64: 3.0, 128: 1.5, 256: 1.0}}
FLOOR = 1.3                      # x the bandwidth floor, for H >= FLOOR_FROM
FLOOR_FROM = 64


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


def table(doc, engine, floor_limit=FLOOR):
    """-> (lines, missed). With a jax engine in the run, a column "x jax" and the target
    "jax": numba ahead of JAX (ratio >= 1) on every row where it is ahead of torch@1."""
    jx = jax_ref(doc)
    lines = [f"{'cell':9} {'dtype':8} {'H':>4}  {'x torch@1 [range]':>22}  {'target':>6}  "
             + (f"{'x ' + jx + ' [range]':>22}  " if jx else "")
             + f"{'x floor':>8}  {'loops x floor':>13}  result"]
    missed = 0
    for r in sorted(rows_of(doc, engine), key=lambda r: (r["cell"], r["dtype"], r["H"])):
        ratio = r["ratio"].get("torch@1", {}).get("fwd_bwd")
        target = SPEED.get(r["dtype"], {}).get(r["H"])
        if ratio is None or target is None:
            continue
        speed_ok = ratio["median"] >= target
        floor = (r.get("floor_ratio") or {}).get("fwd_bwd")
        loops = _loops_floor(r)
        floor_ok = loops is None or r["H"] < FLOOR_FROM or loops <= floor_limit
        missed += (not speed_ok) + (not floor_ok)
        notes = [verdict("speed", speed_ok)]
        jcol = ""
        if jx:
            jr = (r["ratio"].get(jx) or {}).get("fwd_bwd")
            if jr is None:
                jcol = f"{'-':>22}  "
            else:
                jcol = f"{jr['median']:7.2f} [{jr['min']:5.2f}-{jr['max']:5.2f}]{'':>2}  "
                if ratio["median"] >= 1:          # ahead of torch: must be ahead of jax too
                    jax_ok = jr["median"] >= 1
                    missed += not jax_ok
                    notes.append(verdict("jax", jax_ok))
        if loops is not None and r["H"] >= FLOOR_FROM:
            notes.append(verdict("floor", floor_ok))
        flags = ",".join(f["code"] for f in r.get("flags", []))
        lines.append(f"{r['cell']:9} {r['dtype']:8} {r['H']:>4}  {ratio['median']:7.2f} "
                     f"[{ratio['min']:5.2f}-{ratio['max']:5.2f}]  {target:>6.1f}  {jcol}"
                     f"{'-' if floor is None else f'{floor:.2f}':>8}  "
                     f"{'-' if loops is None else f'{loops:.2f}':>13}  {', '.join(notes)}"
                     + (f"  ({flags})" if flags else ""))
    return lines, missed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="a `minirnn bench` JSON with the targets regime")
    parser.add_argument("--engine", default="numba",
                        help="the engine row to judge: numba, or numba:native (default numba)")
    parser.add_argument("--floor", type=float, default=FLOOR,
                        help=f"the floor target: loops x floor at most this for H >= "
                             f"{FLOOR_FROM} (default {FLOOR}; issue 23 asks 1.2)")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        doc = json.load(f)
    if not rows_of(doc, args.engine):
        sys.exit(f"{args.json}: no '{args.engine}' rows in the targets regime; run "
                 f"minirnn bench --regimes targets --backends numba,torch")
    lines, missed = table(doc, args.engine, args.floor)
    print("\n".join(lines))
    print(f"{missed} target(s) missed")


if __name__ == "__main__":
    main()
