"""`minirnn parity`: the fixed configuration matrix against torch (or the frozen dumps);
a table, a summary per cell and dtype, the count of cases and tensors judged, and exit code 1
when any tensor is out of tolerance or any case of the matrix was not judged (a frozen dump
that lacks it): a run that compared nothing never passes."""
from __future__ import annotations

from ..cells import BACKENDS

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
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
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
    configs = matrix(args.cell)
    reports = run_parity(configs, dtypes, args.device, args.backend, args.frozen,
                         args.refs, progress=lambda it, desc: progress(it, desc=desc, leave=False))
    wall = time.perf_counter() - start
    expected, judged = len(configs) * len(dtypes), len(reports)
    tensors = sum(len(r.errors) for r in reports)
    source = "frozen torch dumps" if args.frozen else f"torch (live, {args.device})"
    print(f"minirnn parity: {judged} cases, {tensors} tensors compared, backend {args.backend}, "
          f"reference: {source}")
    if reports:
        print(format_table(reports))
        print()
    summary = summarize(reports)
    for (cell, dtype), (rel, tensor, name, ok) in summary.items():
        print(f"worst relative error  {cell:<8}  {dtype}:  {rel:.2e}  ({tensor} in {name})  "
              f"{'PASS' if ok else 'FAIL'}")
    failed = sum(not r.passed for r in reports)
    verdict, passed = verdict_line(expected, judged, failed, tensors, wall, args)
    print(verdict)
    if args.json:
        write_json(args.json, {
            "device": args.device, "backend": args.backend, "frozen": args.frozen,
            "wall_s": wall, "passed": passed, "cases_expected": expected, "cases_judged": judged,
            "tensors_compared": tensors,
            "summary": [{"cell": c, "dtype": d, "worst_rel": rel, "tensor": t, "config": n,
                         "passed": ok} for (c, d), (rel, t, n, ok) in summary.items()],
            "cases": [r.to_dict() for r in reports]})
    return 0 if passed else 1


def verdict_line(expected, judged, failed, tensors, wall, args):
    """The closing line and whether the run passed: every case of the matrix judged (a frozen
    dump may lack some: those are counted, never passed over), and none out of tolerance."""
    if judged < expected:
        where = (f"not in the frozen dumps under {args.refs or 'the package'}; regenerate them "
                 f"with `python parity/make_refs.py`" if args.frozen else "not run")
        return (f"parity FAILED: {expected - judged} of {expected} cases not judged ({where}); "
                f"{judged} of {expected} judged, {failed} of them out of tolerance"), False
    if failed:
        return (f"parity FAILED: {failed} of {judged} cases out of tolerance "
                f"({judged - failed}/{judged} cases within it, {wall:.1f} s)"), False
    return (f"{judged}/{judged} passed: every case of the matrix, {tensors} tensors compared, "
            f"in {wall:.1f} s"), True
