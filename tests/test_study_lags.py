"""The gradient by time lag: the parts sum to the module's own BPTT gradient; each part equals
torch autograd's, found with a separate copy of the parameters for every time step (the
gradient of L_t alone with respect to step tau's copy is the (t, tau) term); the cumulative
sums are truncated BPTT with k1 = 1."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minirnn.grad.lags import gradient_by_lag
from minirnn.grad.truncated import truncated_gradient
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent
from minirnn.testing import assert_close


_spec = importlib.util.spec_from_file_location(
    "_truncated_tests", Path(__file__).with_name("test_study_truncated.py"))
_truncated_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_truncated_tests)


def _problem(cell, T=7, **kw):
    """A model, x, d_out and a random initial state: the truncation tests' problem, T=7."""
    return _truncated_tests._problem(cell, T=T, **kw)


def _bptt(m, x, d, state):
    m.forward_state(x, state)
    m.zero_grad()
    m.backward_state(d, None)
    return {n: g.copy() for n, _, g in m.named_parameters()}


@settings(max_examples=14, deadline=None)
@given(cell=st.sampled_from(BUILTIN), T=st.integers(1, 9), B=st.integers(1, 3),
       layers=st.integers(1, 2), batch_first=st.booleans(), proj=st.booleans(),
       backend=st.sampled_from(["numpy", "numba"]), with_state=st.booleans(),
       seed=st.integers(0, 99))
def test_parts_sum_to_the_gradient(cell, T, B, layers, batch_first, proj, backend, with_state,
                                   seed):
    with_proj = proj and "weight_hr" in make_recurrent(cell, 1, 1).spec.extra_params
    kw = dict(proj_size=2) if with_proj else {}
    m, x, d, state = _problem(cell, T=T, B=B, num_layers=layers, batch_first=batch_first,
                              seed=seed, backend=backend, **kw)
    state = state if with_state else None
    ref = _bptt(m, x, d, state)
    lag = gradient_by_lag(m, x, d, state=state)
    assert lag.complete and list(lag.lags) == list(range(T))
    total = lag.total()
    for n in ref:
        assert_close(total[n], ref[n], rtol=1e-12, atol=1e-300, name=f"sum of parts {n}")
    for n, _, g in m.named_parameters():                  # the caller's gradients untouched
        assert_close(g, ref[n], rtol=0, name=f"model.grads {n}")


def _torch_parts(m, x, d, state):
    """parts[k][name] from torch: step tau runs on its own copy of the module (same values),
    and for each t the gradient of L_t = <d_t, out_t> alone lands on the copies tau <= t."""
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import to_torch
    xt, dt = torch.tensor(m.to_time_major(x)), torch.tensor(m.to_time_major(d))
    T = xt.shape[0]
    copies = [to_torch(m) for _ in range(T)]
    for c in copies:
        c.batch_first = False
    hx = tuple(torch.tensor(s) for s in state)
    hx = hx[0] if len(hx) == 1 else hx
    outs = []
    for tau in range(T):
        out, hx = copies[tau](xt[tau:tau + 1], hx)
        outs.append(out[0])
    names = [n for n, _ in copies[0].named_parameters()]
    parts = [{n: np.zeros(tuple(p.shape)) for n, p in copies[0].named_parameters()}
             for _ in range(T)]
    for t in range(T):
        params = [p for c in copies[:t + 1] for p in c.parameters()]
        grads = torch.autograd.grad((outs[t] * dt[t]).sum(), params, retain_graph=True,
                                    allow_unused=True)
        per = len(names)
        for tau in range(t + 1):
            for n, g in zip(names, grads[tau * per:(tau + 1) * per]):
                if g is not None:
                    parts[t - tau][n] += g.numpy()
    return parts


@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("layers", [1, 2])
def test_each_lag_matches_torch_per_step_copies(cell, layers):
    m, x, d, state = _problem(cell, T=6, num_layers=layers, seed=layers)
    lag = gradient_by_lag(m, x, d, state=state)
    ref = _torch_parts(m, x, d, state)
    for k in range(6):
        for n in ref[k]:
            assert_close(lag.parts[n][k], ref[k][n], rtol=1e-12, atol=1e-15,
                         name=f"{cell} lag {k} {n}")


@pytest.mark.parametrize("cell", BUILTIN)
def test_cumulative_parts_are_truncated_bptt_with_k1_1(cell):
    m, x, d, state = _problem(cell, T=8, num_layers=2, seed=3)
    cum = gradient_by_lag(m, x, d, state=state).cumulative()
    for k in (1, 2, 5, 8):
        g = truncated_gradient(m, x, d, 1, k, state=state)      # every loss sees k steps
        for n in g:
            assert_close(cum[n][k - 1], g[n], rtol=1e-12, name=f"{cell} lags < {k} {n}")


def test_max_lag_and_norms():
    m, x, d, state = _problem("lstm", T=8)
    full = gradient_by_lag(m, x, d, state=state)
    part = gradient_by_lag(m, x, d, state=state, max_lag=2)
    assert not part.complete and list(part.lags) == [0, 1, 2]
    for n in full.parts:
        assert_close(part.parts[n], full.parts[n][:3], rtol=1e-14, name=n)
    assert gradient_by_lag(m, x, d, max_lag=20).complete      # more than T-1: all of them
    pn = full.param_norms()
    for n, p in full.parts.items():
        assert np.allclose(pn[n], [np.linalg.norm(p[k]) for k in range(8)], rtol=1e-14)
    every = np.sqrt(sum(np.sum(p.reshape(8, -1) ** 2, axis=1) for p in full.parts.values()))
    assert np.allclose(full.norms(), every, rtol=1e-14)
    assert np.allclose(full.norms(["weight_hh_l0"]), pn["weight_hh_l0"], rtol=1e-14)


def test_language_model_lags():
    from minirnn.grad.lags import language_model_lags
    from minirnn.nn.losses import cross_entropy
    from minirnn.nn.models import LanguageModel
    lm = LanguageModel(6, 3, 4, cell="lstm", num_layers=2, seed=1)
    rng = np.random.default_rng(2)
    tok, tgt = rng.integers(0, 6, (3, 7)), rng.integers(0, 6, (3, 7))
    state = (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4)))
    for given_state, max_lag in ((None, None), (state, 3)):
        lag = language_model_lags(lm, tok, tgt, state=given_state, max_lag=max_lag)
        lm.zero_grad()
        logits, _ = lm.forward(tok, given_state)                         # the model's own backward
        _, d = cross_entropy(logits.reshape(-1, 6), tgt.reshape(-1))
        lm.backward(d.reshape(logits.shape))
        if max_lag is None:
            for n, g in lag.total().items():
                assert_close(g, lm.rnn.grads[n], rtol=1e-12, name=n)
        else:
            assert not lag.complete and len(lag.lags) == 4
    with pytest.raises(TypeError, match="model: expected a LanguageModel"):
        language_model_lags(lm.rnn, tok, tgt)


def test_refusals():
    m, x, d, _ = _problem("gru")
    with pytest.raises(ValueError, match="max_lag: expected an int >= 0"):
        gradient_by_lag(m, x, d, max_lag=-1)
    bi = make_recurrent("gru", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="model: expected a unidirectional model"):
        gradient_by_lag(bi, x, np.zeros(x.shape[:2] + (8,)))
