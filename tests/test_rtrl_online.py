"""RTRL's online form against a torch hand loop, the influence it carries, and the Numba
kernel against the reference (one step, and whole online runs in float64 and float32); the
cost benchmark's smoke test. The cases and helpers are tests/test_rtrl.py's."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minirnn.cells import get_cell
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
_spec = importlib.util.spec_from_file_location("_rtrl_cases",
                                               Path(__file__).with_name("test_rtrl.py"))
rt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rt)            # the configurations and random cases, written once


# ---- the online form against a torch hand loop -----------------------------------------------

def _torch_online(model, x, target, state, valid, lr):
    """At step t, a torch graph over steps 0..t where step s uses θ_s (the parameters current
    then, constants) plus one shared perturbation δ = 0; ∂L_t/∂δ is what RTRL carries, so
    θ_{t+1} = θ_t - lr ∂L_t/∂δ. -> the final parameters {key: array}."""
    from torch.func import functional_call

    from minirnn.interop.torch import torch_recurrent
    spec = model.spec
    tm = torch_recurrent(spec.name, model.input_size, model.hidden_size, bias=model.bias,
                         proj_size=model.proj_size).double()
    theta = {k: torch.tensor(v) for k, v in model.params.items()}
    history, T = [], x.shape[0]
    xt, yt = torch.from_numpy(x), torch.from_numpy(target)
    for t in range(T):
        history.append(dict(theta))
        delta = {k: torch.zeros_like(v, requires_grad=True) for k, v in theta.items()}
        s = tuple(torch.from_numpy(v) for v in state)
        for u in range(t + 1):
            p = {k: history[u][k] + delta[k] for k in theta}
            hx = tuple(v[None] for v in s)
            _, new = functional_call(tm, p, (xt[u][None], hx if len(hx) > 1 else hx[0]))
            new = tuple(v[0] for v in (new if isinstance(new, tuple) else (new,)))
            keep = torch.ones(x.shape[1], dtype=torch.bool) if valid is None else \
                torch.from_numpy(valid[u])
            s = tuple(torch.where(keep[:, None], n, o) for n, o in zip(new, s))
        loss = 0.5 * ((s[0] - yt[t])[keep] ** 2).sum()
        grads = torch.autograd.grad(loss, list(delta.values()), allow_unused=True)
        theta = {k: theta[k] - lr * (0 if g is None else g) for k, g in zip(theta, grads)}
    return {k: v.numpy() for k, v in theta.items()}


@pytest.mark.parametrize("cell,proj", rt.CONFIGS)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_online_equals_torch_hand_loop(cell, proj, backend):
    from minirnn.grad import rtrl_online
    rng = np.random.default_rng(11)
    model = rt._model(cell, proj, 3, 4, True, "time_major", backend, 11)
    x, target, state, _ = rt._data(rng, model, 6, 3, "time_major", False)
    lengths = np.array([6, 3, 5])
    valid = np.arange(6)[:, None] < lengths[None, :]
    before = {k: v.copy() for k, v in model.params.items()}
    expected = _torch_online(model, x, target, state, valid, lr=0.3)
    run = rtrl_online(model, x, target, lr=0.3, state=state, lengths=lengths)
    for key in expected:
        assert not np.allclose(model.params[key], before[key]), key      # it did learn
        assert_close(model.params[key], expected[key], rtol=rt.RTOL, atol=1e-15, name=key)
        # the change itself, which a wrong update would move by far more than round-off
        assert_close(model.params[key] - before[key], expected[key] - before[key],
                     rtol=rt.RTOL, atol=1e-15, name=f"{key} change")
    assert run.losses.shape == (6,) and np.all(np.isfinite(run.losses))


@pytest.mark.parametrize("loss", ["squared_error", "projection", rt._cubic])
def test_online_class_step_by_step_equals_rtrl_online(loss):
    """RTRLOnline, fed one step at a time (valid masks, a given state), is rtrl_online."""
    from minirnn.grad import RTRLOnline, rtrl_online
    rng = np.random.default_rng(5)
    a = rt._model("lstm", 2, 3, 4, True, "time_major", "numpy", 5)
    b = rt._model("lstm", 2, 3, 4, True, "time_major", "numpy", 5)
    x, target, state, _ = rt._data(rng, a, 5, 2, "time_major", False)
    lengths = np.array([5, 3])
    valid = np.arange(5)[:, None] < lengths[None, :]
    run = rtrl_online(a, x, target, 0.2, loss=loss, state=state, lengths=lengths)
    trainer = RTRLOnline(b, 0.2, loss=loss, batch_size=2, state=state)
    losses = [trainer.step(x[t], target[t], valid=valid[t]) for t in range(5)]
    assert_close(np.array(losses), run.losses, rtol=rt.RTOL, name="losses")
    for key in a.params:
        assert_close(b.params[key], a.params[key], rtol=rt.RTOL, name=key)
    for s, ref in zip(trainer.state, run.state):
        assert_close(s, ref, rtol=rt.RTOL, name="state")
    # defaults: loss, state (zeros), batch_size 1, backend (the model's), valid
    c = rt._model("gru", 0, 3, 4, True, "time_major", "numba", 6)
    trainer = RTRLOnline(c, 0.1)
    value = trainer.step(rng.standard_normal((1, 3)), rng.standard_normal((1, 4)))
    assert np.isfinite(value) and trainer.state[0].shape == (1, 4)


@pytest.mark.parametrize("cell,proj", rt.CONFIGS)
def test_influence_is_the_jacobian_of_the_state(cell, proj):
    """With lr = 0 nothing changes, and the carried influence ds_T/dθ contracted with any u
    is BPTT's gradient of u · s_T."""
    from minirnn.grad import RTRLOnline
    rng = np.random.default_rng(9)
    model = rt._model(cell, proj, 3, 4, True, "time_major", "numpy", 9)
    x, target, state, _ = rt._data(rng, model, 4, 2, "time_major", False)
    trainer = RTRLOnline(model, 0.0, batch_size=2, state=state, backend="numba")
    for t in range(4):
        trainer.step(x[t], target[t])
    u = tuple(rng.standard_normal(s.shape) for s in trainer.state)
    model.zero_grad()
    model.forward_state(x, tuple(s[None] for s in state))
    model.backward_state(np.zeros((4, 2, model.out_size)), tuple(v[None] for v in u))
    M, S = trainer.influence(), np.concatenate(u, axis=-1)               # (B, S)
    for key, block in M.items():
        assert block.shape == (2, S.shape[1]) + model.params[key].shape
        assert_close(np.tensordot(S, block, axes=([0, 1], [0, 1])), model.grads[key],
                     rtol=rt.RTOL, atol=1e-15, name=key)


# ---- the Numba kernel against the reference -------------------------------------------------

@pytest.mark.parametrize("cell,proj", rt.CONFIGS)
@rt.SETTINGS
@given(B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 5), bias=st.booleans(),
       seed=rt.seeds)
def test_kernel_step_matches_the_reference_jacobians(cell, proj, B, I, H, bias, seed):
    """The kernel's compact step (state, J_s, Z) against the reference's dense Jacobians:
    ∂s/∂W_ih = Zi ⊗ x_t, ∂s/∂W_hh = Zh ⊗ h_{t-1}, ∂s/∂b_ih = Zi, ∂s/∂b_hh = Zh."""
    spec, rng = get_cell(cell), np.random.default_rng(seed)
    H = max(H, proj + 1)
    params = rt._params(rng, spec, I, H, proj, bias)
    state = rt._state(rng, spec, B, H, proj)
    x_t = rng.standard_normal((B, I))
    new, J_state, Zi, Zh, r = spec.twin("numba").rtrl_step(x_t, state, params,
                                                           spec.nonlinearity)
    ref_state, ref = spec.step_jacobians(x_t, state, params)
    _, ref_new, _ = spec.forward(x_t[None], state, params)
    tol = dict(rtol=1e-13, atol=1e-15)
    for s, s_ref in zip(new, ref_new):
        assert_close(s, s_ref, name="state", **tol)
    assert_close(J_state, ref_state, name="J_state", **tol)
    assert_close(Zi[..., None] * x_t[:, None, None, :], ref["weight_ih"], name="Zi x", **tol)
    assert_close(Zh[..., None] * state[0][:, None, None, :], ref["weight_hh"], name="Zh h",
                 **tol)
    if bias:
        assert_close(Zi, ref["bias_ih"], name="Zi", **tol)
        assert_close(Zh, ref["bias_hh"], name="Zh", **tol)
    assert (r is None) == (spec.family != "lstm")


@pytest.mark.parametrize("cell,proj", rt.CONFIGS)
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-13), ("float32", 1e-5)])
def test_kernel_influence_and_online_run_match_the_reference(cell, proj, dtype, rtol):
    """A whole online run (lr > 0, ragged batch) on both backends: the same losses, the same
    parameters after it and the same influence carried, to round-off."""
    from minirnn.grad import RTRLOnline
    rng = np.random.default_rng(21)
    runs = []
    x, target = rng.standard_normal((6, 3, 3)), rng.standard_normal((6, 3, proj or 5))
    valid = np.arange(6)[:, None] < np.array([6, 2, 4])[None, :]
    for backend in ("numpy", "numba"):
        model = rt._model(cell, proj, 3, 5, True, "time_major", backend, 21, dtype)  # same θ
        trainer = RTRLOnline(model, 0.05, batch_size=3)
        losses = [trainer.step(x[t].astype(dtype), target[t].astype(dtype), valid=valid[t])
                  for t in range(6)]
        runs.append((np.array(losses), model.state_dict(), trainer.influence()))
    (l0, p0, m0), (l1, p1, m1) = runs
    assert_close(l1, l0, rtol=rtol, name="losses")
    for key in p0:
        assert p1[key].dtype == np.dtype(dtype)
        assert_close(p1[key], p0[key], rtol=rtol, name=key)
        assert_close(m1[key], m0[key], rtol=rtol, atol=rtol * 1e-2, name=f"influence {key}")



def test_optional_arguments_absent_and_the_backend_override():
    """Defaults (zero state, no lengths, the model's backend, MEMORY_LIMIT) against the same
    call with backend="numba" on a NumPy model and an explicit memory_limit."""
    from minirnn.grad import rtrl_gradient, rtrl_online
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 4))
    a, b = (rt._model("rnn_tanh", 0, 3, 4, True, "time_major", "numpy", 8) for _ in range(2))
    g_a, g_b = rtrl_gradient(a, x, y), rtrl_gradient(b, x, y, backend="numba")
    for key in g_a.grads:
        assert_close(g_b.grads[key], g_a.grads[key], rtol=1e-13, name=key)
    run_a = rtrl_online(a, x, y, 0.1)
    run_b = rtrl_online(b, x, y, 0.1, backend="numba", memory_limit=10**6)
    assert_close(run_b.losses, run_a.losses, rtol=1e-13, name="losses")
    for key in a.params:
        assert_close(b.params[key], a.params[key], rtol=1e-13, name=key)
    with pytest.raises(TypeError, match="memory_limit"):
        rtrl_gradient(a, x, y, memory_limit=1.5e9)


def test_cost_benchmark_runs_and_reports_every_row(tmp_path, capsys):
    """benchmarks/rtrl_cost.py at the smallest size: a row per cell and H, both backends."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "rtrl_cost.py"
    spec = importlib.util.spec_from_file_location("rtrl_cost", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--cells", "gru,lstm", "--hidden", "2,3", "--steps", "2", "--rounds", "1",
                "--json", str(tmp_path / "cost.json")])
    text = capsys.readouterr().out
    assert "numba µs/step" in text and "foreign load" in text and "machine:" in text
    rows = json.loads((tmp_path / "cost.json").read_text())["rows"]
    assert {(r["cell"], r["H"], r["backend"]) for r in rows} == {
        (c, h, b) for c in ("gru", "lstm") for h in (2, 3) for b in ("numpy", "numba")}
    assert all(r["us_per_step"] > 0 for r in rows)


def test_readme_cost_table_is_the_recorded_runs():
    """The RTRL cost table of docs/exact-derivatives.md and its speed-up range, recomputed from
    docs/rtrl-cost.json (the three runs of benchmarks/rtrl_cost.py it quotes)."""
    import json
    import re
    root = Path(__file__).resolve().parents[1]
    runs = json.loads((root / "docs" / "rtrl-cost.json").read_text(encoding="utf-8"))["runs"]
    text = (root / "docs" / "exact-derivatives.md").read_text(encoding="utf-8")
    section = text[text.index("## RTRL"):]
    times = {}
    for run in runs:
        for r in run["rows"]:
            times.setdefault((r["cell"], r["backend"], r["H"]), []).append(r["us_per_step"])
    for (cell, backend, H), v in times.items():
        row = re.search(rf"^\| {cell} \| {backend} \|(.*)\|$", section, re.M).group(1)
        cells = [c.strip() for c in row.split("|")]
        assert cells[(8, 16, 32, 64).index(H)] == f"{min(v):.0f}–{max(v):.0f}", (cell, H)
    ratios = [a["us_per_step"] / b["us_per_step"] for run in runs for a in run["rows"]
              for b in run["rows"] if (a["backend"], b["backend"]) == ("numpy", "numba")
              and (a["cell"], a["H"]) == (b["cell"], b["H"])]
    assert f"the kernel is {min(ratios):.1f}–{max(ratios):.1f}× faster" in " ".join(
        section.split())
