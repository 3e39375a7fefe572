"""One rank of the 2-process gloo group that tests/test_distributed.py starts (it sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT):

    python tests/dist_worker.py equiv OUT     every case of CASES data-parallel -> OUT/rank<r>.npz,
                                              then the Group's collectives -> OUT/api<r>.json
    python tests/dist_worker.py fail R        rank R raises at step 3; the others must end too

The test imports this file too: run_case(..., group=None) is the single-process reference.
"""
import json
import os
import sys

import numpy as np

CASES = (("clf", "numba", "float64"), ("clf", "torch", "float64"), ("lm", "numba", "float64"),
         ("lm", "torch", "float64"), ("lm", "numba", "float32"), ("clf", "torch", "float32"))
STEPS = 20
B, T, V, C = 8, 5, 13, 5


def batches(kind, seed=11):
    """STEPS global batches of fresh random data; the classifier's step 7 has 7 rows (uneven
    shards 4 + 3, to check the weighting of each shard's share of the loss)."""
    rng = np.random.default_rng(seed)
    if kind == "lm":
        stream = rng.integers(0, V, size=(B, STEPS * T + 1))
        return [(stream[:, s * T:(s + 1) * T], stream[:, s * T + 1:(s + 1) * T + 1], None)
                for s in range(STEPS)]
    out = []
    for s in range(STEPS):
        n = 7 if s == 7 else B
        out.append((rng.integers(0, V, size=(n, T)), rng.integers(0, C, size=n),
                    rng.integers(1, T + 1, size=n)))
    return out


def build(kind, backend, dtype, group=None, seed=3):
    from minirnn.train.engine import Engine
    from minirnn.nn.models import LanguageModel, SequenceClassifier
    mb = "numpy" if backend == "torch" else backend
    if kind == "lm":
        model = LanguageModel(V, 6, 7, cell="lstm", num_layers=2, dtype=dtype, seed=seed,
                              backend=mb)
        weight = None
    else:
        model = SequenceClassifier(V, C, 7, cell="gru", dtype=dtype, seed=seed, backend=mb)
        weight = np.random.default_rng(5).uniform(0.5, 2.0, size=C)
    return Engine(model, optimizer="adam", lr=0.01, clip=0.5, class_weight=weight,
                  backend=backend, seed=seed, distributed=group)


def run_case(kind, backend, dtype, group=None):
    """STEPS steps on the global batches (this rank's shard of each) -> (params, losses)."""
    engine = build(kind, backend, dtype, group)
    state, losses = None, []
    for x, y, lengths in batches(kind):
        rows = slice(None) if group is None else group.shard(len(x))
        if kind == "lm":
            loss, state = engine.step_lm(x[rows], y[rows], state=state)
        else:
            loss = engine.step(x[rows], y[rows], lengths=lengths[rows])
        losses.append(float(loss))
    return engine.sync().state_dict(), losses


def _equiv(group, out):
    arrays, losses = {}, {}
    for case in CASES:
        name = "-".join(case)
        params, losses[name] = run_case(*case, group=group)
        arrays.update({f"{name}/{k}": v for k, v in params.items()})
    np.savez(os.path.join(out, f"rank{group.rank}.npz"), **arrays)
    with open(os.path.join(out, f"losses{group.rank}.json"), "w") as f:
        json.dump(losses, f)


def _api(group, out):
    from minirnn._threads import Choice
    from minirnn.train import distributed as D
    r, res = group.rank, {}
    a = np.arange(6.0)
    t = group.view("a", a)
    t += 1                                                     # the same memory
    res["view_shared"] = bool(t.data_ptr() == a.ctypes.data and a[0] == 1.0)
    try:
        group.view("strided", np.arange(6.0)[::2])
        res["strided_refused"] = False
    except RuntimeError as e:
        res["strided_refused"] = "contiguous" in str(e)
    g = np.full((2, 3), float(r + 1))
    group.all_reduce_grads([("g", g)])
    res["mean"] = g.tolist()
    res["share"] = list(group.loss_share(float(r + 1), 3.0 if r == 0 else 1.0))
    res["agree_any"], res["agree_none"] = group.agree(r == 1), group.agree(False)
    res["from_main"] = group.from_main(lambda: 42.0 + r)
    res["on_main"] = D.on_main(group, lambda: 7.0 + r)
    res["gathered"] = group.gather_rows(np.full((2, 1, 3), float(r))).tolist()
    p = np.full(4, float(r))
    group.broadcast_([("p", p)])
    res["broadcast"] = p.tolist()
    group.check_same([("x", np.ones(3))], "ones")
    try:
        group.check_same([("x", np.full(3, float(r)))], "rank-valued")
        res["differ"] = ""
    except RuntimeError as e:
        res["differ"] = str(e)
    # ranks built from different seeds: the first step starts all from rank 0's weights
    engine = build("lm", "numba", "float64", group, seed=100 + r)
    x, y, _ = batches("lm")[0]
    engine.step_lm(x[group.shard(B)], y[group.shard(B)])
    group.check_same(engine.model.state_dict().items(), "weights after the first step")
    res["record"] = D.record(group, 8)
    res["cap"] = list(D.cap_threads(Choice(8, "the usable cores"), group))
    res["cap_explicit"] = list(D.cap_threads(Choice(8, "--threads"), group))
    # a differing optimiser state is refused when the ranks join
    engine = build("clf", "numba", "float64", group)
    engine.optimizer.state = {"fc.bias": {"exp_avg": np.full(C, float(r))}}
    try:
        engine.step(*batches("clf")[0][:2])
        res["opt_differ"] = ""
    except RuntimeError as e:
        res["opt_differ"] = str(e)
    group.barrier()
    with open(os.path.join(out, f"api{r}.json"), "w") as f:
        json.dump(res, f)


def _fail(group, failing):
    engine = build("lm", "numba", "float64", group)
    with group.guard():
        for s, (x, y, _) in enumerate(batches("lm") * 1000):
            if s == 3 and group.rank == failing:
                raise ValueError(f"boom on rank {group.rank} at step {s}")
            engine.step_lm(x[group.shard(B)], y[group.shard(B)])


def main(mode, arg):
    import torch
    torch.set_num_threads(1)
    from minirnn.train import distributed as D
    group = D.init("gloo", timeout=float(os.environ.get("TEST_DIST_TIMEOUT", 60)))
    try:
        if mode == "equiv":
            _equiv(group, arg)
            _api(group, arg)
        else:
            _fail(group, int(arg))
    except ValueError as e:
        print(f"worker error: {e}", file=sys.stderr, flush=True)
        group.close(ok=False)
        return 2
    group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
