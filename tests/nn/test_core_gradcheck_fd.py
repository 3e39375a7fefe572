"""BPTT against central finite differences, float64, independent of torch.

The loss is a random projection of every output and final state,
    L = sum(d_out * out) + sum(d_h * h_n) (+ sum(d_c * c_n)),
so backward(d_out, d_h, d_c) must return exactly dL/dx, dL/dh0, dL/dc0 and dL/dparams.
Every entry of every tensor is perturbed (the sizes are small for that reason).
"""
import zlib

import numpy as np
import pytest

import minirnn
from minirnn.testing import assert_close
from tests.helpers import central_grad

RTOL = 1e-7          # central differences in float64 are good to ~1e-9 here


def make_model(cell, I, H, **kw):
    if cell == "lstm":
        return minirnn.LSTM(I, H, dtype="float64", **kw)
    return minirnn.RNN(I, H, nonlinearity=cell[4:], dtype="float64", **kw)


# (cell, module kwargs, T, B, lengths?, unbatched?)
CASES = []
for _cell in ("rnn_tanh", "rnn_relu", "lstm"):
    CASES += [
        (_cell, {}, 4, 2, False, False),
        (_cell, dict(num_layers=2, bidirectional=True), 4, 3, True, False),
        (_cell, dict(batch_first=True, bias=False), 3, 2, False, False),
        (_cell, dict(num_layers=2), 3, 1, False, True),
    ]
CASES += [("lstm", dict(num_layers=2, bidirectional=True, proj_size=2), 4, 3, True, False),
          ("lstm", dict(proj_size=1, batch_first=True), 3, 2, True, False)]


def _id(case):
    cell, kw, T, B, lengths, unbatched = case
    flags = [f"{k}={v}" for k, v in kw.items()] + (["lengths"] * lengths) + (["unbatched"] * unbatched)
    return f"{cell}-T{T}B{B}-" + ("-".join(flags) or "plain")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_module_bptt_matches_finite_differences(case):
    cell, kw, T, B, use_lengths, unbatched = case
    I, H = 3, 3
    rng = np.random.default_rng(zlib.crc32(_id(case).encode()))   # stable across runs
    m = make_model(cell, I, H, seed=int(rng.integers(1 << 30)), **kw)
    L, D, P = m.num_layers, m.num_directions, m.out_size
    for p in m.params.values():                      # weights large enough to be non-linear
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    seq = lambda F: (T, F) if unbatched else ((B, T, F) if m.batch_first else (T, B, F))  # noqa: E731
    st = lambda F: (L * D, F) if unbatched else (L * D, B, F)  # noqa: E731
    x = rng.standard_normal(seq(I))
    h0 = rng.standard_normal(st(P)) * 0.5
    c0 = rng.standard_normal(st(H)) * 0.5 if cell == "lstm" else None
    lengths = None
    if use_lengths:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0], lengths[-1] = T, max(1, T - 2)   # one full, one shorter, both directions
    d_out = rng.standard_normal(seq(D * P))
    d_h = rng.standard_normal(st(P))
    d_c = rng.standard_normal(st(H)) if cell == "lstm" else None

    def loss():
        if cell == "lstm":
            out, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
            return np.sum(d_out * out) + np.sum(d_h * h_n) + np.sum(d_c * c_n)
        out, h_n = m(x, h0, lengths=lengths)
        return np.sum(d_out * out) + np.sum(d_h * h_n)

    m.zero_grad()
    loss()
    if cell == "lstm":
        dx, (dh0, dc0) = m.backward(d_out, (d_h, d_c))
    else:
        dx, dh0 = m.backward(d_out, d_h)
    analytic = {"x": dx, "h0": dh0} | ({"c0": dc0} if cell == "lstm" else {})
    inputs = {"x": x, "h0": h0} | ({"c0": c0} if cell == "lstm" else {})
    for name, arr in inputs.items():
        num = central_grad(loss, arr)
        if cell != "rnn_relu":                       # relu units may be dead at step 0
            assert np.abs(num).max() > 0, f"{name}: loss does not depend on it at all"
        assert_close(analytic[name], num, rtol=RTOL, name=f"d{name}")
    grads = m.grad_dict()
    assert set(grads) == set(m.params)
    for name, p in m.params.items():
        assert_close(grads[name], central_grad(loss, p), rtol=RTOL, name=f"grad {name}")


@pytest.mark.parametrize("kind", ["tanh", "relu", "lstm"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_finite_differences(kind, bias, batched):
    rng = np.random.default_rng(["tanh", "relu", "lstm"].index(kind) * 4 + 2 * bias + batched)
    I, H, B = 3, 4, 2
    if kind == "lstm":
        cell = minirnn.LSTMCell(I, H, bias=bias, seed=1)
    else:
        cell = minirnn.RNNCell(I, H, bias=bias, nonlinearity=kind, seed=1)
    shape = (lambda F: (B, F)) if batched else (lambda F: (F,))
    x, h = rng.standard_normal(shape(I)), rng.standard_normal(shape(H))
    c = rng.standard_normal(shape(H))
    d_h, d_c = rng.standard_normal(shape(H)), rng.standard_normal(shape(H))

    def loss():
        if kind == "lstm":
            h1, c1 = cell(x, (h, c))
            return np.sum(d_h * h1) + np.sum(d_c * c1)
        return np.sum(d_h * cell(x, h))

    cell.zero_grad()
    loss()
    if kind == "lstm":
        dx, (dh, dc) = cell.backward(d_h, d_c)
        assert_close(dc, central_grad(loss, c), rtol=RTOL, name="dc")
    else:
        dx, dh = cell.backward(d_h)
    assert dx.shape == x.shape and dh.shape == h.shape
    assert_close(dx, central_grad(loss, x), rtol=RTOL, name="dx")
    assert_close(dh, central_grad(loss, h), rtol=RTOL, name="dh")
    for name, p in cell.params.items():
        assert_close(cell.grads[name], central_grad(loss, p), rtol=RTOL, name=f"grad {name}")
