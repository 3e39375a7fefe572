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
* Numbers that cannot be right are flagged, not reported as results (rows.row_flags); the
  workers are processes.WorkerProcess, one row is rows.build_row.

Engines: "numpy" (the reference; only on problems up to NUMPY_MAX_FLOPS), "numba"
(minirnn.kernels), "torch@1" and "torch@N" (torch CPU at 1 thread and at minirnn's N), and
"torch-cuda" when a CUDA device is there (synchronised timing, TF32 off), and "jax@N" when
asked for (minirnn.bench.jax_engine: its outputs and gradients are checked against minirnn's
reference in its worker before any timing).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import asdict

from ..cells import BUILTIN, get_cell
from .engines import Timing
from .env import NATIVE_UNSET, LoadMonitor, describe_machine, usable_cores, wait_quiet
from .problems import (DEFAULT_QUICK_REGIMES, DEFAULT_REGIMES, DTYPES, FLOP_CONVENTION,
                       REFERENCE_DTYPE, REFERENCE_SETS, REGIMES, SMALL_BATCH, flops, grid)
from .processes import EngineSpec, WorkerError, WorkerProcess, check_threads, make_engines
from .rows import DEFINITIONS, LOAD_LIMIT, build_row, itemsize, load_warnings

SCHEMA = "minirnn-bench/2"
BACKENDS = ("numpy", "numba", "torch", "jax")
DEFAULT_BACKENDS = ("numpy", "numba", "torch")   # jax: an optional extra, asked for by name
BLAS_MODES = ("env", "native", "both")
# the NumPy reference engine runs only where it is not too slow (forward FLOPs)
NUMPY_MAX_FLOPS = {False: 3e9, True: 1e8}         # {quick: limit}


def _check_choice(name, values, allowed):
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name}: expected a non-empty list from {list(allowed)}, got {values}")
    return values


def run_benchmark(cells=None, backends=DEFAULT_BACKENDS, dtypes=DTYPES, regimes=None,
                  device="auto", quick=False, shapes=None, timing=None, rounds=None,
                  threads=None, blas="env", peak_n=None, peak_timing=None, show_progress=True,
                  load_check=True, split=True):
    """Run the grid -> dict(schema, meta, rows). Every engine in its own worker process.

    cells: registry names (default: all of minirnn.cells.BUILTIN); backends: numpy,
    numba, torch (torch = torch@1 and torch@N), jax (jax@N: a plain JAX layer, jit over
    lax.scan, checked against minirnn before it is timed; skipped with a note where jax is
    not installed); regimes: minirnn's (small, medium, large)
    and the reference sets (fastrnns, deepbench); shapes: {regime: [(T, B, I, H), ...]}
    replaces the built-in sizes (tests use tiny ones); threads: N for numba/numpy and
    torch@N (default minirnn._config.num_threads()); blas: "env" (the environment as it is),
    "native" (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the minirnn workers), "both"
    (each minirnn engine twice, the second named "<engine>:native").

    regimes default: all five; with quick small, medium, fastrnns, deepbench. The reference
    sets run in float32 (their published precision).
    quick: problems.QUICK's shapes; only "small" in every dtype, the rest in float32; the
    reference sets for the cell(s) with the most gates (LSTM); 3 rounds of 1-50 timed calls
    (>= 0.03 s); the numpy engine only up to 1e8 forward FLOPs; a 1024 matmul for the peak.
    """
    from .._progress import progress
    cells = _check_choice("cells", BUILTIN if cells is None else cells, BUILTIN)
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
    # enough calls per round that a round's median is not one call's noise: a batch-1 call of
    # 0.05 ms timed 3 times gave per-round ratios that disagreed by more than half their
    # median on most small rows (flag "spread"); 50 calls take 2.5 ms
    timing = timing or (Timing(1, 0.03, 50) if quick else Timing(2, 0.15, 200))
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
                    if eng.kind == "jax" and "No module named 'jax" in str(e):
                        notes.append("jax is not installed (pip install minirnn[jax]): no jax "
                                     "rows, no ratios to jax")
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
                        raise ValueError("device: 'cuda' asked for, but "
                                         "torch.cuda.is_available() is False")
        bar.close()
        names = [e.name for e in engines]
        ref_same = f"torch@{threads}" if f"torch@{threads}" in names else None
        ref_names = [n for n in (ref_same, "torch@1", f"jax@{threads}") if n in names]
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
            if end.get("fma_peak_gflops"):
                info["fma_peak_start"] = info.get("fma_peak_gflops") or {}
                info["fma_peak_gflops"] = {dt: max(g, info["fma_peak_start"].get(dt, 0.0))
                                           for dt, g in end["fma_peak_gflops"].items()}
        for w in workers.values():
            w.close()
        for job, active, per, blocks, t0, t1, extras in raw:
            reg, (T, B, I, H), cell, dt = job
            mean, mx = monitor.window(t0, t1) if load_check else (None, None)
            load = dict(mean=mean, max=mx)
            bandwidth = None
            g = [rd["gemv"] for rd in per.get(bw_engine, []) if "gemv" in rd]
            if g:
                bandwidth = get_cell(cell).gates * H * H * itemsize(dt) / statistics.median(g) / 1e9
            for eng in active:
                peak = infos[eng.name]["gemm_peak_gflops"].get(dt)
                row = build_row(job, eng, [dict(x) for x in per[eng.name]], peak, ref_names,
                                {n: per[n] for n in ref_names if n in per}, extras[eng.name],
                                bandwidth, load)
                row["_output"] = extras[eng.name].get("output_path")
                fma = (infos[eng.name].get("fma_peak_gflops") or {}).get(dt)
                if fma and row["gflops"].get("rec") and row["split_valid"]:
                    row["fma_peak_gflops"] = fma
                    row["rec_fma_fraction"] = row["gflops"]["rec"] / (fma * eng.threads)
                if extras[eng.name].get("check_rel_err"):  # jax: checked before it was timed
                    row["check_rel_err"] = extras[eng.name]["check_rel_err"]
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
    keep = ("pid", "numpy", "torch", "numba", "jax", "jaxlib", "jax_x64", "jax_backend",
            "jax_device", "jax_affinity", "xla_flags", "torch_threads", "torch_interop_threads",
            "torch_cpu_capability", "torch_blas", "numba_threads", "numba_threading_layer",
            "minirnn_threads", "cuda_device", "gemm_peak_gflops", "gemm_peak_n",
            "gemm_peak_start", "gemm_peak_end", "gemm_peak_detail", "gemm_peak_detail_end",
            "numba_first_call_s", "threadpools", "environ_overrides", "import_s",
            "fma_peak_gflops", "fma_peak_start")
    return {k: info[k] for k in keep if k in info}


def _versions(infos):
    import platform
    out = dict(python=platform.python_version())
    for info in infos.values():
        for k in ("numpy", "numba", "torch", "jax", "jaxlib"):
            if info.get(k):
                out[k] = info[k]
    try:
        from threadpoolctl import __version__ as tpc
        out["threadpoolctl"] = tpc
    except ImportError:
        pass
    from .._version import __version__
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
