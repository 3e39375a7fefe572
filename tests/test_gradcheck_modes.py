"""gradcheck's modes: forward mode against differences (fwd), uᵀJv (fast), the dot-product
test between the JVP and the BPTT (dot) and the HVP against differences of the gradient
(order=2). Each passes on correct models and fails -- on exactly the planted tensor, naming
its worst element -- when a wrong derivative is planted; the CLI flags drive them."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.cli import main
from minirnn.cells import lstm as lstm_ref
from minirnn.cells import rnn as rnn_ref
from minirnn.grad.gradcheck import gradcheck
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent


def _model(cell, layers=1, bidirectional=False, proj=0, seed=0):
    kw = {"proj_size": proj} if proj else {}
    return make_recurrent(cell, 3, 4, num_layers=layers, bidirectional=bidirectional, seed=seed,
                          **kw)


def _data(model, T=3, B=2, seed=0):
    rng = np.random.default_rng(seed)
    LD = model.num_layers * model.num_directions
    x = rng.standard_normal((T, B, model.input_size))
    states = tuple(rng.standard_normal((LD, B, model.out_size if n == "h" else model.hidden_size))
                   for n in model.spec.state_names)
    return x, model.state_value(states)


def _failed(report, check):
    return [r.name for r in report.rows if r.check == check and not r.passed]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell=st.sampled_from(BUILTIN), layers=st.integers(1, 2), bidirectional=st.booleans(),
       proj=st.booleans(), use_lengths=st.booleans(), seed=st.integers(0, 1000))
def test_every_mode_passes_on_correct_models(cell, layers, bidirectional, proj, use_lengths,
                                             seed):
    model = _model(cell, layers, bidirectional, 2 if proj and cell == "lstm" else 0, seed)
    x, hx = _data(model, seed=seed)
    lengths = [3, 1] if use_lengths else None
    for kw in (dict(mode="fwd"), dict(mode="fast", dot=True), dict(order=2)):
        report = gradcheck(model, x, hx, lengths=lengths, max_entries=3, seed=seed, **kw)
        assert report.passed, report.table()
        checks = {r.check for r in report.rows}
        assert checks == {"fwd": {"fwd", "dot"}, "fast": {"fast", "dot"}}.get(
            kw.get("mode"), {"hvp"}), checks
        assert all(r.worst for r in report.rows)


def test_planted_tangent_bug_fails_fwd_and_dot_on_exactly_that_tensor(monkeypatch):
    """Drop h_{t-1} Ẇ_hh^T from the Elman tangent: the JVP along W_hh alone goes wrong; the
    BPTT (mode="rev") still passes, so only the modes that use forward mode can see it."""
    model = _model("rnn_tanh", seed=1)
    x, hx = _data(model, seed=1)
    orig = rnn_ref.step_jvp

    def planted(x_t, h_prev, a_t, h_t, x_dot_t, h_prev_dot, w_ih, w_hh, w_ih_dot, w_hh_dot,
                b_dot, nonlinearity="tanh"):
        return orig(x_t, h_prev, a_t, h_t, x_dot_t, h_prev_dot, w_ih, w_hh, w_ih_dot,
                    np.zeros_like(w_hh_dot), b_dot, nonlinearity)
    monkeypatch.setattr(rnn_ref, "step_jvp", planted)
    report = gradcheck(model, x, hx, mode="fwd")
    assert _failed(report, "fwd") == ["weight_hh_l0"], report.table()
    assert _failed(report, "dot") == ["weight_hh_l0"], report.table()
    worst = next(r.worst for r in report.rows if r.check == "fwd" and not r.passed)
    assert "/dweight_hh_l0[" in worst
    assert gradcheck(model, x, hx, mode="rev").passed
    with pytest.raises(AssertionError, match="fwd weight_hh_l0: max abs err .* at d"):
        gradcheck(model, x, hx, mode="fwd", raise_on_failure=True)


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu"])
def test_planted_backward_bug_fails_fast_and_dot_on_exactly_x(monkeypatch, cell):
    model = _model(cell, seed=2)
    x, hx = _data(model, seed=2)
    orig = rnn_ref.step_backward

    def planted(dh_t, a_t, h_t, w_ih, w_hh, nonlinearity="tanh"):
        dx, dh_prev, da = orig(dh_t, a_t, h_t, w_ih, w_hh, nonlinearity)
        return -dx, dh_prev, da
    monkeypatch.setattr(rnn_ref, "step_backward", planted)
    report = gradcheck(model, x, hx, mode="fast", dot=True)
    assert _failed(report, "fast") == ["x"], report.table()
    assert _failed(report, "dot") == ["x"], report.table()
    assert report.mode == "fast" and report.to_dict()["rows"][0]["check"] == "fast"


def test_planted_second_order_bug_fails_order_2_on_exactly_weight_hr(monkeypatch):
    """Double R{dW_hr} in the LSTM's tangent backward: the first-order checks cannot see it,
    order=2 fails on weight_hr alone, in every layer."""
    model = _model("lstm", layers=2, proj=2, seed=3)
    x, hx = _data(model, seed=3)
    orig = lstm_ref.step_backward_jvp

    def planted(*args, **kw):
        res, res_dot = orig(*args, **kw)
        return res, res_dot[:4] + (2.0 * res_dot[4],)
    monkeypatch.setattr(lstm_ref, "step_backward_jvp", planted)
    report = gradcheck(model, x, hx, order=2)
    assert _failed(report, "hvp") == ["weight_hr_l0", "weight_hr_l1"], report.table()
    assert gradcheck(model, x, hx, mode="fwd", max_entries=4).passed
    assert gradcheck(model, x, hx, lengths=[3, 2], eps=1e-6, order=2, mode="rev").failed


def test_gradcheck_mode_arguments_and_refusals():
    model = _model("gru", seed=4)
    x, hx = _data(model, seed=4)
    report = gradcheck(model, x, hx, mode="rev", order=1, dot=False, raise_on_failure=True)
    assert report.passed and {r.check for r in report.rows} == {"rev"}
    assert "worst element" in report.table() and "mode=rev" in report.table()
    assert report.rows[0].worst.startswith("x[")
    d = json.loads(json.dumps(report.to_dict()))
    assert d["order"] == 1 and d["rows"][0]["worst"] == report.rows[0].worst
    assert {r.check for r in gradcheck(model, x, hx, mode="rev", dot=True).rows} == {"rev", "dot"}
    assert {r.check for r in gradcheck(model, x, hx, mode="fwd", dot=False,
                                       max_entries=2).rows} == {"fwd"}
    with pytest.raises(ValueError, match="mode"):
        gradcheck(model, x, hx, mode="forward")
    with pytest.raises(ValueError, match="order"):
        gradcheck(model, x, hx, order=3)
    with pytest.raises(TypeError, match="dot"):
        gradcheck(model, x, hx, dot="yes")
    cell = minirnn.GRUCell(3, 4, seed=1)
    with pytest.raises(TypeError, match="T=1"):
        gradcheck(cell, x[0], mode="fwd")
    assert gradcheck(cell, x[0], mode="fast").passed     # fast mode needs only the BPTT
    report.raise_if_failed()                              # a passed report: nothing happens


def test_cli_mode_order_and_dot_flags(monkeypatch, tmp_path, capsys):
    base = ["gradcheck", "--cell", "lstm", "--layers", "2", "--T", "3", "--B", "2",
            "--input-size", "2", "--hidden", "3", "--max-entries", "3"]
    path = tmp_path / "r.json"
    assert main(base + ["--mode", "fwd", "--json", str(path)]) == 0
    text = capsys.readouterr().out
    assert "PASSED" in text and "dot " in text and "fwd " in text
    assert json.loads(path.read_text())["mode"] == "fwd"
    assert main(base + ["--mode", "fast", "--dot"]) == 0
    assert main(base + ["--order", "2", "--lengths", "--bidirectional"]) == 0
    assert "hvp " in capsys.readouterr().out
    orig = lstm_ref.step_jvp

    def planted(*args, **kw):
        h_dot, c_dot, g = orig(*args, **kw)
        return 1.01 * h_dot, c_dot, g
    monkeypatch.setattr(lstm_ref, "step_jvp", planted)
    assert main(base + ["--mode", "fwd"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(base) == 0                                # the BPTT itself is still right
