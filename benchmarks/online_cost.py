"""What each online method costs per step against the hidden size.

    python benchmarks/online_cost.py                         # rnn_tanh, gru, lstm; H 8..64
    python benchmarks/online_cost.py --cells gru --hidden 16,32 --json online-cost.json

Per cell, H and method (minirnn.grad.online: rtrl, snap-1, snap-2, uoro, kf-rtrl, rflo,
e-prop, and SnAp-2 and RTRL with 75% and 90% of W_hh fixed at 0): T steps of one sequence
(B = 1, I = H, float64, 1 BLAS thread), timed in two parts per step, the minimum over
interleaved rounds of each part's mean:
  jac     forming the step's dense Jacobians J_t, M̄_t (OnlineState.advance: the cell's
          step_jacobians and forward), the same for every method; O(S·N) = O(H³)
  method  the method's own work on them: its influence update and its gradient
and the floats its influence holds. The exponent of the method's time against H between the
two largest sizes is in the table, the Jacobians' under it. The structural patterns
of SnAp, e-prop and RFLO are found once, before the timing (not in it). The machine,
versions and the foreign CPU load while it ran are printed with the table.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

# (label, method, W_hh sparsity)
METHODS = (("rtrl", "rtrl", 0.0), ("snap-1", "snap-1", 0.0), ("snap-2", "snap-2", 0.0),
           ("uoro", "uoro", 0.0), ("kf-rtrl", "kf-rtrl", 0.0), ("rflo", "rflo", 0.0),
           ("e-prop", "e-prop", 0.0), ("rtrl 75%", "rtrl", 0.75),
           ("snap-2 75%", "snap-2", 0.75), ("rtrl 90%", "rtrl", 0.9),
           ("snap-2 90%", "snap-2", 0.9))


def prepare(cell, H, method, sparsity):
    """-> (OnlineState, tracker) of a fresh model; W_hh masked when sparsity > 0."""
    from minirnn.grad.online import OnlineState, make_tracker, recurrent_mask
    from minirnn.nn import make_recurrent
    model = make_recurrent(cell, H, H, dtype="float64", seed=0)
    mask = None
    if sparsity:
        mask = recurrent_mask(model, sparsity, seed=0)
        model.params["weight_hh_l0"][~mask] = 0.0
    zeros = tuple(np.zeros((1, n)) for n in model.state_sizes)
    st = OnlineState(model, 1, zeros, mask)
    return st, make_tracker(method, st, memory_limit=1 << 34)


def one_round(st, tracker, x, g_s):
    """-> (seconds per step forming the Jacobians, seconds per step of the method)."""
    jac_s = method_s = 0.0
    for x_t in x:
        t0 = time.perf_counter()
        jac = st.advance(x_t)
        t1 = time.perf_counter()
        tracker.update(jac, None)
        tracker.grad(g_s)
        method_s += time.perf_counter() - t1
        jac_s += t1 - t0
    return jac_s / len(x), method_s / len(x)


def measure(cell, H, rows, T, rounds):
    """Every method of `rows` at one (cell, H), rounds interleaved across the methods
    -> {label: (jac s/step, method s/step, floats held)}."""
    rng = np.random.default_rng(0)
    runs = {label: prepare(cell, H, m, sp) for label, m, sp in rows}
    x = rng.standard_normal((T, 1, H))
    best = {label: [np.inf, np.inf] for label in runs}
    for _ in range(rounds):
        for label, (st, tracker) in runs.items():
            g_s = rng.standard_normal((1, st.S))
            jac_s, method_s = one_round(st, tracker, x, g_s)
            best[label] = [min(best[label][0], jac_s), min(best[label][1], method_s)]
    return {label: (*best[label], runs[label][1].numbers) for label in runs}


def slope(H, values):
    """The exponent between the two largest sizes: log(v2/v1) / log(H2/H1) (where the
    arithmetic, not the per-call overhead, sets the time)."""
    if len(H) < 2 or min(values[-2:]) <= 0:
        return float("nan")
    return float(np.log(values[-1] / values[-2]) / np.log(H[-1] / H[-2]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="rnn_tanh,gru,lstm")
    parser.add_argument("--hidden", default="8,16,32,64", help="comma-separated hidden sizes")
    parser.add_argument("--methods", default=",".join(r[0] for r in METHODS),
                        help="comma-separated labels of the rows to run")
    parser.add_argument("--steps", type=int, default=4, help="T per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows here (atomic)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from minirnn._table import text_table
    from minirnn.bench.env import LoadMonitor, environment_text
    wanted = args.methods.split(",")
    rows_wanted = [r for r in METHODS if r[0] in wanted]
    hidden = [int(h) for h in args.hidden.split(",")]
    monitor = LoadMonitor()
    before = monitor.measure(1.0)
    monitor.start()
    table, records = [], []
    with threadpool_limits(1):
        env = environment_text()
        for cell in args.cells.split(","):
            per_h = {H: measure(cell, H, rows_wanted, args.steps, args.rounds) for H in hidden}
            for label, *_ in rows_wanted:
                jac = [per_h[H][label][0] for H in hidden]
                meth = [per_h[H][label][1] for H in hidden]
                table.append([cell, label]
                             + [f"{1e6 * j:.0f} + {1e6 * m:.0f}" for j, m in zip(jac, meth)]
                             + [f"{slope(hidden, meth):.1f}",
                                f"{per_h[hidden[-1]][label][2]:,}"])
                records += [dict(cell=cell, method=label, H=H, jac_us=1e6 * per_h[H][label][0],
                                 method_us=1e6 * per_h[H][label][1],
                                 floats=per_h[H][label][2]) for H in hidden]
    monitor.stop()
    load = monitor.summary()
    print(env)
    print(f"B=1, I=H, float64, 1 BLAS thread, T={args.steps}, min over {args.rounds} "
          f"interleaved rounds; µs per step: forming the dense Jacobians + the method's own work")
    print(f"foreign load (cores, {load['method']}): before {before:.2f}, during mean "
          f"{(load['mean'] or 0):.2f} max {(load['max'] or 0):.2f}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(text_table(["cell", "method"] + [f"H={H} µs" for H in hidden]
                     + [f"method ~ H^ ({hidden[-2] if len(hidden) > 1 else '-'}->{hidden[-1]})",
                        f"floats at H={hidden[-1]}"], table, align="right"))
    jac_slope = {c: slope(hidden, [r["jac_us"] for r in records
                                   if r["cell"] == c and r["method"] == rows_wanted[0][0]])
                 for c in args.cells.split(",")}
    print("forming the Jacobians ~ H^" + ", ".join(f"{s:.1f} ({c})" for c, s in jac_slope.items()))
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, dict(rows=records, load=load, load_before=before,
                                   environment=env, argv=argv))


if __name__ == "__main__":
    main()
