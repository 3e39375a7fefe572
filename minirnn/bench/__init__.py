"""The benchmark suite behind `minirnn bench` (and benchmarks/ for pytest-benchmark).

    from minirnn.bench import run_benchmark, format_table
    result = run_benchmark(cells=["lstm"], backends=["numba", "torch"], quick=True)
    print(format_table(result))
"""
from .report import format_table, save_json, save_plot
from .runner import (BACKENDS, CELLS, DTYPES, FLOP_FORMULA, QUICK_SMALL, REGIMES, Timing, flops,
                     make_problem, matmul_peak, minirnn_engine, run_benchmark, time_call, torch_engine)

__all__ = ["run_benchmark", "format_table", "save_json", "save_plot", "flops", "FLOP_FORMULA",
           "REGIMES", "QUICK_SMALL", "CELLS", "BACKENDS", "DTYPES", "Timing", "time_call",
           "matmul_peak", "make_problem", "minirnn_engine", "torch_engine"]
