"""Data-parallel scaling of `minirnn train char`: samples per second on 1 and 2 ranks.

    python benchmarks/scaling.py                                   # numba and torch, 3 rounds
    python benchmarks/scaling.py --steps 20 --rounds 3 --json docs/scaling.json

What is timed: the training steps of `minirnn train char` at its full size (the char-level
tiny-Shakespeare LSTM: embedding 32, 2 layers of 256, dropout 0.3, Adam, clip 5; a global batch
of 32 streams of 64 characters) through minirnn.train.engine.Engine, data-parallel on a gloo
group exactly as the command runs it (each rank its 32 / N streams, gradients all-reduced
before each step). Not timed: start-up, the first WARMUP steps (numba loads its kernels,
torch builds DDP's buckets), validation, checkpoints. A sample is one stream of 64 characters;
samples/s = steps x 32 / seconds, the slowest rank's seconds.

Honest by construction: ranks are started with the launcher's environment (as torchrun sets it:
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, a free MASTER_PORT); threads per rank =
usable cores // ranks (BLAS and torch's intra-op pool), so 2 ranks on 2 cores do not fight
their own BLAS threads -- and the single process is also run at 1 thread, the count
`minirnn train char` picks by itself for this size (minirnn._threads), so the speed-up is
also given against the faster of the two single-process runs. The configurations alternate
over rounds. The foreign load (machine busy time minus this benchmark's processes, /proc/stat)
is measured during every run; before each run the benchmark waits (up to --max-wait seconds)
for a second with less than --quiet cores of it. A run whose own foreign load stayed below
--quiet is "quiet"; the table reports the median (min-max) over the quiet rounds of each
configuration, or over all rounds marked "busy" when none was quiet. The machine is shared:
read the ranges and the load column, not the last digit.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

WARMUP = 3
GLOBAL_BATCH, SEQ = 32, 64


def _worker(backend, steps, threads):
    """One rank (or the single process): time `steps` steps after WARMUP -> JSON on stdout."""
    from minirnn import _threads
    from minirnn.train import distributed as D
    from minirnn.train.engine import Engine
    from minirnn.tutorials import script
    from minirnn.tutorials.data import lm_batches, load_shakespeare
    group = D.init("gloo") if D.launched() else None
    text = load_shakespeare()
    cut = int(len(text) * 0.9)
    stoi, itos = script.vocabulary("char", list(text[:cut]))
    batches = lm_batches(script.encode_text("char", text[:cut], stoi), GLOBAL_BATCH, SEQ)
    config = dict(vocab_size=len(itos), embedding_dim=32, hidden_size=256, num_layers=2,
                  dropout=0.3, seed=0, cell="lstm")
    rows = slice(None) if group is None else group.shard(GLOBAL_BATCH)
    with _threads.limit(threads, torch=backend == "torch") as actual:
        model = script.build_model(dict(config, backend="numpy" if backend == "torch" else backend))
        engine = Engine(model, optimizer="adam", lr=2e-3, clip=5.0, backend=backend,
                        distributed=group)
        state = None
        for i in range(WARMUP + steps):
            if i == WARMUP:
                if group is not None:
                    group.barrier()
                t0 = time.perf_counter()
            x, y = batches[i % len(batches)]
            _, state = engine.step_lm(x[rows], y[rows], state=state)
        if group is not None:
            group.barrier()                          # the slowest rank's time
        seconds = time.perf_counter() - t0
    if group is None or group.is_main:
        print(json.dumps({"seconds": seconds, "blas_threads": actual}), flush=True)
    if group is not None:
        group.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _monitor():
    """The bench's LoadMonitor, also counting ranks that have ended (their CPU time moves from
    /proc/PID to this process's reaped-children total, instead of vanishing)."""
    from minirnn.bench.env import _HZ, LoadMonitor

    class Monitor(LoadMonitor):
        def _ours(self):
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            return super()._ours() + int((ru.ru_utime + ru.ru_stime) * _HZ)
    return Monitor()


def _run(backend, world, threads, steps, monitor):
    """Start `world` ranks of the worker -> (seconds, foreign load (mean, max))."""
    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--backend", backend,
            "--steps", str(steps), "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    if world > 1:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                   WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    else:
        env.pop("WORLD_SIZE", None)
    procs = [subprocess.Popen(argv, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, text=True) for r in range(world)]
    monitor.pids.update(p.pid for p in procs)
    t0 = time.monotonic()
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    load = monitor.window(t0, time.monotonic())
    for p in procs:
        if p.returncode:
            raise SystemExit(f"{backend} world {world}: a rank exited {p.returncode}")
    result = json.loads(outs[0].strip().splitlines()[-1])
    return result["seconds"], load


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="numba,torch")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run (after warm-up)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--quiet", type=float, default=0.3, metavar="CORES",
                   help="foreign load below which a run counts as quiet")
    p.add_argument("--max-wait", type=float, default=120.0, metavar="SECONDS",
                   help="how long to wait for a quiet second before each run")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="numba", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args.backend, args.steps, args.threads)
    from minirnn._table import text_table
    from minirnn.bench.env import describe_machine, usable_cores
    monitor = _monitor().start()
    before = os.getloadavg()
    backends = args.backends.split(",")
    cores = usable_cores()
    configs = [(b, w, t) for b in backends
               for w, t in ((1, cores), (1, 1), (2, max(1, cores // 2)))]
    configs = list(dict.fromkeys(configs))         # one core: (1, 1) only once
    runs = {c: [] for c in configs}
    for _ in range(args.rounds):                   # alternate: every configuration every round
        for (b, w, t) in configs:
            deadline = time.monotonic() + args.max_wait
            while monitor.measure(1.0) >= args.quiet and time.monotonic() < deadline:
                pass                               # another user holds the cores: wait
            seconds, load = _run(b, w, t, args.steps, monitor)
            runs[(b, w, t)].append({"seconds": seconds, "samples_per_s":
                                    args.steps * GLOBAL_BATCH / seconds,
                                    "load_mean": load[0], "load_max": load[1],
                                    "quiet": load[0] is not None and load[0] < args.quiet})
    monitor.stop()
    rows, report = [], {"machine": describe_machine(), "steps": args.steps, "rounds": args.rounds,
                        "global_batch": GLOBAL_BATCH, "seq_len": SEQ, "runs": {},
                        "loadavg_before": before, "loadavg_after": os.getloadavg(),
                        "load": monitor.summary(), "quiet_below": args.quiet,
                        "command": "python benchmarks/scaling.py " + " ".join(argv or sys.argv[1:])}
    used = {c: [r for r in rs if r["quiet"]] or rs for c, rs in runs.items()}
    med = {c: statistics.median(r["samples_per_s"] for r in rs) for c, rs in used.items()}
    for (b, w, t) in configs:
        sps = [r["samples_per_s"] for r in used[(b, w, t)]]
        loads = [r["load_mean"] for r in used[(b, w, t)] if r["load_mean"] is not None]
        n_quiet = sum(r["quiet"] for r in runs[(b, w, t)])
        rule = med[(b, 1, cores)]                  # 1 rank at cores / ranks threads
        best = max(v for (bb, ww, _), v in med.items() if bb == b and ww == 1)
        rows.append([b, w, t, f"{med[(b, w, t)]:.1f}", f"{min(sps):.1f}-{max(sps):.1f}",
                     f"{med[(b, w, t)] / rule:.2f}", f"{med[(b, w, t)] / best:.2f}",
                     f"{100 * med[(b, w, t)] / best / w:.0f}%",
                     f"{statistics.mean(loads):.2f}" if loads else "-",
                     f"{n_quiet}/{len(runs[(b, w, t)])}" if n_quiet else "busy"])
        report["runs"][f"{b} ranks={w} threads={t}"] = runs[(b, w, t)]
    print(text_table(["backend", "ranks", "threads/rank", "samples/s", "min-max",
                      f"x 1 rank@{cores}thr", "x best 1 rank", "efficiency", "foreign load",
                      "quiet rounds"],
                     rows, align="right"))
    print(f"load average {before[0]:.2f} -> {report['loadavg_after'][0]:.2f}; foreign load "
          f"(cores, proc-stat) mean {report['load']['mean']:.2f} max {report['load']['max']:.2f}")
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
