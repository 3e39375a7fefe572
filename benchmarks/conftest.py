"""pytest-benchmark suites (measurements, not tests). One engine per process, by construction:

    OPENBLAS_NUM_THREADS=2 MINIRNN_NUM_THREADS=2 python -m pytest benchmarks --benchmark-only --engine numba
    OPENBLAS_NUM_THREADS=1 MINIRNN_NUM_THREADS=2 python -m pytest benchmarks --benchmark-only --engine torch

`--engine` picks the one engine this pytest process times (default numba); the others are
deselected, so no two engines ever share a process (in one process OpenBLAS's spinning
threads slowed torch down ~1.8x after any NumPy matmul). Set the thread variables on the
command line: they must be in the environment before NumPy loads. For the alternating,
multi-round comparison with medians and spreads use `minirnn bench`.

The default `pytest` run does not collect this folder (setup.cfg's testpaths). Files are named
bench_*.py, so this conftest collects them explicitly. The environment (CPU, BLAS and its
kernel via threadpoolctl, threads, override variables) goes into pytest-benchmark's
machine_info.
"""
import pytest

ENGINES = ("numpy", "numba", "torch", "torch-cuda")


def pytest_addoption(parser):
    parser.addoption("--engine", default="numba", choices=ENGINES,
                     help="the one engine this process benchmarks (default numba)")


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config, items):
    engine = config.getoption("--engine")
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        (keep if spec is None or spec.params.get("engine", engine) == engine else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_benchmark_update_machine_info(config, machine_info):
    import os

    from minirnn._config import num_threads
    from minirnn.bench.env import describe_machine
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except ImportError:
        pools = []
    machine_info["minirnn"] = dict(engine=config.getoption("--engine"), threads=num_threads(),
                                   machine=describe_machine(), threadpools=pools,
                                   pid=os.getpid())
