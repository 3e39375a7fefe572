"""Per-sample gradients: minirnn (one forward, one backward, per-sample contractions) against a
torch loop of one backward per example (torch.func.vmap cannot batch nn.LSTM / nn.GRU).

    python benchmarks/per_sample.py                       # B=64, T=50, I=H=64, every cell
    python benchmarks/per_sample.py --json docs/bench-per-sample.json

Each engine runs in its own process (OpenBLAS's spinning threads slow torch when both share
one), rounds alternate engines, one thread each (MINIRNN_NUM_THREADS=1, torch.set_num_threads
(1)); the median of each engine's per-round times is reported with its spread. Both compute
the same thing, float64, every example at full length: the first round checks minirnn's
per-sample gradients against torch's to 1e-10 before anything is timed.

Memory: minirnn holds B × |θ| numbers of per-sample gradients (|θ| the cell's parameter
count); each row states them, and the largest batch that per_sample_gradients' default
memory_limit (1 GiB) admits at that size -- a larger one is refused with the bytes it needs.
The JSON records the machine, the versions, the command and the load before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _problem(cell, B, T, I, H, seed=0):
    from minirnn.nn import make_recurrent
    m = make_recurrent(cell, I, H, seed=seed, backend="numba")
    rng = np.random.default_rng(seed)
    return m, rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))


def _minirnn(cell, B, T, I, H, repeats):
    import minirnn
    m, x, d_out = _problem(cell, B, T, I, H)
    minirnn.grad.per_sample_gradients(m, x, d_out)                     # compile, warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = minirnn.grad.per_sample_gradients(m, x, d_out)
        times.append(time.perf_counter() - t0)
    return times, {k: v.tolist() for k, v in g.items() if k.startswith("weight_hh")}


def _torch(cell, B, T, I, H, repeats):
    import torch
    torch.set_num_threads(1)
    from minirnn.interop.torch import to_torch
    m, x, d_out = _problem(cell, B, T, I, H)
    twin = to_torch(m)
    xs, ds = torch.from_numpy(x), torch.from_numpy(d_out)

    def run():
        out = {n: [] for n, _ in twin.named_parameters()}
        for b in range(B):
            twin.zero_grad()
            o, _ = twin(xs[:, b:b + 1])
            (o * ds[:, b:b + 1]).sum().backward()
            for n, p in twin.named_parameters():
                out[n].append(p.grad.clone())
        return out

    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = run()
        times.append(time.perf_counter() - t0)
    return times, {k: torch.stack(v).numpy().tolist() for k, v in g.items()
                   if k.startswith("weight_hh")}


def memory(cell, B, I, H):
    """|θ|, B × |θ| per-sample numbers, their bytes (float64) and the largest batch the
    default memory_limit admits."""
    from minirnn.grad.per_sample import MEMORY_LIMIT
    from minirnn.nn import make_recurrent
    n = sum(p.size for p in make_recurrent(cell, I, H).params.values())
    return dict(params=n, per_sample_numbers=B * n, per_sample_bytes=8 * B * n,
                max_batch_default_limit=MEMORY_LIMIT // (8 * n))


def environment(argv):
    """The machine, the versions (torch's from its metadata: the parent never imports it),
    one thread per engine, the command."""
    from importlib.metadata import version

    from minirnn.bench.env import describe_machine
    return dict(machine=describe_machine(), numpy=np.__version__, numba=version("numba"),
                torch=version("torch"), threads_per_engine=1,
                command="python benchmarks/per_sample.py " + " ".join(
                    sys.argv[1:] if argv is None else argv))


def _worker(args):
    fn = _minirnn if args.engine == "minirnn" else _torch
    times, grads = fn(args.cell, args.B, args.T, args.I, args.H, args.repeats)
    print(json.dumps({"times": times, "grads": grads if args.check else None}))


def _spawn(engine, cell, args, check):
    env = dict(os.environ, MINIRNN_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", engine, "--cell", cell, "--B", str(args.B),
           "--T", str(args.T), "--I", str(args.I), "--H", str(args.H), "--repeats",
           str(args.repeats)] + (["--check"] if check else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="rnn_tanh,lstm,gru")
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--T", type=int, default=50)
    p.add_argument("--I", type=int, default=64)
    p.add_argument("--H", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per round")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", dest="engine", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cell", default="lstm", help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.engine:
        return _worker(args)
    from minirnn.bench.env import LoadMonitor
    env = environment(argv)
    load_before = dict(foreign_cores_1s=LoadMonitor().measure(1.0), loadavg=os.getloadavg())
    print(f"load before: foreign {load_before['foreign_cores_1s']:.2f} cores (1 s), load "
          f"average {load_before['loadavg'][0]:.2f}; {env['machine']['usable_cores']} cores, "
          f"1 thread per engine")
    rows = []
    for cell in args.cells.split(","):
        times = {"minirnn": [], "torch": []}
        for r in range(args.rounds):
            order = ("minirnn", "torch") if r % 2 == 0 else ("torch", "minirnn")
            res = {e: _spawn(e, cell, args, check=(r == 0)) for e in order}
            if r == 0:                                   # the same numbers, or no timing
                for k, g in res["minirnn"]["grads"].items():
                    err = np.abs(np.array(g) - np.array(res["torch"]["grads"][k])).max()
                    scale = np.abs(np.array(res["torch"]["grads"][k])).max()
                    assert err <= 1e-10 * scale, f"{cell} {k}: {err:.2e}"
            for e in order:
                times[e].append(float(np.median(res[e]["times"])))
        med = {e: float(np.median(t)) for e, t in times.items()}
        ratios = [t / m for m, t in zip(times["minirnn"], times["torch"])]
        rows.append(dict(cell=cell, B=args.B, T=args.T, I=args.I, H=args.H,
                         minirnn_ms=1e3 * med["minirnn"], torch_ms=1e3 * med["torch"],
                         speedup=float(np.median(ratios)),
                         speedup_range=[float(min(ratios)), float(max(ratios))],
                         **memory(cell, args.B, args.I, args.H)))
        r = rows[-1]
        print(f"{cell:8s} B={args.B} T={args.T} H={args.H}: minirnn {r['minirnn_ms']:8.1f} ms, "
              f"torch loop {r['torch_ms']:8.1f} ms, {r['speedup']:.1f}x "
              f"[{r['speedup_range'][0]:.1f}-{r['speedup_range'][1]:.1f}] ({args.rounds} rounds)")
        print(f"{'':8s} memory: B × |θ| = {args.B} × {r['params']} = {r['per_sample_numbers']} "
              f"numbers ({r['per_sample_bytes'] / 2**20:.1f} MiB); the default memory_limit "
              f"refuses B > {r['max_batch_default_limit']} at this size")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} (it counts this benchmark's own worker)")
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, {"rows": rows, "load_before": load_before,
                               "loadavg_after": load_after, "environment": env})
    return rows


if __name__ == "__main__":
    main()
