"""The benchmark grid: every engine on the same problems, timed in one run.

Engines: "numpy" (the reference), "numba" (minirnn.kernels), "torch" (torch CPU, nn.RNN /
nn.LSTM with the same weights), "torch-cuda" (when available: synchronised timing, TF32 off).
Each row: median seconds after one warm-up, GFLOP/s, speed-up over torch CPU from the same
run, fraction of this machine's matmul peak (a large NumPy matmul of that dtype, same run),
and for numpy/numba the saved cache size and the peak traced memory of one forward+backward.
"""
from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

CELLS = ("rnn_tanh", "rnn_relu", "lstm")
BACKENDS = ("numpy", "numba", "torch")
DTYPES = ("float32", "float64")
PASSES = ("fwd", "fwd+bwd")
REGIMES = {
    # the tutorials' sizes
    "small": [(T, 1, I, H) for T in (10, 50) for I in (57, 64) for H in (32, 128)],
    "medium": [(100, 32, 128, 256)],
    "large": [(100, 64, 256, 512)],
}
QUICK_SMALL = [(50, 1, 64, 32), (50, 1, 64, 128)]

FLOP_FORMULA = ("fwd = 2*T*B*G*H*(I + H) with G = 1 (RNN) or 4 (LSTM); fwd+bwd = 3 * fwd "
                "(backward: dx and dW_ih, dh and dW_hh are two products of the forward's size "
                "each); elementwise work is not counted")


def flops(cell, T, B, I, H, passes="fwd"):
    """Floating-point operations of one layer, one direction, counting the matrix products only.

        forward          = 2*T*B*G*H*(I + H)          G = 1 (Elman RNN) or 4 (LSTM)
        forward+backward = 3 * forward                 (dx, dW_ih, dh_prev, dW_hh: two products
                                                        per forward product)
    """
    G = 4 if cell == "lstm" else 1
    fwd = 2 * T * B * G * H * (I + H)
    return fwd if passes == "fwd" else 3 * fwd


@dataclass
class Timing:
    repeats: int = 5           # at least this many timed runs after one warm-up ...
    min_time: float = 0.5      # ... and more until this many seconds were spent ...
    max_repeats: int = 50      # ... but never more than this many


def time_call(fn, timing):
    """Median seconds of fn() over repeated runs after one warm-up (gc off while timing)."""
    fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        while len(times) < timing.repeats or (sum(times) < timing.min_time
                                              and len(times) < timing.max_repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return statistics.median(times), len(times)


def matmul_peak(dtype, n=2048, timing=None):
    """GFLOP/s of an (n, n) @ (n, n) NumPy matmul: this machine's practical BLAS peak."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    t, _ = time_call(lambda: a @ b, timing or Timing(repeats=3, min_time=0.2, max_repeats=10))
    return 2 * n ** 3 / t / 1e9


# ----------------------------------------------------------------------------
# problems and engines

def make_problem(cell, T, B, I, H, dtype, seed=0):
    """Random non-zero inputs, states, weights (torch's init range) and output gradient."""
    rng = np.random.default_rng(seed)
    G = 4 if cell == "lstm" else 1
    k = 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, s).astype(dtype)          # noqa: E731
    p = dict(x=rng.standard_normal((T, B, I)).astype(dtype), h0=u(B, H),
             w_ih=u(G * H, I), w_hh=u(G * H, H), b_ih=u(G * H), b_hh=u(G * H),
             d_out=rng.standard_normal((T, B, H)).astype(dtype))
    if cell == "lstm":
        p["c0"] = u(B, H)
    return p


def minirnn_engine(backend, cell, p):
    """-> fwd(), fwd_bwd(), output() for backend 'numpy' or 'numba' (one layer, one direction)."""
    from ..functional import get_backend
    fns = get_backend(backend)
    if cell == "lstm":
        def fwd():
            return fns.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"],
                                    p["b_hh"], None, None)

        def fwd_bwd():
            out, _, _, cache = fwd()
            return fns.lstm_backward(cache, p["d_out"], None, None, False)
    else:
        nl = cell.split("_")[1]

        def fwd():
            return fns.rnn_forward(p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                                   nl, None)

        def fwd_bwd():
            out, _, cache = fwd()
            return fns.rnn_backward(cache, p["d_out"], None, False)
    return fwd, fwd_bwd, lambda: fwd()[0]


def torch_engine(cell, p, device="cpu"):
    """-> fwd(), fwd_bwd(), output() for torch's nn.RNN / nn.LSTM with the same weights.

    Forward runs with autograd on (it saves what backward needs, as our forward's cache does).
    """
    import torch
    T, B, I = p["x"].shape
    H = p["h0"].shape[1]
    dt = getattr(torch, p["x"].dtype.name)
    if cell == "lstm":
        m = torch.nn.LSTM(I, H, dtype=dt, device=device)
    else:
        m = torch.nn.RNN(I, H, nonlinearity=cell.split("_")[1], dtype=dt, device=device)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(m, name.replace("w_", "weight_").replace("b_", "bias_") + "_l0").copy_(
                torch.from_numpy(p[name]))
    t = lambda a: torch.from_numpy(a).to(device)                 # noqa: E731
    x = t(p["x"]).requires_grad_(True)
    state = (t(p["h0"])[None], t(p["c0"])[None]) if cell == "lstm" else t(p["h0"])[None]
    d_out = t(p["d_out"])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def fwd():
        out = m(x, state)[0]
        sync()
        return out

    def fwd_bwd():
        x.grad = None
        m.zero_grad(set_to_none=True)
        out = m(x, state)[0]
        out.backward(d_out)
        sync()

    return fwd, fwd_bwd, lambda: fwd().detach().cpu().numpy()


def cache_stats(cell, p, backend):
    """Saved cache values (the arrays forward allocates for backward) vs T*B*(gates + states),
    and the peak traced memory of one forward+backward (NumPy allocations, via tracemalloc)."""
    fwd, fwd_bwd, _ = minirnn_engine(backend, cell, p)
    cache = fwd()[-1]
    saved = ("gates", "c", "h") if cell == "lstm" else ("a", "h")
    values = sum(getattr(cache, f).size for f in saved)
    T, B, _ = p["x"].shape
    H = p["h0"].shape[1]
    bound = T * B * (5 * H + H if cell == "lstm" else 2 * H)   # LSTM: 4H gates + c + h; RNN: a + h
    tracemalloc.start()
    try:
        fwd_bwd()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return dict(cache_values=int(values), cache_bound_values=int(bound),
                cache_mb=sum(getattr(cache, f).nbytes for f in saved) / 2**20,
                peak_mb=peak / 2**20)


# ----------------------------------------------------------------------------
# the grid

def first_call_seconds(cells, dtypes):
    """First-call time of the numba kernels per cell and dtype, both paths, tiny sizes:
    compilation on a fresh install, loading from numba's on-disk cache (cache=True) later.
    rnn_relu shares rnn_tanh's kernels (the nonlinearity is a runtime flag)."""
    from .. import kernels as K
    out = {}
    for cell in cells:
        for dtype in dtypes:
            p = make_problem(cell, 3, 2, 3, 4, dtype, seed=1)
            t0 = time.perf_counter()
            for path in ("loop", "blas"):
                if cell == "lstm":
                    r = K.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"],
                                       p["b_hh"], None, None, path=path)
                    K.lstm_backward(r[3], p["d_out"], None, None, False, path=path)
                else:
                    r = K.rnn_forward(p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                                      cell.split("_")[1], None, path=path)
                    K.rnn_backward(r[2], p["d_out"], None, False, path=path)
            out[f"{cell}/{dtype}"] = time.perf_counter() - t0
    return out


def _check_choice(name, values, allowed):
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name}: expected a non-empty list from {list(allowed)}, got {values}")
    return values


def run_benchmark(cells=CELLS, backends=BACKENDS, dtypes=DTYPES, regimes=("small", "medium", "large"),
                  device="auto", quick=False, shapes=None, timing=None, peak_n=None, show_progress=True):
    """Run the grid; -> dict(meta=..., rows=[...]). shapes: {regime: [(T, B, I, H), ...]}
    overrides the built-in sizes (tests use tiny ones).

    quick: the small regime trimmed to T=50, I=64, H in {32, 128}; 3 timed runs (at most 5);
    the numpy backend only on the small regime; a 1024 matmul for the peak.
    """
    from .._config import num_threads
    from .._progress import progress
    cells = _check_choice("cells", cells, CELLS)
    backends = _check_choice("backends", backends, BACKENDS)
    dtypes = _check_choice("dtypes", dtypes, DTYPES)
    grid = dict(REGIMES, small=QUICK_SMALL) if quick else dict(REGIMES)
    if shapes is not None:
        grid = {k: [tuple(int(n) for n in s) for s in v] for k, v in shapes.items()}
    regimes = _check_choice("regimes", regimes, tuple(grid))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
    timing = timing or (Timing(3, 0.05, 5) if quick else Timing())
    threads = num_threads()
    notes, engines = [], [b for b in backends if b != "torch"]
    torch_version = None
    if "torch" in backends:
        try:
            import torch
        except ImportError:
            notes.append("torch is not installed: no torch rows, no speed-up ratios")
        else:
            torch_version = torch.__version__
            torch.set_num_threads(threads)
            engines.append("torch")
            cuda = torch.cuda.is_available()
            if device == "cuda" and not cuda:
                raise RuntimeError("device: 'cuda' asked for, but torch.cuda.is_available() is False")
            if device in ("auto", "cuda") and cuda:
                torch.backends.cuda.matmul.allow_tf32 = False     # honest float32 on the GPU
                torch.backends.cudnn.allow_tf32 = False
                engines.append("torch-cuda")
    first_call = first_call_seconds(cells, dtypes) if "numba" in engines else {}
    peak = {dt: matmul_peak(dt, peak_n or (1024 if quick else 2048)) for dt in dtypes}

    jobs = [(reg, s, cell, dt) for reg in regimes for s in grid[reg] for cell in cells for dt in dtypes]
    rows = []
    for reg, (T, B, I, H), cell, dt in progress(jobs, desc="bench", disable=not show_progress):
        p = make_problem(cell, T, B, I, H, dt)
        group, outputs = [], {}
        for eng in engines:
            if eng == "numpy" and quick and reg != "small":
                continue
            if eng in ("numpy", "numba"):
                fwd, fwd_bwd, output = minirnn_engine(eng, cell, p)
            else:
                fwd, fwd_bwd, output = torch_engine(cell, p, "cuda" if eng == "torch-cuda" else "cpu")
            outputs[eng] = output()
            for ps, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
                sec, n = time_call(fn, timing)
                gf = flops(cell, T, B, I, H, ps) / sec / 1e9
                row = dict(regime=reg, cell=cell, T=T, B=B, I=I, H=H, dtype=dt, passes=ps,
                           backend=eng, seconds=sec, repeats=n, gflops=gf,
                           peak_fraction=gf / peak[dt], speedup_vs_torch=None)
                if ps == "fwd+bwd" and eng in ("numpy", "numba"):
                    row.update(cache_stats(cell, p, eng))
                group.append(row)
        ref = outputs.get("torch")
        for row in group:
            t_torch = next((r["seconds"] for r in group if r["backend"] == "torch"
                            and r["passes"] == row["passes"]), None)
            if t_torch is not None:
                row["speedup_vs_torch"] = t_torch / row["seconds"]
            if ref is not None:
                from ..testing import max_errors
                row["rel_err_vs_torch"] = max_errors(outputs[row["backend"]], ref)[1]
        rows.extend(group)

    import platform
    from importlib.metadata import version
    meta = dict(quick=quick, device=device, threads=threads, engines=engines, cells=cells,
                dtypes=dtypes, regimes=regimes, grid={r: grid[r] for r in regimes},
                timing=dict(warmup=1, repeats=timing.repeats, min_time=timing.min_time,
                            max_repeats=timing.max_repeats),
                matmul_peak_gflops=peak, numba_first_call_s=first_call,
                flop_formula=FLOP_FORMULA, notes=notes,
                versions=dict(python=platform.python_version(), numpy=np.__version__,
                              numba=version("numba"), torch=torch_version),
                machine=dict(platform=platform.platform(), processor=platform.processor()))
    return dict(meta=meta, rows=rows)
