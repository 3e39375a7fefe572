"""gradient_flow against torch autograd (retain_grad on every step), decay_rate on synthetic
data, the exploding-gradient demonstration, and `minirnn study gradflow`."""
import csv

import numpy as np
import pytest

import minirnn
from minirnn.cli import main
from minirnn.nn import make_recurrent
from minirnn.studies.flow import decay_rate, gradient_flow, scale_recurrent
from minirnn.testing import assert_close


def _model(mode, I, H, layers=1, bidirectional=False, proj=0, seed=0, batch_first=False):
    kw = dict(num_layers=layers, bidirectional=bidirectional, seed=seed, batch_first=batch_first)
    if proj:
        kw["proj_size"] = proj
    return make_recurrent(mode, I, H, **kw)


def _states(model, B, rng):
    LD = model.num_layers * model.num_directions
    h0 = rng.standard_normal((LD, B, model.out_size))
    if model.mode == "lstm":
        return h0, rng.standard_normal((LD, B, model.hidden_size))
    return h0


def _lstm_step(cell, x_t, h, c):
    """One LSTM step written out in torch ops with `cell`'s (an nn.LSTM's) parameters, so that
    h_t is a function of the c_t node: c_t.grad is then the total dL/dc_t (through h_t and
    c_{t+1}), the quantity BPTT carries. The values are checked against nn.LSTM itself."""
    import torch
    z = x_t @ cell.weight_ih_l0.T + cell.bias_ih_l0 + h @ cell.weight_hh_l0.T + cell.bias_hh_l0
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    c_t = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_g)
    h_t = torch.sigmoid(z_o) * torch.tanh(c_t)
    if cell.proj_size:
        h_t = h_t @ cell.weight_hr_l0.T
    with torch.no_grad():
        _, (h_ref, c_ref) = cell(x_t[None], (h[None], c[None]))
    assert_close(h_t.detach(), h_ref[0], rtol=1e-13, name="torch h_t")
    assert_close(c_t.detach(), c_ref[0], rtol=1e-13, name="torch c_t")
    return h_t, c_t


def _torch_steps(model, x, hx, d_out):
    """torch, one step at a time: per layer-direction a one-layer nn.RNN / nn.LSTM with that
    layer-direction's weights, every h_t (c_t) kept with retain_grad. x (T, B, I), d_out (T, B, D*P)
    -> (dh [k] (T, B, P), dc [k] or None, the h_t tensors [k][t]) after loss.backward()."""
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import torch_recurrent
    nn = torch.nn
    T = x.shape[0]
    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    is_lstm = model.mode == "lstm"
    sd = model.state_dict()
    h0, c0 = (hx if is_lstm else (hx, None))
    layer_in = [torch.tensor(x[t]) for t in range(T)]                 # T x (B, I)
    hs, cs = {}, {}
    for layer in range(L):
        per_dir = []
        for d in range(D):
            k, sfx = layer * D + d, "_reverse" if d else ""
            in_size = layer_in[0].shape[-1]
            if is_lstm:
                cell = nn.LSTM(in_size, H, proj_size=model.proj_size, dtype=torch.float64)
            else:                                                      # nn.RNN or nn.GRU
                cell = torch_recurrent(model.mode, in_size, H).to(torch.float64)
            with torch.no_grad():
                for name, p in cell.named_parameters():               # name: weight_ih_l0 ...
                    p.copy_(torch.tensor(sd[name.replace("_l0", f"_l{layer}{sfx}")]))
            h = torch.tensor(h0[k])                                    # (B, P)
            c = torch.tensor(c0[k]) if is_lstm else None               # (B, H)
            hs[k], cs[k] = [None] * T, [None] * T
            for t in (range(T) if d == 0 else reversed(range(T))):
                if is_lstm:
                    h, c = _lstm_step(cell, layer_in[t], h, c)
                    c.retain_grad()
                    cs[k][t] = c
                else:
                    h = cell(layer_in[t][None], h[None])[1][0]         # torch's own step
                h.retain_grad()
                hs[k][t] = h
            per_dir.append(hs[k])
        layer_in = [torch.cat([per_dir[d][t] for d in range(D)], dim=-1) for t in range(T)]
    loss = sum((torch.tensor(d_out[t]) * layer_in[t]).sum() for t in range(T))
    loss.backward(retain_graph=True)
    grad = lambda v: np.zeros(v.shape) if v.grad is None else v.grad.numpy()  # noqa: E731
    dh = [np.stack([grad(v) for v in hs[k]]) for k in range(L * D)]
    dc = [np.stack([grad(v) for v in cs[k]]) for k in range(L * D)] if is_lstm else None
    return dh, dc, hs


def _torch_jacobians(hs, model, T):
    """[D] (T, B, P, P): d h_final[b, j] / d h_t[b, i] of the last layer by torch.autograd.grad."""
    import torch
    L, D, P = model.num_layers, model.num_directions, model.out_size
    out = []
    for d in range(D):
        seq = hs[(L - 1) * D + d]
        final = seq[T - 1] if d == 0 else seq[0]
        rows = []
        for j in range(P):
            g = torch.autograd.grad(final[:, j].sum(), seq, retain_graph=True, allow_unused=True)
            rows.append(np.stack([np.zeros(final.shape) if gi is None else gi.numpy()
                                  for gi in g]))                       # (T, B, P)
        out.append(np.stack(rows, axis=2))                             # (T, B, j, i)
    return out


CASES = [("rnn_tanh", 2, False, 0, "last"), ("rnn_relu", 2, False, 0, "last"),
         ("lstm", 2, False, 0, "last"), ("rnn_tanh", 2, True, 0, "all"),
         ("lstm", 2, True, 0, "all"), ("lstm", 1, False, 2, "last"),
         ("gru", 2, False, 0, "last"), ("gru", 2, True, 0, "all")]


@pytest.mark.parametrize("mode,layers,bidirectional,proj,loss", CASES)
def test_gradient_flow_matches_torch_autograd(mode, layers, bidirectional, proj, loss):
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    T, B, I, H = 6, 2, 3, 4
    model = _model(mode, I, H, layers, bidirectional, proj, seed=3)
    for _, p, _ in model.named_parameters():                   # non-trivial: larger weights
        p *= 1.5
    x = rng.standard_normal((T, B, I))
    hx = _states(model, B, rng)
    flow = gradient_flow(model, x, hx, loss=loss, seed=5)
    dh, dc, hs = _torch_steps(model, x, hx, flow.d_out)
    assert len(flow.dh) == layers * model.num_directions
    for k in range(len(dh)):
        assert np.any(dh[k] != 0)
        assert_close(flow.dh[k], dh[k], rtol=1e-10, name=f"dh[{k}]")
        assert_close(flow.dh_norm[k], np.sqrt((dh[k] ** 2).sum(axis=(1, 2))), rtol=1e-10,
                     name=f"dh_norm[{k}]")
        if mode == "lstm":
            assert_close(flow.dc[k], dc[k], rtol=1e-10, name=f"dc[{k}]")
            assert_close(flow.dc_norm[k], np.sqrt((dc[k] ** 2).sum(axis=(1, 2))), rtol=1e-10,
                         name=f"dc_norm[{k}]")
    jac = _torch_jacobians(hs, model, T)
    for d in range(model.num_directions):
        assert_close(flow.jac[d], jac[d], rtol=1e-10, name=f"jac[{d}]")
        assert_close(flow.jac_norm[d], np.linalg.norm(jac[d], axis=(2, 3)), rtol=1e-10,
                     name=f"jac_norm[{d}]")
        assert_close(flow.jac_sigma[d], np.linalg.norm(jac[d], ord=2, axis=(2, 3)), rtol=1e-10,
                     name=f"jac_sigma[{d}]")
    eye = np.broadcast_to(np.eye(model.out_size), (B,) + (model.out_size,) * 2)
    np.testing.assert_array_equal(flow.jac[0][T - 1], eye)           # d h_T / d h_T = I


def test_lengths_match_each_sequence_alone():
    """With lengths, sequence b's per-step gradients are those of b run alone, T = lengths[b]."""
    rng = np.random.default_rng(1)
    model = _model("lstm", 3, 4, seed=2, batch_first=True)
    x = rng.standard_normal((3, 5, 3))                          # (B, T, I)
    lengths = np.array([5, 2, 4])
    flow = gradient_flow(model, x, lengths=lengths, seed=0)
    u = flow.d_out                                              # (B, T, P): the loss weights
    for b, n in enumerate(lengths):
        model.forward(x[b:b + 1, :n])
        model.zero_grad()
        steps = model.backward(u[b:b + 1, :n], None, return_steps=True)[2]
        assert_close(flow.dh[0][:n, b], steps[0].dh[:, 0], rtol=1e-12, name=f"dh b={b}")
        assert_close(flow.dc[0][:n, b], steps[0].dc[:, 0], rtol=1e-12, name=f"dc b={b}")
        np.testing.assert_array_equal(flow.dh[0][n:, b], 0.0)
        np.testing.assert_allclose(flow.jac[0][n - 1, b], np.eye(4), atol=1e-15)


def test_gradient_flow_leaves_model_as_it_was():
    rng = np.random.default_rng(0)
    model = _model("rnn_tanh", 3, 4, layers=2, seed=1)
    model.dropout = 0.5
    for _, _, g in model.named_parameters():
        g[...] = rng.standard_normal(g.shape)
    before = model.grad_dict()
    x = rng.standard_normal((5, 2, 3))
    a, b = gradient_flow(model, x, seed=3), gradient_flow(model, x, seed=3)
    assert model.training                                       # dropout was off, and is back
    np.testing.assert_array_equal(a.dh[0], b.dh[0])             # so the result is deterministic
    for name, g in model.grad_dict().items():
        np.testing.assert_array_equal(g, before[name])
    with pytest.raises(ValueError, match="loss"):
        gradient_flow(model, np.ones((2, 1, 3)), loss="mean")
    with pytest.raises(TypeError, match="model"):
        gradient_flow(minirnn.RNNCell(3, 4), np.ones((2, 3)))


def test_norms_by_distance_and_scaling():
    rng = np.random.default_rng(4)
    model = _model("lstm", 2, 5, seed=0)
    w = model.params["weight_hh_l0"].copy()
    scale_recurrent(model, 3.0)
    np.testing.assert_array_equal(model.params["weight_hh_l0"], 3.0 * w)
    flow = gradient_flow(model, rng.standard_normal((7, 1, 2)), jacobians=False)
    assert flow.jac is None
    d = flow.norms_by_distance()
    assert d[0] == pytest.approx(1.0)                           # a unit vector on the last output
    np.testing.assert_array_equal(d, flow.dh_norm[0][::-1])
    np.testing.assert_array_equal(flow.norms_by_distance(state="c"), flow.dc_norm[0][::-1])


@pytest.mark.parametrize("rate", [0.37, 0.9, 1.0, 1.6])
def test_decay_rate_recovers_geometric_rate(rate):
    rng = np.random.default_rng(0)
    s = np.arange(60)
    noisy = 3.0 * rate ** s * np.exp(rng.normal(0, 0.05, s.size))      # multiplicative noise
    assert decay_rate(3.0 * rate ** s) == pytest.approx(rate, rel=1e-10)
    assert decay_rate(noisy) == pytest.approx(rate, rel=5e-3)


def test_decay_rate_edge_cases():
    norms = 0.5 ** np.arange(10.0)
    norms[[3, 7]] = 0.0                                          # underflow / dead units: skipped
    assert decay_rate(norms) == pytest.approx(0.5, rel=1e-12)
    assert decay_rate([2.0, 1.0], distances=[0, 2]) == pytest.approx(np.sqrt(0.5))
    assert np.isnan(decay_rate([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="distances"):
        decay_rate([1.0, 0.5], distances=[0, 1, 2])
    with pytest.raises(ValueError, match="norms"):
        decay_rate([1.0, -0.5])


def test_exploding_demo_clipping_keeps_training_finite():
    pytest.importorskip("minirnn.train.optim")
    from minirnn.studies.flow import exploding_demo
    res = exploding_demo("rnn_relu", weight_scale=4.0, T=30, hidden=16, steps=8, seed=0)
    assert res["rate_by_scale"][4.0] > 1.0 > res["rate_by_scale"][1.0]
    assert not res["runs"]["no_clip"]["finite"]
    clip = res["runs"]["clip"]
    assert clip["finite"] and len(clip["loss"]) == 8
    assert clip["loss"][-1] < clip["loss"][0]


def test_cli_gradflow_writes_csv_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    demo = [] if _has_optim() else ["--no-demo"]
    out = tmp_path / "gf"
    rc = main(["study", "gradflow", "--cells", "rnn_tanh,lstm", "--T", "12", "--hidden", "6",
               "--weight-scale", "0.5,2", "--out", str(out), "--demo-steps", "3"] + demo)
    assert rc == 0
    text = capsys.readouterr().out
    assert "rate per step" in text and "lstm" in text
    with open(out / "gradflow.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["cell", "weight_scale", "distance", "grad_norm", "cell_grad_norm",
                             "jac_norm", "jac_sigma", "decay_rate"]
    assert len(rows) == 2 * 2 * 12
    line = [r for r in rows if r["cell"] == "rnn_tanh" and r["weight_scale"] == "0.5"]
    g = np.array([float(r["grad_norm"]) for r in line])
    assert float(line[0]["decay_rate"]) == pytest.approx(decay_rate(g), rel=1e-5)
    assert all(r["cell_grad_norm"] == "" for r in line)
    assert all(r["cell_grad_norm"] != "" for r in rows if r["cell"] == "lstm")
    assert (out / "gradflow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["study", "gradflow", "--cells", "elman", "--out", str(out)]) == 2
    assert main(["study", "gradflow", "--weight-scale", "-1", "--out", str(out)]) == 2


def _has_optim():
    try:
        from minirnn.train.optim import clip_grad_norm  # noqa: F401
    except ImportError:
        return False
    return True


def test_gradient_flow_numba_backend_agrees_with_numpy():
    pytest.importorskip("minirnn.kernels")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 3))
    ref = gradient_flow(_model("lstm", 3, 4, layers=2, seed=1), x, loss="all")
    model = minirnn.LSTM(3, 4, num_layers=2, seed=1, backend="numba")
    fast = gradient_flow(model, x, loss="all")
    for k in range(2):
        assert_close(fast.dh[k], ref.dh[k], rtol=1e-12, name=f"dh[{k}]")
        assert_close(fast.dc[k], ref.dc[k], rtol=1e-12, name=f"dc[{k}]")
    assert_close(fast.jac[0], ref.jac[0], rtol=1e-12, name="jac")


def test_gradient_flow_layouts_agree():
    """Unbatched (T, I) and batch_first (1, T, I) give the (T, 1, I) numbers exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    h, c = rng.standard_normal((4, 2)), rng.standard_normal((4, 4))
    kw = dict(num_layers=2, bidirectional=True, proj_size=2, seed=0)
    ref = gradient_flow(minirnn.LSTM(3, 4, **kw), x[:, None], (h[:, None], c[:, None]))
    flat = gradient_flow(minirnn.LSTM(3, 4, **kw), x, (h, c))
    bf = gradient_flow(minirnn.LSTM(3, 4, batch_first=True, **kw), x[None],
                       (h[:, None], c[:, None]))
    for other in (flat, bf):
        for k in range(4):
            np.testing.assert_array_equal(other.dh[k], ref.dh[k])
            np.testing.assert_array_equal(other.dc[k], ref.dc[k])
        for d in range(2):
            np.testing.assert_array_equal(other.jac[d], ref.jac[d])
