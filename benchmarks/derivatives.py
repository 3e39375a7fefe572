"""What the exact derivatives cost: minirnn's HVP, GN product and JVP against one forward +
backward, and against torch's double backward and torch.func.jvp on CPU.

    python benchmarks/derivatives.py                       # B=1, T=50, I=H=64, every cell
    python benchmarks/derivatives.py --rounds 7 --json derivatives.json
    python benchmarks/derivatives.py --cells lstm --B 8 --T 100 --H 128

Engines, each in its own worker process at the same thread count (--threads, default 1:
BLAS, OpenMP, numba and torch.set_num_threads), float64, the same shapes:

  numba   minirnn with backend="numba" (the tangent kernels minirnn/kernels/_*_tangent.py)
  numpy   minirnn's NumPy reference (forward_jvp / backward_jvp in minirnn/functional/)
  torch   nn.RNN / nn.LSTM / nn.GRU on CPU: fwd+bwd = autograd.grad of the MSE; hvp = grad with
          create_graph=True, then grad of <g, v> (its double backward through the non-cuDNN
          path); jvp = torch.func.jvp along every parameter

Timed per call: fwd+bwd (model.forward_state + backward_state, or torch's), hvp
(minirnn.grad.hvp with an MSELoss), gnvp (minirnn only), jvp (tangents for every parameter).
Honest by construction (as `minirnn bench`): engines alternate over rounds in fresh
processes, each round reports per-call medians (3 warm-up calls, then repeats for >= 0.3 s),
the table gives the median over rounds with the min-max, ratios are medians of per-round
ratios, the environment (minirnn/bench/env.py) and the foreign load are recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ENGINES = ("numba", "numpy", "torch")
CELLS = ("rnn_tanh", "lstm", "gru")
PHASES = ("fwd_bwd", "hvp", "gnvp", "jvp")


def _time(fn, min_time=0.3, warmup=3, max_repeats=2000):
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _minirnn_worker(engine, cell, T, B, I, H, seed):
    import numpy as np

    from minirnn.grad import MSELoss, gnvp, hvp, jvp
    from minirnn.nn import make_recurrent
    rng = np.random.default_rng(seed)
    model = make_recurrent(cell, I, H, seed=seed, backend=engine).eval()
    x, y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    v = {k: rng.standard_normal(p.shape) for k, p in model.params.items()}
    loss = MSELoss(y)

    def fwd_bwd():
        out, _ = model.forward_state(x)
        model.backward_state(loss.grad(out))
    return {"fwd_bwd": _time(fwd_bwd), "hvp": _time(lambda: hvp(model, x, loss, v)),
            "gnvp": _time(lambda: gnvp(model, x, loss, v)),
            "jvp": _time(lambda: jvp(model, x, None, v))}


def _torch_worker(cell, T, B, I, H, seed):
    import torch

    from minirnn.cells import get_cell
    torch.manual_seed(seed)
    spec = get_cell(cell)
    m = getattr(torch.nn, spec.module)(I, H, dtype=torch.float64, **spec.module_kwargs())
    params = list(m.parameters())
    x, y = torch.randn(T, B, I, dtype=torch.float64), torch.randn(T, B, H, dtype=torch.float64)
    v = [torch.randn_like(p) for p in params]

    def loss():
        return torch.nn.functional.mse_loss(m(x)[0], y)

    def fwd_bwd():
        torch.autograd.grad(loss(), params)

    def hvp():
        g = torch.autograd.grad(loss(), params, create_graph=True)
        torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, v)), params)
    names = [n for n, _ in m.named_parameters()]
    primal = {n: p.detach() for n, p in m.named_parameters()}
    tangent = dict(zip(names, v))

    def jvp():
        torch.func.jvp(lambda p: torch.func.functional_call(m, p, (x,))[0], (primal,),
                       (tangent,))
    return {"fwd_bwd": _time(fwd_bwd), "hvp": _time(hvp), "jvp": _time(jvp)}


def worker(args):
    from threadpoolctl import threadpool_info, threadpool_limits
    info = {"engine": args.worker, "rows": {}}
    with threadpool_limits(args.threads):
        if args.worker == "torch":
            import torch

            from minirnn.parity.torch_ref import load_forward_ad
            torch.set_num_threads(args.threads)
            info["torch_threads"] = torch.get_num_threads()
            load_forward_ad()          # before the timed jvp: without TorchScript's warnings
        for cell in args.cells.split(","):
            if args.worker == "torch":
                info["rows"][cell] = _torch_worker(cell, args.T, args.B, args.I, args.H, args.seed)
            else:
                info["rows"][cell] = _minirnn_worker(args.worker, cell, args.T, args.B, args.I,
                                                     args.H, args.seed)
        info["threadpools"] = [f"{d.get('internal_api', d.get('prefix'))} x{d.get('num_threads')}"
                               for d in threadpool_info()]
    print(json.dumps(info))


def _versions():
    out = {}
    for mod in ("numpy", "numba", "torch", "minirnn"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


def _spread(values):
    return f"{statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated registry cells")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help="comma-separated: numba, numpy, torch")
    p.add_argument("--T", type=int, default=50)
    p.add_argument("--B", type=int, default=1)
    p.add_argument("--I", type=int, default=64)
    p.add_argument("--H", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5, help="rounds, engine order rotating")
    p.add_argument("--threads", type=int, default=1, help="threads for every engine (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write every round's numbers and the environment here")
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from minirnn._io import write_json
    from minirnn.bench.env import LoadMonitor, describe_machine, wait_quiet
    engines = [e for e in args.engines.split(",") if e]
    n = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n,
               MINIRNN_NUM_THREADS=n)
    monitor = LoadMonitor(interval=0.5)
    before = monitor.measure(1.0)
    monitor.start()
    rounds, infos, t_start = [], {}, time.perf_counter()
    for r in range(args.rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        res = {}
        for e in order:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", e, "--cells", args.cells,
                   "--T", str(args.T), "--B", str(args.B), "--I", str(args.I), "--H", str(args.H),
                   "--threads", n, "--seed", str(args.seed)]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            monitor.pids.add(proc.pid)
            out, err = proc.communicate()
            wait_quiet([proc.pid])
            monitor.pids.discard(proc.pid)
            if proc.returncode:
                sys.exit(f"worker {e} failed:\n{err}")
            info = json.loads(out.strip().splitlines()[-1])
            res[e], infos[e] = info["rows"], {k: v for k, v in info.items() if k != "rows"}
            print(f"round {r + 1}/{args.rounds} {e:6} done", file=sys.stderr)
        rounds.append(res)
    monitor.stop()
    machine, load = describe_machine(), monitor.summary()
    print(f"minirnn exact derivatives: T={args.T} B={args.B} I={args.I} H={args.H}, float64, "
          f"{args.rounds} rounds, {args.threads} thread(s) per engine, own process each, "
          f"wall {time.perf_counter() - t_start:.0f} s")
    print(f"machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, "
          f"{machine['best_simd']}, {machine['platform']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    for e, info in infos.items():
        print(f"  {e:6} " + ", ".join(info.get("threadpools", []))
              + (f"; torch {info['torch_threads']} threads" if "torch_threads" in info else ""))
    print("overrides set: " + (", ".join(f"{k}={v}" for k, v in machine["overrides"].items())
                               or "none"))
    print(f"load (foreign CPU, cores): before {before:.2f}, during mean "
          f"{load['mean'] if load['mean'] is None else round(load['mean'], 2)} max "
          f"{load['max'] if load['max'] is None else round(load['max'], 2)} ({load['method']}); "
          f"load average now {os.getloadavg()[0]:.2f}")
    print("ms per call: median over rounds [min-max]")
    print(f"{'cell':9} {'engine':6} " + " ".join(f"{ph:>22}" for ph in PHASES)
          + f" {'hvp / fwd+bwd':>22}")
    summary = {}
    for cell in args.cells.split(","):
        for e in engines:
            cols = [(_spread([r[e][cell][ph] for r in rounds]) if ph in rounds[0][e][cell]
                     else "-") for ph in PHASES]
            ratio = [r[e][cell]["hvp"] / r[e][cell]["fwd_bwd"] for r in rounds]
            summary[f"{cell}/{e}/hvp_over_fwd_bwd"] = ratio
            print(f"{cell:9} {e:6} " + " ".join(f"{c:>22}" for c in cols)
                  + f" {_spread(ratio):>22}")
    if "torch" in engines:
        print("torch's time / minirnn's (median of per-round ratios [min-max]):")
        for cell in args.cells.split(","):
            for e in (x for x in engines if x != "torch"):
                line = []
                for ph in ("fwd_bwd", "hvp", "jvp"):
                    ratio = [r["torch"][cell][ph] / r[e][cell][ph] for r in rounds]
                    summary[f"{cell}/{e}/torch_over_{ph}"] = ratio
                    line.append(f"{ph} {_spread(ratio)}x")
                print(f"  {cell:9} {e:6} " + "   ".join(line))
    if args.json:
        write_json(args.json, {"args": vars(args), "machine": machine, "versions": _versions(),
                               "load": {"before": before, **load}, "engines": infos,
                               "rounds": rounds, "ratios": summary})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
