"""Argument checks against live torch, the forward's side: the input, the state and the dtypes
(the constructor's side, and what DELIBERATE marks, are in test_torch_fidelity_constructor.py).
Every call torch refuses, minirnn refuses too; every call torch accepts, minirnn computes the
same numbers or refuses on purpose."""
import numpy as np
import pytest

import minirnn
from minirnn.testing import assert_close
from tests.helpers.torch_fidelity import (CELLS, MODULES, RNG, assert_names, assert_same_numbers,
                                          attempt, build_mini, build_torch, flat, input_errors,
                                          module_hx, module_input, tnn, to_torch, torch)


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
@pytest.mark.parametrize("name", ["RNN", "GRU"])
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


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell"])
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
