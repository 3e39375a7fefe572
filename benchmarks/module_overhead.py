"""What the public module adds over the Numba kernels it calls, at batch 1.

    python benchmarks/module_overhead.py                      # LSTM, GRU, RNN; H 32 and 128
    python benchmarks/module_overhead.py --cells lstm --hidden 32,128,256 --dtype float64

Per cell and size, three things are timed in one process, interleaved over rounds (the
minimum of each over rounds, the quietest estimate on a shared machine):
  kernels   the kernel module's forward + backward (minirnn.kernels._<family>), called as the
            module calls them (zero states, no lengths)
  module    model.forward(x) + model.backward(d_out): validation, dispatch through the registry
            and the backend, the record for backward, and the gradient accumulation into
            model.grads that the module's semantics require
  accum     that accumulation alone (model.grads[k] += g, every parameter), for reference
  pool      the module again, with BLAS at its own pool's count (the usable cores) instead of 1:
            what a user's process runs with. The thread policy (minirnn/_threads.py) then
            switches BLAS to 1 thread for each layer call and back; "policy" = pool - module
The overhead is module - kernels. One layer, one direction, T=20, I=64, B=1.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _best_of_rounds(fns, rounds, repeats, blas):
    """blas[k]: the BLAS thread count fns[k]'s block of calls runs under."""
    from threadpoolctl import threadpool_limits
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            with threadpool_limits(blas[k], user_api="blas"):
                start = time.perf_counter()
                for _ in range(repeats):
                    fn()
                best[k] = min(best[k], (time.perf_counter() - start) / repeats)
    return best


def measure(cell, H, dtype, T=20, I=64, rounds=15, repeats=100, pool=None):
    """-> {kernels, module, accum, pool}: seconds per call (pool: the module at `pool` BLAS
    threads, default the usable cores; the rest at 1)."""
    from minirnn.cells import get_cell
    from minirnn.nn import make_recurrent
    spec = get_cell(cell)
    model = make_recurrent(cell, I, H, dtype=dtype, backend="numba", seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, 1, I)).astype(dtype)
    d_out = rng.standard_normal((T, 1, H)).astype(dtype)
    params = {n: model.params.get(f"{n}_l0") for n in spec.param_names}
    state = tuple(np.zeros((1, H), dtype) for _ in spec.state_names)
    no_d_state = (None,) * len(spec.state_names)

    def kernels():
        _, _, cache = spec.forward(x, state, params, backend="numba")
        spec.backward(cache, d_out, no_d_state, backend="numba")

    def module():
        model.forward(x)
        model.backward(d_out)

    grads = {k: np.ones_like(g) for k, g in model.grads.items()}

    def accum():
        for k, g in grads.items():
            model.grads[k] += g

    from minirnn._threads import usable_cores
    pool = pool or usable_cores()
    for fn in (kernels, module, accum):      # compile / load the kernels, warm the caches
        fn()
    return dict(zip(("kernels", "module", "accum", "pool"), _best_of_rounds(
        (kernels, module, accum, module), rounds, repeats, (1, 1, 1, pool))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="lstm,gru,rnn_tanh")
    parser.add_argument("--hidden", default="32,128", help="comma-separated hidden sizes")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    from minirnn._threads import usable_cores
    print(f"batch 1, T=20, I=64, {args.dtype}, 1 BLAS thread; minimum over {args.rounds} "
          f"interleaved rounds of 100 calls")
    print(f"{'cell':9} {'H':>4} {'kernels us':>11} {'module us':>10} {'overhead us':>12} "
          f"{'of it accum':>12}")
    pooled = []
    for cell in args.cells.split(","):
        for H in (int(h) for h in args.hidden.split(",")):
            t = measure(cell.strip(), H, args.dtype, rounds=args.rounds)
            k, m, a, p = (1e6 * t[n] for n in ("kernels", "module", "accum", "pool"))
            print(f"{cell:9} {H:>4} {k:11.1f} {m:10.1f} {m - k:12.1f} {a:12.1f}", flush=True)
            pooled.append((cell, H, m, p))
    print(f"\nthe thread policy: the module with BLAS at its pool's {usable_cores()} threads, "
          f"which each layer call switches to 1 and back")
    print(f"{'cell':9} {'H':>4} {'module us':>10} {'pool us':>8} {'policy us':>10}")
    for cell, H, m, p in pooled:
        print(f"{cell:9} {H:>4} {m:10.1f} {p:8.1f} {p - m:10.1f}")


if __name__ == "__main__":
    main()
