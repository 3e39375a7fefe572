"""The GRU core: the NumPy reference against live torch nn.GRU (every output and gradient,
packed variable lengths), against central finite differences, step against sequence, and the
Numba twin against the reference (every cache field, gradient and per-step record, both code
paths, both dtypes)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.cells import gru
from minirnn.cells.gru import GRUCache, GRUGradSteps
from minirnn.testing import assert_close
from tests.helpers import central_grad, padding_mask, random_array

SETTINGS = settings(max_examples=60, deadline=None)
TORCH_RTOL = 1e-12
KERNEL_RTOL = {"float64": 1e-13, "float32": 1e-5}
# An absolute floor beside each relative bound, at the dtype's rounding of O(1) terms: a
# tensor of one element (I = 1: dx_t = sum of 3H terms of size ~0.5) can cancel to ~1e-3, and
# its norm-relative error then exceeds 1e-13 (float64, measured 1.5e-13 at abs 6e-17, 3 in
# 20000 tiny cases) or 1e-5 (float32, 2.7e-5 at abs 7.5e-8) with both sides equally right.
ATOL = {"float64": 1e-15, "float32": 1e-6}
GRAD_NAMES = ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]

shapes = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6))
seeds = st.integers(0, 2**31 - 1)


def _random(rng, dtype, *shape, scale=0.7):
    return random_array(rng, dtype, *shape, scale=scale)


def _lengths(rng, T, B, ragged):
    """None, or one length per sequence in 1..T, unsorted, one of them full when B > 1."""
    if not ragged:
        return None
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T
    return lengths




def _case(rng, T, B, I, H, bias, dtype="float64"):
    """Fresh non-zero data: x, h0, weights, biases (or None), upstream gradients."""
    x, h0 = _random(rng, dtype, T, B, I), _random(rng, dtype, B, H)
    w_ih, w_hh = _random(rng, dtype, 3 * H, I), _random(rng, dtype, 3 * H, H)
    b = (_random(rng, dtype, 3 * H), _random(rng, dtype, 3 * H)) if bias else (None, None)
    d_out, d_hT = _random(rng, dtype, T, B, H, scale=1.0), _random(rng, dtype, B, H, scale=1.0)
    return x, h0, w_ih, w_hh, b[0], b[1], d_out, d_hT


# ---- the reference against live torch ---------------------------------------------------

def _torch_gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, d_out, d_hT):
    """torch's nn.GRU on the same data -> out, h_n, and the autograd gradients in our order."""
    torch = pytest.importorskip("torch")          # only these tests need it
    T, B, I = x.shape
    H = h0.shape[1]
    bias = b_ih is not None
    m = torch.nn.GRU(I, H, bias=bias, dtype=torch.float64)
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}
    if bias:
        params |= {"bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()}, strict=True)
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0[None], requires_grad=True)
    if lengths is None:
        out, h_n = m(xt, ht)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.as_tensor(lengths, dtype=torch.int64), enforce_sorted=False)
        out_packed, h_n = m(packed, ht)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, total_length=T)
    loss = (out * torch.from_numpy(d_out)).sum() + (h_n[0] * torch.from_numpy(d_hT)).sum()
    loss.backward()
    grads = [xt.grad.numpy(), ht.grad[0].numpy(), m.weight_ih_l0.grad.numpy(),
             m.weight_hh_l0.grad.numpy()]
    grads += [m.bias_ih_l0.grad.numpy(), m.bias_hh_l0.grad.numpy()] if bias else [None, None]
    return out.detach().numpy(), h_n[0].detach().numpy(), grads


@SETTINGS
@given(shape=shapes, bias=st.booleans(), ragged=st.booleans(), seed=seeds)
def test_reference_matches_torch(shape, bias, ragged, seed):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_hT = _case(rng, T, B, I, H, bias)
    lengths = _lengths(rng, T, B, ragged)

    out, h_T, cache = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh, padding_mask(lengths, T))
    grads = gru.backward(cache, d_out, d_hT)
    t_out, t_h, t_grads = _torch_gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, d_out, d_hT)

    assert_close(out, t_out, rtol=TORCH_RTOL, name="out")
    assert_close(h_T, t_h, rtol=TORCH_RTOL, name="h_n")
    for name, a, e in zip(GRAD_NAMES, grads, t_grads):
        if e is None:
            assert a is None, f"{name}: expected None without bias"
        else:
            assert_close(a, e, rtol=TORCH_RTOL, atol=ATOL["float64"], name=name)


def test_step_forward_matches_torch_gru_cell():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    B, I, H = 3, 4, 5
    x, h, w_ih, w_hh, b_ih, b_hh, _, _ = _case(rng, 1, B, I, H, bias=True)
    cell = torch.nn.GRUCell(I, H, dtype=torch.float64)
    cell.load_state_dict({"weight_ih": torch.from_numpy(w_ih), "weight_hh": torch.from_numpy(w_hh),
                          "bias_ih": torch.from_numpy(b_ih), "bias_hh": torch.from_numpy(b_hh)})
    with torch.no_grad():
        expected = cell(torch.from_numpy(x[0]), torch.from_numpy(h)).numpy()
    h_t, gates_t, hn_t = gru.step_forward(x[0], h, w_ih, w_hh, b_ih, b_hh)
    assert_close(h_t, expected, rtol=TORCH_RTOL, name="h_t")
    assert gates_t.shape == (B, 3 * H) and hn_t.shape == (B, H)
    assert_close(hn_t, h @ w_hh[2 * H:].T + b_hh[2 * H:], rtol=1e-15, name="hn_t")


def test_the_two_biases_do_not_merge_in_the_n_gate():
    """Moving b_hn into b_in changes the output (r multiplies b_hn); the r, z blocks do merge."""
    rng = np.random.default_rng(2)
    x, h0, w_ih, w_hh, b_ih, b_hh, _, _ = _case(rng, 3, 2, 3, 4, bias=True)
    H = 4
    ref = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh)[0]
    rz_merged = (b_ih + np.r_[b_hh[:2 * H], np.zeros(H)], np.r_[np.zeros(2 * H), b_hh[2 * H:]])
    assert_close(gru.forward(x, h0, w_ih, w_hh, *rz_merged)[0], ref, rtol=1e-14, name="rz merged")
    all_merged = gru.forward(x, h0, w_ih, w_hh, b_ih + b_hh, np.zeros(3 * H))[0]
    assert np.abs(all_merged - ref).max() > 1e-3


# ---- the reference against finite differences --------------------------------------------

FD_RTOL = 1e-7


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4)),
       bias=st.booleans(), ragged=st.booleans(), seed=seeds)
def test_reference_backward_matches_finite_differences(shape, bias, ragged, seed):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_hT = _case(rng, T, B, I, H, bias)
    valid = padding_mask(_lengths(rng, T, B, ragged), T)

    def loss():
        out, h_T, _ = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)
        return np.sum(d_out * out) + np.sum(d_hT * h_T)

    grads = gru.backward(gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)[2], d_out, d_hT)
    tensors = [x, h0, w_ih, w_hh, b_ih, b_hh]
    for name, analytic, arr in zip(GRAD_NAMES, grads, tensors):
        if arr is None:
            assert analytic is None, f"{name}: expected None without bias"
            continue
        num = central_grad(loss, arr)
        if name in ("dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"):    # x may be all padding: no
            assert np.abs(num).max() > 0, f"{name}: loss does not depend on it at all"
        assert_close(analytic, num, rtol=FD_RTOL, atol=1e-10, name=name)


# ---- step against sequence ----------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_step_backward_is_backward_at_T_equals_1(bias):
    rng = np.random.default_rng(3 + bias)
    B, I, H = 3, 4, 5
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_hT = _case(rng, 1, B, I, H, bias)
    out, h_T, cache = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh)
    h_t, gates_t, hn_t = gru.step_forward(x[0], h0, w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_array_equal(h_t, out[0])
    np.testing.assert_array_equal(gates_t, cache.gates[0])
    np.testing.assert_array_equal(hn_t, cache.hn[0])

    dx, dh0, dw_ih, dw_hh, db_ih, db_hh, steps = gru.backward(cache, d_out, d_hT, return_steps=True)
    assert isinstance(steps, GRUGradSteps)
    dh = d_out[0] + d_hT
    dx_t, dh_prev, dgi, dgh = gru.step_backward(dh, h0, gates_t, hn_t, w_ih, w_hh)
    H3 = 3 * H
    np.testing.assert_array_equal(dgi[:, :2 * H], dgh[:, :2 * H])  # differ in the n block only
    assert_close(dgh[:, 2 * H:], dgi[:, 2 * H:] * gates_t[:, :H], rtol=1e-15, name="dgh_n")
    assert_close(steps.dh[0], dh, rtol=1e-15, name="steps.dh")
    assert_close(steps.dg[0], dgi, rtol=1e-15, name="steps.dg")
    assert_close(dx[0], dx_t, rtol=1e-15, name="dx")
    assert_close(dh0, dh_prev, rtol=1e-15, name="dh0")
    assert_close(dw_ih, dgi.T @ x[0], rtol=1e-14, name="dw_ih")
    assert_close(dw_hh, dgh.T @ h0, rtol=1e-14, name="dw_hh")
    assert dgi.shape == dgh.shape == (B, H3)
    if bias:
        assert_close(db_ih, dgi.sum(axis=0), rtol=1e-15, name="db_ih")
        assert_close(db_hh, dgh.sum(axis=0), rtol=1e-15, name="db_hh")
    else:
        assert db_ih is None and db_hh is None


def test_empty_sequence():
    rng = np.random.default_rng(4)
    B, I, H = 2, 3, 4
    x, h0, w_ih, w_hh, b_ih, b_hh, _, d_hT = _case(rng, 1, B, I, H, bias=True)
    out, h_T, cache = gru.forward(x[:0], h0, w_ih, w_hh, b_ih, b_hh)
    assert out.shape == (0, B, H)
    np.testing.assert_array_equal(h_T, h0)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru.backward(cache, np.empty((0, B, H)), d_hT)
    assert dx.shape == (0, B, I)
    np.testing.assert_array_equal(dh0, d_hT)
    assert not (dw_ih.any() or dw_hh.any() or db_ih.any() or db_hh.any())


# ---- the Numba twin against the reference --------------------------------------------------

def _kernels():
    return pytest.importorskip("minirnn.kernels._gru")


def _compare(actual, expected, dtype, name):
    if expected is None:
        assert actual is None, f"{name}: expected None"
        return
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert_close(actual, expected, rtol=KERNEL_RTOL[dtype], atol=ATOL[dtype], name=name)


def _compare_cache(got, ref, dtype):
    """Every field of the kernel's cache NamedTuple against the reference's."""
    assert isinstance(got, GRUCache)
    for field in ref._fields:
        a, e = getattr(got, field), getattr(ref, field)
        if isinstance(e, np.ndarray):
            if e.dtype.kind == "f":
                _compare(a, e, dtype, "cache." + field)
            else:
                np.testing.assert_array_equal(a, e)
        elif e is None:
            assert a is None, f"cache.{field}: expected None"
        else:
            assert a == e, f"cache.{field}: {a!r} != {e!r}"


@SETTINGS
@given(shape=shapes, dtype=st.sampled_from(["float64", "float32"]), ragged=st.booleans(),
       bias=st.booleans(), path=st.sampled_from(["loop", "blas", None]), seed=seeds)
def test_kernel_matches_reference(shape, dtype, ragged, bias, path, seed):
    K = _kernels()
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_hT = _case(rng, T, B, I, H, bias, dtype)
    valid = padding_mask(_lengths(rng, T, B, ragged), T)

    ref = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)
    got = K.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid, path=path)
    for name, a, e in zip(["out", "h_T"], got[:2], ref[:2]):
        _compare(a, e, dtype, name)
    _compare_cache(got[2], ref[2], dtype)

    g_ref = gru.backward(ref[2], d_out, d_hT, return_steps=True)
    g_got = K.backward(got[2], d_out, d_hT, True, path=path)
    assert len(g_got) == 7 and isinstance(g_got[6], GRUGradSteps)
    for name, a, e in zip(GRAD_NAMES, g_got[:6], g_ref[:6]):
        _compare(a, e, dtype, name)
    for field in g_ref[6]._fields:
        _compare(getattr(g_got[6], field), getattr(g_ref[6], field), dtype, "steps." + field)
    # d_hT=None means zeros
    no_hT = K.backward(got[2], d_out, None, False, path=path)
    assert len(no_hT) == 6
    for name, a, e in zip(GRAD_NAMES, no_hT, gru.backward(ref[2], d_out)):
        _compare(a, e, dtype, name + " (d_hT=None)")


@pytest.mark.parametrize("ragged", [False, True])
def test_kernel_paths_agree_at_a_size_that_picks_blas(ragged):
    """A size past LOOP_MAX_WORK takes the blas path by default; both paths match the reference."""
    K = _kernels()
    from minirnn.kernels._common import loop_path
    T, B, I, H = 4, 16, 8, 40
    assert not loop_path(B, 3, H, H)
    rng = np.random.default_rng(7)
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_hT = _case(rng, T, B, I, H, bias=True)
    valid = padding_mask(_lengths(rng, T, B, ragged), T)
    ref = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid)
    g_ref = gru.backward(ref[2], d_out, d_hT)
    for path in (None, "loop", "blas"):
        got = K.forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid, path=path)
        assert_close(got[0], ref[0], rtol=1e-13, name=f"out ({path})")
        for name, a, e in zip(GRAD_NAMES, K.backward(got[2], d_out, d_hT, path=path), g_ref):
            assert_close(a, e, rtol=1e-13, name=f"{name} ({path})")


def test_kernel_non_contiguous_inputs_and_empty_sequence():
    K = _kernels()
    rng = np.random.default_rng(12)
    T, B, I, H = 4, 3, 5, 6
    x = rng.standard_normal((B, T, I)).transpose(1, 0, 2)     # (T, B, I) view, not C-contiguous
    h0 = rng.standard_normal((B, H))
    w_ih = rng.standard_normal((I, 3 * H)).T                   # (3H, I) view
    w_hh = 0.5 * rng.standard_normal((3 * H, H))
    b_ih, b_hh = rng.standard_normal(3 * H)[::-1], rng.standard_normal(6 * H)[::2]   # strided
    ref = gru.forward(x, h0, w_ih, w_hh, b_ih, b_hh)
    d = rng.standard_normal((T, B, H))[:, ::-1]                # negative strides
    g_ref = gru.backward(ref[2], d)
    for path in ("loop", "blas"):
        got = K.forward(x, h0, w_ih, w_hh, b_ih, b_hh, path=path)
        assert_close(got[0], ref[0], rtol=1e-13, name=f"out ({path})")
        for name, a, e in zip(GRAD_NAMES, K.backward(got[2], d, path=path), g_ref):
            assert_close(a, e, rtol=1e-13, name=f"{name} ({path})")
    # T = 0: the final state is the initial one, every gradient is zero-sized or zero
    out, h_T, cache = K.forward(x[:0], h0, w_ih, w_hh, None, None)
    assert out.shape == (0, B, H)
    np.testing.assert_array_equal(h_T, h0)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = K.backward(cache, np.empty((0, B, H)))
    assert dx.shape == (0, B, I) and not dw_ih.any() and not dw_hh.any() and not dh0.any()
    assert db_ih is None and db_hh is None


def test_kernel_refuses_a_bad_path():
    K = _kernels()
    rng = np.random.default_rng(0)
    x, h0, w_ih, w_hh, *_ = _case(rng, 2, 1, 2, 3, bias=False)
    with pytest.raises(ValueError, match="path"):
        K.forward(x, h0, w_ih, w_hh, path="fast")
