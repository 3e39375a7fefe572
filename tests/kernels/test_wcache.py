"""The kept transposes (minirnn/kernels/_wcache.py): a cached W^T is returned only while W is
bitwise the matrix it was built from. Every check compares against a transpose built here,
independently (np.ascontiguousarray(w.T)), never against another cache answer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")
from minirnn.kernels import _wcache  # noqa: E402
from minirnn.nn import GRU, LSTM, RNN  # noqa: E402
from minirnn.testing import assert_close  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_cache():
    _wcache.clear()
    yield
    _wcache.clear()


def _bitwise_transpose(actual, w):
    expected = np.ascontiguousarray(w.T)
    assert actual.flags.c_contiguous
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert actual.tobytes() == expected.tobytes(), "transpose differs from W^T in some bit"


def test_hit_returns_the_kept_copy():
    w = np.random.default_rng(0).standard_normal((12, 5))
    first = _wcache.transposed(w)
    assert _wcache.transposed(w) is first            # unchanged: the same array again
    _bitwise_transpose(first, w)
    assert _wcache.info()[0] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_ulp_change_anywhere_is_seen(dtype):
    # a finite-difference probe moves one element by a tiny step: the smallest there is
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 7)).astype(dtype)
    _wcache.transposed(w)
    for _ in range(20):
        i, j = rng.integers(16), rng.integers(7)
        w[i, j] = np.nextafter(w[i, j], np.inf, dtype=w.dtype)
        _bitwise_transpose(_wcache.transposed(w), w)


@pytest.mark.parametrize("old,new", [(0.0, -0.0), (np.nan, -np.nan), (np.inf, -np.inf)])
def test_values_equal_as_floats_but_not_as_bits_are_seen(old, new):
    w = np.random.default_rng(2).standard_normal((4, 3))
    w[1, 2] = old
    _wcache.transposed(w)
    w[1, 2] = new
    _bitwise_transpose(_wcache.transposed(w), w)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), dtype=st.sampled_from(["float32", "float64"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True),
                                st.floats(-1e3, 1e3, allow_nan=False)), max_size=6),
       seed=st.integers(0, 2**31 - 1))
def test_any_sequence_of_edits_gives_the_current_transpose(rows, cols, dtype, edits, seed):
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype)
    _bitwise_transpose(_wcache.transposed(w), w)
    for fi, fj, value in edits:
        w[int(fi * rows), int(fj * cols)] = value
        _bitwise_transpose(_wcache.transposed(w), w)


def test_a_new_array_in_a_reused_slot_is_not_mistaken():
    # ids come back after an array dies; the bit comparison must still decide
    rng = np.random.default_rng(3)
    for _ in range(50):
        w = rng.standard_normal((8, 8))
        _bitwise_transpose(_wcache.transposed(w), w)
        del w


def test_entries_go_with_their_matrix():
    import gc
    w = np.random.default_rng(6).standard_normal((8, 3))
    _wcache.transposed(w)
    assert _wcache.info()[0] == 1
    del w
    gc.collect()
    assert _wcache.info() == (0, 0)
    for _ in range(10):                                  # temporaries leave nothing behind
        _wcache.transposed(np.ones((5, 5))[:, :4])
    assert _wcache.info()[0] == 0


def test_views_and_non_contiguous_weights():
    base = np.random.default_rng(4).standard_normal((10, 12))
    w = base[::2, 1::3]
    _bitwise_transpose(_wcache.transposed(w), w)
    base[4, 4] += 1.0                                # inside the view: row 2, column 1
    _bitwise_transpose(_wcache.transposed(w), w)


def test_entry_and_byte_caps(monkeypatch):
    monkeypatch.setattr(_wcache, "MAX_ENTRIES", 3)
    ws = [np.full((4, 4), float(k)) for k in range(5)]
    for w in ws:
        _wcache.transposed(w)
    assert _wcache.info()[0] == 3
    monkeypatch.setattr(_wcache, "MAX_BYTES", 600)       # each 4x4 entry holds 2 * 128 bytes
    big = np.ones((8, 8))
    _bitwise_transpose(_wcache.transposed(big), big)      # too large to keep, still right
    extra = np.ones((4, 4))
    _wcache.transposed(extra)                             # an insert enforces the byte cap
    entries, size = _wcache.info()
    assert size <= 600 and entries == 2


def test_explicit_transpose_is_checked():
    w = np.zeros((6, 2))
    with pytest.raises(ValueError, match=r"w_hhT: expected the transpose of a \(6, 2\) float64"):
        _wcache.transposed(w, np.zeros((6, 2)), "w_hhT")
    with pytest.raises(ValueError, match="float32"):
        _wcache.transposed(w, np.zeros((2, 6), dtype=np.float32), "w_hhT")


@pytest.mark.parametrize("make", [lambda: LSTM(5, 8, backend="numba", seed=0),
                                  lambda: LSTM(5, 8, proj_size=3, backend="numba", seed=0),
                                  lambda: GRU(5, 8, backend="numba", seed=0),
                                  lambda: RNN(5, 8, backend="numba", seed=0)],
                         ids=["lstm", "lstm-proj", "gru", "rnn"])
def test_module_sees_weights_edited_in_place(make):
    """The user's in-place edit between two numba forwards (the loop path, B=1) reaches the
    kernel: outputs follow the NumPy reference run on the edited weights."""
    model = make()
    x = np.random.default_rng(5).standard_normal((6, 1, 5))
    model.forward(x)                                     # fills the cache
    for name in [n for n in model.params if n.startswith(("weight_hh", "weight_hr"))]:
        model.params[name][0, 1] += 0.25
        out, _ = model.forward(x)
        with model.using_backend("numpy"):
            expected, _ = model.forward(x)
        assert_close(out, expected, rtol=1e-13, atol=1e-15, name=f"out after editing {name}")
