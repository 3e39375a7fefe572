"""Each crash site the fuzzer (tests/test_fuzz.py) found, as a call that must now be refused
with a ValueError or TypeError naming the argument, raised by minirnn's own check. Every case
failed before its fix (an IndexError, KeyError, MemoryError, AttributeError, numpy's or
Python's own message, or a hang); see the commit that fixed it.
"""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn import grad, studies
from minirnn.cells import get_cell

from tests.helpers.fuzz.engine import deliberate

HUGE = 2**40                            # elements: no machine holds 8 TiB


def huge_view(*shape):
    """A zero-stride view: no memory behind it, petabytes for a copy."""
    return np.broadcast_to(np.zeros(()), shape)


def lstm(**kw):
    return minirnn.LSTM(3, 4, seed=0, **kw)


def refused(fn, exc, match):
    """fn() raises exc (ValueError or TypeError) from a `raise` in minirnn, matching."""
    with pytest.raises(exc, match=match) as info:
        fn()
    assert deliberate(info.value), f"raised inside numpy or Python: {info.value!r}"


def case(fn, exc, match, id):
    return pytest.param(fn, exc, match, id=id)


# ---- sizes no machine holds: refused with the bytes needed, before any allocation ----------------
SIZES = [
    case(lambda: minirnn.LSTM(HUGE, 4), ValueError, r"input_size.*would need \d+ bytes",
         "module-input-size"),
    case(lambda: minirnn.GRU(3, 2**62), ValueError, r"hidden_size.*would need \d+ bytes",
         "module-hidden-size-int64"),
    case(lambda: minirnn.RNN(3, 10**30), ValueError, r"would need \d+ bytes",
         "module-beyond-int64"),
    case(lambda: minirnn.GRUCell(3, 10**30), ValueError, r"would need \d+ bytes", "cell-huge"),
    case(lambda: minirnn.Linear(10**30, 2), ValueError, r"in_features.*would need", "linear-huge"),
    case(lambda: minirnn.Embedding(5, 2**62), ValueError, r"embedding_dim.*would need",
         "embedding-huge"),
    case(lambda: minirnn.Module().add_param("w", (HUGE, 3), 0.1), ValueError,
         r"w: .*would need \d+ bytes", "add-param-huge"),
    case(lambda: lstm()(huge_view(2, HUGE, 3)), ValueError, r"x: .*would need \d+ bytes",
         "copy-of-a-huge-view"),
    case(lambda: lstm(batch_first=True).from_time_major(huge_view(HUGE, 2, 3)), ValueError,
         r"arr: .*would need \d+ bytes", "layout-copy-of-a-huge-view"),
    case(lambda: minirnn.LanguageModel(5, 3, 4, num_layers=1).init_state(2**62), ValueError,
         r"batch.*would need", "init-state-huge"),
    case(lambda: minirnn.Embedding(5, 3).forward(np.broadcast_to(np.int64(0), (HUGE,))),
         ValueError, r"idx.*would need", "token-ids-huge-view"),       # was a hang: min/max
    case(lambda: grad.MSELoss(huge_view(3, 2, HUGE)), ValueError, r"target.*would need",
         "mse-target-huge"),
    case(lambda: grad.tbptt_windows(10**30, 1), ValueError, r"T.*would need", "windows-huge"),
    case(lambda: studies.two_dependency_data(2**62, 4), ValueError, r"batch, T.*would need",
         "task-data-huge"),
]


@pytest.mark.parametrize("fn, exc, match", SIZES)
def test_a_size_no_machine_holds_is_refused_before_allocation(fn, exc, match):
    refused(fn, exc, match)


# ---- the modules and their public methods --------------------------------------------------------
MODULES = [
    case(lambda: lstm().param_keys(5), ValueError, r"layer, direction: expected layer in 0\.\.0",
         "param-keys-layer"),
    case(lambda: lstm().param_keys(0, 1.5), TypeError, r"direction", "param-keys-direction"),
    case(lambda: lstm().to_time_major(1.0), TypeError, r"arr: expected", "to-time-major-float"),
    case(lambda: lstm().from_time_major(np.zeros(3)), ValueError, r"arr: expected .*3",
         "from-time-major-rank"),
    case(lambda: lstm().state_value(3), TypeError, r"state: expected a tuple", "state-value"),
    case(lambda: lstm().stack(masks=5), TypeError, r"masks", "stack-masks"),
    case(lambda: lstm().load_state_dict({"bogus": 1.0}), ValueError, r"missing keys",
         "strict-load-unknown-key"),
    case(lambda: list(lstm().named_parameters(prefix=True)), TypeError, r"prefix",
         "named-parameters-prefix"),
    case(lambda: list(lstm().modules(prefix=b"m")), TypeError, r"prefix", "modules-prefix"),
    case(lambda: lstm().train("no"), TypeError, r"mode", "train-mode-string"),
    case(lambda: minirnn.Module(seed=-1), ValueError, r"seed", "seed-negative"),
    case(lambda: minirnn.GRUCell(3, 4, seed="x"), TypeError, r"seed", "seed-string"),
    case(lambda: minirnn.Module().add_param("w", (2, 3), None), TypeError, r"bound",
         "add-param-bound-none"),
    case(lambda: minirnn.Module().add_param("w", (2, 3), -np.inf), ValueError, r"bound",
         "add-param-bound-inf"),
    case(lambda: minirnn.Module().add_param(True, (2, 3), 0.1), TypeError, r"name",
         "add-param-name"),
    case(lambda: minirnn.Module().add_param("w", (2, 3), 1e308), ValueError, r"bound",
         "add-param-bound-beyond-the-range"),
    case(lambda: minirnn.LanguageModel(5, 3, 4, num_layers=1).init_state(1.5), TypeError,
         r"batch", "init-state-float"),
    case(lambda: minirnn.SequenceClassifier(5, 2, 4).embed(np.array([[7, 1]])), ValueError,
         r"tokens: expected ids in \[0, 5\)", "one-hot-embed-ids"),
]


@pytest.mark.parametrize("fn, exc, match", MODULES)
def test_the_modules_refuse_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)


def test_strict_load_state_dict_still_raises_key_error():
    """UnknownKey is both: torch users catch KeyError, argument checks ValueError."""
    with pytest.raises(KeyError, match="unexpected keys"):
        lstm().load_state_dict({**lstm().state_dict(), "bogus": np.zeros(1)})


# ---- the functional API, the cell contract -------------------------------------------------------
def _w(*shape):
    return np.zeros(shape)


CORE = [
    case(lambda: minirnn.functional.gru_forward(_w(2, 1, 3), _w(1, 4), _w(12, 3), "x"),
         ValueError, r"w_hh: expected a 2-D", "gru-w-hh-string"),
    case(lambda: minirnn.functional.lstm_forward(_w(2, 1, 3), _w(1, 4), _w(1, 4), _w(16, 3),
                                                 _w(16, 4), w_hr=np.float64(1.0)),
         ValueError, r"w_hr: expected a 2-D", "lstm-w-hr-scalar"),
    case(lambda: minirnn.functional.rnn_forward(_w(2, 1, 3), _w(1, 4), _w(4, 3), np.zeros(())),
         ValueError, r"w_hh: expected a 2-D", "rnn-w-hh-0d"),
    case(lambda: minirnn.cells.get_cell(minirnn.cells.cell_name(["lstm"])), ValueError,
         r"cell: expected one of", "cell-name-of-a-list"),     # was: unhashable type: 'list'
    case(lambda: get_cell("lstm").has(True), TypeError, r"part", "spec-has"),
    case(lambda: get_cell("lstm").require(1, "x"), TypeError, r"part", "spec-require"),
    case(lambda: get_cell("gru").twin(["numba"]), TypeError, r"backend", "spec-twin"),
    case(lambda: get_cell("gru").tier([]), TypeError, r"backend", "family-tier"),
    case(lambda: get_cell("lstm").split_gates(np.zeros(())), ValueError, r"gates",
         "split-gates-0d"),
    case(lambda: get_cell("lstm").param_shapes("3", 4), TypeError, r"input_size",
         "param-shapes-str"),
    case(lambda: get_cell("lstm").state_sizes(None), TypeError, r"hidden_size", "state-sizes"),
]


@pytest.mark.parametrize("fn, exc, match", CORE)
def test_the_functional_api_and_the_cell_contract_refuse_bad_arguments(fn, exc, match):
    refused(fn, exc, match)


def test_a_cell_whose_steps_keep_no_gates_is_told_so():
    """StepsCache.gates on a user's cell whose step caches have no `gates` field (the contract
    lets a cache be anything) names the field; trace and explore say it too."""
    from minirnn.cells import register_cell, unregister_cell
    from tests.helpers.fuzz.world import FuzzCell

    class NoGates(FuzzCell):
        name = "no_gates_cell"

        def step_forward(self, x_t, state, params):
            new, step = super().step_forward(x_t, state, params)
            return new, tuple(step)                           # a plain tuple: no `gates`

    spec = register_cell(NoGates())
    try:
        m = minirnn.nn.make_recurrent(spec.name, 3, 4, seed=0)
        m(np.ones((2, 1, 3)))
        cache = m.last_caches[0]
        refused(lambda: cache.gates, ValueError, r"gates")
        refused(lambda: minirnn.trace(m, np.ones((2, 1, 3))), ValueError, r"gates")
    finally:
        unregister_cell(spec.name)


# ---- the tools -----------------------------------------------------------------------------------
def _uoro():
    m = minirnn.GRU(3, 4, seed=0)
    rng = np.random.default_rng(0)
    return grad.uoro_gradients(m, rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 4)),
                               n_samples=3)


def _lags():
    m = minirnn.GRU(3, 4, seed=0)
    return grad.gradient_by_lag(m, np.ones((3, 2, 3)), np.ones((3, 2, 4)))


def _trace():
    return minirnn.trace(lstm(), np.ones((3, 2, 3)))


TOOLS = [
    case(lambda: minirnn.gradcheck(minirnn.GRU(3, 2), np.ones((2, 1, 3)), params=["nope"]),
         ValueError, r"params: unknown tensor names", "gradcheck-unknown-param"),
    case(lambda: _trace().series("nope"), ValueError, r"name: expected one of", "trace-series"),
    case(lambda: minirnn.explore(minirnn.GRU(3, 2), np.ones((2, 3)), vocab=1.5), TypeError,
         r"vocab", "explore-vocab-float"),
    case(lambda: minirnn.explore(minirnn.GRU(3, 2), np.ones((2, 3)), tokens=object()),
         TypeError, r"tokens", "explore-tokens-object"),
    case(lambda: _lags().norms(names=3), TypeError, r"names", "lag-norms-names"),
    case(lambda: grad.lyapunov_spectrum(minirnn.Module(), np.ones((3, 2, 3))), TypeError,
         r"model: expected", "lyapunov-model"),
    case(lambda: grad.lyapunov_spectrum(minirnn.GRU(3, 4), np.ones((3, 2, 3)), seed=2.5),
         TypeError, r"seed", "lyapunov-seed"),
    case(lambda: grad.perturbation_growth("lstm", np.ones((3, 2, 3))), TypeError,
         r"model: expected", "growth-model"),
    case(lambda: grad.perturbation_growth(minirnn.GRU(3, 4, dtype="float32"), np.ones((3, 2, 3))),
         ValueError, r"model: .*float64", "growth-float32-model"),
    case(lambda: grad.MSELoss(np.ones((2, 2))).value(np.full((2, 2), "a")), TypeError, r"out",
         "mse-out-strings"),
    case(lambda: _uoro().mean(2.0), TypeError, r"n: expected", "uoro-mean-float-n"),
    case(lambda: _uoro().stderr(-1), ValueError, r"n: expected", "uoro-stderr-negative-n"),
    case(lambda: _uoro().hotelling(True), TypeError, r"n: expected", "uoro-hotelling-bool"),
    case(lambda: _uoro().rms_error(0), ValueError, r"n: expected", "uoro-rms-zero"),
    case(lambda: _uoro().as_dict(None), ValueError, r"vec: expected", "uoro-as-dict-none"),
    case(lambda: _uoro().as_dict(np.zeros((36, 1))), ValueError, r"vec: expected",
         "uoro-as-dict-shape"),
    case(lambda: grad.uoro_update(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3)), 1.0,
                                  np.ones((2, 4))), ValueError, r"nu: expected",
         "uoro-update-scalar"),
    case(lambda: grad.uoro_update(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3)),
                                  np.ones((2, 3)), np.ones((2, 5))), ValueError, r"q: expected",
         "uoro-update-shape"),
    case(lambda: grad.gradient_agreement([("a", np.ones(2))], {"a": np.ones(2)}), TypeError,
         r"grads: expected a dict", "agreement-list"),
]


@pytest.mark.parametrize("fn, exc, match", TOOLS)
def test_the_tools_refuse_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)


# ---- studies, training, assert_close -------------------------------------------------------------
def _adam():
    return minirnn.Adam(lstm())


STUDIES_TRAINING = [
    case(lambda: studies.dependency_floors(lags=3), TypeError, r"lags: expected",
         "floors-lags-int"),
    case(lambda: studies.dependency_floors(effects=0.5), TypeError, r"effects: expected",
         "floors-effects-float"),
    case(lambda: studies.dependency_floors(base="0.1"), TypeError, r"base", "floors-base-str"),
    case(lambda: studies.two_dependency_data(2, 4, seed=-1), ValueError, r"seed",
         "task-seed-negative"),
    case(lambda: studies.memory_probe(np.zeros(3)), TypeError, r"model: expected",
         "probe-model"),
    case(lambda: studies.memory_probe(minirnn.LanguageModel(2, 2, 2, num_layers=1), lags=()),
         ValueError, r"lags", "probe-no-lags"),
    case(lambda: studies.train_two_dependency(2, hidden=2, steps=4, batch=2, progress=[]),
         TypeError, r"progress", "train-progress-list"),
    case(lambda: studies.float32_error_growth("gru", steps=(1,), seed=None), TypeError,
         r"seed", "precision-seed-none"),
    case(lambda: studies.float32_error_growth("gru", steps=(1,), weight_scale=None), TypeError,
         r"weight_scale", "precision-scale-none"),
    case(lambda: minirnn.assert_close(np.ones(2), np.ones(2), rtol=None), TypeError, r"rtol",
         "assert-close-rtol"),
    case(lambda: minirnn.assert_close(np.ones(2), "x"), TypeError, r"expected",
         "assert-close-string"),
    case(lambda: minirnn.load_checkpoint(None), TypeError, r"path", "load-checkpoint-none"),
    case(lambda: minirnn.load_model_state(None, None), TypeError, r"model|ckpt",
         "load-model-state-none"),
    case(lambda: minirnn.save_checkpoint("x.npz", lstm(), optimizer={}), TypeError,
         r"optimizer", "save-optimizer-dict"),
    case(lambda: minirnn.Engine(minirnn.LanguageModel(5, 3, 4), clip="x"), TypeError,
         r"clip", "engine-clip-str"),
    case(lambda: minirnn.Adam(lstm(), lr=10**400), ValueError, r"lr", "adam-lr-huge-int"),
    case(lambda: minirnn.SGD(lstm(), lr=0.1, weight_decay=np.ones(2)), TypeError,
         r"weight_decay", "sgd-weight-decay-array"),
    case(lambda: minirnn.Adam(lstm(), betas=()), ValueError, r"betas", "adam-betas-empty"),
    case(lambda: _adam().load_state_dict([("type", "Adam")]), TypeError, r"sd: expected",
         "optim-load-list"),
    case(lambda: _adam().load_state_dict({**_adam().state_dict(), "steps": [1]}), TypeError,
         r"steps", "optim-load-steps-list"),
    case(lambda: minirnn.clip_grad_norm(object(), 1.0), TypeError, r"module: expected",
         "clip-module"),
]


@pytest.mark.parametrize("fn, exc, match", STUDIES_TRAINING)
def test_studies_and_training_refuse_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)


def test_a_cell_without_per_sample_gradients_is_traced():
    """The contract lets step_backward leave per_sample out; the tracer's running weight
    gradients used to pass it anyway (TypeError: unexpected keyword argument 'per_sample')."""
    from minirnn.cells import register_cell, unregister_cell
    from tests.helpers.fuzz.world import FuzzCell
    spec = register_cell(FuzzCell())
    try:
        m = minirnn.nn.make_recurrent(spec.name, 3, 4, seed=0, bidirectional=True)
        rng = np.random.default_rng(0)
        x, d_out = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 8))
        tr = minirnn.trace(m, x, d_out=d_out)
        m.zero_grad()
        m(x)
        m.backward(d_out)                      # the module's own BPTT: what the trace sums to
        seen = {name: g for part in tr.weight_grads for name, g in part.items()}
        assert sorted(seen) == sorted(m.grads)
        for name, g in seen.items():
            np.testing.assert_allclose(g, m.grads[name], rtol=1e-12, atol=1e-14, err_msg=name)
    finally:
        unregister_cell(spec.name)


MORE = [
    case(lambda: minirnn.explore(minirnn.GRU(3, 2), np.ones((2, 3)), title=-1), TypeError,
         r"title", "explore-title-int"),
    case(lambda: grad.perturbation_growth(minirnn.GRU(3, 4), np.ones((3, 2, 3)), direction="x"),
         TypeError, r"direction", "growth-direction-str"),
    case(lambda: grad.gradient_agreement({"a": np.ones(2)}, {"a": np.ones(3)}), ValueError,
         r"grads\['a'\]: expected shape", "agreement-shapes"),
]


@pytest.mark.parametrize("fn, exc, match", MORE)
def test_more_tools_refuse_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)


# ---- the second run (30,000 calls) ---------------------------------------------------------------
def _mse():
    return grad.MSELoss(np.ones((2, 2)))


ROUND_TWO = [
    case(lambda: minirnn.explore(minirnn.GRU(3, 2), np.ones((2, 3)), path=None), TypeError,
         r"path: expected a file path", "explore-path-none"),
    case(lambda: _trace().series(["h"]), TypeError, r"name: expected", "trace-series-list"),
    case(lambda: minirnn.gradcheck(minirnn.GRU(3, 2), np.ones((2, 1, 3)), rtol=np.ones(2)),
         TypeError, r"rtol", "gradcheck-rtol-array"),
    case(lambda: minirnn.gradcheck(minirnn.GRU(3, 2), np.ones((2, 1, 3)), atol="0.1"),
         TypeError, r"atol", "gradcheck-atol-str"),
    case(lambda: grad.lyapunov_spectrum(minirnn.GRU(3, 4), huge_view(2, HUGE, 3)), ValueError,
         r"x: .*would need", "lyapunov-huge-view"),
    case(lambda: grad.lyapunov_spectrum(minirnn.GRU(3, 4), np.ones((3, 2, 3)), seed=None),
         TypeError, r"seed", "lyapunov-seed-none"),
    case(lambda: _mse().hvp(huge_view(HUGE, 2), huge_view(HUGE, 2)), ValueError,
         r"out: .*would need", "loss-hvp-huge-view"),
    case(lambda: grad.RTRLOnline(minirnn.GRU(3, 4), lr=10**400), ValueError, r"lr",
         "rtrl-lr-beyond-float"),
    case(lambda: grad.gradient_agreement({}, {}), ValueError, r"reference: expected at least one",
         "agreement-empty"),
    case(lambda: _dropped().backward(np.ones((2, 3))), ValueError, r"dy: expected shape",
         "dropout-backward-shape"),
    case(lambda: minirnn.Module().add_module(["extra"], minirnn.Linear(2, 2)), TypeError,
         r"name: expected a str", "add-module-name"),
    case(lambda: minirnn.Module().add_module("extra", 3), TypeError, r"module: expected",
         "add-module-module"),
    case(lambda: studies.float32_error_growth("gru", steps=(3,), backends=("numpy",),
                                              batch=np.uint8(200), hidden=np.uint8(200)),
         None, None, "precision-uint8-sizes"),
    case(lambda: minirnn.assert_close(huge_view(HUGE, 3), huge_view(HUGE, 3)), ValueError,
         r"actual: .*would need", "assert-close-huge-view"),
    case(lambda: minirnn.save_checkpoint(b"model.npz", lstm()), TypeError, r"path",
         "save-path-bytes"),
    case(lambda: minirnn.Engine(minirnn.SequenceClassifier(5, 2, 4), class_weight="x"),
         TypeError, r"class_weight", "engine-class-weight-str"),
]


def _dropped():
    d = minirnn.Dropout(0.5, seed=0)
    d.forward(np.ones((2, 2)))
    return d


@pytest.mark.parametrize("fn, exc, match", ROUND_TWO)
def test_round_two_refuses_bad_arguments_by_name(fn, exc, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if exc is None:                     # a valid call that used to crash: it runs now
        fn()
    else:
        refused(fn, exc, match)


def test_a_diverged_model_reads_nothing_back():
    """memory_probe of a model whose state is not finite (training with lr=1e308 diverges)
    answers NaN, the accuracy of nothing, where numpy's least squares raised LinAlgError."""
    m = minirnn.LanguageModel(2, 2, 3, num_layers=1, seed=0)
    m.rnn.params["weight_hh_l0"][...] = np.nan
    acc = studies.memory_probe(m, batch=4, steps=20)
    assert sorted(acc) == [3, 8] and all(np.isnan(v) for v in acc.values())


# ---- the third run (30,163 calls, 4 sites) -----------------------------------------------------------
ROUND_THREE = [
    case(lambda: grad.truncation_bias(minirnn.GRU(3, 4), np.ones((3, 2, 3)), np.ones((3, 2, 4)),
                                      [np.array([1]), 2]), TypeError, r"lengths: expected",
         "truncation-bias-lengths-ragged"),
    case(lambda: grad.uoro_gradients(minirnn.GRU(3, 4), huge_view(HUGE, 2, 3), np.ones((3, 2, 4))),
         ValueError, r"x: .*would need|d_out: expected the shape", "uoro-message-of-a-huge-x"),
    case(lambda: studies.gradient_flow(minirnn.GRU(3, 4), np.ones((3, 2, 3)), seed=2.5),
         TypeError, r"seed", "flow-seed-float"),
    case(lambda: studies.gradient_flow(minirnn.GRU(3, 4), np.ones((3, 2, 3)), seed=-1),
         ValueError, r"seed", "flow-seed-negative"),
    case(lambda: studies.gradient_flow(minirnn.GRU(3, 4), np.ones((3, 2, 3)), jacobians="False"),
         TypeError, r"jacobians", "flow-jacobians-str"),
]


@pytest.mark.parametrize("fn, exc, match", ROUND_THREE)
def test_round_three_refuses_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)


# ---- the fourth run (30,163 calls, 2 sites) -----------------------------------------------------------
ROUND_FOUR = [
    case(lambda: minirnn.explore(minirnn.GRU(3, 2), np.ones((2, 3)), vocab=np.zeros(())),
         TypeError, r"vocab: expected a list", "explore-vocab-0d"),
    case(lambda: grad.RTRLOnline(minirnn.GRU(3, 4), lr=0.1, batch_size=2**62), ValueError,
         r"batch_size: .*would need", "rtrl-online-batch-huge"),
    # not a crash but a message that named `1` as the argument (found by auditing refusals)
    case(lambda: minirnn.Embedding(5, 3).check_ids(np.zeros(2, complex), name=1), TypeError,
         r"name: expected a str", "check-ids-name"),
]


@pytest.mark.parametrize("fn, exc, match", ROUND_FOUR)
def test_round_four_refuses_bad_arguments_by_name(fn, exc, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(fn, exc, match)


# ---- the long run (100,037 calls, 5 sites) --------------------------------------------------------------
LONG_RUN = [
    case(lambda: minirnn.gradcheck(minirnn.GRU(3, 2), huge_view(2, 2, HUGE)), ValueError,
         r"x: .*would need", "gradcheck-copy-of-a-huge-view"),
    case(lambda: grad.uoro_gradients(minirnn.GRU(3, 4), np.ones((3, 2, 3)), "x"), TypeError,
         r"d_out", "uoro-d-out-str"),
    case(lambda: grad.uoro_update(np.ones((2, 3)), huge_view(2, HUGE), np.ones((2, 3)),
                                  np.ones((2, 3)), huge_view(2, HUGE)), ValueError,
         r"b: .*would need", "uoro-update-huge-view"),
    case(lambda: studies.train_two_dependency(2, hidden=2, steps=4, batch=2, seed=None),
         TypeError, r"seed", "train-seed-none"),
    case(lambda: minirnn.utils.unpad_sequence(huge_view(3, 3, HUGE), [3, 1, 2]), ValueError,
         r"padded: .*would need", "unpad-huge-view"),
]


@pytest.mark.parametrize("fn, exc, match", LONG_RUN)
def test_the_long_runs_sites_refuse_bad_arguments_by_name(fn, exc, match):
    refused(fn, exc, match)
