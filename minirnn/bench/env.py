"""What a benchmark result is worth: the environment it ran in, and the load beside it.

    describe_machine()         CPU model, cores, cache sizes, OS, Python, overrides set
    environment_text()         the same in three lines, with numpy's, numba's and BLAS's versions
    fma_peak(dtype)            single-thread FMA GFLOP/s of Numba's code (a small FMA loop)
    blas_overrides(environ)    OPENBLAS_CORETYPE and friends: variables that pin a library's
                               kernels or threads (recorded with every result)
    LoadMonitor                foreign CPU load (all CPU time minus this benchmark's
                               processes, steal included) sampled while the run goes on
    wait_quiet(pids)           block until other worker processes' threads stop running
                               (OpenBLAS / OpenMP pools spin for a while after their work)

Every function here reads /proc where it exists and degrades to os.getloadavg elsewhere.
"""
from __future__ import annotations

import os
import platform
import re
import threading
import time

from .._config import usable_cores

# Variables that change which kernels or how many threads a library uses. The benchmark
# records every one that is set; --native-blas unsets NATIVE_UNSET in the workers only.
OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE",
                 "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                 "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND", "GOMP_SPINCOUNT",
                 "KMP_BLOCKTIME", "KMP_AFFINITY", "MKL_NUM_THREADS", "MKL_DEBUG_CPU_TYPE",
                 "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_THREADING_LAYER",
                 "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY",
                 "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "NUMBA_CPU_NAME",
                 "NUMBA_CPU_FEATURES", "NUMBA_OPT", "NUMBA_THREADING_LAYER",
                 "NUMBA_NUM_THREADS", "MINIRNN_NUM_THREADS", "MINIRNN_FASTMATH")
# the pair this machine sets for old-build safety: they pin NumPy's OpenBLAS to AVX2 kernels
NATIVE_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# variables that override a kernel choice (not a thread count): a result is "pinned" if set
KERNEL_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_DEBUG_CPU_TYPE",
                    "MKL_ENABLE_INSTRUCTIONS", "NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY",
                    "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def fma_peak(dtype, seconds=0.2):
    """GFLOP/s of one thread of Numba-compiled code at its best: a loop of independent fused
    multiply-adds (minirnn.kernels._peak.fma_peak_gflops), the single-thread FMA peak
    the recurrent product is measured against, beside the GEMM peak. Loads Numba."""
    from ..kernels._peak import fma_peak_gflops
    return fma_peak_gflops(dtype, seconds)


def blas_overrides(environ=None):
    """{name: value} of the OVERRIDE_VARS set in environ (default os.environ)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in OVERRIDE_VARS if k in environ}


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    for key, field in (("model name", "cpu_model"), ("flags", "flags")):
        m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
        if m:
            info[field] = m.group(1).strip()
    return info


def _cache_sizes():
    """{'L1d': '48K', 'L2': '1024K', 'L3': '32768K'} from sysfs (cpu0), where it exists."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for e in entries:
        if not e.startswith("index"):
            continue
        try:
            read = lambda n: open(os.path.join(base, e, n)).read().strip()   # noqa: E731
            level, kind, size = read("level"), read("type"), read("size")
        except OSError:
            continue
        name = f"L{level}" + ({"Data": "d", "Instruction": "i"}.get(kind, ""))
        out[name] = size
    return out


def describe_machine():
    """CPU model, cores (usable, logical), SIMD level, caches, OS, Python, loadavg, overrides."""
    info = _cpuinfo()
    flags = set(info.pop("flags", "").split())
    simd = next((s for s in ("avx512f", "avx2", "avx", "sse4_2", "neon", "asimd") if s in flags),
                None)
    return dict(cpu_model=info.get("cpu_model") or platform.processor() or platform.machine(),
                machine=platform.machine(), usable_cores=usable_cores(),
                logical_cpus=os.cpu_count(), best_simd=simd, caches=_cache_sizes(),
                platform=platform.platform(), python=platform.python_version(),
                overrides=blas_overrides(),
                kernel_overrides=[k for k in KERNEL_OVERRIDES if k in os.environ])


def environment_text():
    """Machine, versions (python, numpy, numba, the BLAS libraries and their thread counts as
    they are now) and the overrides set, in three lines for a benchmark's printout."""
    import numba
    import numpy as np
    from threadpoolctl import threadpool_info
    m = describe_machine()
    blas = ", ".join(f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                     f"x{d.get('num_threads')}" for d in threadpool_info())
    return (f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores, {m['best_simd']}; "
            f"{platform.platform()}\nversions: python {platform.python_version()}, numpy "
            f"{np.__version__}, numba {numba.__version__}; BLAS: {blas}\n"
            f"overrides: {m['overrides'] or 'none'}")


# ----------------------------------------------------------------------------
# load

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks():
    """Busy CPU time of the whole machine in clock ticks (user+nice+system+irq+softirq+steal:
    steal is time the hypervisor gave to other guests), or None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    v = [int(x) for x in parts[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v + [0] * (8 - len(v))
    return user + nice + system + irq + softirq + steal


def _proc_ticks(pid):
    """utime + stime of a process (all its threads) in clock ticks; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime, stime (fields 14, 15 of stat)


class LoadMonitor:
    """Foreign CPU load, in cores, sampled every `interval` s in a background thread:
    (machine busy time - the CPU time of this process and of `pids`) / wall time.

    With /proc missing it falls back to the 1-minute load average (which includes our own
    work: `method` says which one was used)."""

    def __init__(self, interval=0.5):
        self.interval = interval
        self.pids = set()
        self.samples = []                           # (t_end, foreign cores)
        self.method = "proc-stat" if _busy_ticks() is not None else "loadavg"
        self._stop = threading.Event()
        self._thread = None

    def _ours(self):
        return _proc_ticks(os.getpid()) + sum(_proc_ticks(p) for p in list(self.pids))

    def measure(self, seconds):
        """Foreign load over the next `seconds` (blocking), in cores."""
        if self.method == "loadavg":
            time.sleep(seconds)
            return os.getloadavg()[0]
        b0, o0, t0 = _busy_ticks(), self._ours(), time.monotonic()
        time.sleep(seconds)
        b1, o1, t1 = _busy_ticks(), self._ours(), time.monotonic()
        return max(0.0, (b1 - b0 - (o1 - o0)) / _HZ / (t1 - t0))

    def _loop(self):
        b0, o0, t0 = _busy_ticks(), self._ours(), time.monotonic()
        while not self._stop.wait(self.interval):
            if self.method == "loadavg":
                self.samples.append((time.monotonic(), os.getloadavg()[0]))
                continue
            b1, o1, t1 = _busy_ticks(), self._ours(), time.monotonic()
            self.samples.append((t1, max(0.0, (b1 - b0 - (o1 - o0)) / _HZ / (t1 - t0))))
            b0, o0, t0 = b1, o1, t1

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="bench-load", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def window(self, t0, t1):
        """Mean and max foreign load of the samples overlapping [t0, t1] (monotonic seconds);
        (None, None) when no sample does (the window is shorter than the interval and the
        next sample has not come yet)."""
        vals = [v for (t, v) in self.samples if t >= t0 and t - self.interval <= t1]
        if not vals:
            return None, None
        return sum(vals) / len(vals), max(vals)

    def summary(self):
        vals = [v for _, v in self.samples]
        if not vals:
            return dict(method=self.method, samples=0, mean=None, max=None)
        return dict(method=self.method, samples=len(vals), mean=sum(vals) / len(vals),
                    max=max(vals), interval_s=self.interval)


# ----------------------------------------------------------------------------
# hand-over between workers

def _run_ns(pid):
    """CPU nanoseconds of every thread of pid so far (schedstat), None if unavailable."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def wait_quiet(pids, window=0.003, busy_fraction=0.1, timeout=0.5):
    """Wait until the threads of `pids` use less than `busy_fraction` of one core over two
    consecutive windows (a BLAS or OpenMP pool that spins after its work keeps running for
    a while); at most `timeout` s. -> (seconds waited, True if quiet)."""
    t_start = time.perf_counter()
    pids = list(pids)
    if not pids:
        return 0.0, True
    prev = [_run_ns(p) for p in pids]
    if any(v is None for v in prev) or sum(prev) == 0:     # no schedstat: a short fixed pause
        time.sleep(0.02)
        return time.perf_counter() - t_start, False
    calm = 0
    while time.perf_counter() - t_start < timeout:
        time.sleep(window)
        now = [_run_ns(p) or 0 for p in pids]
        busy = sum(max(0, a - b) for a, b in zip(now, prev)) / 1e9
        prev = now
        calm = calm + 1 if busy < busy_fraction * window else 0
        if calm >= 2:
            return time.perf_counter() - t_start, True
    return time.perf_counter() - t_start, False
