"""The derivative tools on degenerate input, decided once and held by every tool:

  * an empty batch (B = 0) runs as the modules run it: empty outputs, zero gradients, the
    same on both backends (RTRL included);
  * T = 0 is refused with the modules' own message, "x: expected at least one time step";
  * a length of 0 is refused with the modules' message (every length in 1..T);
  * one hidden unit (H = 1) is an ordinary model;
  * RTRL's callable loss must return (L_t, dL_t/dout_t) of the step's output shape, else an
    error names the loss and the shape expected.
"""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn.cells import BUILTIN

G = minirnn.grad
T_ZERO = "x: expected at least one time step, got T=0"


def _tools(m, x, d, y):
    """name -> a call of each tool on (x, d = dL/d(out), y = a target)."""
    return {
        "jvp": lambda: G.jvp(m, x, tangents={"x": x}).out_dot,
        "hvp": lambda: G.hvp(m, x, G.MSELoss(y), {k: np.ones_like(p) for k, p in m.params.items()}),
        "gnvp": lambda: G.gnvp(m, x, G.MSELoss(y), {k: np.ones_like(p) for k, p in m.params.items()}),
        "truncated_gradient": lambda: G.truncated_gradient(m, x, d, k1=2),
        "gradient_by_lag": lambda: G.gradient_by_lag(m, x, d).total(),
        "uoro_gradients": lambda: G.uoro_gradients(m, x, d, n_samples=3).estimates,
        "lyapunov_spectrum": lambda: G.lyapunov_spectrum(m, x).exponents,
        "per_sample_gradients": lambda: G.per_sample_gradients(m, x, d),
        "rtrl_gradient numpy": lambda: G.rtrl_gradient(m, x, y, backend="numpy").grads,
        "rtrl_gradient numba": lambda: G.rtrl_gradient(m, x, y, backend="numba").grads,
        "rtrl_online numpy": lambda: G.rtrl_online(m, x, y, lr=0.1, backend="numpy").losses,
        "rtrl_online numba": lambda: G.rtrl_online(m, x, y, lr=0.1, backend="numba").losses,
    }


def _arrays(res):
    if isinstance(res, dict):
        return list(res.values())
    return [res]


@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("tool", list(_tools(None, None, None, None)))
def test_an_empty_batch_gives_zero_gradients(cell, tool):
    m = minirnn.nn.make_recurrent(cell, 3, 4, seed=0)
    x, d, y = np.ones((5, 0, 3)), np.ones((5, 0, 4)), np.ones((5, 0, 4))
    res = _tools(m, x, d, y)[tool]()
    for a in _arrays(res):
        assert np.all(np.asarray(a) == 0), tool             # empty, or zero everywhere
    if tool.startswith("rtrl_gradient"):
        assert sorted(res) == sorted(m.params)


@pytest.mark.parametrize("tool", list(_tools(None, None, None, None)))
def test_no_time_step_is_the_modules_refusal(tool):
    m = minirnn.LSTM(3, 4, seed=0)
    with pytest.raises(ValueError, match=T_ZERO):
        _tools(m, np.ones((0, 2, 3)), np.ones((0, 2, 4)), np.ones((0, 2, 4)))[tool]()


@pytest.mark.parametrize("tool", ["jvp", "per_sample_gradients", "rtrl_gradient numpy",
                                  "rtrl_gradient numba"])
def test_a_zero_length_is_the_modules_refusal(tool):
    m = minirnn.GRU(3, 4, seed=0)
    x, d = np.ones((4, 2, 3)), np.ones((4, 2, 4))
    calls = {"jvp": lambda: G.jvp(m, x, lengths=[4, 0]),
             "per_sample_gradients": lambda: G.per_sample_gradients(m, x, d, lengths=[4, 0]),
             "rtrl_gradient numpy": lambda: G.rtrl_gradient(m, x, d, lengths=[4, 0]),
             "rtrl_gradient numba": lambda: G.rtrl_gradient(m, x, d, lengths=[4, 0],
                                                            backend="numba")}
    with pytest.raises(ValueError, match=r"lengths: expected every length in 1\.\.4"):
        calls[tool]()


@pytest.mark.parametrize("cell", BUILTIN)
def test_one_hidden_unit_is_an_ordinary_model(cell):
    m = minirnn.nn.make_recurrent(cell, 3, 1, seed=0)
    rng = np.random.default_rng(0)
    x, d, y = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 1)), \
        rng.standard_normal((5, 2, 1))
    for name, call in _tools(m, x, d, y).items():
        for a in _arrays(call()):
            # a relu unit stuck at 0 contracts nothing: its exponent is log 0 = -inf
            ok = np.isfinite(a) | ((a == -np.inf) if name == "lyapunov_spectrum" else False)
            assert np.all(ok), name


@pytest.mark.parametrize("bad, got", [(lambda o, t: None, "got NoneType"),
                                      (lambda o, t: (0.0, np.ones(3)), r"of shape \(3,\)"),
                                      (lambda o, t: (0.0,), "got a tuple of 1"),
                                      (lambda o, t: (0.0, None), "got a tuple of 2")])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_custom_rtrl_loss_of_the_wrong_shape_is_named(bad, got, backend):
    m = minirnn.RNN(3, 4, seed=0)
    x, y = np.ones((3, 2, 3)), np.ones((3, 2, 4))
    with pytest.raises(ValueError, match=r"loss: the callable '<lambda>' must return \(L_t, "
                                         r"dL_t/dout_t\) with dL_t/dout_t of shape \(2, 4\).*"
                                         + got):
        G.rtrl_gradient(m, x, y, loss=bad, backend=backend)


def test_the_state_is_taken_as_the_modules_forward_takes_it():
    """jvp, hvp, gnvp and RTRL take h0 alone for a one-state cell, as forward does; RTRL also
    takes the module's layout (1, B, size) beside one layer's (B, size)."""
    rng = np.random.default_rng(1)
    m = minirnn.GRU(3, 4, seed=0)
    x, y, h0 = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 4)), \
        rng.standard_normal((1, 2, 4))
    v = {k: rng.standard_normal(p.shape) for k, p in m.params.items()}
    a = G.jvp(m, x, state=h0, tangents=v)
    b = G.jvp(m, x, state=(h0,), tangents=v)
    assert np.array_equal(a.out_dot, b.out_dot)
    assert np.array_equal(G.hvp(m, x, G.MSELoss(y), v, state=h0)["weight_hh_l0"],
                          G.hvp(m, x, G.MSELoss(y), v, state=(h0,))["weight_hh_l0"])
    assert np.array_equal(G.gnvp(m, x, G.MSELoss(y), v, state=h0)["weight_hh_l0"],
                          G.gnvp(m, x, G.MSELoss(y), v, state=(h0,))["weight_hh_l0"])
    forms = [h0, (h0,), h0[0], (h0[0],)]
    grads = [G.rtrl_gradient(m, x, y, state=s).grads["weight_hh_l0"] for s in forms]
    for g in grads[1:]:
        assert np.array_equal(g, grads[0])
    lstm = minirnn.LSTM(3, 4, seed=0)
    hc = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    g1 = G.rtrl_gradient(lstm, x, y, state=hc).grads["weight_ih_l0"]
    g2 = G.rtrl_gradient(lstm, x, y, state=tuple(s[0] for s in hc)).grads["weight_ih_l0"]
    assert np.array_equal(g1, g2)
