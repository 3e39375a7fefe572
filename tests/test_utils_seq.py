"""minirnn.utils against torch.nn.utils.rnn: pad_sequence / unpad_sequence (exact equality),
sequence_lengths, bad input, and a padded batch through a model equal to each sequence alone."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import rnn as trnn

import minirnn
import minirnn.utils as U
from minirnn.testing import assert_close

RNG = np.random.default_rng(11)
DTYPES = ["float32", "float64", "int32", "int64"]


def make_seqs(lens, trailing=(3,), dtype="float64", rng=RNG):
    out = []
    for L in lens:
        a = rng.standard_normal((L,) + tuple(trailing)) * 10
        out.append(a.astype(dtype))
    return out


def torch_pad(seqs, **kw):
    return trnn.pad_sequence([torch.from_numpy(s) for s in seqs], **kw).numpy()


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f")


# ---- pad_sequence against torch ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trailing", [(), (3,), (2, 3)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(dtype, trailing, batch_first, padding_side):
    seqs = make_seqs([4, 1, 6, 3], trailing, dtype)
    for pad in (0.0, -7, 2.0):
        kw = dict(batch_first=batch_first, padding_value=pad, padding_side=padding_side)
        assert_same(U.pad_sequence(seqs, **kw), torch_pad(seqs, **kw))


def test_pad_sequence_defaults_shapes_and_torch_tensor_items():
    seqs = make_seqs([5, 2, 3], (4,))
    x = U.pad_sequence(seqs)
    assert x.shape == (5, 3, 4) and U.pad_sequence(seqs, batch_first=True).shape == (3, 5, 4)
    assert np.all(x[2:, 1] == 0) and np.array_equal(x[:2, 1], seqs[1])
    assert_same(U.pad_sequence(tuple(torch.from_numpy(s) for s in seqs)), torch_pad(seqs))
    assert_same(U.pad_sequence(seqs[:1]), seqs[0][:, None])          # one sequence


def test_pad_sequence_padding_value_cast_like_torch():
    ints = make_seqs([3, 1], (2,), "int64")
    for pad in (-1.5, 2.9, True, np.float32(4.0), np.int8(-3)):
        assert_same(U.pad_sequence(ints, padding_value=pad), torch_pad(ints, padding_value=float(pad)))
    floats = make_seqs([3, 1], (2,), "float32")
    for pad in (float("nan"), float("-inf"), 0.1):
        assert_same(U.pad_sequence(floats, padding_value=pad), torch_pad(floats, padding_value=pad))


def test_pad_sequence_empty_sequences_like_torch():
    for lens in ([0, 2], [0], [0, 0]):
        for side in ("right", "left"):
            seqs = make_seqs(lens, (3,))
            assert_same(U.pad_sequence(seqs, padding_side=side), torch_pad(seqs, padding_side=side))


def test_pad_sequence_result_dtype_is_numpy_result_type():
    a = np.arange(3, dtype=np.int32)
    b = np.ones(2, dtype=np.float32)
    x = U.pad_sequence([a, b])
    assert x.dtype == np.result_type(a, b) == np.float64
    assert x.dtype == U.pad_sequence([b, a]).dtype
    assert U.pad_sequence([np.ones(2, np.float32), np.ones(1, np.float32)]).dtype == np.float32


def test_pad_sequence_copies():
    seqs = make_seqs([2, 3], (2,))
    x = U.pad_sequence(seqs)
    x[:] = 99
    assert not np.any(seqs[0] == 99) and not np.any(seqs[1] == 99)


seq_lists = st.integers(1, 5).flatmap(lambda B: st.tuples(
    st.lists(st.integers(0, 6), min_size=B, max_size=B),
    st.sampled_from([(), (1,), (3,), (2, 2)]),
    st.sampled_from(DTYPES + ["uint8", "bool"]),
    st.integers(0, 2**31 - 1)))


@settings(max_examples=60, deadline=None)
@given(case=seq_lists, batch_first=st.booleans(), side=st.sampled_from(["right", "left"]),
       pad=st.integers(0, 9))
def test_pad_sequence_random_against_torch(case, batch_first, side, pad):
    lens, trailing, dtype, seed = case
    rng = np.random.default_rng(seed)
    seqs = [(rng.standard_normal((L,) + trailing) * 5).astype(dtype) for L in lens]
    kw = dict(batch_first=batch_first, padding_value=float(pad), padding_side=side)
    assert_same(U.pad_sequence(seqs, **kw), torch_pad(seqs, **kw))
    n = U.sequence_lengths(seqs)
    assert n.dtype == np.int64 and n.tolist() == lens
    if side == "right":
        x = U.pad_sequence(seqs, **kw)
        theirs = trnn.unpad_sequence(torch.from_numpy(x.copy()), torch.as_tensor(n),
                                     batch_first=batch_first)
        ours = U.unpad_sequence(x, n, batch_first=batch_first)
        assert len(ours) == len(seqs)
        for o, t, s in zip(ours, theirs, seqs):
            assert_same(o, t.numpy())
            assert_same(o, s)


# ---- sequence_lengths / lengths ------------------------------------------------------------

def test_sequence_lengths_and_alias():
    seqs = make_seqs([4, 1, 6], (2,))
    n = U.sequence_lengths(seqs)
    assert n.dtype == np.int64 and n.shape == (3,) and n.tolist() == [4, 1, 6]
    assert U.lengths is U.sequence_lengths
    assert U.lengths([torch.zeros(2, 1), torch.zeros(5, 1)]).tolist() == [2, 5]
    assert set(U.__all__) == {"pad_sequence", "sequence_lengths", "lengths", "unpad_sequence"}


# ---- unpad_sequence against torch ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trailing", [(), (3,), (2, 3)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence_matches_torch(dtype, trailing, batch_first):
    seqs = make_seqs([4, 1, 6, 3], trailing, dtype)
    x = U.pad_sequence(seqs, batch_first=batch_first, padding_value=-5)
    n = U.lengths(seqs)
    theirs = trnn.unpad_sequence(torch.from_numpy(x.copy()), torch.as_tensor(n),
                                 batch_first=batch_first)
    for lens in (n, n.tolist(), torch.as_tensor(n)):           # any array-like lengths
        ours = U.unpad_sequence(x, lens, batch_first=batch_first)
        assert len(ours) == 4
        for o, t, s in zip(ours, theirs, seqs):
            assert_same(o, t.numpy())
            assert_same(o, s)


def test_unpad_sequence_returns_copies_and_shorter_lengths():
    x = RNG.standard_normal((5, 2, 3))
    before = x.copy()
    parts = U.unpad_sequence(x, np.array([5, 2]))
    for p in parts:
        assert p.flags.c_contiguous and not np.shares_memory(p, x)
        p[:] = 0
    assert np.array_equal(x, before)
    single = U.unpad_sequence(x[:, :1], [3])                       # B = 1: still a copy
    assert not np.shares_memory(single[0], x)
    z = U.unpad_sequence(x, np.array([0, 1.0]))                    # 0 and integral floats allowed
    assert z[0].shape == (0, 3) and np.array_equal(z[1], x[:1, 1])


# ---- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: U.pad_sequence([]), ValueError, r"sequences: expected at least one sequence, got an empty list"),
    (lambda: U.pad_sequence(()), ValueError, r"sequences: expected at least one sequence, got an empty tuple"),
    (lambda: U.pad_sequence(np.zeros((3, 2))), TypeError,
     r"sequences: expected a list or tuple of arrays .*got ndarray"),
    (lambda: U.pad_sequence([np.zeros(2), [1.0, 2.0]]), TypeError,
     r"sequences\[1\]: expected an array \(numpy.ndarray or torch.Tensor\).*got list"),
    (lambda: U.pad_sequence([np.zeros(2), 3.0]), TypeError, r"sequences\[1\]: expected an array.*got float"),
    (lambda: U.pad_sequence([np.zeros(2), np.float64(1.0)]), TypeError,
     r"sequences\[1\]: expected an array.*got float64"),
    (lambda: U.pad_sequence([np.zeros(2), np.array(1.0)]), ValueError,
     r"sequences\[1\]: expected an array of shape \(L, \*\).*got a 0-d array"),
    (lambda: U.pad_sequence([np.array(["a", "b"])]), TypeError,
     r"sequences\[0\]: expected a numeric or bool dtype, got dtype <U1"),
    (lambda: U.pad_sequence([np.zeros((2, 3)), np.zeros((1, 3)), np.zeros((5, 4))]), ValueError,
     r"sequences\[2\]: expected trailing shape \(3,\) like sequences\[0\], got \(4,\) \(shape \(5, 4\)\)"),
    (lambda: U.pad_sequence([np.zeros((2, 3)), np.zeros(2)]), ValueError,
     r"sequences\[1\]: expected trailing shape \(3,\) like sequences\[0\], got \(\)"),
    (lambda: U.pad_sequence([np.zeros(2)], batch_first=1), TypeError, r"batch_first: expected True or False, got int 1"),
    (lambda: U.pad_sequence([np.zeros(2)], batch_first="yes"), TypeError, r"batch_first: expected True or False, got str 'yes'"),
    (lambda: U.pad_sequence([np.zeros(2)], padding_side="middle"), ValueError,
     r"padding_side: expected one of \('right', 'left'\), got 'middle'"),
    (lambda: U.pad_sequence([np.zeros(2)], padding_side=None), ValueError,
     r"padding_side: expected one of \('right', 'left'\), got None"),
    (lambda: U.pad_sequence([np.zeros(2)], padding_value="0"), TypeError,
     r"padding_value: expected a number, got '0' \(str\)"),
    (lambda: U.pad_sequence([np.zeros(2)], padding_value=1j), TypeError,
     r"padding_value: expected a real number for result dtype float64, got 1j"),
    (lambda: U.pad_sequence([np.zeros(2, np.int8)], padding_value=300), ValueError,
     r"padding_value: expected a value in -128\.\.127 for result dtype int8, got 300"),
    (lambda: U.pad_sequence([np.zeros(2, np.int64)], padding_value=float("nan")), ValueError,
     r"padding_value: expected a finite value for result dtype int64, got nan"),
    (lambda: U.sequence_lengths([]), ValueError, r"sequences: expected at least one sequence"),
    (lambda: U.lengths([np.zeros((2, 3)), np.zeros((1, 2))]), ValueError,
     r"sequences\[1\]: expected trailing shape \(3,\) like sequences\[0\], got \(2,\)"),
    (lambda: U.unpad_sequence(np.zeros(4), [1]), ValueError,
     r"padded: expected an array of shape \(T, B, \*\) with at least 2 dimensions, got shape \(4,\)"),
    (lambda: U.unpad_sequence(np.zeros(4), [1], batch_first=True), ValueError,
     r"padded: expected an array of shape \(B, T, \*\).*got shape \(4,\)"),
    (lambda: U.unpad_sequence(np.zeros((5, 2, 3)), [5, 2, 1]), ValueError,
     r"lengths: expected one length per batch element, shape \(2,\), got shape \(3,\)"),
    (lambda: U.unpad_sequence(np.zeros((5, 2, 3)), [[5, 2]]), ValueError,
     r"lengths: expected .* shape \(2,\), got shape \(1, 2\)"),
    (lambda: U.unpad_sequence(np.zeros((5, 2, 3)), [2.5, 1.0]), TypeError,
     r"lengths: expected integers, got dtype float64"),
    (lambda: U.unpad_sequence(np.zeros((5, 2, 3)), [6, 1]), ValueError,
     r"lengths: expected every length in 0\.\.5 \(the padded length\), got min 1, max 6"),
    (lambda: U.unpad_sequence(np.zeros((5, 2, 3)), [-1, 1]), ValueError,
     r"lengths: expected every length in 0\.\.5 .*got min -1, max 1"),
    (lambda: U.unpad_sequence(np.zeros((2, 5, 3)), [5, 1]), ValueError,    # (T=2, B=5) read time-first
     r"lengths: expected .* shape \(5,\), got shape \(2,\)"),
    (lambda: U.unpad_sequence(np.zeros((5, 2)), [1, 1], batch_first=0), TypeError,
     r"batch_first: expected True or False, got int 0"),
])
def test_bad_input_names_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ---- end to end: a padded batch equals each sequence alone --------------------------------

@pytest.mark.parametrize("make", [
    lambda bf: minirnn.LSTM(3, 4, seed=1, batch_first=bf),
    lambda bf: minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=2, batch_first=bf),
    lambda bf: minirnn.LSTM(3, 5, proj_size=2, bidirectional=True, seed=3, batch_first=bf),
    lambda bf: minirnn.RNN(3, 4, num_layers=2, bidirectional=True, seed=4, batch_first=bf),
], ids=["lstm", "lstm-2layer-bi", "lstm-proj-bi", "rnn-2layer-bi"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_padded_batch_equals_each_sequence_alone(make, batch_first):
    seqs = make_seqs([5, 2, 7, 1, 7], (3,))
    m = make(batch_first)
    m.eval()
    x = U.pad_sequence(seqs, batch_first=batch_first, padding_value=123.0)  # padding must not leak
    n = U.lengths(seqs)
    out, state = m(x, lengths=n)
    h_n = state[0] if isinstance(state, tuple) else state
    parts = U.unpad_sequence(out, n, batch_first=batch_first)
    for b, s in enumerate(seqs):
        alone = s[None] if batch_first else s[:, None]
        out_b, state_b = m(alone)
        h_b = state_b[0] if isinstance(state_b, tuple) else state_b
        assert_close(h_n[:, b], h_b[:, 0], rtol=1e-12, name=f"h_n[:, {b}]")
        if isinstance(state, tuple):
            assert_close(state[1][:, b], state_b[1][:, 0], rtol=1e-12, name=f"c_n[:, {b}]")
        assert_close(parts[b], out_b[0] if batch_first else out_b[:, 0], rtol=1e-12, name=f"out[{b}]")
    rest = out if not batch_first else out.swapaxes(0, 1)
    for b, L in enumerate(n):
        assert np.all(rest[L:, b] == 0)                   # zeros past each end, as torch's padding


def test_utils_does_not_import_torch():
    code = "import sys, minirnn.utils; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
