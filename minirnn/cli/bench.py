"""`minirnn bench`: every engine on the benchmark grid, each in its own process."""
from __future__ import annotations

HELP = ("benchmark numpy / numba / torch (1 thread and N threads; CUDA when available) / jax "
        "(with the jax extra) on every "
        "registry cell: each engine in its own worker process, rounds alternating, medians and "
        "spread, the environment recorded; split time, GFLOP/s, share of GEMM peak, bandwidth "
        "floor, activation memory")

QUICK_HELP = ("a quick run (<= 2 min on 2 quiet cores): small (2 shapes, every dtype), medium, "
              "fastrnns and deepbench (1 shape each, float32; the reference sets for the cell "
              "with the most gates); 3 rounds of 1-50 timed calls (>= 0.03 s); the numpy engine "
              "only up to 1e8 forward FLOPs; a 1024 matmul for the peak")


def _list(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def add_arguments(parser):
    from ..cells import BUILTIN
    parser.add_argument("--cells", default=",".join(BUILTIN),
                        help=f"comma-separated cells from the registry: {', '.join(BUILTIN)}")
    parser.add_argument("--backends", default="numpy,numba,torch",
                        help="comma-separated engines: numpy, numba, torch, jax (torch = torch "
                             "CPU at 1 thread and at --threads; CUDA see --device; jax = JAX's "
                             "CPU backend at --threads, jit over lax.scan, needs the extra: pip "
                             "install minirnn[jax])")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="add torch on CUDA (synchronised timing, TF32 off): auto = when "
                             "available")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument("--regimes", default=None,
                        help="comma-separated; default all six (--quick: small, medium and the "
                             "reference sets). small (B=1, T 10/50, I 57/64, H 32/128), targets "
                             "(B=1, T=20, I=64, H 32/64/128/256: the batch-1 speed targets), medium (T=100 B=32 I=128 "
                             "H=256), large (T=100 B=64 I=256 H=512), fastrnns (torch's "
                             "fastrnns default T=100 B=64 I=H=512), deepbench (DeepBench "
                             "training H=512 T=25 B=16/32/64); the reference sets run in float32")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for numba/numpy (BLAS, numba) and for torch@N; default: "
                             "MINIRNN_NUM_THREADS, else the usable cores")
    parser.add_argument("--rounds", type=int, default=None, metavar="R",
                        help="rounds per problem (the engine order rotates each round); "
                             "default 5, 3 with --quick")
    parser.add_argument("--native-blas", action="store_true",
                        help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the minirnn worker "
                             "processes only (never in this shell, tests or CI); the header says so")
    parser.add_argument("--blas", default=None, choices=("env", "native", "both"),
                        help="env: the environment as it is (default); native: as --native-blas; "
                             "both: every minirnn engine twice, the second with them unset")
    parser.add_argument("--no-split", action="store_true",
                        help="skip the split-time phases (input projection, recurrent forward, "
                             "backward-data, backward-weights)")
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the results and the environment as JSON (atomically)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG of the speed-up over torch per regime (error bars: the "
                             "spread over rounds)")
    parser.add_argument("--mkdir", action="store_true",
                        help="create the directory of --json / --plot where it is missing "
                             "(without it, only one under the working directory is created)")
    parser.add_argument("--wide", action="store_true",
                        help="print the environment header, every column (fwd ms, ranges, "
                             "GFLOP/s, activation MB, floor, rel err) and the split time instead "
                             "of the narrow table (the JSON has all of it either way)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import sys

    from .._io import check_output_path
    from ..bench import format_report, run_benchmark, save_json, save_plot, too_few
    for flag in ("json", "plot"):                   # before minutes of benchmarking
        if getattr(args, flag):
            check_output_path(f"--{flag}", getattr(args, flag), mkdir=args.mkdir)
    if args.native_blas and args.blas not in (None, "native"):
        raise ValueError(f"--native-blas: expected no --blas or --blas native with it, got "
                         f"--blas {args.blas}")
    blas = "native" if args.native_blas else (args.blas or "env")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected a positive integer, got {args.threads}")
    if args.rounds is not None and args.rounds < 1:
        raise ValueError(f"--rounds: expected a positive integer, got {args.rounds}")
    result = run_benchmark(cells=_list(args.cells), backends=_list(args.backends),
                           dtypes=_list(args.dtypes),
                           regimes=_list(args.regimes) if args.regimes else None,
                           device=args.device, quick=args.quick, threads=args.threads,
                           rounds=args.rounds, blas=blas, split=not args.no_split,
                           show_progress=not args.no_progress)
    print(format_report(result, wide=args.wide))
    if args.json:
        save_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        save_plot(result, args.plot)
        print(f"wrote {args.plot}")
    problem = too_few(result)
    if problem:                    # the files are written: the rows are there, flagged
        print(f"minirnn bench: {problem}", file=sys.stderr)
        return 1
    return 0
