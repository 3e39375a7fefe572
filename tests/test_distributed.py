"""Data-parallel training (minirnn.train.distributed): two gloo processes on 127.0.0.1, a free
port, bounded timeouts. The test that matters: with the same global batches, seeds and steps, a
world_size=2 run ends with the parameters of a single-process run (float64 <= 1e-12 after 20
steps, numba and torch; float32 within float32 tolerance), in the library and through
`python -m minirnn train char` under the launcher's environment (with --resume)."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn._threads import usable_cores
from minirnn.testing import assert_close
from minirnn.train import distributed as D

torch = pytest.importorskip("torch")
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "dist_worker.py")
_spec = importlib.util.spec_from_file_location("dist_worker", WORKER)
W = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(W)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(argv, world=2, env=None):
    """Start `argv` as `world` ranks with torchrun's environment -> the processes."""
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.path.dirname(HERE), **(env or {}))
    return [subprocess.Popen(argv, env=dict(base, RANK=str(r), LOCAL_RANK=str(r)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(world)]


def _wait(procs, timeout=90):
    """-> [(rc, stdout, stderr)] of each rank; whatever still runs at the deadline is killed."""
    results, deadline = [], time.monotonic() + timeout
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((p.returncode, out, err))
    finally:
        for p in procs:                                  # never leave a rank behind
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _launch(argv, world=2, timeout=90, env=None):
    return _wait(_start(argv, world, env), timeout)


def _ok(results):
    for r, (rc, out, err) in enumerate(results):
        assert rc == 0, f"rank {r} exited {rc}:\n{out}\n{err}"


# ---- the equivalence -------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-rank run of every case, then the Group's collectives (tests/dist_worker.py)."""
    out = tmp_path_factory.mktemp("equiv")
    _ok(_launch([sys.executable, WORKER, "equiv", str(out)]))
    ranks = [np.load(out / f"rank{r}.npz") for r in range(2)]
    losses = [json.loads((out / f"losses{r}.json").read_text()) for r in range(2)]
    api = [json.loads((out / f"api{r}.json").read_text()) for r in range(2)]
    return ranks, losses, api


@pytest.mark.parametrize("case", W.CASES, ids=["-".join(c) for c in W.CASES])
def test_two_ranks_end_where_one_process_ends(two_ranks, case):
    ranks, losses, _ = two_ranks
    name = "-".join(case)
    params, ref_losses = W.run_case(*case)                       # one process, whole batches
    rtol = 1e-12 if case[2] == "float64" else 1e-5
    for key, want in params.items():
        for r in range(2):
            assert_close(ranks[r][f"{name}/{key}"], want, rtol=rtol, name=f"{name} rank {r} {key}")
        np.testing.assert_array_equal(ranks[0][f"{name}/{key}"], ranks[1][f"{name}/{key}"])
    assert_close(np.array(losses[0][name]), np.array(ref_losses), rtol=rtol, name=f"{name} loss")
    assert losses[0][name] == losses[1][name]                   # the global loss on every rank


def test_group_collectives_share_memory_and_agree(two_ranks):
    for r, got in enumerate(two_ranks[2]):
        assert got["view_shared"] and got["strided_refused"]
        assert got["mean"] == [[1.5] * 3] * 2                  # (1 + 2) / 2, in place
        total, scale = got["share"]                              # W = 3 + 1, losses 1 and 2
        assert total == pytest.approx((3 * 1 + 1 * 2) / 4, rel=1e-15)
        assert scale == pytest.approx(2 * (3.0 if r == 0 else 1.0) / 4, rel=1e-15)
        assert got["agree_any"] is True and got["agree_none"] is False
        assert got["from_main"] == 42.0 and got["on_main"] == 7.0
        assert np.array(got["gathered"]).tolist() == np.concatenate(
            [np.full((2, 1, 3), 0.0), np.full((2, 1, 3), 1.0)], axis=1).tolist()
        assert got["broadcast"] == [0.0] * 4
        assert "rank-valued: ranks [1] differ from rank 0" in got["differ"]
        assert "optimizer state: ranks [1] differ" in got["opt_differ"]
        assert got["record"] == {"world_size": 2, "dist_backend": "gloo", "batch_size": 8,
                                 "per_rank_batch": 4}
        share = max(1, usable_cores() // 2)
        assert got["cap"][0] == min(8, share) and got["cap_explicit"] == [8, "--threads"]


def test_an_error_on_one_rank_ends_every_rank_with_its_message():
    """Rank 1 fails in one group, rank 0 (the store's host) in another, side by side; the
    collective timeout is 60 s, so stopping well before it is no timeout but the message."""
    t0 = time.monotonic()
    runs = {failing: _start([sys.executable, WORKER, "fail", str(failing)],
                            env={"TEST_DIST_TIMEOUT": "60"}) for failing in (0, 1)}
    for failing, procs in runs.items():
        message = f"boom on rank {failing} at step 3"
        for r, (rc, out, err) in enumerate(_wait(procs, timeout=90)):
            assert rc == 2, f"rank {r} of the run where rank {failing} fails: {rc}\n{err}"
            assert message in err, f"rank {r}:\n{err}"
            if r != failing:
                assert f"rank {r} stops: rank {failing} failed" in err
    took = time.monotonic() - t0
    assert took < 45, f"the ranks took {took:.1f} s to stop (a hang bounded by the timeout?)"


# ---- through the command ---------------------------------------------------------------
def _char(out, *extra):
    return [sys.executable, "-m", "minirnn", "train", "char", "--quick", "--backend", "numba",
            "--no-progress", "--out", str(out), "--threads", "1", *extra]


def test_train_char_under_the_launcher_resumes_and_matches_one_process(tmp_path):
    from minirnn.train.checkpoint import load_checkpoint
    from minirnn.tutorials import script
    out = tmp_path / "dist"
    results = _launch(_char(out, "--epochs", "1"))
    _ok(results)
    assert "data-parallel: 2 ranks (gloo), 4 of the 8 streams per rank" in results[0][1]
    assert results[1][1] == "" and "epoch" not in results[1][2]      # rank 1: no log, no bar
    written = sorted(os.listdir(out))
    assert written == ["last.npz", "loss.png", "metrics.json", "model.npz", "perplexity.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["world_size"], metrics["dist_backend"], metrics["per_rank_batch"],
            metrics["batch_size"]) == (2, "gloo", 4, 8)
    cfg = load_checkpoint(out / "model.npz").config
    assert (cfg["world_size"], cfg["dist_backend"], cfg["per_rank_batch"]) == (2, "gloo", 4)
    assert cfg["engine"]["world_size"] == 2 and cfg["engine"]["dist_backend"] == "gloo"
    # continue the run under the launcher; it must end where one process running 2 epochs ends
    _ok(_launch([sys.executable, "-m", "minirnn", "train", "char", "--resume", str(out),
                 "--epochs", "2", "--no-progress", "--threads", "1"]))
    single = tmp_path / "single"
    m1 = script.main(kind="char", backend="numba", quick=True, epochs=2, out=str(single),
                     log=None, show_progress=False, threads=1)
    assert (m1["world_size"], m1["dist_backend"], m1["per_rank_batch"]) == (1, None, 8)
    got, want = load_checkpoint(out / "last.npz"), load_checkpoint(single / "last.npz")
    assert got.step == want.step == 2 * m1["steps_per_epoch"]
    for k, v in want.state_dict.items():
        assert_close(got.state_dict[k], v, rtol=1e-12, name=k)
    # the distributed checkpoint loads into a single process and into generate
    text = script.generate(str(out / "model.npz"), prime="First", length=5, seed=0)
    assert text.startswith("First") and len(text) == 10


def test_train_names_under_the_launcher_matches_one_process(tmp_path):
    """The classifier: class weights, a last batch of 24 names, rank 0 scoring validation."""
    from minirnn.tutorials import names
    out = tmp_path / "dist"
    _ok(_launch([sys.executable, "-m", "minirnn", "train", "names", "--quick", "--epochs", "1",
                 "--batch-size", "64", "--backend", "numba", "--no-progress", "--threads", "1",
                 "--out", str(out)]))
    got = json.loads((out / "metrics.json").read_text())
    want = names.main(backend="numba", quick=True, epochs=1, out=str(tmp_path / "one"),
                      log=None, show_progress=False, threads=1)
    assert (got["world_size"], got["per_rank_batch"], want["per_rank_batch"]) == (2, 32, 64)
    assert got["test_accuracy"] == want["test_accuracy"]
    assert_close(np.array(got["loss_per_step"]), np.array(want["loss_per_step"]), rtol=1e-12)
    probs, _ = names.load_predictor(out / "model.npz")(["Dostoevsky", "Nguyen"])
    want_probs, _ = names.load_predictor(tmp_path / "one" / "model.npz")(["Dostoevsky", "Nguyen"])
    assert_close(probs, want_probs, rtol=1e-12, name="predicted probabilities")


# ---- the launch is checked before any rank waits on another ----------------------------
def _cli(argv, capsys):
    from minirnn.cli import main
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def two_rank_env(monkeypatch):
    for k, v in dict(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2",
                     MASTER_ADDR="127.0.0.1", MASTER_PORT="1").items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize("argv, message", [
    (["char", "--backend", "numpy", "--dist-backend", "nccl"],
     "--dist-backend nccl: NCCL all-reduces CUDA tensors, and --backend numpy"),
    (["char", "--backend", "torch", "--device", "cuda"], "--device cuda: this node runs 2 ranks"),
    (["char", "--batch-size", "7"], "--batch-size: the global batch 7 does not split evenly"),
    (["names", "--batch-size", "1"], "--batch-size: 2 ranks (WORLD_SIZE) need a global batch"),
    (["hihell"], "torchrun: hihell trains in under a second"),
    (["names", "--model", "tutorial-rnn"], "torchrun: --model tutorial-rnn"),
])
def test_bad_launches_are_refused_naming_the_flag(two_rank_env, capsys, tmp_path, argv, message):
    if "cuda" in argv and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs")
    code, err = _cli(["train", *argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "o").exists()


def test_batch_size_of_a_tutorial_is_checked(tmp_path):
    from minirnn.tutorials import names, script
    with pytest.raises(ValueError, match="tutorial-rnn: trains one name at a time"):
        names.main(model="tutorial-rnn", batch_size=32, out=str(tmp_path / "n"), log=None)
    with pytest.raises(ValueError, match="--batch-size: 1 ranks .* got 0"):
        script.main(kind="char", quick=True, batch_size=0, out=str(tmp_path / "c"), log=None)


def test_interrupt_under_the_launcher_counts_the_relayed_signals_as_one():
    import signal

    from minirnn.tutorials._run import Interrupt
    stop = Interrupt(distributed=True)
    stop._handler(signal.SIGINT, None)                   # the terminal's Ctrl-C
    stop._handler(signal.SIGTERM, None)                  # torchrun passing it on
    stop._handler(signal.SIGINT, None)
    assert stop.requested
    stop._first -= 3                                     # a second Ctrl-C, later: stop now
    with pytest.raises(KeyboardInterrupt):
        stop._handler(signal.SIGINT, None)
    plain = Interrupt()
    plain._handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        plain._handler(signal.SIGINT, None)
    with Interrupt(distributed=True):
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_launch_without_torch_names_the_extra(monkeypatch):
    from minirnn._io import MissingExtra
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtra, match=r"pip install 'minirnn\[torch\]'"):
        D.check_launch("numba")


# ---- the pure parts ----------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(world=st.integers(1, 9), n=st.integers(1, 80))
def test_shards_cover_the_batch_disjointly_and_evenly(world, n):
    if n < world:
        with pytest.raises(ValueError, match="cannot give each of"):
            D.shard(n, 0, world)
        return
    parts = [np.arange(n)[D.shard(n, r, world)] for r in range(world)]
    assert np.concatenate(parts).tolist() == list(range(n))     # contiguous, disjoint, complete
    sizes = [len(p) for p in parts]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 200), world=st.integers(1, 16))
def test_per_rank_batch(batch, world):
    if batch % world == 0:
        assert D.per_rank_batch(batch, world) * world == batch
        assert D.per_rank_batch(batch, world, flag="--bs") == batch // world
    else:
        with pytest.raises(ValueError, match="--bs" if world <= batch else "--bs: .* least"):
            D.per_rank_batch(batch, world, flag="--bs")


def test_loss_weight_is_the_mean_losss_denominator():
    from minirnn.nn.losses import cross_entropy
    rng = np.random.default_rng(1)
    logits, t = rng.standard_normal((9, 4)), rng.integers(0, 4, size=9)
    t[2] = -100
    w = rng.uniform(0.5, 2, size=4)
    for kw in ({}, {"weight": w}, {"weight": w, "ignore_index": -100}):
        loss, _ = cross_entropy(logits, t, **kw)
        total, _ = cross_entropy(logits, t, reduction="sum", **kw)
        assert D.loss_weight(t, **kw) == pytest.approx(total / loss, rel=1e-12)
    assert D.loss_weight(np.array([3, -1, 3]), ignore_index=-1) == 2.0


def test_launch_detection_and_checks():
    assert D.launched({"WORLD_SIZE": "2"}) and not D.launched({"WORLD_SIZE": "1"})
    assert not D.launched({}) and D.launched() == (int(os.environ.get("WORLD_SIZE", 1)) > 1)
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        D.launched({"WORLD_SIZE": "two"})
    assert D.check_launch("numba") == "gloo"
    assert D.check_launch("torch", "cpu", "gloo", env={"WORLD_SIZE": "2"}) == "gloo"
    with pytest.raises(ValueError, match="--dist-backend nccl: needs --device cuda"):
        D.check_launch("torch", "cpu", "nccl")
    with pytest.raises(ValueError, match="--dist-backend: expected"):
        D.check_launch("torch", dist_backend="mpi")
    assert D.record(None, 32) == {"world_size": 1, "dist_backend": None, "batch_size": 32,
                                  "per_rank_batch": 32}
    assert D.on_main(None, lambda: 3.5) == 3.5
    from minirnn._threads import Choice
    assert D.cap_threads(Choice(2, "x"), None) == Choice(2, "x")
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        D.init("gloo", env={"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="--dist-timeout"):
        D.init(timeout=0)


def test_engine_refuses_a_nccl_group_for_its_own_kernels():
    from types import SimpleNamespace

    from minirnn.train.engine import Engine
    from minirnn.nn.models import LanguageModel
    with pytest.raises(ValueError, match="NCCL"):
        Engine(LanguageModel(5, 3, 4, num_layers=1), backend="numba",
               distributed=SimpleNamespace(backend="nccl", local_rank=0))
