"""`minirnn parity`: the fixed configuration matrix against torch (or the frozen dumps);
a table, a summary per cell and dtype, and exit code 1 when any tensor is out of tolerance."""
from __future__ import annotations

import time

from ..cells import BUILTIN

HELP = "compare minirnn with torch's nn.RNN / nn.LSTM / nn.GRU on a fixed matrix (exit 1 on failure)"

CELL_CHOICES = (*BUILTIN, "all")


def add_arguments(p):
    p.add_argument("--cell", choices=CELL_CHOICES, default="all", help="which cell kind")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where torch computes the reference (TF32 off on CUDA)")
    p.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                   help="the precision of both sides")
    p.add_argument("--backend", choices=("numpy", "numba"), default="numpy",
                   help="minirnn's backend: the NumPy reference or the Numba kernels")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the reports as JSON")
    p.add_argument("--mkdir", action="store_true",
                   help="create the directory of --json where it is missing")
    p.add_argument("--frozen", action="store_true",
                   help="compare with the shipped torch dumps (minirnn/parity/refs) instead of live "
                        "torch; works without torch")
    p.add_argument("--refs", default=None, metavar="DIR",
                   help="directory of the frozen dumps (default: the dumps shipped in the package)")


def format_table(reports):
    """Plain aligned text: one row per (config, dtype), then the failing tensors' locations."""
    head = ("cell", "config", "dtype", "worst rel", "tensor", "max abs", "tol", "result")
    from .._table import text_table
    rows = [(r.config.cell, r.config.summary(), r.dtype, f"{r.worst.rel:.2e}", r.worst.name,
             f"{r.max_abs:.2e}", f"{r.tol:.0e}", "PASS" if r.passed else "FAIL") for r in reports]
    out = [text_table(head, rows)]
    for r in reports:
        for where in r.where:
            out.append(f"  {r.config.name} {r.dtype}: {where}")
    return "\n".join(out)


def summarize(reports):
    """{(cell, dtype): (worst rel, tensor, config name, all passed)}"""
    worst = {}
    for r in reports:
        key = (r.config.cell, r.dtype)
        prev = worst.get(key)
        ok = r.passed and (prev is None or prev[3])
        if prev is None or r.worst.rel > prev[0]:
            worst[key] = (r.worst.rel, r.worst.name, r.config.name, ok)
        else:
            worst[key] = prev[:3] + (ok,)
    return worst


def run(args):
    from .._io import check_output_path, write_json
    from .._progress import progress
    from ..parity import matrix, run_parity
    if args.json:                                   # before the run, not after it
        check_output_path("--json", args.json, mkdir=args.mkdir)

    dtypes = ("float32", "float64") if args.dtype == "all" else (args.dtype,)
    if args.frozen and args.device != "cpu":
        raise ValueError(f"--device: the frozen references are CPU results; --frozen needs "
                         f"--device cpu, got {args.device!r}")
    if not args.frozen:
        from ..parity.torch_ref import require_torch
        require_torch(args.device)
    start = time.perf_counter()
    reports = run_parity(matrix(args.cell), dtypes, args.device, args.backend, args.frozen,
                         args.refs, progress=lambda it, desc: progress(it, desc=desc, leave=False))
    wall = time.perf_counter() - start
    if not reports:
        raise RuntimeError("no parity cases ran (are the frozen dumps for this cell present?)")
    source = "frozen torch dumps" if args.frozen else f"torch (live, {args.device})"
    print(f"minirnn parity: {len(reports)} cases, backend {args.backend}, reference: {source}")
    print(format_table(reports))
    print()
    summary = summarize(reports)
    for (cell, dtype), (rel, tensor, name, ok) in summary.items():
        print(f"worst relative error  {cell:<8}  {dtype}:  {rel:.2e}  ({tensor} in {name})  "
              f"{'PASS' if ok else 'FAIL'}")
    failed = sum(not r.passed for r in reports)
    print(f"{len(reports) - failed}/{len(reports)} passed in {wall:.1f} s")
    if args.json:
        write_json(args.json, {
            "device": args.device, "backend": args.backend, "frozen": args.frozen,
            "wall_s": wall, "passed": failed == 0,
            "summary": [{"cell": c, "dtype": d, "worst_rel": rel, "tensor": t, "config": n,
                         "passed": ok} for (c, d), (rel, t, n, ok) in summary.items()],
            "cases": [r.to_dict() for r in reports]})
    return 1 if failed else 0
