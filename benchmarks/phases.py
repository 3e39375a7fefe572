"""Where a batched layer's time goes: minirnn's Numba kernels phase by phase, torch's own
phases (torch.profiler), and each phase's floor on this machine.

    python benchmarks/phases.py --json docs/phases.json        # LSTM float32, B=32/64, H=256/512
    python benchmarks/phases.py --quick                        # the smallest size, seconds
    python benchmarks/phases.py --e2e --cells lstm,gru --dtypes float32,float64 --json PATH
    python benchmarks/phases.py --native-blas ...     # OPENBLAS_CORETYPE/_L2_SIZE unset in workers

Phases of one forward+backward of one layer on the blas path (B > 4):
  input GEMM       x W_ih^T for all steps (one product)
  recurrent GEMM   the T per-step products h_{t-1} W_hh^T (forward) and dz_t W_hh (backward)
  gate work        the T per-step gate kernels (biases, activations, state update, mask;
                   backward: tanh(c_t), the carried gradient and the gate derivatives)
  weight GEMMs     dx, dW_ih and dW_hh after the loop (and the bias sums)
  memory traffic   packing [x_t | h_{t-1}] (or h_{t-1}) for the weight-gradient product
  rest             the call minus the phases above: Python per step, allocation, copies
Each phase is timed by replaying exactly the kernels' calls for it on the same data (nothing
is added to the kernels). Floors: a product's floor is the same GEMM shapes through NumPy's
BLAS in a tight loop; the gate work's is the larger of the bytes it must move at this
machine's streaming bandwidth (a 64 MiB NumPy copy) and its arithmetic alone (the same
kernels on one step's data, in cache); memory traffic's is its bytes at that bandwidth.
torch's phases: its operators under torch.profiler (self CPU time, so with the profiler's
own cost), forward and backward profiled apart, with oneDNN off (the aten path: per-step
GEMMs and elementwise operators); its totals are timed without the profiler, both with
oneDNN as torch runs by default (a float32 LSTM is then one fused operator each way) and
without. --e2e times only forward+backward (minirnn's numba engine and torch's module, as
`minirnn bench` does) for the ratio torch / minirnn.

Each engine runs in its own process (a worker of this script), rounds alternating; the
table gives medians over rounds (the JSON: every round, the spread, the load, each worker's
BLAS as threadpoolctl sees it). Before each run the script waits (up to --max-wait s) for
a second of foreign load below --quiet cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import phases_workers as W                           # noqa: E402  (beside this file)

SHAPES = {"B32-H256": (100, 32, 256, 256), "B64-H512": (100, 64, 512, 512)}
E2E_SHAPES = [(50, B, H, H) for B in (32, 64) for H in (256, 512)]   # held out of the table
QUICK_SHAPE = (8, 8, 32, 32)
NATIVE_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
TOTALS = ["rest fwd", "forward", "rest bwd", "backward", "forward+backward"]
TARGETS = {("lstm", "float32"): 1.1, ("lstm", "float64"): 1.5, ("gru", "float32"): 1.2}
PHASE_TARGET = 1.15                                   # each phase within this of its floor


FWD, BWD, PHASES = W.FWD, W.BWD, W.FWD + W.BWD        # each with ours, its floor and torch's


# ----------------------------------------------------------------------------
# the driver: workers in their own processes, rounds alternating, the table

def _worker(args):
    shape = tuple(int(v) for v in args.shape.split("x"))
    if args.worker == "ours":
        res = (W.ours_e2e if args.e2e else W.ours)(args.cell, shape, args.dtype, args.repeats)
    else:
        res = (W.torch_e2e if args.e2e else W.torch_phases)(args.cell, shape, args.dtype,
                                                            args.repeats, args.threads)
    print(json.dumps(res), flush=True)
    return 0


def _run(engine, cell, shape, dtype, args, monitor):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               MINIRNN_NUM_THREADS=str(args.threads))
    if args.native_blas:
        for k in NATIVE_UNSET:
            env.pop(k, None)
    argv = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--cell", cell,
            "--shape", "x".join(map(str, shape)), "--dtype", dtype,
            "--repeats", str(args.repeats), "--threads", str(args.threads)]
    argv += ["--e2e"] if args.e2e else []
    deadline = time.monotonic() + args.max_wait
    while monitor.measure(1.0) >= args.quiet and time.monotonic() < deadline:
        pass                                        # another user holds the cores: wait
    t0, loadavg = time.monotonic(), os.getloadavg()[0]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    monitor.pids.add(proc.pid)
    out, err = proc.communicate(timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{engine} {cell} {dtype} {shape}: the worker exited "
                         f"{proc.returncode}:\n{err}")
    res = json.loads(out.strip().splitlines()[-1])
    res["load_mean"], res["load_max"] = monitor.window(t0, time.monotonic())
    res["loadavg_1min"] = loadavg
    return res


def _stats(rounds, *keys):
    """-> dict(median, min, max) of rounds[i][keys...] over the rounds."""
    vals = []
    for r in rounds:
        for k in keys:
            r = r[k]
        vals.append(r)
    return dict(median=statistics.median(vals), min=min(vals), max=max(vals))


def _summarise(ours, torch):
    """Rounds -> rows (phase, ours, floor, ours/floor, torch aten, torch oneDNN; each
    median with its spread over rounds) and torch's profile split (medians)."""
    rows = []
    for ph in PHASES + TOTALS:
        o = _stats(ours, "seconds", ph)
        fl = _stats(ours, "floors", "seconds", ph) if ph in ours[0]["floors"]["seconds"] \
            else None
        if ph in PHASES:
            ta, td = _stats(torch, "aten", "phases", ph), None
        else:
            known = ph in torch[0]["aten"]["seconds"]
            ta = _stats(torch, "aten", "seconds", ph) if known else None
            td = _stats(torch, "onednn", "seconds", ph) if known else None
        rows.append(dict(phase=ph, ours_s=o, floor_s=fl,
                         ratio=o["median"] / fl["median"] if fl else None,
                         torch_aten_s=ta, torch_onednn_s=td))
    split = {f"{mode} {part}": {k: _stats(torch, mode, "profile", part, k)["median"]
                                for k in torch[0][mode]["profile"][part]}
             for mode in ("onednn", "aten") for part in ("forward", "backward")}
    return rows, split


def _table(title, rows, split):
    from minirnn._table import text_table
    ms = lambda s: "-" if s is None else f"{1e3 * s['median']:.2f}"      # noqa: E731
    body = [[r["phase"], ms(r["ours_s"]), ms(r["floor_s"]),
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}", ms(r["torch_aten_s"]),
             ms(r["torch_onednn_s"])] for r in rows]
    print(title)
    print(text_table(["phase", "ours ms", "floor ms", "ours/floor", "torch aten ms",
                      "torch oneDNN ms"], body, align="right"))
    names = list(next(iter(split.values())))
    print(text_table(["torch.profiler (self CPU ms)"] + names,
                     [[k] + [f"{1e3 * v[n]:.2f}" for n in names] for k, v in split.items()],
                     align="right"))


def _e2e_row(ours, torch):
    o, t = _stats(ours, "seconds", "forward+backward"), _stats(torch, "seconds",
                                                               "forward+backward")
    per_round = [b["seconds"]["forward+backward"] / a["seconds"]["forward+backward"]
                 for a, b in zip(ours, torch)]
    return dict(ours_s=o, torch_s=t, ratio=dict(median=t["median"] / o["median"],
                                                min=min(per_round), max=max(per_round)))


def markdown(report):
    """The report as the Markdown docs/kernels.md shows (tests/docs check the page against
    its JSON with this): a phase table per problem, or the end-to-end table."""
    ms = lambda s: "–" if s is None else f"{1e3 * s['median']:.2f}"      # noqa: E731
    lines = []
    for prob in report["problems"]:
        sh = prob["shape"]
        name = f"{prob['cell']} {prob['dtype']} T={sh['T']} B={sh['B']} I={sh['I']} H={sh['H']}"
        if report["kind"] == "e2e":
            r, tgt = prob["ratio"], TARGETS.get((prob["cell"], prob["dtype"]))
            met = "–" if tgt is None else ("met" if r["median"] >= tgt else "missed")
            lines.append(f"| {name} | {ms(prob['ours_s'])} | {ms(prob['torch_s'])} | "
                         f"{r['median']:.2f} [{r['min']:.2f}–{r['max']:.2f}] | "
                         f"{'–' if tgt is None else f'≥ {tgt}'} | {met} |")
            continue
        lines += ["", f"**{name}**", "",
                  "| phase | ours ms | floor ms | ours / floor | torch aten ms | torch oneDNN ms |",
                  "|---|---|---|---|---|---|"]
        for row in prob["rows"]:
            if row["phase"] in ("rest fwd", "rest bwd", "forward", "backward"):
                continue
            ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
            lines.append(f"| {row['phase']} | {ms(row['ours_s'])} | {ms(row['floor_s'])} | "
                         f"{ratio} | {ms(row['torch_aten_s'])} | {ms(row['torch_onednn_s'])} |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--cells", default="lstm", help="lstm, gru (comma-separated)")
    p.add_argument("--dtypes", default="float32")
    p.add_argument("--shapes", default=None,
                   help="B32-H256 (T=100 B=32 I=H=256), B64-H512 (T=100 B=64 I=H=512), or "
                        "TxBxIxH, comma-separated (default: the two named; --e2e: T=50, "
                        "B 32/64, I=H 256/512)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per phase and round")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS / torch threads (default: the usable cores)")
    p.add_argument("--quick", action="store_true",
                   help=f"T B I H = {QUICK_SHAPE}, 1 round, 1 repeat: a smoke run, seconds")
    p.add_argument("--e2e", action="store_true",
                   help="only forward+backward, minirnn against torch: the ratio")
    p.add_argument("--native-blas", action="store_true",
                   help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the workers only")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--markdown", default=None, metavar="JSON",
                   help="print the Markdown tables of a JSON this script wrote, and exit")
    p.add_argument("--quiet", type=float, default=0.3, metavar="CORES")
    p.add_argument("--max-wait", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--cell", default="lstm", help=argparse.SUPPRESS)
    p.add_argument("--shape", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("rounds", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    if args.worker:
        return _worker(args)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as f:
            print("\n".join(markdown(json.load(f))))
        return 0
    from minirnn.bench.env import LoadMonitor, blas_overrides, describe_machine, usable_cores
    args.threads = args.threads or usable_cores()
    if args.quick:
        args.rounds, args.repeats, args.max_wait = 1, 1, min(args.max_wait, 2.0)
        shapes = [QUICK_SHAPE]
    elif args.shapes:
        shapes = [SHAPES[s] if s in SHAPES else tuple(int(v) for v in s.split("x"))
                  for s in args.shapes.split(",")]
    else:
        shapes = E2E_SHAPES if args.e2e else list(SHAPES.values())
    native = [k for k in NATIVE_UNSET if k in os.environ]
    note = (f"--native-blas: {', '.join(native)} unset in the workers" if args.native_blas and
            native else f"{', '.join(NATIVE_UNSET)}: " + ("as set here: " + ", ".join(
                f"{k}={os.environ[k]}" for k in native) if native else "not set"))
    print(note)
    monitor = LoadMonitor().start()
    report = dict(command="python benchmarks/phases.py " + " ".join(
                      sys.argv[1:] if argv is None else argv),
                  kind="e2e" if args.e2e else "phases", machine=describe_machine(),
                  overrides=blas_overrides(), blas_note=note, threads=args.threads,
                  rounds=args.rounds, repeats=args.repeats, loadavg_before=os.getloadavg(),
                  problems=[])
    for cell in args.cells.split(","):
        for dtype in args.dtypes.split(","):
            for shape in shapes:
                runs = {"ours": [], "torch": []}
                for r in range(args.rounds):
                    for eng in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
                        runs[eng].append(_run(eng, cell, shape, dtype, args, monitor))
                prob = dict(cell=cell, dtype=dtype, shape=dict(zip("TBIH", shape)), rounds=runs)
                title = (f"{cell} {dtype} T={shape[0]} B={shape[1]} I={shape[2]} H={shape[3]}, "
                         f"{args.threads} threads; medians of {args.rounds} rounds")
                if args.e2e:
                    prob.update(_e2e_row(runs["ours"], runs["torch"]))
                    r = prob["ratio"]
                    print(f"{title}: torch / minirnn {r['median']:.2f}x "
                          f"({r['min']:.2f}-{r['max']:.2f})")
                else:
                    prob["rows"], prob["torch_profile"] = _summarise(runs["ours"], runs["torch"])
                    _table(title, prob["rows"], prob["torch_profile"])
                report["problems"].append(prob)
    monitor.stop()
    report.update(load=monitor.summary(), loadavg_after=os.getloadavg())
    print(f"foreign load (cores) mean {report['load']['mean']:.2f} max "
          f"{report['load']['max']:.2f}; loadavg before {report['loadavg_before'][0]:.2f}, "
          f"after {report['loadavg_after'][0]:.2f}")
    if args.json:
        from minirnn._io import write_json
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
