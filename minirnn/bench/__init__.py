"""The benchmark suite behind `minirnn bench` (and benchmarks/ for pytest-benchmark).

    from minirnn.bench import run_benchmark, format_table
    result = run_benchmark(cells=["lstm"], backends=["numba", "torch"], quick=True)
    print(format_report(result))       # the summary and the narrow table; format_table: wide

Each engine is timed in its own worker process (minirnn.bench.worker), rounds alternate the
engines, rows report medians, spreads and per-round ratios, and the environment is recorded
with every result. See runner.py for how (processes.py: the workers; rows.py: a result row),
problems.py for what, env.py for the environment, jax_engine.py for the optional JAX peer.
"""
from .engines import (Timing, minirnn_engine, numpy_gemm_peak, time_call, torch_engine,
                      torch_gemm_peak)
from .env import (NATIVE_UNSET, OVERRIDE_VARS, LoadMonitor, blas_overrides, describe_machine,
                  fma_peak, wait_quiet)
from .problems import (DEFAULT_QUICK_REGIMES, DEFAULT_REGIMES, DTYPES, FLOP_CONVENTION, QUICK,
                       REFERENCE_SETS, REGIMES, SMALL_BATCH, flops, grid, make_problem)
from .report import format_report, format_table, plot_warning, save_json, save_plot
from .summary import judged, summarise, summary_lines, too_few
from .processes import EngineSpec, make_engines
from .rows import DEFINITIONS, LOAD_LIMIT, load_warnings, row_flags
from .runner import BACKENDS, BLAS_MODES, DEFAULT_BACKENDS, SCHEMA, run_benchmark

__all__ = ["run_benchmark", "format_report", "format_table", "save_json", "save_plot",
           "plot_warning", "summarise", "summary_lines", "judged", "too_few", "flops", "FLOP_CONVENTION",
           "REGIMES", "DEFAULT_REGIMES", "DEFAULT_QUICK_REGIMES", "QUICK", "REFERENCE_SETS",
           "SMALL_BATCH", "BACKENDS", "DEFAULT_BACKENDS",
           "BLAS_MODES", "DTYPES", "DEFINITIONS", "LOAD_LIMIT", "SCHEMA", "EngineSpec", "Timing",
           "time_call", "grid", "make_problem", "minirnn_engine", "torch_engine",
           "numpy_gemm_peak", "torch_gemm_peak", "row_flags", "load_warnings", "make_engines",
           "describe_machine", "blas_overrides", "LoadMonitor", "wait_quiet", "NATIVE_UNSET",
           "OVERRIDE_VARS", "fma_peak"]
