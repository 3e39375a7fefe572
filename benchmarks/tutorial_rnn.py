"""The names tutorial's RNN (batch 1, plain SGD) on minirnn against the same loop on torch.

    python benchmarks/tutorial_rnn.py                 # 3 rounds of 5000 steps per engine
    python benchmarks/tutorial_rnn.py --steps 20000 --rounds 5

The network is the PyTorch char-RNN classification tutorial's: combined = [x_t ; hidden],
hidden = i2h(combined), output = log_softmax(i2o(combined)), NLL on the last step, SGD with
lr 0.005, one name a step (a random language, then a random name of it). Engines:

  minirnn        minirnn.tutorials.names.train_tutorial, as `minirnn train names --model
                 tutorial-rnn` runs it (its own BPTT over minirnn's Linear layers, float64)
  torch          the tutorial's loop as it is written: i2o and log_softmax at every step,
                 autograd, p.data.add_(grad, alpha=-lr), float32 (torch's default)
  torch-last     the same with i2o at the last step only (minirnn's arithmetic), float32
  torch-f64      torch-last in float64 (minirnn's dtype)

Honest by construction (as `minirnn bench`): each engine runs in its own process at one
thread (the tutorial's products are 1 x 185 x 128), the engines alternate over rounds, and the
result is the median over rounds of the per-round ratios, with their min-max. The same names
in the same order for every engine (numpy's generator, seed 0). Warm-up: 200 steps, untimed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ENGINES = ("minirnn", "torch", "torch-last", "torch-f64")
WARMUP = 200


def _schedule(steps, seed):
    """(language, name index) per step, as train_tutorial draws them."""
    import numpy as np
    from minirnn.tutorials.data import load_names, split_names
    from minirnn.tutorials.names_rnn import tutorial_examples
    names, labels, cats = load_names()
    split = split_names(labels, seed=seed)
    examples = tutorial_examples(labels, split, len(cats), np.random.default_rng(seed))
    return names, labels, split, cats, [next(examples) for _ in range(steps)]


def _run_minirnn(steps, seed):
    from minirnn.tutorials.data import load_names, split_names
    from minirnn.tutorials.names import train_tutorial
    names, labels, cats = load_names()
    split = split_names(labels, seed=seed)
    train_tutorial(names, labels, split, cats, steps=WARMUP, seed=seed, show_progress=False)
    start = time.perf_counter()
    train_tutorial(names, labels, split, cats, steps=steps, seed=seed, show_progress=False)
    return time.perf_counter() - start


def _run_torch(steps, seed, every_step, dtype):
    import torch
    from minirnn.tutorials.data import N_LETTERS, encode_name
    torch.set_num_threads(1)
    names, _, _, cats, plan = _schedule(steps + WARMUP, seed)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    torch.manual_seed(seed)
    hidden_size = 128
    i2h = torch.nn.Linear(N_LETTERS + hidden_size, hidden_size).to(dt)
    i2o = torch.nn.Linear(N_LETTERS + hidden_size, len(cats)).to(dt)
    params = list(i2h.parameters()) + list(i2o.parameters())
    lines = {}

    def line(i):                                   # (T, 1, 57) one-hot, as the tutorial
        if i not in lines:
            ids = encode_name(names[i])
            t = torch.zeros(len(ids), 1, N_LETTERS, dtype=dt)
            t[torch.arange(len(ids)), 0, torch.as_tensor(ids)] = 1.0
            lines[i] = t
        return lines[i]

    def step(c, i):
        x = line(i)
        hidden = torch.zeros(1, hidden_size, dtype=dt)
        output = None
        for t in range(x.shape[0]):
            combined = torch.cat((x[t], hidden), 1)
            if every_step or t == x.shape[0] - 1:
                output = torch.log_softmax(i2o(combined), dim=1)
            hidden = i2h(combined)
        loss = torch.nn.functional.nll_loss(output, torch.tensor([c]))
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-0.005)

    for c, i in plan[:WARMUP]:
        step(c, i)
    start = time.perf_counter()
    for c, i in plan[WARMUP:]:
        step(c, i)
    return time.perf_counter() - start


def worker(engine, steps, seed):
    os.environ.setdefault("MINIRNN_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        if engine == "minirnn":
            seconds = _run_minirnn(steps, seed)
        else:
            seconds = _run_torch(steps, seed, every_step=engine == "torch",
                                 dtype="float64" if engine == "torch-f64" else "float32")
    print(json.dumps({"engine": engine, "steps": steps, "seconds": seconds}))


def _versions():
    out = {"python": platform.python_version(), "machine": platform.processor() or platform.machine()}
    for mod in ("numpy", "torch", "minirnn"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, engine order rotating (default 3)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ", ".join(ENGINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the per-round seconds and the ratios here")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps, args.seed)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or "minirnn" not in engines:
        parser.error(f"--engines: expected minirnn and any of {ENGINES}, got {args.engines!r}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    seconds = {e: [] for e in engines}
    for r in range(args.rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for e in order:
            res = subprocess.run([sys.executable, __file__, "--worker", e, "--steps", str(args.steps),
                                  "--seed", str(args.seed)], env=env, capture_output=True, text=True)
            if res.returncode:
                sys.exit(f"worker {e} failed:\n{res.stderr}")
            seconds[e].append(json.loads(res.stdout.strip().splitlines()[-1])["seconds"])
            print(f"round {r + 1}/{args.rounds} {e:11} {seconds[e][-1]:7.2f} s", file=sys.stderr)
    print(f"tutorial RNN, {args.steps} SGD steps a round, {args.rounds} rounds, 1 thread each, "
          f"own process each; {_versions()}")
    print(f"{'engine':11} {'median s':>9} {'us/step':>8} {'minirnn x faster [min-max]':>28}")
    result = {"steps": args.steps, "rounds": args.rounds, "versions": _versions(),
              "seconds": seconds, "ratio": {}}
    for e in engines:
        s = statistics.median(seconds[e])
        ratios = sorted(a / b for a, b in zip(seconds[e], seconds["minirnn"]))
        result["ratio"][e] = ratios
        cell = "-" if e == "minirnn" else \
            f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}-{ratios[-1]:.2f}]"
        print(f"{e:11} {s:9.2f} {1e6 * s / args.steps:8.1f} {cell:>28}")
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, result)


if __name__ == "__main__":
    main()
