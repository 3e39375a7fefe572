"""`minirnn bench`: time every engine on the benchmark grid, in one run."""
from __future__ import annotations

HELP = ("benchmark numpy / numba / torch (CPU, and CUDA when available) on the RNN and LSTM grid: "
        "median time, GFLOP/s, speed-up over torch CPU, fraction of matmul peak")

QUICK_HELP = ("a quick run (< 3 min on 2 cores): small regime trimmed to T=50, I=64, H in {32, 128}; "
              "3 timed runs after one warm-up (at most 5); the numpy backend only on the small "
              "regime; a 1024x1024 matmul for the peak")


def _list(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def add_arguments(parser):
    parser.add_argument("--cells", default="rnn_tanh,rnn_relu,lstm",
                        help="comma-separated cells: rnn_tanh, rnn_relu, lstm")
    parser.add_argument("--backends", default="numpy,numba,torch",
                        help="comma-separated engines: numpy, numba, torch (torch CPU; see --device)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="add torch on CUDA (synchronised timing, TF32 off): auto = when available")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument("--regimes", default="small,medium,large",
                        help="small (B=1, T 10/50, I 57/64, H 32/128), medium (T=100 B=32 I=128 "
                             "H=256), large (T=100 B=64 I=256 H=512)")
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--json", metavar="PATH", default=None, help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG of the speed-up over torch CPU per configuration")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import time

    from ..bench import format_table, run_benchmark, save_json, save_plot
    t0 = time.perf_counter()
    result = run_benchmark(cells=_list(args.cells), backends=_list(args.backends),
                           dtypes=_list(args.dtypes), regimes=_list(args.regimes),
                           device=args.device, quick=args.quick,
                           show_progress=not args.no_progress)
    result["meta"]["wall_s"] = time.perf_counter() - t0
    print(format_table(result))
    print(f"wall time: {result['meta']['wall_s']:.1f} s")
    if args.json:
        save_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        save_plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
