"""minirnn.trace: the values are the engine's (exact h_n, accumulated grads), time positions are
mapped back for the reverse direction, and first_nonfinite finds planted NaN/Inf in order."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.nn import make_recurrent
from minirnn.testing import assert_close
from minirnn.debug.tracing import trace


def make(cell, layers=2, bidirectional=True, I=3, H=4, proj=0, seed=0, **kw):
    if proj:
        kw["proj_size"] = proj
    return make_recurrent(cell, I, H, num_layers=layers, bidirectional=bidirectional, seed=seed,
                          **kw)


def data(model, T, B, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, model.input_size))
    LD, P = model.num_layers * model.num_directions, model.out_size
    h0 = rng.normal(size=(LD, B, P))
    hx = (h0, rng.normal(size=(LD, B, model.hidden_size))) if model.mode == "lstm" else h0   # noqa
    d_out = rng.normal(size=(T, B, model.num_directions * P))
    return x, hx, d_out


CASES = [("rnn_tanh", 0), ("rnn_relu", 0), ("lstm", 0), ("lstm", 2), ("gru", 0)]


@settings(max_examples=12, deadline=None)
@given(case=st.sampled_from(CASES), layers=st.integers(1, 2), bidir=st.booleans(),
       T=st.integers(1, 5), B=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_last_h_is_forward_h_n_exactly_and_grads_equal_backward(case, layers, bidir, T, B, seed):
    cell, proj = case
    model = make(cell, layers, bidir, proj=proj, seed=seed)
    x, hx, d_out = data(model, T, B, seed)
    lengths = np.random.default_rng(seed + 1).integers(1, T + 1, size=B)
    model.zero_grad()
    tr = trace(model, x, hx, lengths=lengths, d_out=d_out)
    ref_out, state = model.forward(x, hx, lengths=lengths)          # an independent second run
    h_n, c_n = state if cell == "lstm" else (state, None)
    D = model.num_directions
    for layer in range(layers):
        for b in range(B):
            last = int(lengths[b]) - 1
            # forward direction ends at the sequence's last step; the reverse one at t = 0
            assert (tr.step(last, layer, 0).h[b] == h_n[layer * D, b]).all()
            if cell == "lstm":
                assert (tr.step(last, layer, 0).c[b] == c_n[layer * D, b]).all()
            if bidir:
                assert (tr.step(0, layer, 1).h[b] == h_n[layer * D + 1, b]).all()
                if cell == "lstm":
                    assert (tr.step(0, layer, 1).c[b] == c_n[layer * D + 1, b]).all()
    # the last layer's per-direction outputs, concatenated, ARE the model's output
    top = np.concatenate([tr.series("out", layers - 1, d) for d in range(D)], axis=-1)
    assert (top == ref_out).all()
    # running weight-gradient sums, completed, equal what backward accumulated in model.grads
    for per_layer in tr.weight_grads:
        for name, g in per_layer.items():
            assert_close(g, model.grads[name], rtol=1e-12, atol=1e-14, name=name)
    # the running norm at the step the backward visits last is the norm of the full gradient
    for k, norms in enumerate(tr.dW_norms):
        layer, d = divmod(k, D)
        last_visited = 0 if d == 0 else T - 1
        sfx = "_reverse" if d else ""
        full = np.linalg.norm(model.grads[f"weight_ih_l{layer}{sfx}"])
        assert norms["weight_ih"][last_visited] == pytest.approx(full, rel=1e-12, abs=1e-14)


def test_against_torch_layer_by_layer_with_lengths_reverse_direction():
    """An independent reference: torch's packed nn.LSTM (1 layer, bidirectional) per position."""
    torch = pytest.importorskip("torch")
    model = make("lstm", layers=1, bidirectional=True, H=5)
    T, B = 6, 3
    x, hx, _ = data(model, T, B, 7)
    lengths = np.array([6, 2, 4])
    tr = trace(model, x, hx, lengths=lengths)
    ref = torch.nn.LSTM(3, 5, bidirectional=True, dtype=torch.float64)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.from_numpy(model.params[name]))
        pack = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                       enforce_sorted=False)
        out, _ = ref(pack, (torch.from_numpy(hx[0]), torch.from_numpy(hx[1])))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    out = out.numpy()
    for t in range(T):
        for d in range(2):
            assert_close(tr.step(t, 0, d).out, out[t, :, d * 5:(d + 1) * 5], rtol=1e-12,
                         atol=1e-14, name=f"out t={t} d={d}")


@pytest.mark.parametrize("d", [0, 1])
def test_gates_at_t_match_a_naive_step_from_the_neighbouring_state(d):
    """i, f, g, o, c at position t recomputed by hand from x_t and the state the direction came
    from (t-1 forward, t+1 reverse; h0 at the sequence's start)."""
    model = make("lstm", layers=1, bidirectional=True, H=3)
    T, B = 5, 2
    x, (h0, c0), _ = data(model, T, B, 3)
    lengths = np.array([5, 3])
    tr = trace(model, x, (h0, c0), lengths=lengths)
    sfx = "_reverse" if d else ""
    W, U = model.params["weight_ih_l0" + sfx], model.params["weight_hh_l0" + sfx]
    bias = model.params["bias_ih_l0" + sfx] + model.params["bias_hh_l0" + sfx]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for b in range(B):
        L = lengths[b]
        for t in range(L):
            start = t == 0 if d == 0 else t == L - 1
            nb = t - 1 if d == 0 else t + 1
            hp = h0[d, b] if start else tr.step(nb, 0, d).h[b]
            cp = c0[d, b] if start else tr.step(nb, 0, d).c[b]
            z = W @ x[t, b] + U @ hp + bias
            i, f, g, o = sig(z[:3]), sig(z[3:6]), np.tanh(z[6:9]), sig(z[9:])
            rec = tr.step(t, 0, d)
            for name, want in zip("ifgo", (i, f, g, o)):
                assert_close(getattr(rec, name)[b], want, rtol=1e-12, name=f"{name} t={t} b={b}")
            assert_close(rec.c[b], f * cp + i * g, rtol=1e-12, name="c")


def test_backward_records_and_running_norms_match_the_step_gradients():
    model = make("rnn_tanh", layers=1, bidirectional=False, H=4)
    T, B = 5, 2
    x, h0, d_out = data(model, T, B, 11)
    tr = trace(model, x, h0, d_out=d_out)
    # independent: dh_t = d_out_t + da_{t+1} W_hh (no lengths), da = dh (1 - h^2)
    W_hh = model.params["weight_hh_l0"]
    for t in reversed(range(T)):
        rec = tr.step(t)
        dh = d_out[t] + (tr.step(t + 1).da @ W_hh if t + 1 < T else 0)
        assert_close(rec.dh, dh, rtol=1e-12, name=f"dh t={t}")
        assert_close(rec.da, rec.dh * (1 - rec.h ** 2), rtol=1e-12, name=f"da t={t}")
        acc = sum(tr.step(s).da.T @ x[s] for s in range(t, T))
        assert rec.dW_norms["weight_ih"] == pytest.approx(np.linalg.norm(acc), rel=1e-12)


def test_lstm_step_record_attributes_and_slices():
    model = make("lstm", layers=1, bidirectional=False, H=3)
    x, hx, d_out = data(model, 4, 2, 5)
    tr = trace(model, x, hx, d_out=d_out)
    rec = tr.step(2)
    for name in ("x", "i", "f", "g", "o", "c", "h", "out", "dh", "dc", "dgates", "di", "df", "dg",
                 "do"):
        assert isinstance(getattr(rec, name), np.ndarray), name
    assert (np.concatenate([rec.di, rec.df, rec.dg, rec.do], axis=-1) == rec.dgates).all()
    assert (rec.i == model.last_caches[0].gates[2, :, :3]).all()
    assert set(rec.dW_norms) == {"weight_ih", "weight_hh", "bias"}


def test_batch_first_and_unbatched_give_the_time_major_trace():
    model = make("rnn_tanh", layers=1, bidirectional=True, H=3)
    x, _, _ = data(model, 4, 2, 9)
    tm = trace(model, x)
    model.batch_first = True
    bf = trace(model, x.transpose(1, 0, 2).copy())
    model.batch_first = False
    one = trace(model, x[:, 1, :].copy())
    for t in range(4):
        for d in range(2):
            assert (bf.step(t, 0, d).h == tm.step(t, 0, d).h).all()
            assert one.step(t, 0, d).h.shape == (1, 3)
            assert_close(one.step(t, 0, d).h[0], tm.step(t, 0, d).h[1], rtol=1e-13, name="h")
    assert (one.step(3, 0, 0).h[0] == one.h_n[0]).all()


def test_to_frame_is_tidy_and_its_stats_are_the_records():
    model = make("lstm", layers=2, bidirectional=True, H=3)
    T, B = 3, 2
    x, hx, d_out = data(model, T, B, 2)
    tr = trace(model, x, hx, d_out=d_out)
    rows = tr.to_frame()
    n_fwd, n_bwd = len(tr.variables("forward")), len(tr.variables("backward"))
    assert len(rows) == 2 * 2 * T * B * (n_fwd + n_bwd)
    row = next(r for r in rows if (r["phase"], r["layer"], r["direction"], r["t"], r["variable"],
                                   r["batch"]) == ("backward", 1, 1, 2, "dc", 1))
    v = tr.step(2, 1, 1).dc[1]
    assert row["mean"] == pytest.approx(v.mean()) and row["max"] == pytest.approx(v.max())
    assert row["min"] == pytest.approx(v.min()) and row["norm"] == pytest.approx(np.linalg.norm(v))


def test_first_nonfinite_none_when_all_finite():
    model = make("lstm", layers=2)
    x, hx, d_out = data(model, 4, 2, 1)
    assert trace(model, x, hx, d_out=d_out).first_nonfinite() is None


def test_first_nonfinite_planted_nan_in_input():
    model = make("rnn_tanh", layers=2)
    x, hx, d_out = data(model, 5, 3, 1)
    x[3, 1, 2] = np.nan
    bad = trace(model, x, hx, d_out=d_out).first_nonfinite()
    assert (bad.phase, bad.layer, bad.direction, bad.t, bad.tensor, bad.index) == \
        ("forward", 0, 0, 3, "x", (1, 2))


def test_first_nonfinite_planted_nan_weight_in_reverse_direction_maps_time_back():
    model = make("lstm", layers=2, H=3)
    x, hx, _ = data(model, 5, 2, 4)
    lengths = np.array([3, 5])
    model.params["bias_ih_l1_reverse"][3 + 1] = np.nan      # forget gate, unit 1
    bad = trace(model, x, hx, lengths=lengths).first_nonfinite()
    # layer 1's reverse direction starts at each sequence's last step: t = lengths[0] - 1 for b=0
    assert (bad.phase, bad.layer, bad.direction, bad.t, bad.tensor, bad.index, bad.step) == \
        ("forward", 1, 1, 2, "f", (0, 1), 0)


def test_first_nonfinite_huge_weights_overflow_where_a_naive_loop_overflows():
    model = make("rnn_relu", layers=1, bidirectional=False, H=4, seed=3)
    for p in model.params.values():
        p *= 1e120
    x, h0, _ = data(model, 6, 2, 3)
    x, h0 = np.abs(x), np.abs(h0)
    # independent: plain float64 loop, first step whose pre-activation is not finite
    W, U = model.params["weight_ih_l0"], model.params["weight_hh_l0"]
    bias = model.params["bias_ih_l0"] + model.params["bias_hh_l0"]
    h, want = h0[0], None
    with np.errstate(all="ignore"):
        for t in range(6):
            a = x[t] @ W.T + h @ U.T + bias
            if want is None and not np.isfinite(a).all():
                b, j = np.argwhere(~np.isfinite(a))[0]
                want = (t, (int(b), int(j)))
            h = np.maximum(a, 0)
    assert want is not None
    bad = trace(model, x, h0, loss="sum").first_nonfinite()
    assert (bad.phase, bad.tensor, bad.t, bad.index) == ("forward", "a", *want)


def test_first_nonfinite_backward_only_nan_in_d_out():
    model = make("rnn_tanh", layers=2)
    x, hx, d_out = data(model, 5, 2, 8)
    d_out[2, 1, 0] = np.nan                  # last layer, forward direction's half, t = 2
    bad = trace(model, x, hx, d_out=d_out).first_nonfinite()
    assert (bad.phase, bad.layer, bad.direction, bad.t, bad.tensor, bad.index) == \
        ("backward", 1, 0, 2, "dh", (1, 0))


def test_bad_input_is_refused_clearly():
    model = make("rnn_tanh", layers=1, bidirectional=False)
    x, h0, d_out = data(model, 3, 1, 0)
    tr = trace(model, x, h0)
    with pytest.raises(ValueError, match="t: expected 0 <= t < 3, got 3"):
        tr.step(3)
    with pytest.raises(ValueError, match="direction"):
        tr.step(0, direction=1)
    with pytest.raises(TypeError, match="t: expected an int"):
        tr.step(1.5)
    with pytest.raises(KeyError, match="dh"):
        tr.series("dh")                       # no backward ran
    with pytest.raises(ValueError, match="d_out, loss"):
        trace(model, x, h0, d_out=d_out, loss="sum")
    with pytest.raises(ValueError, match="loss: expected 'sum'"):
        trace(model, x, h0, loss="mse")
    with pytest.raises(TypeError, match="model"):
        trace(object(), x)
    assert not hasattr(tr.step(0), "dh")


def test_loss_callable_gives_its_d_out():
    model = make("rnn_tanh", layers=1, bidirectional=False)
    x, h0, d_out = data(model, 3, 2, 0)
    a = trace(model, x, h0, loss=lambda out: (0.0, d_out))
    b = trace(model, x, h0, d_out=d_out)
    assert (a.step(0).dh == b.step(0).dh).all()


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_numba_backend_trace_is_exact_too(cell):
    pytest.importorskip("numba")
    kernels = pytest.importorskip("minirnn.kernels")
    if not hasattr(kernels, "rnn_forward"):
        pytest.skip("minirnn.kernels does not provide the backend functions yet")
    model = make(cell, layers=2, bidirectional=True, backend="numba")
    x, hx, d_out = data(model, 4, 2, 6)
    lengths = np.array([4, 2])
    model.zero_grad()
    tr = trace(model, x, hx, lengths=lengths, d_out=d_out)
    _, state = model.forward(x, hx, lengths=lengths)
    h_n = state[0] if cell == "lstm" else state
    for b in range(2):
        assert (tr.step(int(lengths[b]) - 1, 1, 0).h[b] == h_n[2, b]).all()
        assert (tr.step(0, 1, 1).h[b] == h_n[3, b]).all()
    for per_layer in tr.weight_grads:
        for name, g in per_layer.items():
            assert_close(g, model.grads[name], rtol=1e-12, atol=1e-14, name=name)
