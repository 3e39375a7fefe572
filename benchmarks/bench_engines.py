"""The `minirnn bench` grid as pytest-benchmark suites: every registry cell, dtype, regime
(the reference sets included) and pass, for the one engine this process runs (--engine; see
conftest.py). Each benchmark asserts what it ran produced the right shapes -- never a speed.

    python -m pytest benchmarks --benchmark-only --engine numba                 # everything
    python -m pytest benchmarks --benchmark-only --engine torch -k "small"      # a slice
    python -m pytest benchmarks --benchmark-only --benchmark-group-by=param:shape
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.bench import DTYPES, REGIMES, make_problem, minirnn_engine, torch_engine
from minirnn.cells import BUILTIN, get_cell

SHAPES = [pytest.param(s, id=f"{reg}-T{s[0]}-B{s[1]}-I{s[2]}-H{s[3]}")
          for reg, shapes in REGIMES.items() for s in shapes]
PASSES = ("fwd", "fwd_bwd", "bwd", "proj", "wgrad")          # the last three: minirnn only


def _engine(engine, p):
    if engine == "torch":
        torch = pytest.importorskip("torch")
        from minirnn._config import num_threads
        torch.set_num_threads(num_threads())            # the same thread count as numba
        return torch_engine(p, "cpu")
    if engine == "torch-cuda":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch_engine(p, "cuda")
    return minirnn_engine(engine, p)


@pytest.mark.parametrize("passes", PASSES)
@pytest.mark.parametrize("engine", ["numpy", "numba", "torch", "torch-cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("shape", SHAPES)
def test_engine(benchmark, shape, cell, dtype, engine, passes):
    T, B, I, H = shape
    if engine.startswith("torch") and passes not in ("fwd", "fwd_bwd"):
        pytest.skip("the split phases are minirnn's (standalone GEMMs of the kernels' shapes)")
    p = make_problem(cell, T, B, I, H, dtype)
    e = _engine(engine, p)
    benchmark.group = f"{cell} {dtype} {passes} T{T} B{B} I{I} H{H}"
    benchmark.extra_info.update(cell=cell, dtype=dtype, engine=engine, passes=passes,
                                T=T, B=B, I=I, H=H, gates=get_cell(cell).gates)
    result = benchmark(getattr(e, passes))
    if engine in ("numpy", "numba"):
        if passes == "fwd":
            assert result[0].shape == (T, B, H) and result[0].dtype == np.dtype(dtype)
        elif passes in ("fwd_bwd", "bwd"):
            assert result[0].shape == (T, B, I)              # dx
            assert np.all(np.isfinite(result[0]))
    assert e.output().shape == (T, B, H)
