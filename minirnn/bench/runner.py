"""The benchmark, honest by construction.

* Each engine runs in its own worker process (minirnn.bench.worker), started with its thread
  variables set before any library loads. (In one process, OpenBLAS's spinning worker
  threads slowed torch down about 1.8x in the block after any NumPy matmul, so in-process
  comparisons flatter minirnn.) Workers stay up for the whole run; only one works at a time,
  and before each hand-over the parent waits until the other workers' threads have stopped
  running (env.wait_quiet), so a pool spinning after its work never overlaps a timing.
* Per problem, every engine is timed once per round, in an order that rotates from round to
  round. Each round's block is one warm-up and a few timed repeats (their median). A row
  reports the median over rounds of those per-round medians, the spread (min-max over
  rounds), and the median and min-max of the per-round ratios to torch at the same thread
  count (and to torch at 1 thread).
* The environment goes with every result: CPU, cores, each engine's threads, BLAS vendor,
  kernel architecture and pool size as threadpoolctl sees them inside the worker, versions,
  the override variables set (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, ...), and the foreign CPU
  load before and during the run.
* Numbers that cannot be right are flagged, not reported as results (see row_flags).

Engines: "numpy" (the reference; only on problems up to NUMPY_MAX_FLOPS), "numba"
(minirnn.kernels), "torch@1" and "torch@N" (torch CPU at 1 thread and at minirnn's N), and
"torch-cuda" when a CUDA device is there (synchronised timing, TF32 off).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from ..registry import CELL_NAMES, get_cell
from .engines import Timing
from .env import NATIVE_UNSET, LoadMonitor, describe_machine, usable_cores, wait_quiet
from .problems import (DEFAULT_QUICK_REGIMES, DEFAULT_REGIMES, DTYPES, FLOP_CONVENTION,
                       REFERENCE_DTYPE, REFERENCE_SETS, REGIMES, SMALL_BATCH, flops, grid,
                       problem_id)

SCHEMA = "minirnn-bench/2"
BACKENDS = ("numpy", "numba", "torch")
BLAS_MODES = ("env", "native", "both")
# the NumPy reference engine runs only where it is not too slow (forward FLOPs)
NUMPY_MAX_FLOPS = {False: 3e9, True: 1e8}         # {quick: limit}
LOAD_LIMIT = 0.25          # foreign CPU load (cores) above which a result is not trustworthy
SPREAD_LIMIT = 0.5         # (max - min) / median of a row's per-round ratios: flagged as noisy
PHASES = ("fwd", "fwd_bwd", "bwd", "proj", "rec", "bwd_data", "bwd_weights")

DEFINITIONS = {
    "fwd": "the layer forward (input projection included), autograd on for torch",
    "fwd_bwd": "forward then backward (dx, dh0, every weight gradient)",
    "bwd": "numba: the backward alone, on one fixed cache",
    "proj": "numba: the input projection alone: x (T*B, I) @ W_ih^T + biases, one NumPy GEMM "
            "(what the kernels run before their time loop)",
    "rec": "numba: recurrent forward = fwd - proj (per round)",
    "bwd_weights": "numba: the weight gradients alone: dZ^T x and dZ^T h_prev, one NumPy GEMM "
                   "each, and the bias sums (what the kernels run after their time loop)",
    "bwd_data": "numba: backward-data (dx and dh through time) = bwd - bwd_weights (per round)",
    "seconds": "median over rounds of each round's median over its timed repeats",
    "spread": "min and max over rounds of the per-round medians",
    "ratio": "per round: reference engine's seconds / this engine's seconds (> 1: this engine "
             "is faster); reported as the median over rounds and the min-max",
    "gflops": "FLOPs of the phase (flop_convention) / seconds / 1e9",
    "peak_fraction": "GFLOP/s / the GEMM peak of the engine's own BLAS at its thread count and "
                     "dtype: an n x n matmul (numpy: OpenBLAS via NumPy; torch: the faster of "
                     "torch.mm and oneDNN's linear), measured in the worker alone, before and "
                     "after the grid; the higher of the two",
    "bandwidth": "bytes of W_hh / median seconds of one W_hh @ v (NumPy gemv in the numba "
                 "worker, its thread count): the streaming rate at W_hh's size, so L2/L3 "
                 "bandwidth when W_hh fits there",
    "floor": f"rows with B <= {SMALL_BATCH}: the memory-bandwidth floor, the time to stream "
             "W_hh once per step: fwd T*bytes(W_hh)/bandwidth, fwd_bwd twice that (backward "
             "reads W_hh again per step)",
    "activation": "bytes forward saves for backward: minirnn the cache's arrays except inputs, "
                  "initial states and weights; torch the storages autograd saves, weights and "
                  "input excluded. per_TBH = values / (T*B*H)",
    "peak_mb": "minirnn: peak traced NumPy memory of one forward+backward (tracemalloc)",
    "rel_err": "||out - out_ref|| / ||out_ref|| of the forward output, reference torch@N",
    "load": "foreign CPU load in cores: machine busy time (steal included) minus the CPU time "
            "of this benchmark's processes, per wall second",
}


@dataclass
class EngineSpec:
    name: str              # "numba", "numpy", "torch@1", "torch@2", "torch-cuda", "numba:native"
    kind: str              # "numpy" | "numba" | "torch"
    threads: int
    device: str = "cpu"
    native_blas: bool = False

    def environ(self, base=None):
        """The worker's environment: thread variables for every library, set before Python
        starts; with native_blas, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (this worker
        only). torch's worker gets OPENBLAS_NUM_THREADS=1: its NumPy only makes the data,
        and a pool of one thread can never spin beside torch's."""
        env = dict(os.environ if base is None else base)
        n = str(self.threads)
        env.update(OPENBLAS_NUM_THREADS="1" if self.kind == "torch" else n,
                   OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, MINIRNN_NUM_THREADS=n)
        if self.native_blas:
            for k in NATIVE_UNSET:
                env.pop(k, None)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env


class WorkerError(RuntimeError):
    pass


class WorkerProcess:
    """One engine's worker: JSON lines over its stdin/stdout, stderr into a file."""

    def __init__(self, spec: EngineSpec, tmpdir):
        self.spec = spec
        self.stderr_path = os.path.join(tmpdir, f"{spec.name.replace('@', '_').replace(':', '_')}.err")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "minirnn.bench.worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, env=spec.environ(), text=True, bufsize=1)
        self.pid = self.proc.pid

    def _stderr_tail(self, n=1500):
        self._err.flush()
        try:
            with open(self.stderr_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def send(self, **req):
        self._op = req.get("op")
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass                                    # receive() reports the exit

    def receive(self):
        try:
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            self.proc.wait()
            raise WorkerError(f"worker {self.spec.name}: exited (code {self.proc.poll()}) during "
                              f"{self._op!r}; its stderr ends:\n{self._stderr_tail()}")
        res = json.loads(line)
        if "error" in res:
            raise WorkerError(f"worker {self.spec.name}: {res['error']}")
        return res

    def request(self, **req):
        self.send(**req)
        return self.receive()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.request(op="exit")
            except WorkerError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()
        self._err.close()


# ----------------------------------------------------------------------------
# checks

def _check_choice(name, values, allowed):
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name}: expected a non-empty list from {list(allowed)}, got {values}")
    return values


def check_threads(threads):
    if threads is None:
        from .._config import num_threads
        return num_threads()
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(threads, float) and threads != n):
        raise ValueError(f"threads: expected a positive integer, got {threads!r}")
    return n


def row_flags(row, load_limit=LOAD_LIMIT, spread_limit=SPREAD_LIMIT):
    """-> [(code, message)] for one result row. Codes "peak", "order" and "split" mark
    numbers that cannot be right (the row is then not reported as a result); "load" and
    "spread" mark numbers that may be off (noisy machine, rounds that disagree)."""
    out = []
    sec, frac = row.get("seconds", {}), row.get("peak_fraction", {})
    over = {ph: f for ph, f in frac.items() if f is not None and f > 1.0}
    if over:
        out.append(("peak", "above 100% of the measured GEMM peak ("
                    + ", ".join(f"{ph} {100 * f:.0f}%" for ph, f in over.items())
                    + "): the peak or the timing is wrong"))
    if sec.get("fwd") is not None and sec.get("fwd_bwd") is not None and sec["fwd"] > sec["fwd_bwd"]:
        out.append(("order", f"forward ({sec['fwd'] * 1e3:.3g} ms) slower than forward+backward "
                    f"({sec['fwd_bwd'] * 1e3:.3g} ms)"))
    neg = [ph for ph in ("rec", "bwd_data") if sec.get(ph) is not None and sec[ph] <= 0]
    if neg:
        out.append(("split", f"derived phase(s) {', '.join(neg)} <= 0: the standalone GEMMs took "
                    f"longer than the whole phase"))
    load = row.get("load") or {}
    if load.get("mean") is not None and load["mean"] > load_limit:
        out.append(("load", f"foreign CPU load {load['mean']:.2f} cores (limit {load_limit})"))
    for ref, passes in (row.get("ratio") or {}).items():
        r = passes.get("fwd_bwd")
        if r and r.get("median") and len(r.get("per_round", ())) > 1:
            width = (r["max"] - r["min"]) / r["median"]
            if width > spread_limit:
                out.append(("spread", f"per-round ratio to {ref} spans {r['min']:.2f}-{r['max']:.2f} "
                            f"({100 * width:.0f}% of its median)"))
                break
    return out


VALIDITY = ("peak", "order", "split")        # the flags that mark impossible numbers


def load_warnings(before, during, cores, load_limit=LOAD_LIMIT):
    """-> warnings about the machine's load. before: dict(foreign=cores or None,
    loadavg=1-min load average); during: LoadMonitor.summary()-like dict(mean, max)."""
    out = []
    if before.get("foreign") is not None and before["foreign"] > load_limit:
        out.append(f"machine busy before the run: foreign CPU load {before['foreign']:.2f} cores "
                   f"(limit {load_limit}); results are not trustworthy")
    elif before.get("foreign") is None and before.get("loadavg") is not None \
            and before["loadavg"] > 0.5 * cores:
        out.append(f"machine busy before the run: load average {before['loadavg']:.2f} on {cores} "
                   f"cores; results are not trustworthy")
    if during.get("mean") is not None and during["mean"] > load_limit:
        out.append(f"machine busy during the run: foreign CPU load mean {during['mean']:.2f}, max "
                   f"{during['max']:.2f} cores (limit {load_limit}); results are not trustworthy")
    return out


# ----------------------------------------------------------------------------
# the run

def make_engines(backends, threads, blas="env", cuda=False):
    """-> [EngineSpec] in timing order for the chosen backends and BLAS mode."""
    out = []
    modes = {"env": [False], "native": [True], "both": [False, True]}[blas]
    for b in ("numpy", "numba"):
        if b in backends:
            for native in modes:
                name = b + (":native" if native and blas == "both" else "")
                out.append(EngineSpec(name, b, threads, native_blas=native))
    if "torch" in backends:
        out.append(EngineSpec("torch@1", "torch", 1))
        if threads != 1:
            out.append(EngineSpec(f"torch@{threads}", "torch", threads))
        if cuda:
            out.append(EngineSpec("torch-cuda", "torch", threads, device="cuda"))
    return out


def _itemsize(dtype):
    import numpy as np
    return np.dtype(dtype).itemsize


def _median_spread(vals):
    return statistics.median(vals), min(vals), max(vals)


def _ratio(ref_rounds, rounds, phase):
    per = [r[phase] / e[phase] for r, e in zip(ref_rounds, rounds)
           if r.get(phase) and e.get(phase)]
    if not per:
        return None
    med, lo, hi = _median_spread(per)
    return dict(median=med, min=lo, max=hi, per_round=per)


def _derive(rnd):
    """Add the derived phases of one round: rec = fwd - proj, bwd_data = bwd - bwd_weights."""
    out = dict(rnd)
    if "wgrad" in out:
        out["bwd_weights"] = out.pop("wgrad")
    if "proj" in out:
        out["rec"] = out["fwd"] - out["proj"]
    if "bwd" in out and "bwd_weights" in out:
        out["bwd_data"] = out["bwd"] - out["bwd_weights"]
    return out


def build_row(job, eng, rounds, peak, ref_names, ref_rounds, extras, bandwidth, load):
    """One result row from the per-round medians of one engine on one problem."""
    reg, (T, B, I, H), cell, dt = job
    rounds = [_derive(r) for r in rounds]
    for r in rounds:
        r.pop("gemv", None)                 # the bandwidth probe: summarised by the caller
    seconds, spread, per_round = {}, {}, {}
    for ph in PHASES:
        vals = [r[ph] for r in rounds if ph in r]
        if vals:
            med, lo, hi = _median_spread(vals)
            seconds[ph], spread[ph], per_round[ph] = med, [lo, hi], vals
    gflops = {ph: flops(cell, T, B, I, H, ph) / s / 1e9 for ph, s in seconds.items() if s > 0}
    frac = {ph: (g / peak if peak else None) for ph, g in gflops.items()}
    ratio = {}
    for ref in ref_names:
        if ref != eng.name and ref in ref_rounds:
            ref_r = [_derive(x) for x in ref_rounds[ref]]
            ratio[ref] = {ph: _ratio(ref_r, rounds, ph) for ph in ("fwd", "fwd_bwd")}
    row = dict(id=problem_id(reg, (T, B, I, H), cell, dt), regime=reg, cell=cell, T=T, B=B, I=I,
               H=H, dtype=dt, engine=eng.name, kind=eng.kind, threads=eng.threads,
               device=eng.device, native_blas=eng.native_blas, rounds=len(rounds),
               seconds=seconds, spread=spread, per_round=per_round, gflops=gflops,
               gemm_peak_gflops=peak, peak_fraction=frac, ratio=ratio, load=load)
    row.update({k: extras.get(k) for k in ("activation_bytes", "activation_per_TBH", "peak_bytes")})
    if bandwidth and B <= SMALL_BATCH:
        w_bytes = get_cell(cell).gates * H * H * _itemsize(dt)
        fl = T * w_bytes / (bandwidth * 1e9)
        row.update(bandwidth_gbs=bandwidth, floor_s=dict(fwd=fl, fwd_bwd=2 * fl),
                   floor_ratio={ph: seconds[ph] / f for ph, f in (("fwd", fl), ("fwd_bwd", 2 * fl))
                                if ph in seconds})
    row["flags"] = [dict(code=c, message=m) for c, m in row_flags(row)]
    row["valid"], row["split_valid"] = validity(row)
    return row


MAIN_PHASES = ("fwd", "fwd_bwd", "bwd")
SPLIT_PHASES = ("proj", "rec", "bwd_data", "bwd_weights")


def validity(row):
    """-> (valid, split_valid). valid: the row's main numbers (fwd, fwd+bwd, bwd) can be
    reported: no "order" flag and none of them above 100% of peak. split_valid: the split
    phases can too: valid, no "split" flag, none of them above 100% of peak."""
    codes = {f["code"] for f in row.get("flags", [])}
    frac = row.get("peak_fraction", {})
    over = lambda phases: any((frac.get(ph) or 0) > 1.0 for ph in phases)     # noqa: E731
    valid = "order" not in codes and not over(MAIN_PHASES)
    return valid, valid and "split" not in codes and not over(SPLIT_PHASES)


def run_benchmark(cells=None, backends=BACKENDS, dtypes=DTYPES, regimes=None,
                  device="auto", quick=False, shapes=None, timing=None, rounds=None,
                  threads=None, blas="env", peak_n=None, peak_timing=None, show_progress=True,
                  load_check=True, split=True):
    """Run the grid -> dict(schema, meta, rows). Every engine in its own worker process.

    cells: registry names (default: all of minirnn.registry.CELL_NAMES); backends: numpy,
    numba, torch (torch = torch@1 and torch@N); regimes: minirnn's (small, medium, large)
    and the reference sets (fastrnns, deepbench); shapes: {regime: [(T, B, I, H), ...]}
    replaces the built-in sizes (tests use tiny ones); threads: N for numba/numpy and
    torch@N (default minirnn._config.num_threads()); blas: "env" (the environment as it is),
    "native" (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the minirnn workers), "both"
    (each minirnn engine twice, the second named "<engine>:native").

    regimes default: all five; with quick small, medium, fastrnns, deepbench. The reference
    sets run in float32 (their published precision).
    quick: problems.QUICK's shapes; only "small" in every dtype, the rest in float32; the
    reference sets for the cell(s) with the most gates (LSTM); 3 rounds of 1-3 timed repeats
    (>= 0.05 s); the numpy engine only up to 1e8 forward FLOPs; a 1024 matmul for the peak.
    """
    from .._progress import progress
    cells = _check_choice("cells", CELL_NAMES if cells is None else cells, CELL_NAMES)
    backends = _check_choice("backends", backends, BACKENDS)
    dtypes = _check_choice("dtypes", dtypes, DTYPES)
    allowed = tuple(shapes) if shapes is not None else tuple(REGIMES)
    if regimes is None:
        regimes = allowed if shapes is not None else (
            DEFAULT_QUICK_REGIMES if quick else DEFAULT_REGIMES)
    regimes = _check_choice("regimes", regimes, allowed)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
    if blas not in BLAS_MODES:
        raise ValueError(f"blas: expected one of {list(BLAS_MODES)}, got {blas!r}")
    threads = check_threads(threads)
    rounds = rounds if rounds is not None else (3 if quick else 5)
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds: expected a positive integer, got {rounds!r}")
    rounds = int(rounds)
    timing = timing or (Timing(1, 0.05, 3) if quick else Timing(2, 0.15, 10))
    peak_n = peak_n or (1024 if quick else 2048)
    peak_timing = peak_timing or Timing(3, 0.2, 10)
    jobs, table = grid(regimes, cells, dtypes, quick=quick, shapes=shapes)
    cores = usable_cores()

    t_start = time.perf_counter()
    notes, warnings = [], []
    monitor = LoadMonitor(interval=0.5)
    before = dict(loadavg=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                  foreign=None)
    if load_check and monitor.method == "proc-stat":
        before["foreign"] = monitor.measure(0.5)
    engines = make_engines(backends, threads, blas)
    if threads > cores:
        warnings.append(f"threads: {threads} threads on {cores} usable cores: the engines "
                        f"oversubscribe the machine")
    if blas != "env" and not any(k in os.environ for k in NATIVE_UNSET):
        notes.append(f"blas={blas}: {' and '.join(NATIVE_UNSET)} are not set here, so the "
                     f"native workers see the same environment")

    tmp = tempfile.TemporaryDirectory(prefix="minirnn-bench-")
    workers, infos = {}, {}
    rows, ref_names, raw = [], [], []
    handovers = dict(count=0, waited_s=0.0, not_quiet=0)
    procs = []                                          # every worker started, for cleanup
    try:
        # ---- start the workers: imports in parallel, then each calibrates alone ----------
        bar = progress(total=len(engines), desc="bench: start workers", disable=not show_progress)
        pending = list(engines)
        while pending:
            batch, pending = pending, []
            started = []
            for eng in batch:
                w = WorkerProcess(eng, tmp.name)
                procs.append(w)
                w.send(op="init", engine=dict(kind=eng.kind, threads=eng.threads, device=eng.device))
                started.append((eng, w))
            for eng, w in started:
                try:
                    infos[eng.name] = w.receive()
                    workers[eng.name] = w
                except WorkerError as e:
                    w.close()
                    if eng.kind == "torch" and "No module named 'torch'" in str(e):
                        if not any("torch is not installed" in n for n in notes):
                            notes.append("torch is not installed: no torch rows, no ratios")
                        engines = [s for s in engines if s.name != eng.name]
                        continue
                    raise
            for eng, w in started:
                if eng.name not in workers:
                    continue
                infos[eng.name].update(w.request(op="calibrate", dtypes=dtypes, peak_n=peak_n,
                                                 first_call_cells=cells,
                                                 timing=asdict(peak_timing)))
                bar.update(1)
                if (eng.kind == "torch" and eng.device == "cpu" and device in ("auto", "cuda")
                        and not any(e.device == "cuda" for e in engines)):
                    if infos[eng.name].get("cuda_available"):
                        cu = EngineSpec("torch-cuda", "torch", threads, device="cuda")
                        engines.append(cu)
                        pending.append(cu)
                        bar.total += 1
                    elif device == "cuda":
                        raise RuntimeError("device: 'cuda' asked for, but "
                                           "torch.cuda.is_available() is False")
        bar.close()
        names = [e.name for e in engines]
        ref_same = f"torch@{threads}" if f"torch@{threads}" in names else None
        ref_names = [n for n in (ref_same, "torch@1") if n in names]
        bw_engine = next((e.name for e in engines if e.kind == "numba"),
                         next((e.name for e in engines if e.kind == "numpy"), None))
        monitor.pids = {w.pid for w in workers.values()}
        if load_check:
            monitor.start()

        # ---- the grid ------------------------------------------------------------------------
        bar = progress(total=len(jobs) * rounds, desc="bench", disable=not show_progress)
        for j, job in enumerate(jobs):
            reg, (T, B, I, H), cell, dt = job
            prob = dict(cell=cell, T=T, B=B, I=I, H=H, dtype=dt, seed=0)
            fwd_flops = flops(cell, T, B, I, H, "fwd")
            active = [e for e in engines
                      if not (e.kind == "numpy" and fwd_flops > NUMPY_MAX_FLOPS[bool(quick)])]
            per = {e.name: [] for e in active}
            blocks = {e.name: [] for e in active}
            t0 = time.monotonic()
            for r in range(rounds):
                k = (r + j) % len(active)
                for eng in active[k:] + active[:k]:           # the order rotates every round
                    others = [w.pid for n, w in workers.items() if n != eng.name]
                    waited, quiet = wait_quiet(others)
                    handovers["count"] += 1
                    handovers["waited_s"] += waited
                    handovers["not_quiet"] += 0 if quiet else 1
                    res = workers[eng.name].request(
                        op="run", problem=prob, timing=asdict(timing),
                        split=split and eng.kind == "numba",
                        bandwidth=eng.name == bw_engine and B <= SMALL_BATCH)
                    per[eng.name].append(res["seconds"])
                    blocks[eng.name].append(res["block_s"])
                bar.update(1)
            t1 = time.monotonic()
            extras = {}
            for eng in active:                        # untimed: outputs, activation memory
                out = os.path.join(tmp.name, f"{j}.{eng.name.replace('@', '_').replace(':', '_')}.npy")
                extras[eng.name] = workers[eng.name].request(
                    op="extras", problem=prob, output_path=out, memory=True)
            raw.append((job, active, per, blocks, t0, t1, extras))
        bar.close()
        monitor.stop()
        # ---- the GEMM peaks again, each worker alone: a row's peak is the higher of the two
        for name, w in workers.items():
            wait_quiet([p.pid for n, p in workers.items() if n != name])
            end = w.request(op="calibrate", dtypes=dtypes, peak_n=peak_n, first_call_cells=[],
                            timing=asdict(peak_timing))
            info = infos[name]
            info["gemm_peak_start"] = info["gemm_peak_gflops"]
            info["gemm_peak_end"] = end["gemm_peak_gflops"]
            info["gemm_peak_detail_end"] = end["gemm_peak_detail"]
            info["gemm_peak_gflops"] = {dt: max(g, end["gemm_peak_gflops"][dt])
                                        for dt, g in info["gemm_peak_start"].items()}
        for w in workers.values():
            w.close()
        for job, active, per, blocks, t0, t1, extras in raw:
            reg, (T, B, I, H), cell, dt = job
            mean, mx = monitor.window(t0, t1) if load_check else (None, None)
            load = dict(mean=mean, max=mx)
            bandwidth = None
            g = [rd["gemv"] for rd in per.get(bw_engine, []) if "gemv" in rd]
            if g:
                bandwidth = get_cell(cell).gates * H * H * _itemsize(dt) / statistics.median(g) / 1e9
            for eng in active:
                peak = infos[eng.name]["gemm_peak_gflops"].get(dt)
                row = build_row(job, eng, [dict(x) for x in per[eng.name]], peak, ref_names,
                                {n: per[n] for n in ref_names if n in per}, extras[eng.name],
                                bandwidth, load)
                row["_output"] = extras[eng.name].get("output_path")
                row["block_s"] = blocks[eng.name]          # the worker's time per round
                rows.append(row)
        _fill_errors(rows, ref_names)      # after every worker has exited
    finally:
        monitor.stop()
        for w in procs:
            w.close()
        tmp.cleanup()

    during = monitor.summary()
    after = dict(loadavg=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    warnings += load_warnings(before, during, cores)
    n_load = sum(any(f["code"] == "load" for f in r["flags"]) for r in rows)
    if n_load:
        warnings.append(f"{n_load} of {len(rows)} rows ran under foreign load above {LOAD_LIMIT} "
                        f"cores (flag 'load')")
    n_bad = sum(not r["valid"] for r in rows)
    if n_bad:
        warnings.append(f"{n_bad} rows flagged as impossible (order, or above the GEMM peak): "
                        f"their ratios, GFLOP/s and % peak are not reported")
    n_split = sum(r["valid"] and not r["split_valid"] and "proj" in r["seconds"] for r in rows)
    if n_split:
        warnings.append(f"{n_split} rows with an impossible split (a derived phase <= 0, or a "
                        f"phase above the GEMM peak): their split is not reported")
    if handovers["not_quiet"]:
        warnings.append(f"{handovers['not_quiet']} of {handovers['count']} hand-overs: another "
                        f"worker was still running threads after 0.5 s")
    machine = describe_machine()
    if machine["kernel_overrides"]:
        pinned = ", ".join(f"{k}={os.environ[k]}" for k in machine["kernel_overrides"])
        if blas == "env":
            notes.append(f"kernel overrides set: {pinned} (they pin library kernels; "
                         f"`--native-blas` reports minirnn with "
                         f"{' and '.join(NATIVE_UNSET)} unset, `--blas both` both ways)")
        else:
            notes.append(f"kernel overrides set: {pinned}; blas={blas}: "
                         f"{' and '.join(NATIVE_UNSET)} unset in the "
                         f"{'native ' if blas == 'both' else ''}minirnn workers only")
    meta = dict(
        schema=SCHEMA, quick=bool(quick), device=device, threads=threads, blas=blas,
        cells=cells, dtypes=dtypes, regimes=regimes,
        grid={r: [list(s) for s in v] for r, v in table.items()},
        reference_sets={r: REFERENCE_SETS[r] for r in regimes if r in REFERENCE_SETS},
        reference_dtype=REFERENCE_DTYPE,
        rounds=rounds, timing=asdict(timing), peak_timing=asdict(peak_timing),
        gemm_peak_n=peak_n, numpy_max_flops=NUMPY_MAX_FLOPS[bool(quick)],
        engines=[dict(asdict(e), **_engine_meta(infos.get(e.name, {}))) for e in engines],
        ratio_references=ref_names, machine=machine,
        versions=_versions(infos), flop_convention=FLOP_CONVENTION, definitions=DEFINITIONS,
        load=dict(before=before, during=during, after=after, limit_cores=LOAD_LIMIT,
                  handovers=handovers),
        warnings=warnings, notes=notes, timed_s=sum(sum(r["block_s"]) for r in rows),
        wall_s=time.perf_counter() - t_start)
    return dict(schema=SCHEMA, meta=meta, rows=rows)


def _engine_meta(info):
    keep = ("pid", "numpy", "torch", "numba", "torch_threads", "torch_interop_threads",
            "torch_cpu_capability", "torch_blas", "numba_threads", "numba_threading_layer",
            "minirnn_threads", "cuda_device", "gemm_peak_gflops", "gemm_peak_n",
            "gemm_peak_start", "gemm_peak_end", "gemm_peak_detail", "gemm_peak_detail_end",
            "numba_first_call_s", "threadpools", "environ_overrides", "import_s")
    return {k: info[k] for k in keep if k in info}


def _versions(infos):
    import platform
    out = dict(python=platform.python_version())
    for info in infos.values():
        for k in ("numpy", "numba", "torch"):
            if info.get(k):
                out[k] = info[k]
    try:
        from threadpoolctl import __version__ as tpc
        out["threadpoolctl"] = tpc
    except ImportError:
        pass
    from .. import __version__
    out["minirnn"] = __version__
    return out


def _fill_errors(rows, ref_names):
    """rel_err of each row's forward output vs the reference engine's (torch@N, else
    torch@1), computed after every worker has exited (the parent's NumPy never runs beside a
    timing). Each row carries its output file as "_output" until here."""
    import numpy as np

    from ..testing import max_errors
    ref = ref_names[0] if ref_names else None
    groups = {}
    for r in rows:
        groups.setdefault(r["id"], []).append(r)
    for group in groups.values():
        files = {r["engine"]: r.pop("_output", None) for r in group}
        for r in group:
            r["rel_err"] = None
        ref_path = files.get(ref)
        if not ref_path or not os.path.exists(ref_path):
            continue
        out_ref = np.load(ref_path)
        for r in group:
            p = files.get(r["engine"])
            if r["engine"] != ref and p and os.path.exists(p):
                r["rel_err"] = float(max_errors(np.load(p), out_ref)[1])
