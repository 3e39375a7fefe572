"""Argument checks against live torch: every call torch refuses, minirnn refuses too (with a
message naming the argument, what was expected and what came); every call torch accepts,
minirnn either computes the same numbers or refuses on purpose.

Exception types: where torch raises TypeError or ValueError minirnn raises the same kind where
it can; torch reports shape mismatches as RuntimeError, minirnn as ValueError. The tests
assert "both raise", each its own type, and read minirnn's message.

Where minirnn differs from torch ON PURPOSE, the test says so (search for "DELIBERATE"):
  * stricter: bidirectional, and every cell's bias, must be real booleans (torch takes any
    truthy value); a bool is not a size (torch takes num_layers=True, and True/False for
    every size of a cell and for proj_size=False); a cell's hidden_size=0 is refused with the
    reason; RNNCell's nonlinearity is checked in the constructor (torch waits for the first
    forward).
  * more lenient: NumPy ints are sizes and NumPy bools are booleans (torch refuses them for
    input_size/hidden_size, bias, batch_first); an input or state of another dtype is cast
    where the cast is exact (float32 or integer into a float64 model) -- torch refuses every
    dtype mismatch; the LSTM's hx may be (h0, None) (c0 = zeros); proj_size on RNN/GRU is a
    TypeError (no such keyword) where torch raises ValueError.
(The forward's side: test_torch_fidelity_forward.py.)
"""
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minirnn
from tests.helpers import torch_fidelity
from tests.helpers.torch_fidelity import (BASE, CELLS, MODULES, RNG, SIZES, assert_names,
                                          assert_same_numbers, attempt, both_build, build_mini,
                                          build_torch, module_hx, module_input, to_torch, torch)


# ---- bool arguments ----------------------------------------------------------------------------
NOT_BOOLS = ["False", "True", "", 0, 1, 1.0, None, [], np.int64(1)]


@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
@pytest.mark.parametrize("arg", ["bias", "batch_first"])
@pytest.mark.parametrize("name", MODULES)
def test_bias_and_batch_first_must_be_bools(name, arg, value):
    (t, t_err, _), (m, m_err, _) = both_build(name, 3, 4, **{arg: value})
    assert isinstance(t_err, TypeError), t_err
    assert isinstance(m_err, TypeError), m_err
    assert_names(m_err, arg, "True or False", repr(value))


def test_the_issues_examples_now_fail_loudly():
    with pytest.raises(TypeError, match=r"batch_first: expected True or False, got str 'False'"):
        minirnn.LSTM(3, 5, batch_first="False")
    with pytest.raises(TypeError, match=r"bias: expected True or False, got int 0"):
        minirnn.LSTM(3, 5, bias=0)


@pytest.mark.parametrize("value", ["yes", "", 1, 0, None], ids=repr)
@pytest.mark.parametrize("name", MODULES)
def test_bidirectional_must_be_a_bool_DELIBERATE(name, value):
    """DELIBERATE: torch takes any truthy bidirectional; minirnn refuses a non-bool, as for
    batch_first and bias, since "False" would turn it on."""
    (t, t_err, _), (m, m_err, _) = both_build(name, 3, 4, bidirectional=value)
    assert t_err is None and t.bidirectional == value
    assert isinstance(m_err, TypeError)
    assert_names(m_err, "bidirectional", "True or False")


@pytest.mark.parametrize("arg", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("name", MODULES)
def test_numpy_bools_are_bools_DELIBERATE(name, value, arg):
    """DELIBERATE: numpy bools are accepted (torch refuses them for bias and batch_first)
    and build exactly torch's model for the Python bool."""
    _, t_err, _ = attempt(lambda: build_torch(name, 3, 4, **{arg: np.bool_(value)}))
    if arg != "bidirectional":
        assert isinstance(t_err, TypeError)
    m = build_mini(name, 3, 4, num_layers=2, **{arg: np.bool_(value)})
    assert getattr(m, arg) is value
    t = build_torch(name, 3, 4, num_layers=2, **{arg: value})
    assert_same_numbers(t, m, module_input(m))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", MODULES)
def test_real_bools_build_torchs_model(name, bias, batch_first, bidirectional):
    kw = dict(num_layers=2, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    t, m = build_torch(name, 3, 4, **kw), build_mini(name, 3, 4, **kw)
    assert_same_numbers(t, m, module_input(m), module_hx(m))


@pytest.mark.parametrize("value", ["False", 0, 1, None], ids=repr)
@pytest.mark.parametrize("name", CELLS)
def test_cell_bias_must_be_a_bool_DELIBERATE(name, value):
    """DELIBERATE: torch's cells take any value for bias (its truthiness decides); minirnn's
    cells refuse a non-bool as its sequence modules do."""
    (t, t_err, _), (m, m_err, _) = both_build(name, 3, 4, bias=value)
    assert t_err is None
    assert isinstance(m_err, TypeError)
    assert_names(m_err, "bias", "True or False")


@pytest.mark.parametrize("bias", [True, False, np.bool_(False)], ids=repr)
@pytest.mark.parametrize("name", CELLS)
def test_cell_bias_bools_build_torchs_cell(name, bias):
    t, m = build_torch(name, 3, 4, bias=bool(bias)), build_mini(name, 3, 4, bias=bias)
    assert_same_numbers(t, m, RNG.standard_normal((2, 3)))


# ---- dropout -------------------------------------------------------------------------------------
BAD_DROPOUT = [-0.1, 1.0001, math.nan, math.inf, -math.inf, "0.5", None, True, False,
               np.bool_(False), 0.5j, [0.5], np.array([0.5])]
GOOD_DROPOUT = [0, 0.0, 0.3, 1, 1.0, np.float32(0.25), np.float64(0.5), Fraction(1, 4),
                np.int64(0)]


@pytest.mark.parametrize("value", BAD_DROPOUT, ids=repr)
@pytest.mark.parametrize("name", MODULES)
def test_bad_dropout_is_refused(name, value):
    (_, t_err, _), (_, m_err, _) = both_build(name, 3, 4, num_layers=2, dropout=value)
    assert isinstance(t_err, (ValueError, TypeError)), t_err          # 0.5j: TypeError
    assert isinstance(m_err, ValueError), m_err
    assert_names(m_err, "dropout", "[0, 1]")


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("value", GOOD_DROPOUT, ids=repr)
@pytest.mark.parametrize("name", MODULES)
def test_good_dropout_and_the_single_layer_warning(name, value, num_layers):
    (t, t_err, t_warn), (m, m_err, m_warn) = both_build(name, 3, 4, num_layers=num_layers,
                                                        dropout=value)
    assert t_err is None and m_err is None
    assert m.dropout == t.dropout == float(value)
    t_warned = [w for w in t_warn if issubclass(w.category, UserWarning)]
    m_warned = [w for w in m_warn if issubclass(w.category, UserWarning)]
    assert len(m_warned) == len(t_warned) == (1 if value > 0 and num_layers == 1 else 0)
    if m_warned:
        assert_names(m_warned[0].message, "dropout", "num_layers=1")
        # it points at the caller's line: build_mini's call of the constructor
        assert m_warned[0].filename == torch_fidelity.__file__


@pytest.mark.parametrize("name", MODULES)
def test_dropout_numbers_match_where_they_are_deterministic(name):
    """dropout=1 in training drops every input of layer 2: both sides compute the same; in
    eval mode dropout is off."""
    for train, p in ((True, 1.0), (False, 0.5)):
        t, m = (build(name, 3, 4, num_layers=3, dropout=p) for build in (build_torch, build_mini))
        assert_same_numbers(t, m, module_input(m), module_hx(m), train=train)


# ---- sizes ------------------------------------------------------------------------------------
BAD_SIZES = [0, -1, 2.0, 3.5, "3", None, True, False, math.nan, [3], 3j]


def _size_kwargs(name, arg, value):
    kw = dict(BASE)
    if arg == "proj_size":
        kw["hidden_size"] = 5
    kw[arg] = value
    return kw


def _assert_refused_like_a_size(err, arg, value):
    bad_type = isinstance(value, bool) or not isinstance(value, (int, np.integer))
    assert isinstance(err, TypeError if bad_type else ValueError), err
    assert_names(err, arg, repr(value))


@pytest.mark.parametrize("value", BAD_SIZES, ids=repr)
@pytest.mark.parametrize("name", MODULES)
def test_module_sizes(name, value):
    for arg in SIZES[name]:
        if arg == "proj_size" and type(value) is int and value == 0:
            continue                                        # proj_size=0: no projection
        kw = _size_kwargs(name, arg, value)
        (_, t_err, _), (_, m_err, _) = both_build(name, **kw)
        assert m_err is not None, f"{name}({kw}) built; torch: {t_err!r}"
        if t_err is None:
            # DELIBERATE: bool is an int to torch (num_layers=True, proj_size=False ...)
            assert isinstance(value, bool), (arg, value)
        _assert_refused_like_a_size(m_err, arg, value)


@pytest.mark.parametrize("value", [-1, 2.0, "3", None, True, False, math.nan], ids=repr)
@pytest.mark.parametrize("arg", ["input_size", "hidden_size"])
@pytest.mark.parametrize("name", CELLS)
def test_cell_sizes(name, arg, value):
    (_, t_err, _), (_, m_err, _) = both_build(name, **{**BASE, arg: value})
    assert m_err is not None
    if t_err is None:
        assert isinstance(value, bool)          # DELIBERATE: torch builds Cell(True, 4)
    _assert_refused_like_a_size(m_err, arg, value)


@pytest.mark.parametrize("name", CELLS)
def test_cell_with_no_inputs_matches_torch(name):
    """torch's cells accept input_size=0 (the state evolves on its own); so do minirnn's."""
    t, m = build_torch(name, 0, 4), build_mini(name, 0, 4)
    hx = RNG.standard_normal((2, 4))
    assert_same_numbers(t, m, np.zeros((2, 0)), (hx, hx) if name == "LSTMCell" else hx)


@pytest.mark.parametrize("name", CELLS)
def test_cell_with_no_hidden_units_is_refused_with_the_reason_DELIBERATE(name):
    """DELIBERATE: torch builds a cell with hidden_size=0; minirnn refuses it and says why."""
    (t, t_err, _), (_, m_err, _) = both_build(name, 3, 0)
    assert t_err is None
    assert isinstance(m_err, ValueError)
    assert_names(m_err, "hidden_size", ">= 1", "no hidden units", "got 0")


@pytest.mark.parametrize("value", [np.int64(3), np.int32(2), np.uint8(2)], ids=repr)
@pytest.mark.parametrize("name", MODULES + CELLS)
def test_numpy_ints_are_sizes_DELIBERATE(name, value):
    """DELIBERATE: numpy integers are sizes (torch refuses them for a module's input_size and
    hidden_size); the model is torch's model for int(value)."""
    key = name
    for arg in SIZES[key]:
        kw = _size_kwargs(key, arg, value)
        if arg == "proj_size":
            kw["hidden_size"] = 5
        m = build_mini(key, **kw)
        assert type(getattr(m, arg)) is int and getattr(m, arg) == int(value)
        t = build_torch(key, **{k: int(v) for k, v in kw.items()})
        x = RNG.standard_normal((2, m.input_size)) if "Cell" in key else module_input(m)
        assert_same_numbers(t, m, x)


@settings(max_examples=150, deadline=None)
@given(sizes=st.tuples(*[st.integers(-2, 5)] * 4), which=st.sampled_from(["RNN", "LSTM", "GRU"]))
def test_int_sizes_are_refused_exactly_where_torch_refuses(sizes, which):
    names = SIZES[which]
    kw = dict(zip(names, sizes))
    (t, t_err, _), (m, m_err, _) = both_build(which, **kw)
    assert (t_err is None) == (m_err is None), (kw, t_err, m_err)
    if m_err is None:
        assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == \
               [(k, v.shape) for k, v in m.state_dict().items()]
    else:
        assert any(n in str(m_err) for n in names)


@settings(max_examples=100, deadline=None)
@given(sizes=st.tuples(st.integers(-2, 4), st.integers(-2, 4)),
       which=st.sampled_from(["RNNCell", "LSTMCell", "GRUCell"]))
def test_int_cell_sizes_are_refused_exactly_where_torch_refuses(sizes, which):
    kw = dict(zip(("input_size", "hidden_size"), sizes))
    (t, t_err, _), (m, m_err, _) = both_build(which, **kw)
    if kw["hidden_size"] == 0 and kw["input_size"] >= 0:
        assert t_err is None and isinstance(m_err, ValueError)    # DELIBERATE, see above
        return
    assert (t_err is None) == (m_err is None), (kw, t_err, m_err)
    if m_err is None:
        assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == \
               [(k, v.shape) for k, v in m.state_dict().items()]


# ---- proj_size ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 2])
@pytest.mark.parametrize("name", ["RNN", "GRU"])
def test_proj_size_is_the_lstms_only(name, value):
    """Both raise: torch a ValueError, minirnn a TypeError (RNN and GRU take no proj_size)."""
    (_, t_err, _), (_, m_err, _) = both_build(name, 3, 4, proj_size=value)
    assert isinstance(t_err, ValueError)
    assert isinstance(m_err, TypeError)
    assert_names(m_err, "proj_size")


@pytest.mark.parametrize("value", [-1, 4, 5, 2.0, True, None, "2"], ids=repr)
def test_bad_proj_size(value):
    (_, t_err, _), (_, m_err, _) = both_build("LSTM", 3, 4, proj_size=value)
    assert t_err is not None and m_err is not None
    assert_names(m_err, "proj_size", repr(value))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 4:
        assert_names(m_err, "hidden_size=4")


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("proj_size", [1, 3])
def test_projection_matches_torch(proj_size, bidirectional, unbatched):
    kw = dict(num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    t, m = build_torch("LSTM", 3, 4, **kw), build_mini("LSTM", 3, 4, **kw)
    assert_same_numbers(t, m, module_input(m, unbatched=unbatched),
                        module_hx(m, unbatched=unbatched))


@pytest.mark.parametrize("which", [0, 1])
def test_projection_state_shapes(which):
    """h0 is proj_size wide, c0 hidden_size wide: each given the other's width is refused."""
    t, m = build_torch("LSTM", 3, 4, proj_size=2), build_mini("LSTM", 3, 4, proj_size=2)
    x = module_input(m)
    hx = list(module_hx(m))
    hx[which] = RNG.standard_normal((1, 2, 4 if which == 0 else 2))
    _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(tuple(hx))))
    _, m_err, _ = attempt(lambda: m(x, tuple(hx)))
    assert t_err is not None and isinstance(m_err, ValueError)
    assert_names(m_err, ("h0", "c0")[which], (1, 2, (2, 4)[which]), tuple(hx[which].shape))


# ---- nonlinearity and argument order -------------------------------------------------------------
BAD_NONLINEARITY = ["Tanh", "sigmoid", "", "relu ", None, 1, ["tanh"]]


@pytest.mark.parametrize("value", BAD_NONLINEARITY, ids=repr)
def test_bad_nonlinearity(value):
    (_, t_err, _), (_, m_err, _) = both_build("RNN", 3, 4, nonlinearity=value)
    assert isinstance(t_err, ValueError)
    assert isinstance(m_err, ValueError)
    assert_names(m_err, "nonlinearity", "'tanh' or 'relu'", repr(value))
    # DELIBERATE: torch's RNNCell is built and refuses at its first forward; minirnn's
    # constructor refuses
    (tc, t_err, _), (_, m_err, _) = both_build("RNNCell", 3, 4, nonlinearity=value)
    assert t_err is None
    with pytest.raises(RuntimeError):
        tc(torch.zeros(2, 3, dtype=torch.float64))
    assert isinstance(m_err, ValueError)
    assert_names(m_err, "nonlinearity", repr(value))


@pytest.mark.parametrize("value", ["tanh", "relu", np.str_("relu")], ids=repr)
def test_good_nonlinearity(value):
    t, m = build_torch("RNN", 3, 4, 2, value), build_mini("RNN", 3, 4, 2, value)   # positional
    assert_same_numbers(t, m, module_input(m), module_hx(m))
    t, m = build_torch("RNNCell", 3, 4, True, value), build_mini("RNNCell", 3, 4, True, value)
    assert_same_numbers(t, m, RNG.standard_normal((2, 3)))


@pytest.mark.parametrize("name, args", [
    ("RNN", (3, 4, 2, "relu", False, True, 0.0, True)),
    ("LSTM", (3, 4, 2, False, True, 0.0, True, 2)),
    ("GRU", (3, 4, 2, False, True, 0.0, True)),
    ("RNNCell", (3, 4, False, "relu")),
    ("LSTMCell", (3, 4, False)),
    ("GRUCell", (3, 4, False)),
])
def test_positional_arguments_mean_what_they_mean_in_torch(name, args):
    t, m = build_torch(name, *args), build_mini(name, *args)
    x = RNG.standard_normal((2, 3)) if "Cell" in name else module_input(m)
    assert_same_numbers(t, m, x)


# ---- hypothesis: invalid constructor arguments never build a model -----------------------------
def _not_int(low):
    """Values that are not an int >= low."""
    return st.one_of(st.integers(max_value=low - 1), st.floats(allow_nan=True),
                     st.booleans(), st.text(max_size=3), st.none(),
                     st.lists(st.integers(1, 4), max_size=2), st.complex_numbers(max_magnitude=9),
                     st.integers(-2 ** 62, low - 1).map(np.int64))


def _is_float_dtype(value):
    try:
        return np.dtype(value).name in ("float32", "float64")
    except Exception:                                       # noqa: BLE001
        return False


NOT_BOOL = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                     st.lists(st.booleans(), max_size=2), st.sampled_from(["True", "False"]))
NOT_PROBABILITY = st.one_of(st.floats().filter(lambda v: not 0.0 <= v <= 1.0),
                            st.just(math.nan), st.booleans(), st.text(max_size=4), st.none(),
                            st.complex_numbers(max_magnitude=1).filter(lambda z: z.imag != 0),
                            st.lists(st.floats(0, 1), min_size=1, max_size=2))
NOT_NONLINEARITY = st.one_of(st.text(max_size=6).filter(lambda s: s not in ("tanh", "relu")),
                             st.integers(), st.none(), st.just(["tanh"]))
NOT_DTYPE = st.one_of(st.text(max_size=8), st.sampled_from(
                          ["int32", "float16", "complex64", "bool", "object", "U3", "int", "half"]),
                      st.integers(), st.just([1, 2])).filter(lambda v: not _is_float_dtype(v))
NOT_BACKEND = st.one_of(st.text(max_size=6).filter(lambda s: s not in ("numpy", "numba")),
                        st.integers(), st.none())
NOT_SEED = st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.text(min_size=1,
                                                                                   max_size=3))

COMMON = {"dtype": NOT_DTYPE, "backend": NOT_BACKEND, "seed": NOT_SEED}
INVALID = {
    "RNN": dict(input_size=_not_int(1), hidden_size=_not_int(1), num_layers=_not_int(1),
                bias=NOT_BOOL, batch_first=NOT_BOOL, bidirectional=NOT_BOOL,
                dropout=NOT_PROBABILITY, nonlinearity=NOT_NONLINEARITY, **COMMON),
    "LSTM": dict(input_size=_not_int(1), hidden_size=_not_int(1), num_layers=_not_int(1),
                 bias=NOT_BOOL, batch_first=NOT_BOOL, bidirectional=NOT_BOOL,
                 dropout=NOT_PROBABILITY,
                 proj_size=st.one_of(_not_int(0), st.integers(min_value=4)), **COMMON),
    "GRU": dict(input_size=_not_int(1), hidden_size=_not_int(1), num_layers=_not_int(1),
                bias=NOT_BOOL, batch_first=NOT_BOOL, bidirectional=NOT_BOOL,
                dropout=NOT_PROBABILITY, **COMMON),
    "RNNCell": dict(input_size=_not_int(0), hidden_size=_not_int(1), bias=NOT_BOOL,
                    nonlinearity=NOT_NONLINEARITY, **COMMON),
    "LSTMCell": dict(input_size=_not_int(0), hidden_size=_not_int(1), bias=NOT_BOOL, **COMMON),
    "GRUCell": dict(input_size=_not_int(0), hidden_size=_not_int(1), bias=NOT_BOOL, **COMMON),
}


@pytest.mark.parametrize("name", MODULES + CELLS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_invalid_constructor_arguments_never_build_a_model(name, data):
    key = name
    arg = data.draw(st.sampled_from(sorted(INVALID[key])), label="argument")
    value = data.draw(INVALID[key][arg], label="value")
    kw = {**BASE, "num_layers": 2} if "Cell" not in key else dict(BASE)
    kw[arg] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((TypeError, ValueError)) as e:
            getattr(minirnn, key)(**kw)
    if arg != "seed":               # numpy's SeedSequence speaks for itself: "expects int ..."
        assert arg in str(e.value), str(e.value)
