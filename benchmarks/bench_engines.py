"""The `minirnn bench` grid as pytest-benchmark suites: every engine, cell, dtype, regime and
pass. Each benchmark asserts what it ran produced the right shapes -- never a speed.

    python -m pytest benchmarks --benchmark-only                       # everything
    python -m pytest benchmarks --benchmark-only -k "small and numba"  # a slice
    python -m pytest benchmarks --benchmark-only --benchmark-group-by=param:shape
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.bench import CELLS, DTYPES, REGIMES, make_problem, minirnn_engine, torch_engine

SHAPES = [pytest.param(s, id=f"{reg}-T{s[0]}-B{s[1]}-I{s[2]}-H{s[3]}")
          for reg, shapes in REGIMES.items() for s in shapes]


def _engine(engine, cell, p):
    if engine == "torch":
        torch = pytest.importorskip("torch")
        from minirnn._config import num_threads
        torch.set_num_threads(num_threads())            # same thread count as numba
        return torch_engine(cell, p, "cpu")
    if engine == "torch-cuda":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch_engine(cell, p, "cuda")
    return minirnn_engine(engine, cell, p)


@pytest.mark.parametrize("passes", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("engine", ["numpy", "numba", "torch", "torch-cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SHAPES)
def test_engine(benchmark, shape, cell, dtype, engine, passes):
    T, B, I, H = shape
    p = make_problem(cell, T, B, I, H, dtype)
    fwd, fwd_bwd, output = _engine(engine, cell, p)
    benchmark.group = f"{cell} {dtype} {passes} T{T} B{B} I{I} H{H}"
    benchmark.extra_info.update(cell=cell, dtype=dtype, engine=engine, passes=passes,
                                T=T, B=B, I=I, H=H)
    result = benchmark(fwd if passes == "fwd" else fwd_bwd)
    if engine in ("numpy", "numba"):
        if passes == "fwd":
            assert result[0].shape == (T, B, H) and result[0].dtype == np.dtype(dtype)
        else:
            assert result[0].shape == (T, B, I)              # dx
            assert np.all(np.isfinite(result[0]))
    assert output().shape == (T, B, H)
