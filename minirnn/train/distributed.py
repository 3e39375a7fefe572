"""Data-parallel training on torch.distributed: one process per rank, launched by `torchrun`.

Every rank holds the same model and optimiser, takes a disjoint shard of every global batch,
computes its gradient with its own engine (minirnn's kernels, or the torch twin wrapped in
DistributedDataParallel), and the gradients are averaged before the one optimiser step all
ranks take together. With rank r holding rows n in shard r of a batch of N ranks:

    loss   = sum_n w_n l_n / W          W_r = sum_{n in shard r} w_n,   W = sum_r W_r
    grad   = sum_r (W_r / W) grad_r     grad_r: the gradient of rank r's own mean loss
           = (1/N) sum_r s_r grad_r     s_r = N W_r / W: each rank scales its loss by s_r, then
                                        the gradients are all-reduced and averaged (as DDP does)

w_n is the class weight of target n (1 without weights, 0 where ignore_index): equal shards of
an unweighted loss give s_r = 1 exactly, the plain average; uneven shards (the last batch of an
epoch) or class weights stay exact. One all-reduce of (W_r, W_r l_r) per step gives W, s_r and
the global loss. Clipping then sees the averaged gradient, so every rank clips by the global
norm and takes the same step: the parameters stay bitwise equal on every rank (checked at
every save), and a run on N ranks ends where a single-process run on the same global batches
ends, to rounding (tests/test_distributed.py: float64 <= 1e-12 after 20 steps).

minirnn's own gradients are all-reduced in place: each model.grads array is handed to
torch.distributed.all_reduce as torch.from_numpy(array), a tensor on the same memory (its data
pointer is checked), so no gradient is copied. Process groups come from the launcher's
environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT): gloo on
CPU, NCCL for CUDA tensors (the torch backend on --device cuda, one GPU per local rank).

Failure never hangs: every collective has the group's timeout, and an error on one rank is
written to the rendezvous store; a watcher thread on every other rank polls the store, prints
that rank's message and ends its process with the same exit code.

torch is imported here only inside the functions that need it, so the launch checks run (and
say which extra to install) without it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

from .._io import exit_code

DEFAULT_TIMEOUT = 300                  # seconds, every collective and the rendezvous
_POLL = 0.1                            # seconds between the watcher's looks at the store
_ACK_WAIT = 5.0                        # how long a failing rank waits for the others to read


def launched(env=None):
    """True when a launcher (torchrun) started this process as one of several ranks."""
    env = os.environ if env is None else env
    try:
        return int(env.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise ValueError(f"WORLD_SIZE: expected an integer (set by torchrun), got "
                         f"{env.get('WORLD_SIZE')!r}") from None


def per_rank_batch(batch, world_size, flag="--batch-size"):
    """The rows each rank computes of a global batch -> batch // world_size, or a ValueError
    naming `flag` and the fix when the batch does not split evenly."""
    if world_size > batch:
        raise ValueError(f"{flag}: {world_size} ranks (WORLD_SIZE) need a global batch of at "
                         f"least {world_size}, one row each; got {batch}. Use {flag} "
                         f"{world_size} or more, or fewer processes (--nproc_per_node)")
    if batch % world_size:
        lo, hi = batch // world_size * world_size, -(-batch // world_size) * world_size
        raise ValueError(f"{flag}: the global batch {batch} does not split evenly over "
                         f"{world_size} ranks (WORLD_SIZE); use a multiple of {world_size} "
                         f"({lo} or {hi}), or a process count that divides {batch}")
    return batch // world_size


def shard(n, rank, world_size):
    """Rank `rank`'s rows of a batch of n -> a slice; contiguous, sizes differing by at most
    one (n need not divide: the last batch of an epoch), each shard non-empty."""
    if n < world_size:
        raise ValueError(f"batch: {n} rows cannot give each of {world_size} ranks one; use a "
                         f"larger batch or fewer processes")
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


def loss_weight(targets, weight=None, ignore_index=-100):
    """W_r: the denominator of a shard's mean cross-entropy (sum of its targets' class weights,
    ignored targets counting 0), as minirnn.nn.losses and torch define the mean."""
    t = np.asarray(targets).reshape(-1)
    used = t != ignore_index
    if weight is None:
        return float(np.count_nonzero(used))
    w = np.asarray(weight, dtype=np.float64)
    return float(w[np.where(used, t, 0)][used].sum())


def check_launch(train_backend, device="cpu", dist_backend=None, env=None):
    """Refuse a launch that cannot work, before any process waits on another -> the process
    group backend ("gloo" | "nccl"). Every error names the flag and the fix."""
    env = os.environ if env is None else env
    dist_backend = dist_backend or ("nccl" if device == "cuda" else "gloo")
    if dist_backend not in ("gloo", "nccl"):
        raise ValueError(f"--dist-backend: expected 'gloo' or 'nccl', got {dist_backend!r}")
    if dist_backend == "nccl" and train_backend != "torch":
        raise ValueError(f"--dist-backend nccl: NCCL all-reduces CUDA tensors, and --backend "
                         f"{train_backend} keeps its gradients in NumPy arrays on the CPU; use "
                         f"--dist-backend gloo (the default), or --backend torch --device cuda")
    if dist_backend == "nccl" and device != "cuda":
        raise ValueError(f"--dist-backend nccl: needs --device cuda (got --device {device}); "
                         f"on the CPU use --dist-backend gloo (the default)")
    from .._io import require
    torch = require("torch", "a torchrun launch (torch.distributed)")
    if device == "cuda":
        local = int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", "1")))
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < local:
            raise ValueError(f"--device cuda: this node runs {local} ranks (LOCAL_WORLD_SIZE), "
                             f"one GPU each, but torch sees {have} CUDA device(s); launch "
                             f"--nproc_per_node={have}" if have else
                             f"--device cuda: this node runs {local} ranks, one GPU each, but "
                             f"torch sees no CUDA device; use --device cpu (gloo)")
    if dist_backend == "nccl" and not torch.distributed.is_nccl_available():
        raise ValueError("--dist-backend nccl: this torch build has no NCCL; use "
                         "--dist-backend gloo")
    return dist_backend


class _Failure(NamedTuple):
    rank: int
    code: int
    message: str


class Group:
    """The process group of this run, seen from one rank (build it with init())."""

    def __init__(self, store, rank, world_size, backend, timeout, local_rank=0,
                 local_world_size=1):
        import torch
        self.store, self.rank, self.world_size = store, rank, world_size
        self.backend, self.timeout = backend, timeout
        self.local_rank, self.local_world_size = local_rank, local_world_size
        self.device = torch.device("cuda", local_rank) if backend == "nccl" else \
            torch.device("cpu")                      # where this group's small tensors live
        self._stop = threading.Event()
        self._watcher = None

    @property
    def is_main(self):
        """Rank 0: the one that writes checkpoints, metrics, plots and the log."""
        return self.rank == 0

    def shard(self, n):
        return shard(n, self.rank, self.world_size)

    # ---- collectives ------------------------------------------------------------------------
    def view(self, name, array):
        """torch.from_numpy(array), checked to share its memory (no copy)."""
        import torch
        t = torch.from_numpy(array)
        if not array.flags.c_contiguous or t.data_ptr() != array.ctypes.data:
            raise RuntimeError(f"{name}: expected a contiguous array shared with torch without "
                               f"a copy (c_contiguous={array.flags.c_contiguous})")
        return t

    def all_reduce_grads(self, named):
        """Average (name, array) gradients over the ranks, in place, on their own memory."""
        import torch.distributed as dist
        named = list(named)
        works = [dist.all_reduce(self.view(f"grads[{n!r}]", g), op=dist.ReduceOp.SUM,
                                 async_op=True) for n, g in named]
        for w in works:                              # all in flight at once, then wait
            w.wait()
        for _, g in named:
            g /= self.world_size

    def loss_share(self, loss, w_r):
        """One all-reduce of (W_r, W_r loss_r) -> (the global loss, s_r = N W_r / W)."""
        import torch
        import torch.distributed as dist
        part = w_r * float(loss) if w_r else 0.0       # a shard with no weight adds nothing
        t = torch.tensor([w_r, part], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        W, total = (float(v) for v in t.cpu())
        return (total / W if W else float("nan")), (self.world_size * w_r / W if W else 0.0)

    def agree(self, flag):
        """True on every rank when it is True on any (a stop request)."""
        import torch
        import torch.distributed as dist
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def from_main(self, compute):
        """compute() on rank 0 (a float: a validation score), the same number on every rank."""
        import torch
        import torch.distributed as dist
        value = float(compute()) if self.is_main else 0.0
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def broadcast_(self, named):
        """Rank 0's (name, array) values into every rank's arrays, in place."""
        import torch.distributed as dist
        works = [dist.broadcast(self.view(n, a), src=0, async_op=True) for n, a in named]
        for w in works:
            w.wait()

    def gather_rows(self, array, axis=1):
        """Every rank's equal shard of `array` along `axis`, concatenated in rank order."""
        import torch
        import torch.distributed as dist
        a = np.ascontiguousarray(array)
        if self.device.type != "cpu":               # NCCL gathers device tensors: copy there
            t = torch.from_numpy(a).to(self.device)
            outs = [torch.empty_like(t) for _ in range(self.world_size)]
            dist.all_gather(outs, t)
            return np.concatenate([o.cpu().numpy() for o in outs], axis=axis)
        parts = [np.empty_like(a) for _ in range(self.world_size)]
        dist.all_gather([self.view("gather", p) for p in parts], self.view("shard", a))
        return np.concatenate(parts, axis=axis)

    def check_same(self, named, what):
        """Raise when the (name, array) values differ between ranks (a digest per rank)."""
        import torch
        import torch.distributed as dist
        h = hashlib.blake2b(digest_size=8)
        for name, a in named:
            h.update(name.encode())
            h.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
        mine = torch.tensor([int.from_bytes(h.digest(), "little", signed=True)],
                            dtype=torch.int64, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(every, mine)
        odd = [r for r, d in enumerate(every) if int(d.item()) != int(every[0].item())]
        if odd:
            raise RuntimeError(f"{what}: ranks {odd} differ from rank 0; every rank must hold "
                               f"the same (same --resume checkpoint, same seeds)")

    def barrier(self):
        import torch.distributed as dist
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    # ---- failure on one rank ends all --------------------------------------------------------
    @contextlib.contextmanager
    def guard(self, quiet=()):
        """Publish an exception raised inside (but not one of `quiet`: an agreed stop) so that
        every other rank ends with its message; then re-raise it here."""
        try:
            yield self
        except quiet:
            raise
        except BaseException as e:
            self._publish(_Failure(self.rank, exit_code(e), _message(e)))
            raise

    def _publish(self, failure):
        with contextlib.suppress(Exception):         # the store may be gone with rank 0
            first = self.store.add("failures", 1) == 1
            if not first:                            # another rank's message is the one
                self.store.add("acks", 1)
                return
            self.store.set("error", f"{failure.rank}\n{failure.code}\n{failure.message}")
            deadline = time.monotonic() + _ACK_WAIT
            while time.monotonic() < deadline:       # let the others read it before we go
                if self.store.add("acks", 0) >= self.world_size - 1:
                    break
                time.sleep(_POLL)

    def start_watcher(self, client):
        """A daemon thread polling `client` (its own store connection) for another rank's
        failure: it prints that message and ends this process with that rank's exit code."""
        def watch():
            misses = 0
            while not self._stop.wait(_POLL):
                try:
                    if not client.check(["error"]):
                        misses = 0
                        continue
                    rank, code, message = client.get("error").decode().split("\n", 2)
                    if int(rank) == self.rank:
                        return
                    client.add("acks", 1)
                except Exception:                    # the store's host (rank 0) has ended
                    misses += 1
                    if self._stop.wait(1.0) or misses < 3:
                        continue
                    rank, code, message = "0", "1", ("lost the rendezvous store (rank 0 or "
                                                      "torchrun's agent has ended)")
                print(f"minirnn: rank {self.rank} stops: rank {rank} failed: {message}",
                      file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(int(code))
        self._watcher = threading.Thread(target=watch, name="minirnn-dist-watcher", daemon=True)
        self._watcher.start()

    def close(self, ok=True):
        """ok: wait for every rank (the run ended well), then leave the group."""
        import torch.distributed as dist
        if ok:
            self.barrier()
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if dist.is_initialized():
            dist.destroy_process_group()


def _message(e):
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]
    return str(e) or type(e).__name__


def init(dist_backend="gloo", timeout=DEFAULT_TIMEOUT, env=None):
    """Join the process group the launcher's environment describes -> Group. Call
    check_launch first; `timeout` (seconds) bounds the rendezvous and every collective."""
    import datetime

    import torch
    import torch.distributed as dist
    env = os.environ if env is None else env
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"--dist-timeout: expected a positive number of seconds, got {timeout!r}")
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if var not in env:
            raise ValueError(f"{var}: not set; launch with torchrun (it sets RANK, WORLD_SIZE, "
                             f"LOCAL_RANK, MASTER_ADDR and MASTER_PORT)")
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", rank))
    local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    td = datetime.timedelta(seconds=float(timeout))
    addr, port = env["MASTER_ADDR"], int(env["MASTER_PORT"])
    host = f"[{addr}]" if ":" in addr else addr          # an IPv6 address
    store, rank, world = next(dist.rendezvous(f"tcp://{host}:{port}", rank, world, timeout=td))
    store.set_timeout(td)
    if dist_backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(dist_backend, store=dist.PrefixStore("pg", store), rank=rank,
                            world_size=world, timeout=td)
    run = (f"minirnn/{env.get('TORCHELASTIC_RUN_ID', '')}/"     # fresh keys for each restart
           f"{env.get('TORCHELASTIC_RESTART_COUNT', 0)}/")
    group = Group(dist.PrefixStore(run, store), rank, world, dist_backend, float(timeout),
                  local_rank, local_world)
    client = dist.TCPStore(addr, port, is_master=False, timeout=td)   # the watcher's own line
    group.start_watcher(dist.PrefixStore(run, client))
    return group


def cap_threads(choice, group):
    """The default thread count shared out: at most usable cores // ranks on this node, so
    that ranks do not fight for cores (an explicit --threads / MINIRNN_NUM_THREADS stays)."""
    from .._threads import Choice, usable_cores
    if group is None or choice.why in ("--threads", "MINIRNN_NUM_THREADS"):
        return choice
    share = max(1, usable_cores() // max(group.local_world_size, 1))
    if choice.threads <= share:
        return choice
    return Choice(share, f"{usable_cores()} cores / {group.local_world_size} ranks on this node")


def on_main(group, compute):
    """compute() here, or on rank 0 of `group` and the same value on every rank."""
    return compute() if group is None else group.from_main(compute)


def record(group, batch):
    """How a run ran, for metrics.json and the checkpoint's config."""
    world = 1 if group is None else group.world_size
    return {"world_size": world, "dist_backend": None if group is None else group.backend,
            "batch_size": int(batch), "per_rank_batch": int(batch) // world}


__all__ = ["Group", "init", "launched", "check_launch", "per_rank_batch", "shard", "loss_weight",
           "cap_threads", "on_main", "record", "DEFAULT_TIMEOUT"]
