"""The persistent kernel against the blas path, whole forward+backward, in one process.

    python benchmarks/persistent_ab.py --json persistent-ab.json
    OPENBLAS_CORETYPE=Haswell python benchmarks/persistent_ab.py --json ab-haswell.json
    python benchmarks/persistent_ab.py --cells gru,rnn_tanh --shapes 100x32x128x256 --json a.json

minirnn.kernels' cells (--cells, registry names; default the LSTM) with path="blas" (the
default at B > 4: one BLAS product a step from Python) and path="persistent" (the whole time
loop in one Numba kernel shared by the threads, W_hh packed once per call), on the same data,
rounds alternating the order; per round each path's best of `--repeats` calls; the JSON
holds every round, the medians, the ratio blas/persistent (> 1: the persistent kernel is
faster), the threads, the BLAS as threadpoolctl sees it, the
Numba FMA peak and the foreign CPU load during the run. Threads: MINIRNN_NUM_THREADS (set it
before Python starts, as `minirnn bench` does; OpenBLAS reads OPENBLAS_NUM_THREADS).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

SHAPES = [(100, 32, 128, 256), (25, 32, 512, 512), (100, 64, 256, 512)]


def _best(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(shape, dtype, rounds, repeats, seed=0, cell="lstm"):
    from minirnn.cells import get_cell
    spec = get_cell(cell)
    kernel, G = spec.kernel(), spec.gates
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = [(0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in spec.state_names]
    k = 1 / np.sqrt(H)
    w_ih = rng.uniform(-k, k, (G * H, I)).astype(dtype)
    w_hh = rng.uniform(-k, k, (G * H, H)).astype(dtype)
    b = rng.uniform(-k, k, G * H).astype(dtype)
    extra = [spec.nonlinearity] if spec.nonlinearity else [None for _ in spec.extra_params]
    d_out = rng.standard_normal((T, B, H)).astype(dtype)

    def run(path):
        cache = kernel.forward(x, *state, w_ih, w_hh, b, b, *extra, None, path=path)[-1]
        return kernel.backward(cache, d_out, path=path)

    a, p = run("blas"), run("persistent")            # the same numbers first
    for i, (u, v) in enumerate(zip(a, p)):           # dx, the state and weight gradients
        if u is None:
            continue
        err = np.linalg.norm(u - v) / np.linalg.norm(u)
        if err > (1e-5 if dtype == "float32" else 1e-12):
            raise AssertionError(f"{cell} gradient {i}: persistent and blas paths differ by "
                                 f"{err:.2e}")
    per = {"blas": [], "persistent": []}
    for r in range(rounds):
        for path in (("blas", "persistent") if r % 2 == 0 else ("persistent", "blas")):
            per[path].append(_best(lambda: run(path), repeats))
    ratios = [u / v for u, v in zip(per["blas"], per["persistent"])]
    return dict(cell=cell, shape=list(shape), dtype=dtype, seconds=per,
                median_s={k: statistics.median(v) for k, v in per.items()},
                ratio=dict(median=statistics.median(ratios), min=min(ratios), max=max(ratios),
                           per_round=ratios))


def main(argv=None):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True, help="where to write the results (atomic)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--cells", default="lstm", help="comma-separated cell names (registry)")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated TxBxIxH (default: " + ", ".join(
                        "x".join(map(str, s)) for s in SHAPES) + ")")
    args = ap.parse_args(argv)
    import numba
    from threadpoolctl import threadpool_info

    from minirnn._io import write_json
    from minirnn.bench.env import LoadMonitor, blas_overrides, describe_machine, fma_peak
    from minirnn.kernels import _persistent
    mon = LoadMonitor().start()
    t0 = time.perf_counter()
    rows = []
    shapes = SHAPES if args.shapes is None else [
        tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    for cell, shape, dt in [(c, s, d) for c in args.cells.split(",") for s in shapes
                            for d in args.dtypes.split(",")]:
        row = measure(shape, dt, args.rounds, args.repeats, cell=cell)
        rows.append(row)
        print(f"{cell} {dt} T×B×I×H={'×'.join(map(str, shape))}: blas "
              f"{1e3 * row['median_s']['blas']:.1f} ms, persistent "
              f"{1e3 * row['median_s']['persistent']:.1f} ms, blas/persistent "
              f"{row['ratio']['median']:.2f} [{row['ratio']['min']:.2f}-"
              f"{row['ratio']['max']:.2f}]", flush=True)
    mon.stop()
    doc = dict(command="python benchmarks/persistent_ab.py " + " ".join(argv or sys.argv[1:]),
               machine=describe_machine(), overrides=blas_overrides(),
               numba_threads=numba.get_num_threads(),
               threads_how="this thread + numba_threads-1 pool threads, a spinning barrier a "
                           "step (minirnn/kernels/_barrier.py)",
               threadpools=[{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                                   "num_threads")} for d in threadpool_info()],
               fma_peak_gflops={dt: fma_peak(dt) for dt in args.dtypes.split(",")},
               panel_bytes=_persistent.PANEL_BYTES, load=mon.summary(),
               wall_s=time.perf_counter() - t0, rows=rows)
    write_json(args.json, doc)
    print(f"wrote {args.json}; foreign load mean {doc['load']['mean']:.2f} cores")


if __name__ == "__main__":
    main()
