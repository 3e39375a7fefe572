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
"""
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minirnn
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
tnn = torch.nn


def _gru_registered():
    try:
        minirnn.GRU(3, 4)
        minirnn.GRUCell(3, 4)
    except ValueError:                  # "cell: expected one of ..." until the GRU is wired in
        return False
    return True


needs_gru = pytest.mark.skipif(not _gru_registered(), reason="the GRU is not in the registry yet")
MODULES = ["RNN", "LSTM", pytest.param("GRU", marks=needs_gru)]
CELLS = ["RNNCell", "LSTMCell", pytest.param("GRUCell", marks=needs_gru)]
SIZES = {"RNN": ("input_size", "hidden_size", "num_layers"),
         "LSTM": ("input_size", "hidden_size", "num_layers", "proj_size"),
         "GRU": ("input_size", "hidden_size", "num_layers"),
         "RNNCell": ("input_size", "hidden_size"), "LSTMCell": ("input_size", "hidden_size"),
         "GRUCell": ("input_size", "hidden_size")}
BASE = {"input_size": 3, "hidden_size": 4}
RNG = np.random.default_rng(2024)


# ---- helpers ---------------------------------------------------------------------------------
def attempt(fn):
    """-> (result, exception or None, [warnings])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(), None, caught
        except Exception as e:                                  # noqa: BLE001 -- compared below
            return None, e, caught


def build_torch(name, *args, **kw):
    return getattr(tnn, name)(*args, dtype=torch.float64, **kw)


def build_mini(name, *args, **kw):
    return getattr(minirnn, name)(*args, seed=0, **kw)


def input_errors(name, x, *args, **kw):
    """The torch module and the minirnn one, built alike, each fed x -> (torch's error,
    minirnn's error), either None when that side ran."""
    t, m = build_torch(name, *args, **kw), build_mini(name, *args, **kw)
    _, t_err, _ = attempt(lambda: t(to_torch(x)))
    _, m_err, _ = attempt(lambda: m(x))
    return t_err, m_err


def both_build(name, *args, **kw):
    t, t_err, t_warn = attempt(lambda: build_torch(name, *args, **kw))
    m, m_err, m_warn = attempt(lambda: build_mini(name, *args, **kw))
    return (t, t_err, t_warn), (m, m_err, m_warn)


def to_torch(a):
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return tuple(to_torch(v) for v in a)
    return torch.from_numpy(np.asarray(a))


def flat(v):
    if isinstance(v, (tuple, list)):
        return [a for x in v for a in flat(x)]
    return [v]


def assert_same_numbers(t, m, x, hx=None, x_torch=None, train=False):
    """Copy torch's weights into m, run both, compare every output array."""
    assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == \
           [(k, v.shape) for k, v in m.state_dict().items()]
    m.load_state_dict(t.state_dict())
    t.train(train)
    m.train(train)
    with torch.no_grad():
        ref = t(to_torch(x) if x_torch is None else x_torch, to_torch(hx))
    got = m(x, hx)
    ref, got = flat(ref), flat(got)
    assert len(ref) == len(got)
    for k, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == tuple(b.shape), (k, a.shape, tuple(b.shape))
        if a.size:
            assert_close(a, b, rtol=1e-10, name=f"output {k}")
    return got


def module_input(m, T=5, B=2, unbatched=False):
    if unbatched:
        return RNG.standard_normal((T, m.input_size))
    shape = (B, T, m.input_size) if m.batch_first else (T, B, m.input_size)
    return RNG.standard_normal(shape)


def module_hx(m, B=2, unbatched=False):
    LD = m.num_layers * m.num_directions
    mid = () if unbatched else (B,)
    h = RNG.standard_normal((LD,) + mid + (m.out_size,))
    if m.mode != "lstm":
        return h
    return h, RNG.standard_normal((LD,) + mid + (m.hidden_size,))


def assert_names(err, *words):
    for w in words:
        assert str(w) in str(err), f"{w!r} not in the message {str(err)!r}"


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
        assert m_warned[0].filename == __file__            # points at the caller's line


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
    if which == "GRU" and not _gru_registered():
        return
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
    if which == "GRUCell" and not _gru_registered():
        return
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
@pytest.mark.parametrize("name", ["RNN", pytest.param("GRU", marks=needs_gru)])
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
    pytest.param("GRU", (3, 4, 2, False, True, 0.0, True), marks=needs_gru),
    ("RNNCell", (3, 4, False, "relu")),
    ("LSTMCell", (3, 4, False)),
    pytest.param("GRUCell", (3, 4, False), marks=needs_gru),
])
def test_positional_arguments_mean_what_they_mean_in_torch(name, args):
    t, m = build_torch(name, *args), build_mini(name, *args)
    x = RNG.standard_normal((2, 3)) if "Cell" in name else module_input(m)
    assert_same_numbers(t, m, x)


# ---- forward: the input ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (3,), (5, 2, 3, 1), (1, 5, 2, 3, 1)])
@pytest.mark.parametrize("name", MODULES)
def test_module_input_rank(name, shape):
    t_err, m_err = input_errors(name, RNG.standard_normal(shape), 3, 4)
    assert isinstance(t_err, ValueError) and isinstance(m_err, ValueError)
    assert_names(m_err, "x:", "(T, B, I)", "(T, I)", shape)


@pytest.mark.parametrize("batch_first, shape", [(False, (5, 2, 4)), (True, (2, 5, 4)),
                                                (False, (5, 4)), (True, (5, 4))])
@pytest.mark.parametrize("name", MODULES)
def test_module_input_feature_size(name, batch_first, shape):
    t_err, m_err = input_errors(name, RNG.standard_normal(shape), 3, 4, batch_first=batch_first)
    assert isinstance(t_err, RuntimeError) and isinstance(m_err, ValueError)
    assert_names(m_err, "x:", "input_size=3", "got 4", shape)


@pytest.mark.parametrize("batch_first, shape", [(False, (0, 2, 3)), (True, (2, 0, 3)),
                                                (False, (0, 3))])
@pytest.mark.parametrize("name", MODULES)
def test_no_time_steps(name, batch_first, shape):
    t_err, m_err = input_errors(name, np.zeros(shape), 3, 4, batch_first=batch_first)
    assert isinstance(t_err, RuntimeError) and isinstance(m_err, ValueError)
    assert_names(m_err, "x:", "time step", "T=0")


@pytest.mark.parametrize("name", MODULES)
def test_empty_batch_matches_torch(name):
    """torch runs an empty batch (B=0) through a sequence module and returns empty arrays of
    the right shapes; so does minirnn (backward and more layouts: tests/nn/test_empty_batch.py)."""
    t, m = build_torch(name, 3, 4), build_mini(name, 3, 4)
    assert_same_numbers(t, m, np.zeros((5, 0, 3)))


@pytest.mark.parametrize("shape", [(), (1, 2, 3), (1, 1, 2, 3)])
@pytest.mark.parametrize("name", CELLS)
def test_cell_input_rank(name, shape):
    t_err, m_err = input_errors(name, RNG.standard_normal(shape), 3, 4)
    assert isinstance(t_err, ValueError) and isinstance(m_err, ValueError)
    assert_names(m_err, "input:", "(B, 3) or (3,)", shape)


@pytest.mark.parametrize("shape", [(2, 5), (5,), (2, 0)])
@pytest.mark.parametrize("name", CELLS)
def test_cell_input_feature_size(name, shape):
    t_err, m_err = input_errors(name, RNG.standard_normal(shape), 3, 4)
    assert isinstance(t_err, RuntimeError) and isinstance(m_err, ValueError)
    assert_names(m_err, "input:", "input_size=3", shape)


# ---- forward: the state --------------------------------------------------------------------------
# a 2-layer bidirectional module (num_layers*num_directions = 4), hidden_size 4
HX_CASES = [  # (label, batch_first, x shape, bad state shape, expected shape in the message)
    ("batched input, 2-D state", False, (5, 2, 3), (4, 4), (4, 2, 4)),
    ("batched input, 4-D state", False, (5, 2, 3), (4, 2, 4, 1), (4, 2, 4)),
    ("unbatched input, 3-D state", False, (5, 3), (4, 1, 4), (4, 4)),
    ("unbatched input, 1-D state", False, (5, 3), (4,), (4, 4)),
    ("batch size mismatch", False, (5, 2, 3), (4, 3, 4), (4, 2, 4)),
    ("batch_first: the batch is axis 0 of x", True, (2, 5, 3), (4, 5, 4), (4, 2, 4)),
    ("num_directions forgotten", False, (5, 2, 3), (2, 2, 4), (4, 2, 4)),
    ("one layer short", False, (5, 2, 3), (1, 2, 4), (4, 2, 4)),
    ("feature size", False, (5, 2, 3), (4, 2, 5), (4, 2, 4)),
    ("unbatched, layers", False, (5, 3), (2, 4), (4, 4)),
    ("unbatched, feature size", False, (5, 3), (4, 3), (4, 4)),
    ("0-d state", False, (5, 2, 3), (), (4, 2, 4)),
]


@pytest.mark.parametrize("label, batch_first, x_shape, bad, want", HX_CASES,
                         ids=[c[0] for c in HX_CASES])
@pytest.mark.parametrize("name", MODULES)
def test_module_state_shape(name, label, batch_first, x_shape, bad, want):
    kw = dict(num_layers=2, bidirectional=True, batch_first=batch_first)
    t, m = build_torch(name, 3, 4, **kw), build_mini(name, 3, 4, **kw)
    x = RNG.standard_normal(x_shape)
    good = module_hx(m, B=x_shape[0] if batch_first else x_shape[1] if len(x_shape) == 3 else 1,
                     unbatched=len(x_shape) == 2)
    wrong = RNG.standard_normal(bad)
    cases = [("h0", (wrong, good[1]) if name == "LSTM" else wrong)]
    if name == "LSTM":
        cases.append(("c0", (good[0], wrong)))
    for state_name, hx in cases:
        _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx)))
        _, m_err, _ = attempt(lambda: m(x, hx))
        assert isinstance(t_err, RuntimeError), (state_name, t_err)
        assert isinstance(m_err, ValueError), (state_name, m_err)
        assert_names(m_err, f"{state_name}:", want, bad)


@pytest.mark.parametrize("hx_of", [
    lambda h, c: h,                      # a bare array
    lambda h, c: (h,),                   # one state
    lambda h, c: (h, c, c),              # three
    lambda h, c: [h],
], ids=["bare", "single", "triple", "list of one"])
def test_lstm_hx_must_be_a_pair(hx_of):
    t, m = build_torch("LSTM", 3, 4), build_mini("LSTM", 3, 4)
    x = module_input(m)
    h, c = module_hx(m)
    hx = hx_of(h, c)
    _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx) if isinstance(hx, (tuple, list))
                                    else torch.from_numpy(hx)))
    _, m_err, _ = attempt(lambda: m(x, hx))
    assert t_err is not None
    assert isinstance(m_err, TypeError)
    assert_names(m_err, "hx:", "pair (h, c)")


def test_lstm_hx_mixed_ranks():
    t, m = build_torch("LSTM", 3, 4), build_mini("LSTM", 3, 4)
    x = module_input(m)
    h, c = module_hx(m)
    hx = (h, c[:, 0])
    _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx)))
    _, m_err, _ = attempt(lambda: m(x, hx))
    assert isinstance(t_err, RuntimeError) and isinstance(m_err, ValueError)
    assert_names(m_err, "c0:", (1, 2, 4), (1, 4))


@pytest.mark.parametrize("as_list", [False, True])
def test_lstm_hx_as_a_list_pair(as_list):
    t, m = build_torch("LSTM", 3, 4, num_layers=2), build_mini("LSTM", 3, 4, num_layers=2)
    hx = module_hx(m)
    assert_same_numbers(t, m, module_input(m), list(hx) if as_list else hx)


def test_lstm_hx_without_c0_DELIBERATE():
    """DELIBERATE extension: (h0, None) means c0 = zeros (torch raises on the None)."""
    t, m = build_torch("LSTM", 3, 4), build_mini("LSTM", 3, 4)
    x = module_input(m)
    h, c = module_hx(m)
    _, t_err, _ = attempt(lambda: t(to_torch(x), (torch.from_numpy(h), None)))
    assert t_err is not None
    got = assert_same_numbers(t, m, x, (h, np.zeros_like(c)))
    m.train(False)
    again = flat(m(x, (h, None)))
    for a, b in zip(again, got):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("name", ["RNN", pytest.param("GRU", marks=needs_gru)])
def test_single_state_hx_must_not_be_a_tuple(name, unbatched):
    """torch refuses a tuple hx for RNN/GRU; so does minirnn -- np.asarray used to stack a
    tuple of per-layer states into one array (here two (H,) vectors of a 2-layer model)."""
    t, m = build_torch(name, 3, 4, num_layers=2), build_mini(name, 3, 4, num_layers=2)
    x = module_input(m, unbatched=unbatched)
    h = module_hx(m, unbatched=unbatched)
    for hx in ((h[0], h[1]), (h,)):
        _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx)))
        _, m_err, _ = attempt(lambda: m(x, hx))
        assert t_err is not None
        assert isinstance(m_err, TypeError)
        assert_names(m_err, "h0:", f"tuple of {len(hx)}", "only the LSTM")


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("name", MODULES)
def test_module_forward_matches_torch(name, batch_first, unbatched, with_hx):
    kw = dict(num_layers=2, bidirectional=True, batch_first=batch_first)
    t, m = build_torch(name, 3, 4, **kw), build_mini(name, 3, 4, **kw)
    assert_same_numbers(t, m, module_input(m, B=3, unbatched=unbatched),
                        module_hx(m, B=3, unbatched=unbatched) if with_hx else None)


CELL_HX_CASES = [  # (label, x shape, bad hx shape, expected shape in the message)
    ("batched input, 1-D hx", (2, 3), (4,), (2, 4)),
    ("batched input, 3-D hx", (2, 3), (1, 2, 4), (2, 4)),
    ("batch mismatch", (2, 3), (3, 4), (2, 4)),
    ("no broadcasting over the batch", (2, 3), (1, 4), (2, 4)),
    ("feature size", (2, 3), (2, 5), (2, 4)),
    ("unbatched input, 2-D hx of one row", (3,), (1, 4), (4,)),
    ("unbatched input, 2-D hx", (3,), (2, 4), (4,)),
    ("unbatched, feature size", (3,), (5,), (4,)),
    ("unbatched, 0-d hx", (3,), (), (4,)),
]


@pytest.mark.parametrize("label, x_shape, bad, want", CELL_HX_CASES,
                         ids=[c[0] for c in CELL_HX_CASES])
@pytest.mark.parametrize("name", CELLS)
def test_cell_state_shape(name, label, x_shape, bad, want):
    t, m = build_torch(name, 3, 4), build_mini(name, 3, 4)
    x = RNG.standard_normal(x_shape)
    wrong = RNG.standard_normal(bad)
    good = RNG.standard_normal(x_shape[:-1] + (4,))
    cases = ([("hx[0]", (wrong, good)), ("hx[1]", (good, wrong))] if name == "LSTMCell"
             else [("hx", wrong)])
    for state_name, hx in cases:
        _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx)))
        _, m_err, _ = attempt(lambda: m(x, hx))
        assert t_err is not None, state_name
        assert isinstance(m_err, ValueError), (state_name, m_err)
        assert_names(m_err, f"{state_name}:", want, bad)


@pytest.mark.parametrize("hx_of", [lambda h: h, lambda h: (h,), lambda h: (h, h, h)],
                         ids=["bare", "single", "triple"])
def test_lstm_cell_hx_must_be_a_pair(hx_of):
    t, m = build_torch("LSTMCell", 3, 4), build_mini("LSTMCell", 3, 4)
    x, h = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 4))
    hx = hx_of(h)
    _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx) if isinstance(hx, tuple)
                                    else torch.from_numpy(hx)))
    _, m_err, _ = attempt(lambda: m(x, hx))
    assert t_err is not None and isinstance(m_err, TypeError)
    assert_names(m_err, "hx:", "tuple of 2", "('h', 'c')")


@pytest.mark.parametrize("name", ["RNNCell", pytest.param("GRUCell", marks=needs_gru)])
def test_single_state_cell_hx_must_not_be_a_tuple(name):
    t, m = build_torch(name, 3, 4), build_mini(name, 3, 4)
    x, h = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 4))
    for hx in ((h,), (h[0], h[1])):
        _, t_err, _ = attempt(lambda: t(to_torch(x), to_torch(hx)))
        _, m_err, _ = attempt(lambda: m(x, hx))
        assert t_err is not None and isinstance(m_err, TypeError)
        assert_names(m_err, "hx:", f"tuple of {len(hx)}", "only the LSTMCell")


@pytest.mark.parametrize("B", [None, 1, 3, 0])
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_cell_forward_matches_torch(name, with_hx, B):
    """B=None: one unbatched sample; B=0: an empty batch, which torch's cells and minirnn's
    both accept."""
    t, m = build_torch(name, 3, 4), build_mini(name, 3, 4)
    lead = () if B is None else (B,)
    hx = None
    if with_hx:
        hx = tuple(RNG.standard_normal(lead + (4,)) for _ in range(2 if name == "LSTMCell" else 1))
        hx = hx if name == "LSTMCell" else hx[0]
    assert_same_numbers(t, m, RNG.standard_normal(lead + (3,)), hx)


# ---- dtypes ---------------------------------------------------------------------------------
def _float32_pair(name):
    t = getattr(tnn, name)(3, 4)                                # torch's default: float32
    m = getattr(minirnn, name)(3, 4, dtype="float32", seed=0)
    m.load_state_dict(t.state_dict())
    return t, m


@pytest.mark.parametrize("name", MODULES + CELLS)
def test_float64_into_a_float32_model_is_refused(name):
    key = name
    t, m = _float32_pair(key)
    cell = "Cell" in key
    x = RNG.standard_normal((2, 3) if cell else (5, 2, 3))
    x_name = "input" if cell else "x"
    _, t_err, _ = attempt(lambda: t(torch.from_numpy(x)))
    _, m_err, _ = attempt(lambda: m(x))
    assert t_err is not None and isinstance(m_err, TypeError)
    assert_names(m_err, f"{x_name}:", "float64", "float32", f"{x_name}.astype(np.float32)",
                 "dtype='float64'")
    # the state too
    x32 = x.astype(np.float32)
    h = RNG.standard_normal((2, 4) if cell else (1, 2, 4))
    lstm = key.startswith("LSTM")
    hx = (h, h.astype(np.float32)) if lstm else h
    _, t_err, _ = attempt(lambda: t(torch.from_numpy(x32), to_torch(hx)))
    _, m_err, _ = attempt(lambda: m(x32, hx))
    assert t_err is not None and isinstance(m_err, TypeError)
    h_name = ("hx[0]" if lstm else "hx") if cell else "h0"
    assert_names(m_err, f"{h_name}:", "float64", "float32", "astype(np.float32)")


@pytest.mark.parametrize("name", MODULES + CELLS)
def test_float32_model_matches_torchs_float32(name):
    key = name
    t, m = _float32_pair(key)
    x = RNG.standard_normal((2, 3) if "Cell" in key else (5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        ref = flat(t(torch.from_numpy(x)))
    got = flat(m(x))
    for a, b in zip(got, ref):
        assert a.dtype == np.float32
        assert_close(a, b, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "int64", "int32", "uint8", "torch.float32"])
@pytest.mark.parametrize("name", MODULES + CELLS)
def test_exact_casts_into_a_float64_model_DELIBERATE(name, dtype):
    """DELIBERATE: torch refuses every dtype mismatch; minirnn casts what it can cast exactly
    (float32 or integers into float64): the result is the float64 result, bit for bit."""
    key = name
    t, m = build_torch(key, 3, 4), build_mini(key, 3, 4)
    x64 = RNG.standard_normal((2, 3) if "Cell" in key else (5, 2, 3))
    if dtype.startswith("torch."):
        x = torch.from_numpy(x64.astype(np.float32))
        x64 = x.double().numpy()
    elif dtype.startswith(("int", "uint")):
        x64 = np.round(x64 * 3) % 7 if dtype == "uint8" else np.round(x64 * 3)
        x = x64.astype(dtype)
    else:
        x = x64.astype(dtype)
        x64 = x.astype(np.float64)
    x_torch = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
    _, t_err, _ = attempt(lambda: t(x_torch))
    assert t_err is not None
    expected = assert_same_numbers(t, m, x64)
    for a, b in zip(flat(m(x)), expected):
        assert a.dtype == np.float64 and np.array_equal(a, b)


@pytest.mark.parametrize("bad, exc, words", [
    (lambda x: x > 0, TypeError, ["dtype bool"]),
    (lambda x: x.astype(complex), TypeError, ["complex128"]),
    (lambda x: x.astype(object), TypeError, ["dtype object"]),
    (lambda x: np.full(x.shape, 2 ** 53 + 1, dtype=np.int64), TypeError, ["int64", "2**53"]),
], ids=["bool", "complex", "object", "int64 beyond 2**53"])
@pytest.mark.parametrize("name", MODULES)
def test_inputs_that_cannot_be_cast(name, bad, exc, words):
    m = build_mini(name, 3, 4)
    with pytest.raises(exc) as e:
        m(bad(RNG.standard_normal((5, 2, 3))))
    assert_names(e.value, "x:", *words)


def test_a_ragged_input_names_x():
    with pytest.raises(ValueError, match=r"^x: expected an array of real numbers, got list"):
        build_mini("RNN", 3, 4)([[[0.0, 1.0, 2.0]], [[0.0, 1.0]]])


@pytest.mark.parametrize("name", CELLS)
def test_a_scalar_is_not_a_one_feature_vector(name):
    """A 0-d value used to turn 1-d, passing for an unbatched input of size 1."""
    t, m = build_torch(name, 1, 2), build_mini(name, 1, 2)
    _, t_err, _ = attempt(lambda: t(torch.tensor(0.5, dtype=torch.float64)))
    _, m_err, _ = attempt(lambda: m(np.float64(0.5)))
    assert isinstance(t_err, ValueError) and isinstance(m_err, ValueError)
    assert_names(m_err, "input:", "got ()")


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
