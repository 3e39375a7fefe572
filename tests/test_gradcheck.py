"""gradcheck: passes on correct models of every kind, and fails — on exactly the affected
tensors — when a wrong gradient is planted in the reference backward."""
import importlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minirnn
from minirnn import functional
from minirnn.grad.gradcheck import GradcheckReport, gradcheck
from minirnn.cli import main
from minirnn.cells import gru as gru_ref
from minirnn.cells import lstm as lstm_ref
from minirnn.cells import rnn as rnn_ref
from minirnn.cells import BUILTIN
from minirnn.nn import make_cell, make_recurrent


def _model(mode, I, H, layers=1, bidirectional=False, proj=0, bias=True, batch_first=False,
           dropout=0.0, seed=0, dtype="float64"):
    kw = dict(num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first,
              dropout=dropout, seed=seed, dtype=dtype)
    if proj:
        kw["proj_size"] = proj
    return make_recurrent(mode, I, H, **kw)


def _data(model, T, B, rng, unbatched=False):
    """Fresh non-zero input and states in the model's layout."""
    LD, P, I = model.num_layers * model.num_directions, model.out_size, model.input_size
    if unbatched:
        x, hs = rng.standard_normal((T, I)), (LD,)
    else:
        x = rng.standard_normal((B, T, I) if model.batch_first else (T, B, I))
        hs = (LD, B)
    states = tuple(rng.standard_normal(hs + ((P,) if n == "h" else (model.hidden_size,)))
                   for n in model.spec.state_names)
    return x, model.state_value(states)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(BUILTIN), layers=st.integers(1, 2),
       bidirectional=st.booleans(), bias=st.booleans(), batch_first=st.booleans(),
       use_lengths=st.booleans(), proj=st.booleans(), unbatched=st.booleans(),
       T=st.integers(1, 4), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(2, 3),
       seed=st.integers(0, 10_000))
def test_gradcheck_passes_every_configuration(mode, layers, bidirectional, bias, batch_first,
                                              use_lengths, proj, unbatched, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    model = _model(mode, I, H, layers, bidirectional, 1 if (proj and mode == "lstm") else 0,
                   bias, batch_first, seed=seed)
    x, hx = _data(model, T, B, rng, unbatched)
    lengths = None
    if use_lengths and not unbatched:
        lengths = rng.integers(1, T + 1, size=B)
    report = gradcheck(model, x, hx, lengths=lengths, max_entries=12, seed=seed)
    assert report.passed, report.table()
    names = {r.name for r in report.rows}
    assert {"x", "h0"} <= names and set(model.params) <= names
    assert ("c0" in names) == (mode == "lstm")
    assert all(r.checked == min(12, r.total) for r in report.rows)


@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("batched", [True, False])
def test_gradcheck_passes_cells(cell, batched):
    rng = np.random.default_rng(3)
    model = make_cell(cell, 3, 4, seed=1)
    shape = (2, 4) if batched else (4,)
    states = tuple(rng.standard_normal(shape) for _ in model.spec.state_names)
    hx = states if len(states) > 1 else states[0]
    x = rng.standard_normal((2, 3) if batched else (3,))
    report = gradcheck(model, x, hx)
    assert report.passed, report.table()
    assert {r.name for r in report.rows} == {"x", "h0", *(["c0"] if cell == "lstm" else []),
                                             *model.params}


# ----------------------------------------------------------------------------
# planted bugs: each must fail on exactly the tensors it corrupts

def _wrap_step(monkeypatch, module, change):
    orig = module.step_backward
    monkeypatch.setattr(module, "step_backward", lambda *a, **k: change(*orig(*a, **k)))


def _wrap_seq(monkeypatch, name, change):
    """name: "<family>_backward"; the numpy backend runs that family's reference module."""
    family, fn = name.rsplit("_", 1)
    module = importlib.import_module("minirnn.cells." + family)
    orig = getattr(module, fn)
    monkeypatch.setattr(module, fn, lambda *a, **k: change(*orig(*a, **k)))


def _check(model, T=3, B=2, data_seed=0, **kw):
    x, hx = _data(model, T, B, np.random.default_rng(data_seed))
    return gradcheck(model, x, hx, **kw)


def _dx_sign(dx, dh_prev, da):                       # rnn: dx_t = -da W_ih
    return -dx, dh_prev, da


def _rnn_db_dropped(dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    return dx, dh0, dw_ih, dw_hh, db_ih, np.zeros_like(db_hh)


def _rnn_dw_hh_sign(dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    return dx, dh0, dw_ih, -dw_hh, db_ih, db_hh


def _lstm_carry_dropped(dx, dh_prev, dc_prev, dz, dc, dw_hr):   # dc_{t-1} = dc * f  ->  0
    return dx, dh_prev, np.zeros_like(dc_prev), dz, dc, dw_hr


def _lstm_dw_hr_wrong(dx, dh_prev, dc_prev, dz, dc, dw_hr):
    return dx, dh_prev, dc_prev, dz, dc, 2.0 * dw_hr


def _lstm_dx_wrong(dx, dh_prev, dc_prev, dz, dc, dw_hr):
    return 1.01 * dx, dh_prev, dc_prev, dz, dc, dw_hr


def _lstm_db_ih_dropped(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr):
    return dx, dh0, dc0, dw_ih, dw_hh, np.zeros_like(db_ih), db_hh, dw_hr


def _gru_reset_before_product(dx, dh_prev, dgi, dgh):
    """The classic GRU slip: treating r as applied BEFORE the hidden product (n = tanh(gi_n +
    (r*h) W_hn^T + b_hn)), which drops r from the hidden side's n-block gradient."""
    H = dgi.shape[-1] // 3
    wrong = dgh.copy()
    wrong[..., 2 * H:] = dgi[..., 2 * H:]
    return dx, dh_prev, dgi, wrong


def test_planted_gru_reset_gate_before_hidden_product_fails_on_exactly_those_tensors(monkeypatch):
    """T = 1: the hidden-side n block reaches W_hh, b_hh and (through dh_{t-1} = ... + dgh W_hh)
    h0, and nothing else; x, W_ih and b_ih see only the input side."""
    model = _model("gru", 3, 4, seed=3)
    assert _check(model, T=1).passed
    orig = gru_ref.step_backward
    # the bug changes dgh, then dh_prev must be rebuilt from it as the step would
    def planted(dh_t, h_prev, gates_t, hn_t, w_ih, w_hh):
        dx, dh_prev, dgi, dgh = orig(dh_t, h_prev, gates_t, hn_t, w_ih, w_hh)
        _, _, _, wrong = _gru_reset_before_product(dx, dh_prev, dgi, dgh)
        return dx, dh_prev + (wrong - dgh) @ w_hh, dgi, wrong
    monkeypatch.setattr(gru_ref, "step_backward", planted)
    report = _check(model, T=1)
    assert sorted(report.failed) == ["bias_hh_l0", "h0", "weight_hh_l0"], report.table()


def test_planted_gru_dropped_carry_fails_only_h0(monkeypatch):
    """Dropping dh * z (the state's direct path into h_{t-1}) at T = 1 corrupts only dh0."""
    model = _model("gru", 3, 4, seed=4)
    orig = gru_ref.step_backward

    def planted(dh_t, h_prev, gates_t, hn_t, w_ih, w_hh):
        dx, dh_prev, dgi, dgh = orig(dh_t, h_prev, gates_t, hn_t, w_ih, w_hh)
        H = gates_t.shape[-1] // 3
        return dx, dh_prev - dh_t * gates_t[..., H:2 * H], dgi, dgh
    monkeypatch.setattr(gru_ref, "step_backward", planted)
    report = _check(model, T=1)
    assert report.failed == ["h0"], report.table()


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu"])
def test_planted_rnn_dx_sign_flip_fails_only_x(monkeypatch, mode):
    model = _model(mode, 3, 4, seed=1)
    assert _check(model).passed
    _wrap_step(monkeypatch, rnn_ref, _dx_sign)
    report = _check(model)
    assert report.failed == ["x"], report.table()


def test_planted_rnn_dropped_bias_grad_fails_only_that_bias(monkeypatch):
    _wrap_seq(monkeypatch, "rnn_backward", _rnn_db_dropped)
    report = _check(_model("rnn_tanh", 3, 4, seed=2))
    assert report.failed == ["bias_hh_l0"], report.table()


def test_planted_rnn_weight_grad_sign_fails_both_directions(monkeypatch):
    _wrap_seq(monkeypatch, "rnn_backward", _rnn_dw_hh_sign)
    report = _check(_model("rnn_tanh", 3, 4, bidirectional=True, seed=2))
    assert report.failed == ["weight_hh_l0", "weight_hh_l0_reverse"], report.table()


def test_planted_lstm_dropped_carry_fails_only_c0_for_one_step(monkeypatch):
    """With T=1 the dc * f carry reaches nothing but c0 (a cell: exactly torch's hx[1])."""
    model = minirnn.LSTMCell(3, 4, seed=1)
    rng = np.random.default_rng(0)
    x, hx = rng.standard_normal((2, 3)), (rng.standard_normal((2, 4)), rng.standard_normal((2, 4)))
    assert gradcheck(model, x, hx).passed
    _wrap_step(monkeypatch, lstm_ref, _lstm_carry_dropped)
    report = gradcheck(model, x, hx)
    assert report.failed == ["c0"], report.table()


def test_planted_lstm_dropped_carry_fails_everything_upstream_in_time(monkeypatch):
    _wrap_step(monkeypatch, lstm_ref, _lstm_carry_dropped)
    report = _check(_model("lstm", 3, 4, seed=1), T=4)
    assert set(report.failed) == {"x", "h0", "c0", "weight_ih_l0", "weight_hh_l0",
                                  "bias_ih_l0", "bias_hh_l0"}, report.table()


def test_planted_lstm_projection_grad_fails_only_weight_hr(monkeypatch):
    _wrap_step(monkeypatch, lstm_ref, _lstm_dw_hr_wrong)
    report = _check(_model("lstm", 3, 4, layers=2, proj=2, seed=4))
    assert report.failed == ["weight_hr_l0", "weight_hr_l1"], report.table()


def test_planted_lstm_dx_in_two_layers_fails_x_and_the_layer_below(monkeypatch):
    """dx of layer 1 is the output gradient of layer 0: a wrong dx corrupts layer 0 too,
    but never layer 1's own parameters."""
    _wrap_step(monkeypatch, lstm_ref, _lstm_dx_wrong)
    report = _check(_model("lstm", 3, 4, layers=2, seed=5))
    layer1 = {"weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"}
    assert "x" in report.failed and "weight_ih_l0" in report.failed
    assert not layer1 & set(report.failed), report.table()


def test_planted_lstm_dropped_bias_grad(monkeypatch):
    _wrap_seq(monkeypatch, "lstm_backward", _lstm_db_ih_dropped)
    report = _check(_model("lstm", 3, 4, seed=6), max_entries=8)
    assert report.failed == ["bias_ih_l0"], report.table()


# ----------------------------------------------------------------------------
# contract: sampling, model state, refusals, report

def test_max_entries_sampling_is_reproducible():
    model = _model("lstm", 4, 5, seed=0)
    r1 = _check(model, max_entries=7, seed=11)
    r2 = _check(model, max_entries=7, seed=11, params=["weight_hh_l0"])
    r3 = _check(model, max_entries=7, seed=12)
    by1, by3 = {r.name: r for r in r1.rows}, {r.name: r for r in r3.rows}
    assert [r.name for r in r2.rows] == ["weight_hh_l0"]
    np.testing.assert_array_equal(by1["weight_hh_l0"].indices, r2.rows[0].indices)
    assert by1["weight_hh_l0"].checked == 7 and by1["weight_hh_l0"].total == 20 * 5
    assert len(set(by1["weight_hh_l0"].indices)) == 7
    assert not np.array_equal(by1["weight_ih_l0"].indices, by3["weight_ih_l0"].indices)
    assert r1.rows[0].max_abs_err == _check(model, max_entries=7, seed=11).rows[0].max_abs_err


def test_grads_mode_and_dropout_restored():
    model = _model("rnn_tanh", 3, 4, layers=2, dropout=0.5, seed=0)
    rng = np.random.default_rng(1)
    for _, _, g in model.named_parameters():
        g[...] = rng.standard_normal(g.shape)
    before = model.grad_dict()
    params_before = model.state_dict()
    assert model.training
    report = _check(model)                    # dropout would make finite differences noise
    assert report.passed, report.table()
    assert model.training
    for name, g in model.grad_dict().items():
        np.testing.assert_array_equal(g, before[name])
    for name, p in model.state_dict().items():
        np.testing.assert_array_equal(p, params_before[name])


def test_refusals():
    with pytest.raises(ValueError, match="float64"):
        _check(_model("lstm", 3, 4, dtype="float32"))
    with pytest.raises(KeyError, match="weight_nope"):
        _check(_model("lstm", 3, 4), params=["weight_nope"])
    with pytest.raises(ValueError, match="max_entries"):
        _check(_model("lstm", 3, 4), max_entries=0)
    with pytest.raises(TypeError, match="model"):
        gradcheck(object(), np.ones((2, 1, 3)))
    with pytest.raises(ValueError, match="lengths"):
        gradcheck(minirnn.RNNCell(3, 4), np.ones((2, 3)), lengths=[1, 1])


def test_report_table_and_dict():
    report = _check(_model("rnn_relu", 3, 4, seed=3))
    assert isinstance(report, GradcheckReport)
    text = report.table()
    assert "weight_hh_l0" in text and "PASSED" in text
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] is True and len(d["rows"]) == len(report.rows)
    assert minirnn.gradcheck is gradcheck


def test_cli_exit_codes(monkeypatch, tmp_path, capsys):
    args = ["gradcheck", "--cell", "lstm", "--layers", "2", "--bidirectional", "--T", "3",
            "--B", "2", "--input-size", "2", "--hidden", "3", "--lengths", "--max-entries", "5"]
    path = tmp_path / "r.json"
    assert main(args + ["--json", str(path)]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert json.loads(path.read_text())["passed"] is True
    assert main(["gradcheck", "--cell", "rnn_tanh", "--proj-size", "2"]) == 2
    _wrap_seq(monkeypatch, "lstm_backward", _lstm_db_ih_dropped)
    assert main(args) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_gradcheck_numba_backend(mode):
    """The check runs whatever backend the model uses: here the fused Numba kernels."""
    pytest.importorskip("minirnn.kernels")
    model = _model(mode, 3, 4, layers=2, bidirectional=True, seed=1,
                   proj=2 if mode == "lstm" else 0)
    model.backend = "numba"
    rng = np.random.default_rng(2)
    x, hx = _data(model, 4, 2, rng)
    report = gradcheck(model, x, hx, lengths=[4, 2], max_entries=10)
    assert report.passed, report.table()
