"""The workers of benchmarks/phases.py, each run in its own process: minirnn's phases
replayed with their floors (ours), torch's under torch.profiler (torch_phases), and the
end-to-end forward+backward of each (ours_e2e, torch_e2e). torch is imported only in the
torch workers."""
from __future__ import annotations

import statistics
import time

FWD = ["input GEMM", "recurrent GEMM fwd", "gate work fwd"]
BWD = ["recurrent GEMM bwd", "gate work bwd", "weight GEMMs", "memory traffic"]


def _time(fn, repeats, setup=None):
    """Median seconds of fn() over `repeats` timed runs after one warm-up; setup() runs
    untimed before each."""
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _environment(*modules):
    """Versions and each BLAS as loaded in this process (threadpoolctl: vendor, version,
    kernel architecture, threads)."""
    import importlib

    from threadpoolctl import threadpool_info
    return dict(versions={m: importlib.import_module(m).__version__ for m in modules},
                blas=[{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                             "num_threads", "threading_layer")}
                      for d in threadpool_info()])


# ----------------------------------------------------------------------------
# minirnn: the phases replayed, and the floors

def ours(cell, shape, dtype, repeats):
    import numpy as np

    from minirnn.bench.problems import make_problem
    from minirnn.kernels import _common, _gru, _lstm
    T, B, I, H = shape
    p = make_problem(cell, T, B, I, H, dtype)
    x, state, prm, d_out = p["x"], p["state"], p["params"], p["d_out"]
    w_ih, w_hh = prm["weight_ih"], prm["weight_hh"]
    K = _lstm if cell == "lstm" else _gru
    fwd = lambda: K.forward(x, *state, w_ih, w_hh, prm["bias_ih"], prm["bias_hh"])  # noqa: E731
    cache = fwd()[-1]
    steps = K.backward(cache, d_out, return_steps=True)[-1]
    dz = steps.dz if cell == "lstm" else steps.dg                   # (T, B, G)
    hx = np.concatenate([state[0][None], cache.h])                  # (T+1, B, H)
    zT, z = _common.product_buffers(w_hh.shape[0], B, dtype)        # as the kernels' own
    dhp = np.empty((B, H), dtype)
    dz_hh = {} if cell == "lstm" else {"dz_hh": dz.copy()}          # the GRU's hidden side
    pack = ((lambda: _common.stacked_inputs(x, state[0], cache.h)) if cell == "lstm" else
            (lambda: _common.previous_states(state[0], cache.h)))
    gfwd, gbwd = _gate_replays(cell, K, cache, state, prm, d_out, np, zT)
    ms = {"forward": _time(fwd, repeats),
          "backward": _time(lambda: K.backward(cache, d_out), repeats),
          "forward+backward": _time(lambda: K.backward(fwd()[-1], d_out), repeats),
          "input GEMM": _time(lambda: _common.input_projection(x, w_ih), repeats),
          "recurrent GEMM fwd": _time(lambda: [_common.recurrent_product(w_hh, hx[t], zT, z)
                                               for t in range(T)], repeats),
          "recurrent GEMM bwd": _time(lambda: [np.matmul(dz[t], w_hh, out=dhp)
                                               for t in range(T)], repeats),
          "gate work fwd": gfwd.time(repeats), "gate work bwd": gbwd.time(repeats),
          "memory traffic": _time(pack, repeats)}
    # weight_grads packs its operand (memory traffic) then multiplies: the products alone
    ms["weight GEMMs"] = _time(lambda: _common.weight_grads(
        dz, x, w_ih, state[0], cache.h, True, **dz_hh), repeats) - ms["memory traffic"]
    ms["rest fwd"] = ms["forward"] - sum(ms[k] for k in FWD)
    ms["rest bwd"] = ms["backward"] - sum(ms[k] for k in BWD)
    nbytes = dict(gate_fwd=gfwd.nbytes, gate_bwd=gbwd.nbytes, memory=2 * pack().nbytes)
    return dict(seconds=ms, floors=_floors(np, cell, shape, w_hh.shape[0], dtype, repeats,
                                           gfwd, gbwd, nbytes),
                environment=_environment("numpy", "numba", "threadpoolctl"))


class _Replay:
    """The T gate kernels of one pass, replayed: kernel(fresh, t) runs step t on every row;
    setup() -> fresh copies of what the kernels write (made untimed before each run);
    nbytes: what the pass must move from and to memory."""

    def __init__(self, kernel, setup, steps, nbytes):
        self.kernel, self.setup, self.steps, self.nbytes = kernel, setup, steps, nbytes

    def time(self, repeats, cached=False):
        """Seconds of the pass; cached: step 0's data T times (the arithmetic, in cache)."""
        fresh = {}
        steps = [self.steps[0]] * len(self.steps) if cached else self.steps
        return _time(lambda: [self.kernel(fresh, t) for t in steps], repeats,
                     setup=lambda: (fresh.clear(), fresh.update(self.setup())))


def _gate_replays(cell, K, cache, state, prm, d_out, np, zT):
    """-> the forward's and the backward's _Replay, on the forward's own data (the kernels'
    cost does not depend on the values: _vmath is branch-free)."""
    T, B, H = d_out.shape
    dt = d_out.dtype
    v = np.ones((T, B), dtype=bool)
    G = cache.gates.shape[2]
    hx = np.concatenate([state[0][None], cache.h])
    zh, out = np.zeros((1, B, G), dtype=dt), np.empty((T, B, H), dtype=dt)
    zT[...] = 0
    row = T * B * dt.itemsize
    if cell == "lstm":
        cx, r, tc = np.concatenate([state[1][None], cache.c]), np.empty((1, B, H), dt), \
            np.empty_like(cache.c)
        bsum = prm["bias_ih"] + prm["bias_hh"]

        def setup():
            return dict(g=cache.gates.copy(), hx=hx.copy(), cx=cx.copy(), dh=np.empty_like(out),
                        dhn=np.zeros((1, B, H), dt), dcn=np.zeros((1, B, H), dt),
                        dc=np.empty_like(out), dz=np.empty_like(cache.gates))

        def bwd_step(f, t):
            if "tc" not in f:                # _blas_backward's tanh(c_t), all steps at once
                f["tc"] = np.tanh(cache.c, out=tc)
            K._step_backward(d_out, f["dhn"], f["dhn"], f["dcn"], tc, cache.gates, cache.c,
                             state[1][None], v, f["dh"], f["dc"], f["dz"], f["dh"], t, t, 0, B,
                             True, True)
        fwd = _Replay(lambda f, t: K._step_forward(
            f["g"], zT, zh, bsum, True, f["hx"], f["cx"], r, False, v, out, t, 0, B), setup,
            range(T), row * (2 * G + 3 * H))  # x W_ih^T read; i f g o, c_t, h_t, out_t written
        return fwd, _Replay(bwd_step, setup, range(T - 1, -1, -1),   # gates, c_t, c_{t-1},
                            row * (2 * G + 6 * H))        # d_out read; tanh c, dz, dc, dh written
    hn, rh = np.empty((T, B, H), dt), np.empty((1, B, H), dt)

    def setup():
        return dict(g=cache.gates.copy(), hx=hx.copy(), gh=zh.copy(), dh=np.empty_like(out),
                    dhn=np.zeros((1, B, H), dt), dhp=np.zeros((1, B, H), dt),
                    dhz=np.zeros((1, B, H), dt), dgi=np.empty_like(cache.gates),
                    dgh=np.empty_like(cache.gates))
    fwd = _Replay(lambda f, t: K._step_forward(
        f["g"], zT, f["gh"], prm["bias_ih"], prm["bias_hh"], True, f["hx"], hn, rh, v, out, t,
        0, B), setup, range(T), row * (2 * G + 3 * H))   # x W_ih^T read; r z n, hn, h_t, out_t
    bwd = _Replay(lambda f, t: K._step_backward(
        d_out, f["dhn"], f["dhp"], f["dhz"], state[0][None], cache.h, cache.gates, cache.hn, v,
        f["dh"], f["dgi"], f["dgh"], t, 0, B), setup, range(T - 1, -1, -1),
        row * (3 * G + 4 * H))          # gates, hn, h_{t-1}, d_out read; dgi, dgh, dh written
    return fwd, bwd


def _floors(np, cell, shape, G, dtype, repeats, gfwd, gbwd, nbytes):
    """Each phase's floor: its GEMMs (the shapes the kernels call) through NumPy's BLAS in a
    tight loop; the gate work's: the larger of its bytes at this machine's streaming
    bandwidth and its arithmetic alone (the same kernels on one step's data, in cache);
    memory traffic's: its bytes at that bandwidth."""
    T, B, I, H = shape
    rng = np.random.default_rng(1)
    a = lambda *s: rng.standard_normal(s).astype(dtype)            # noqa: E731

    def gemm(x, w, times=1):
        out = np.empty((x.shape[0], w.shape[1]), dtype)
        return _time(lambda: [np.matmul(x, w, out=out) for _ in range(times)], repeats)
    from minirnn.kernels._common import product_buffers, recurrent_product
    zT, z = product_buffers(G, B, dtype)
    dz2, w_ih, w_hh, h = a(T * B, G), a(G, I), a(G, H), a(B, H)
    big = np.ones(1 << 23, dtype=np.float64)       # 64 MiB read and 64 written: past the caches
    dst = np.empty_like(big)
    bandwidth = 2 * big.nbytes / _time(lambda: np.copyto(dst, big), max(repeats, 5))  # B/s
    wg = [gemm(dz2, w_ih)] + ([gemm(dz2.T, a(T * B, I + H))] if cell == "lstm" else
                               [gemm(dz2.T, a(T * B, I)), gemm(dz2.T, a(T * B, H))])
    d = dict(bandwidth_gb_s=bandwidth / 1e9, bytes=nbytes,
             arith_fwd=gfwd.time(repeats, cached=True), arith_bwd=gbwd.time(repeats, cached=True),
             weight_gemms=wg)
    f = {"input GEMM": gemm(a(T * B, I), w_ih.T),
         "recurrent GEMM fwd": _time(lambda: [recurrent_product(w_hh, h, zT, z)
                                              for _ in range(T)], repeats),
         "recurrent GEMM bwd": gemm(a(B, G), w_hh, T),
         "gate work fwd": max(nbytes["gate_fwd"] / bandwidth, d["arith_fwd"]),
         "gate work bwd": max(nbytes["gate_bwd"] / bandwidth, d["arith_bwd"]),
         "weight GEMMs": sum(wg), "memory traffic": nbytes["memory"] / bandwidth}
    f["forward"] = sum(f[k] for k in FWD)
    f["backward"] = sum(f[k] for k in BWD)
    f["forward+backward"] = f["forward"] + f["backward"]
    return dict(seconds=f, detail=d)


# ----------------------------------------------------------------------------
# torch: its operators under the profiler, forward and backward apart

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkldnn_linear",
            "aten::mkldnn_linear")
FUSED_OPS = ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward")
MEMORY_OPS = ("aten::copy_", "aten::cat", "aten::stack", "aten::zero_", "aten::fill_",
              "aten::empty", "aten::empty_strided", "aten::clone", "aten::zeros_like",
              "aten::contiguous", "aten::unbind", "aten::select", "aten::slice", "aten::view",
              "aten::as_strided", "aten::transpose", "aten::t", "aten::narrow", "aten::split")


def _classify(events, T, B):
    """Self CPU seconds of profiler events per class: a GEMM with a T*B dimension (the input
    projection, dx), a per-step GEMM with B rows (h W_hh^T, dz W_hh) or another per-step one
    (the aten backward's dW = dz_t^T h_t, step by step), oneDNN's fused RNN operators, memory
    (copies, views, allocation), elementwise (the rest of aten)."""
    out = {"GEMM T*B rows": 0.0, "GEMM B rows (per step)": 0.0, "GEMM dW (per step)": 0.0,
           "fused oneDNN RNN": 0.0, "elementwise": 0.0, "memory": 0.0, "other": 0.0}
    for e in events:
        s = e.self_cpu_time_total / 1e6
        mats = [sh for sh in (e.input_shapes or []) if len(sh) == 2]
        if e.key in GEMM_OPS:
            if any(T * B in sh for sh in mats):
                out["GEMM T*B rows"] += s
            elif mats and mats[0][0] == B:
                out["GEMM B rows (per step)"] += s
            else:
                out["GEMM dW (per step)"] += s
        elif e.key in FUSED_OPS:
            out["fused oneDNN RNN"] += s
        elif e.key in MEMORY_OPS:
            out["memory"] += s
        elif e.key.startswith("aten::"):
            out["elementwise"] += s
        else:
            out["other"] += s
    return out


def _aten_phases(split):
    """torch's aten-path profile (self CPU s per class, forward and backward) -> our phases."""
    f, b = split["forward"], split["backward"]
    return {"input GEMM": f["GEMM T*B rows"], "recurrent GEMM fwd": f["GEMM B rows (per step)"],
            "gate work fwd": f["elementwise"], "recurrent GEMM bwd": b["GEMM B rows (per step)"],
            "gate work bwd": b["elementwise"],
            "weight GEMMs": b["GEMM T*B rows"] + b["GEMM dW (per step)"],
            "memory traffic": f["memory"] + b["memory"]}


def torch_phases(cell, shape, dtype, repeats, threads):
    import torch
    from torch.profiler import ProfilerActivity, profile

    from minirnn.bench.engines import torch_engine
    from minirnn.bench.problems import make_problem
    torch.set_num_threads(threads)
    T, B, I, H = shape
    e = torch_engine(make_problem(cell, T, B, I, H, dtype))
    res = {"threads": torch.get_num_threads(), "onednn": {}, "aten": {},
           "environment": _environment("numpy", "torch", "threadpoolctl")}
    with profile(activities=[ProfilerActivity.CPU]):  # the profiler's own start-up, untimed
        e.fwd_bwd()
    for mode, enabled in (("onednn", True), ("aten", False)):
        with torch.backends.mkldnn.flags(enabled=enabled):
            ms = {"forward+backward": _time(e.fwd_bwd, repeats), "forward": _time(e.fwd, repeats)}
            ms["backward"] = ms["forward+backward"] - ms["forward"]
            split = {}
            out = e.m(e.x, e.state)[0]
            out.backward(e.d_out, retain_graph=True)          # warm, outside the profile
            for part in ("forward", "backward"):
                with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                    for _ in range(repeats):
                        if part == "forward":
                            e.m(e.x, e.state)
                        else:
                            out.backward(e.d_out, retain_graph=True)
                ev = prof.key_averages(group_by_input_shape=True)
                split[part] = {k: v / repeats for k, v in _classify(ev, T, B).items()}
            res[mode] = dict(seconds=ms, profile=split)
    res["aten"]["phases"] = _aten_phases(res["aten"]["profile"])
    return res


def ours_e2e(cell, shape, dtype, repeats):
    """forward+backward through minirnn's numba engine, as `minirnn bench` times it."""
    from minirnn.bench.engines import minirnn_engine
    from minirnn.bench.problems import make_problem
    e = minirnn_engine("numba", make_problem(cell, *shape, dtype))
    return dict(seconds={"forward+backward": _time(e.fwd_bwd, repeats)},
                environment=_environment("numpy", "numba", "threadpoolctl"))


def torch_e2e(cell, shape, dtype, repeats, threads):
    """forward+backward through torch's module, oneDNN as torch runs by default."""
    import torch

    from minirnn.bench.engines import torch_engine
    from minirnn.bench.problems import make_problem
    torch.set_num_threads(threads)
    e = torch_engine(make_problem(cell, *shape, dtype))
    return dict(seconds={"forward+backward": _time(e.fwd_bwd, repeats)},
                threads=torch.get_num_threads(),
                environment=_environment("numpy", "torch", "threadpoolctl"))
