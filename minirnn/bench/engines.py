"""The engines, in-process: what one worker process (minirnn.bench.worker) times, and what the
pytest-benchmark suites in benchmarks/ call. Nothing here branches on a cell's name: the
registry's CellSpec and the uniform backend protocol do the mapping.

    p = make_problem("lstm", 50, 1, 64, 128, "float32")
    e = minirnn_engine("numba", p)        # .fwd() .fwd_bwd() .bwd() .proj() .wgrad() .gemv()
    t = torch_engine(p, "cpu")            # .fwd() .fwd_bwd() .output() .activation_bytes()
"""
from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from ..cells import get_cell


@dataclass
class Timing:
    repeats: int = 3           # at least this many timed runs after `warmup` untimed ones ...
    min_time: float = 0.2      # ... and more until this many seconds were spent ...
    max_repeats: int = 20      # ... but never more than this many
    warmup: int = 1


def time_call(fn, timing, collect=True):
    """Median seconds of fn() over repeated runs after the warm-up (gc off while timing)
    -> (median, number of timed runs). collect=False: the caller has collected (and keeps
    gc off for a block of calls)."""
    for _ in range(timing.warmup):
        fn()
    times = []
    if collect:
        gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        while len(times) < timing.repeats or (sum(times) < timing.min_time
                                              and len(times) < timing.max_repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return statistics.median(times), len(times)


# ----------------------------------------------------------------------------
# minirnn (numpy reference / numba kernels)

class MinirnnEngine:
    """One layer, one direction of `backend` ("numpy" or "numba") on problem p.

    fwd()      the layer forward (the input projection inside it)
    bwd()      the layer backward on one fixed cache (dx, dh0, every weight gradient)
    fwd_bwd()  both
    proj()     the input projection alone: x (T*B, I) @ W_ih^T + biases, one GEMM (what the
               kernels run before their time loop)
    wgrad()    the weight gradients alone: dZ^T x and dZ^T h_prev (one GEMM each, h_prev
               built as the kernels build it) and the bias sums (what the kernels run after
               their time loop)
    gemv()     W_hh @ v once: the recurrent weights streamed once, for the bandwidth floor
    """

    def __init__(self, backend, p):
        from ..functional.backends import get_backend
        self.spec = get_cell(p["cell"])
        self.be = get_backend(backend)
        self.p = p
        x, prm = p["x"], p["params"]
        T, B, I = x.shape
        self.d_state = (None,) * len(self.spec.state_names)
        self._x2 = np.ascontiguousarray(x).reshape(T * B, I)
        self._bias = prm["bias_ih"] + prm["bias_hh"]
        self._cache = None
        G = prm["weight_ih"].shape[0]
        H = prm["weight_hh"].shape[1]
        rng = np.random.default_rng(1)
        self._dz = rng.standard_normal((T * B, G)).astype(x.dtype)
        self._v = rng.standard_normal(H).astype(x.dtype)
        self._T, self._B, self._H = T, B, H

    def fwd(self):
        return self.be.forward(self.spec, self.p["x"], self.p["state"], self.p["params"])

    def cache(self):
        if self._cache is None:
            self._cache = self.fwd()[2]
        return self._cache

    def bwd(self):
        return self.be.backward(self.spec, self.cache(), self.p["d_out"], self.d_state)

    def fwd_bwd(self):
        _, _, cache = self.fwd()
        return self.be.backward(self.spec, cache, self.p["d_out"], self.d_state)

    def proj(self):
        xw = self._x2 @ self.p["params"]["weight_ih"].T
        xw += self._bias
        return xw

    def wgrad(self):
        x2, dz = self._x2, self._dz
        h = getattr(self.cache(), self.spec.state_names[0])      # (T, B, H) the states h_t
        h0 = self.p["state"][0]
        h_prev = np.concatenate([h0[None], h[:-1]]).reshape(self._T * self._B, self._H)
        return dz.T @ x2, dz.T @ h_prev, dz.sum(axis=0)

    def gemv(self):
        return self.p["params"]["weight_hh"] @ self._v

    def output(self):
        return np.asarray(self.fwd()[0])

    def memory(self):
        """-> activation bytes (what forward saves for backward: the cache's arrays other
        than the inputs, initial states and weights), values per T*B*H, and the peak
        traced memory of one forward+backward (NumPy allocations, tracemalloc)."""
        cache = self.fwd()[2]
        skip = {"x", "valid"} | {f"{s}0" for s in self.spec.state_names}
        act = 0
        for name, v in zip(type(cache)._fields, cache):
            if isinstance(v, np.ndarray) and name not in skip and not name.startswith("w_"):
                act += v.nbytes
        del cache
        tracemalloc.start()
        try:
            self.fwd_bwd()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        itemsize = self.p["x"].dtype.itemsize
        return dict(activation_bytes=int(act),
                    activation_per_TBH=act / itemsize / (self._T * self._B * self._H),
                    peak_bytes=int(peak))


def minirnn_engine(backend, p):
    return MinirnnEngine(backend, p)


# ----------------------------------------------------------------------------
# torch

class TorchEngine:
    """torch.nn's module for the cell (minirnn.interop.torch.torch_recurrent), the same
    weights and data. The forward runs with autograd on: it saves what backward needs, as
    minirnn's forward saves its cache."""

    def __init__(self, p, device="cpu"):
        import torch

        from ..interop.torch import torch_recurrent
        self.torch = torch
        self.spec = get_cell(p["cell"])
        T, B, I = p["x"].shape
        H = p["params"]["weight_hh"].shape[1]
        dt = getattr(torch, p["x"].dtype.name)
        m = torch_recurrent(self.spec, I, H).to(device=device, dtype=dt)
        with torch.no_grad():
            for name, value in p["params"].items():
                getattr(m, f"{name}_l0").copy_(torch.from_numpy(value))
        self.m = m
        t = lambda a: torch.from_numpy(a).to(device)                 # noqa: E731
        self.x = t(p["x"]).requires_grad_(True)
        st = tuple(t(s)[None] for s in p["state"])
        self.state = st if len(st) > 1 else st[0]
        self.d_out = t(p["d_out"])
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def fwd(self):
        out = self.m(self.x, self.state)[0]
        self.sync()
        return out

    def fwd_bwd(self):
        self.x.grad = None
        self.m.zero_grad(set_to_none=True)
        out = self.m(self.x, self.state)[0]
        out.backward(self.d_out)
        self.sync()

    def output(self):
        return self.fwd().detach().cpu().numpy()

    def memory(self):
        """-> activation bytes: the storage autograd saves in one forward (each storage once;
        the weights and the input excluded), values per T*B*H. No traced peak (torch's
        allocator is not NumPy's)."""
        torch = self.torch
        own = {p.untyped_storage().data_ptr() for p in self.m.parameters()}
        own.add(self.x.untyped_storage().data_ptr())
        seen = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in own:
                seen[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = self.m(self.x, self.state)[0]
        del out
        T, B, _ = self.x.shape
        H = self.d_out.shape[2]
        act = sum(seen.values())
        return dict(activation_bytes=int(act),
                    activation_per_TBH=act / self.x.element_size() / (T * B * H),
                    peak_bytes=None)


def torch_engine(p, device="cpu"):
    return TorchEngine(p, device)


# ----------------------------------------------------------------------------
# GEMM peaks

def numpy_gemm_peak(dtype, n, timing):
    """GFLOP/s of an (n, n) @ (n, n) NumPy matmul: the practical BLAS peak of this process."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    t, _ = time_call(lambda: a @ b, timing)
    return 2 * n ** 3 / t / 1e9


def torch_gemm_peak(dtype, n, timing, device="cpu"):
    """The same with torch: torch.mm (MKL on CPU) and, for float32 on CPU, oneDNN's GEMM
    (mkldnn_linear: what torch's fused RNN cells use; on some CPUs faster than MKL)
    -> dict(best=..., mm=..., onednn=... or None) in GFLOP/s."""
    import torch
    g = torch.Generator().manual_seed(0)
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, generator=g, dtype=dt).to(device)
    b = torch.randn(n, n, generator=g, dtype=dt).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def mm():
        torch.mm(a, b)
        sync()

    out = dict(mm=2 * n ** 3 / time_call(mm, timing)[0] / 1e9, onednn=None)
    if device == "cpu" and dtype == "float32":
        try:
            am, bm = a.to_mkldnn(), b.to_mkldnn()
            lin = lambda: torch._C._nn.mkldnn_linear(am, bm, None)        # noqa: E731
            out["onednn"] = 2 * n ** 3 / time_call(lin, timing)[0] / 1e9
        except (RuntimeError, AttributeError):                           # no oneDNN here
            pass
    out["best"] = max(v for v in (out["mm"], out["onednn"]) if v is not None)
    return out
