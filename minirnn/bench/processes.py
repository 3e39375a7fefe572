"""The benchmark's worker processes: one per engine, its thread variables set before Python
starts, JSON lines over stdin/stdout (the worker side is minirnn.bench.worker)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from .env import NATIVE_UNSET


@dataclass
class EngineSpec:
    name: str              # "numba", "numpy", "torch@1", "torch@2", "torch-cuda", "numba:native",
                           # "jax@2"
    kind: str              # "numpy" | "numba" | "torch" | "jax"
    threads: int
    device: str = "cpu"
    native_blas: bool = False

    def environ(self, base=None):
        """The worker's environment: thread variables for every library, set before Python
        starts; with native_blas, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (this worker
        only). torch's and jax's workers get OPENBLAS_NUM_THREADS=1: their NumPy only makes
        the data, and a pool of one thread can never spin beside theirs."""
        env = dict(os.environ if base is None else base)
        n = str(self.threads)
        peer = self.kind in ("torch", "jax")
        env.update(OPENBLAS_NUM_THREADS="1" if peer else n,
                   OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, MINIRNN_NUM_THREADS=n)
        if self.kind == "jax" and self.threads == 1:
            # XLA's CPU client: one thread for its Eigen pool (more: the worker's affinity mask)
            flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
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
    if "jax" in backends:                      # JAX's CPU backend at minirnn's thread count
        out.append(EngineSpec(f"jax@{threads}", "jax", threads))
    return out


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
