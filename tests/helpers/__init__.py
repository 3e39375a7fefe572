"""What more than one test needs, written once; tests import it as `from tests.helpers import ...`
(the root conftest.py puts the repository first on sys.path). No test loads another test file.

    tests.helpers              the repository's root, loading a script of benchmarks/ or
                               examples/ by path, Numba's thread count for a block, central
                               differences of a scalar loss, random arrays and padding masks,
                               a recurrent problem with random data
    tests.helpers.derivatives  forward mode and second order: random cases, torch's twin and its
                               JVP / HVP / Gauss-Newton products, central differences (torch)
    tests.helpers.rtrl         RTRL's configurations and random cases
"""
from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_script(relpath, name=None, register=False):
    """The module of a script of the repository (benchmarks/x.py, examples/x.py), loaded by its
    path; register=True keeps it in sys.modules under its name (dataclasses and pickling look
    it up there)."""
    path = ROOT / relpath
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@contextmanager
def numba_threads(n):
    """Numba's thread count set to n inside the block, the previous count restored after."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def central_grad(loss, arr, eps=1e-6):
    """dL/darr by central differences, perturbing `arr` in place (restored after)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = loss()
        arr[idx] = old - eps
        down = loss()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def random_array(rng, dtype, *shape, scale):
    """scale * standard normal of `shape`, cast to dtype."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def padding_mask(lengths, T):
    """(T, B) True where step t < lengths[b], built here rather than by the code under test;
    None for None."""
    return None if lengths is None else np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def recurrent_problem(cell, T=9, B=2, I=3, H=4, seed=0, **kw):
    """make_recurrent(cell, I, H, seed=seed, **kw) with random x, d_out (the output's gradient)
    and initial state, in the model's layout -> (model, x, d_out, state)."""
    from minirnn.nn import make_recurrent
    m = make_recurrent(cell, I, H, seed=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    shape = (B, T) if m.batch_first else (T, B)
    x = rng.standard_normal(shape + (I,))
    d_out = rng.standard_normal(shape + (m.out_size,))
    state = tuple(rng.standard_normal((m.num_layers, B, m.out_size if n == "h" else H))
                  for n in m.spec.state_names)
    return m, x, d_out, state
