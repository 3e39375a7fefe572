"""One engine in its own process: `python -m minirnn.bench.worker`, JSON lines on stdin/stdout.

The parent (minirnn.bench.runner) starts one worker per engine with the thread variables
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS, MINIRNN_NUM_THREADS) already in its
environment, so every library reads them before it loads. Requests, one JSON object a line:

    {"op": "init", "engine": {"kind": "numba", "threads": 2, "device": "cpu"}}
        (kind: numpy, numba, torch or jax)
        -> imports, and the environment as seen from inside (threadpoolctl: BLAS vendor,
           kernel architecture, threads; versions; override variables)
    {"op": "calibrate", "dtypes": [...], "peak_n": 1024, "first_call_cells": [...],
     "timing": {...}}
        -> the numba first-call time per cell and dtype, the GEMM peak per dtype (this
           process's BLAS at its thread count); the parent runs it one worker at a time
    {"op": "run", "problem": {"cell", "T", "B", "I", "H", "dtype", "seed"},
     "timing": {"repeats", "min_time", "max_repeats", "warmup"}, "split": bool,
     "bandwidth": bool}
        -> medians in seconds of fwd, fwd_bwd (and with split: bwd, proj, wgrad; with
           bandwidth: gemv) over one block of repeats
    {"op": "extras", "problem": {...}, "output_path": path or null, "memory": bool}
        -> untimed: saves the forward output (.npy) for the error check, activation memory
    {"op": "exit"}

A reply is one JSON object: the result, or {"error": "...", "traceback": "..."}. Anything a
library prints goes to stderr: stdout carries the protocol only.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback


class Worker:
    def __init__(self):
        self.kind = self.device = None
        self.threads = 1
        self._key = self._engine = None

    # ---- requests ----------------------------------------------------------------------------
    def init(self, req):
        """Imports and the environment as seen from inside (workers run this in parallel)."""
        eng = req["engine"]
        self.kind, self.threads = eng["kind"], int(eng["threads"])
        self.device = eng.get("device", "cpu")
        t0 = time.perf_counter()
        import numpy as np
        info = dict(pid=os.getpid(), kind=self.kind, threads=self.threads, device=self.device,
                    numpy=np.__version__)
        if self.kind == "jax":
            info.update(_jax_init(self.threads, self.device))
        elif self.kind == "torch":
            import torch
            torch.set_num_threads(self.threads)
            info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        torch_interop_threads=torch.get_num_interop_threads(),
                        torch_cpu_capability=_torch_capability(torch),
                        torch_blas=_torch_blas(torch),
                        cuda_available=bool(torch.cuda.is_available()))
            if self.device.startswith("cuda"):
                if not torch.cuda.is_available():
                    raise RuntimeError("device: 'cuda' asked for, but torch.cuda.is_available() "
                                       "is False")
                torch.backends.cuda.matmul.allow_tf32 = False     # honest float32 on the GPU
                torch.backends.cudnn.allow_tf32 = False
                info["cuda_device"] = torch.cuda.get_device_name(0)
        else:
            from .._config import apply_threads
            from ..functional.backends import get_backend
            get_backend(self.kind)
            info["minirnn_threads"] = apply_threads()
            if self.kind == "numba":
                import numba

                from .. import kernels  # noqa: F401  (the kernels load numba's thread layer)
                info.update(numba=numba.__version__, numba_threads=numba.get_num_threads(),
                            numba_threading_layer=str(numba.config.THREADING_LAYER))
        info["import_s"] = time.perf_counter() - t0
        info.update(threadpools=_threadpools(), environ_overrides=_overrides())
        gc.collect()
        gc.freeze()            # the libraries' objects: out of every later collection's way
        return info

    def calibrate(self, req):
        """Alone on the machine (the parent runs this one worker at a time): the numba
        first-call time per cell and dtype, and the GEMM peak of this process's BLAS."""
        from .engines import Timing, numpy_gemm_peak, torch_gemm_peak
        first_call = {}
        if self.kind == "numba" and req.get("first_call_cells"):
            first_call = _first_call(req.get("first_call_cells", []), req["dtypes"])
        peak_timing = Timing(**req.get("timing", dict(repeats=3, min_time=0.2, max_repeats=10)))
        peaks, detail = {}, {}
        for dt in req["dtypes"]:
            if self.kind == "torch":
                detail[dt] = torch_gemm_peak(dt, int(req["peak_n"]), peak_timing, self.device)
                peaks[dt] = detail[dt]["best"]
            elif self.kind == "jax":
                from .jax_engine import jax_gemm_peak
                peaks[dt] = jax_gemm_peak(dt, int(req["peak_n"]), peak_timing, self.device)
                detail[dt] = dict(best=peaks[dt], jax=peaks[dt])
            else:
                peaks[dt] = numpy_gemm_peak(dt, int(req["peak_n"]), peak_timing)
                detail[dt] = dict(best=peaks[dt], numpy=peaks[dt])
        fma = {}
        if self.kind == "numba":                      # the recurrent product's own yardstick
            from .env import fma_peak
            fma = {dt: fma_peak(dt) for dt in req["dtypes"]}
        return dict(gemm_peak_gflops=peaks, gemm_peak_detail=detail, fma_peak_gflops=fma,
                    gemm_peak_n=int(req["peak_n"]), numba_first_call_s=first_call,
                    threadpools=_threadpools())

    def _problem_engine(self, prob):
        key = json.dumps(prob, sort_keys=True)
        if key != self._key:
            from .engines import minirnn_engine, torch_engine
            from .problems import make_problem
            self._engine = None
            p = make_problem(prob["cell"], prob["T"], prob["B"], prob["I"], prob["H"],
                             prob["dtype"], prob.get("seed", 0))
            if self.kind == "jax":                    # checked against minirnn before timing
                from .jax_engine import jax_engine
                self._engine = jax_engine(p, self.device)
                self._engine.checked = self._engine.check()
            else:
                self._engine = (torch_engine(p, self.device) if self.kind == "torch"
                                else minirnn_engine(self.kind, p))
            self._key = key
        return self._engine

    def run(self, req):
        from .engines import Timing, time_call
        e = self._problem_engine(req["problem"])
        timing = Timing(**req["timing"])
        t0 = time.perf_counter()
        out, runs = {}, {}                            # each phase has its own warm-up
        phases = [("fwd", e.fwd), ("fwd_bwd", e.fwd_bwd)]
        minirnn = self.kind in ("numpy", "numba")
        if req.get("split") and minirnn:
            phases += [("bwd", e.bwd), ("proj", e.proj), ("wgrad", e.wgrad)]
        if req.get("bandwidth") and minirnn:
            phases.append(("gemv", e.gemv))
        gc.collect()                                  # once per block (torch's heap: ~0.1 s)
        gc.disable()
        try:
            for name, fn in phases:
                out[name], runs[name] = time_call(fn, timing, collect=False)
        finally:
            gc.enable()
        return dict(seconds=out, repeats=runs, block_s=time.perf_counter() - t0)

    def extras(self, req):
        e = self._problem_engine(req["problem"])
        res = {}
        if req.get("output_path"):
            import numpy as np
            np.save(req["output_path"], np.asarray(e.output()))
            res["output_path"] = req["output_path"]
        if req.get("memory"):
            res.update(e.memory())
        if getattr(e, "checked", None):
            res["check_rel_err"] = e.checked            # jax: its agreement with minirnn
        return res

    def handle(self, req):
        op = req.get("op")
        if op == "init":
            return self.init(req)
        if op == "calibrate":
            return self.calibrate(req)
        if op == "run":
            return self.run(req)
        if op == "extras":
            return self.extras(req)
        if op == "ping":
            return dict(pid=os.getpid())
        if op == "exit":
            return dict(bye=True)
        raise ValueError(f"op: expected init, calibrate, run, extras, ping or exit, got {op!r}")


def _first_call(cells, dtypes):
    """First-call seconds of the numba kernels per cell and dtype, both code paths, tiny
    sizes: compilation on a fresh install, loading from numba's on-disk cache later."""
    from functools import partial

    from ..cells import Tier, get_cell
    from .problems import make_problem
    out = {}
    for cell in cells:
        spec = get_cell(cell)
        twin = spec.twin("numba")
        for dt in dtypes:
            p = make_problem(cell, 3, 2, 3, 4, dt, seed=1)
            t0 = time.perf_counter()
            for path in ("loop", "blas"):      # each path compiles its own kernels
                fns = Tier(partial(twin.forward, path=path), partial(twin.backward, path=path),
                           twin.forward_jvp, twin.backward_jvp)
                _, *_, cache = fns.forward(p["x"], *p["state"], *spec.args(p["params"]), None)
                fns.backward(cache, p["d_out"], *(None,) * len(spec.state_names))
            out[f"{cell}/{dt}"] = time.perf_counter() - t0
    return out


def _jax_init(threads, device):
    """Import jax with float64 enabled, pinned to `threads` cores (XLA's CPU pool has no
    thread-count option but the single-thread one: the affinity mask bounds its pool, and the
    process sees only those cores) -> version, devices, x64, affinity."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
    except AttributeError:                            # not on Linux: the pool takes every core
        cpus = None
    import jax
    import jaxlib
    jax.config.update("jax_enable_x64", True)
    devs = jax.devices(device)
    return dict(jax=jax.__version__, jaxlib=jaxlib.__version__, jax_x64=True,
                jax_backend=jax.default_backend(),
                jax_device=f"{devs[0].platform}:{devs[0].device_kind}",
                jax_affinity=sorted(os.sched_getaffinity(0)) if cpus is not None else None,
                xla_flags=os.environ.get("XLA_FLAGS"))


def _threadpools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def _overrides():
    from .env import blas_overrides
    return blas_overrides()


def _torch_capability(torch):
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:                                 # older torch
        return None


def _torch_blas(torch):
    cfg = torch.__config__.show()
    for token in ("BLAS_INFO=", ):
        if token in cfg:
            return cfg.split(token, 1)[1].split(",", 1)[0].strip()
    return None


def main():
    # stdout carries the protocol only: keep a private copy of it, send fd 1 to stderr
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = None
        try:
            req = json.loads(line)
            res = worker.handle(req)
        except Exception as e:                        # reported to the parent, which raises
            res = dict(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        proto.write(json.dumps(res) + "\n")
        proto.flush()
        if isinstance(req, dict) and req.get("op") == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
