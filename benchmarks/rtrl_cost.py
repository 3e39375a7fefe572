"""What RTRL costs per step against the hidden size: the NumPy reference and the Numba kernel.

    python benchmarks/rtrl_cost.py                                # lstm, gru, rnn_tanh; H 8..64
    python benchmarks/rtrl_cost.py --cells lstm --hidden 8,16,32,64 --json rtrl.json

Per cell, H and backend: `minirnn.grad.rtrl_gradient` over T steps of one sequence (B = 1,
I = H, float64), wall time per step, the minimum over interleaved rounds (the quietest
estimate on a shared machine), 1 BLAS thread. Beside it: the influence matrix's size
(S × |θ| numbers), and the rate of the one O(S^2 |θ|) product J_s M a step needs
(2 S^2 |θ| flops / time: the share of the step that is that product's arithmetic). The
machine, versions, BLAS and the foreign CPU load while it ran are printed with the table.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def measure(cell, H, backend, T, rounds):
    """-> seconds per step (min over rounds), S, |θ|."""
    from minirnn.grad import rtrl_gradient
    from minirnn.nn import make_recurrent
    model = make_recurrent(cell, H, H, dtype="float64", backend=backend, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((T, 1, H)), rng.standard_normal((T, 1, H))
    rtrl_gradient(model, x[:2], y[:2])                  # compile / load the kernels, warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        rtrl_gradient(model, x, y)
        best = min(best, (time.perf_counter() - start) / T)
    S = H * len(model.spec.state_names)
    return best, S, sum(p.size for p in model.params.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="lstm,gru,rnn_tanh")
    parser.add_argument("--hidden", default="8,16,32,64", help="comma-separated hidden sizes")
    parser.add_argument("--backends", default="numpy,numba")
    parser.add_argument("--steps", type=int, default=10, help="T per timed run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows here (atomic)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from minirnn._table import text_table
    from minirnn.bench.env import LoadMonitor, environment_text
    monitor = LoadMonitor()
    before = monitor.measure(1.0)
    monitor.start()
    rows, records = [], []
    backends = args.backends.split(",")
    with threadpool_limits(1):
        env = environment_text()                         # the BLAS threads as measured
        for cell in args.cells.split(","):
            for H in (int(h) for h in args.hidden.split(",")):
                per = {b: measure(cell, H, b, args.steps, args.rounds) for b in backends}
                S, N = next(iter(per.values()))[1:]
                flops = 2.0 * S * S * N
                row = [cell, H, S, N, f"{S * N * 8 / 2**20:.2f}"]
                for b in backends:
                    sec = per[b][0]
                    row += [f"{1e6 * sec:.0f}", f"{flops / sec / 1e9:.2f}"]
                    records.append(dict(cell=cell, H=H, S=S, params=N, backend=b,
                                        us_per_step=1e6 * sec, gflops=flops / sec / 1e9))
                if len(backends) == 2:
                    row.append(f"{per[backends[0]][0] / per[backends[1]][0]:.1f}")
                rows.append(row)
    monitor.stop()
    load = monitor.summary()
    headers = ["cell", "H", "S", "|θ|", "M MiB"]
    for b in backends:
        headers += [f"{b} µs/step", f"{b} GFLOP/s"]
    if len(backends) == 2:
        headers.append(f"{backends[0]}/{backends[1]}")
    print(env)
    print(f"B=1, I=H, float64, 1 BLAS thread, T={args.steps}, min over {args.rounds} rounds; "
          f"GFLOP/s counts the product J_s M only (2 S^2 |θ| a step)")
    print(f"foreign load (cores, {load['method']}): before {before:.2f}, during mean "
          f"{(load['mean'] or 0):.2f} max {(load['max'] or 0):.2f}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(text_table(headers, rows, align="right"))
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, dict(rows=records, load=load, load_before=before,
                                   environment=env, argv=argv))


if __name__ == "__main__":
    main()
