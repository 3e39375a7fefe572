"""Optional arguments of the smaller public API, each present and absent (issue 20): the
padding utilities against torch.nn.utils.rnn, assert_close, the Module methods every model
shares (prefix, strict, mode, using_backend, preserve_record, the layout and state helpers),
the layers' dtype, the tracer's views and gradcheck's tolerances. Which test covers which
argument is listed in tests/test_api_optional.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn import utils
from minirnn.grad.gradcheck import GradcheckReport
from minirnn.cells import BUILTIN, get_cell
from minirnn.nn import make_cell, make_recurrent

torch = pytest.importorskip("torch")
SEEDS = st.integers(0, 2**31 - 1)


def maybe(data, kw, name, value, default):
    """Pass `name` when it differs from its default; at the default, pass it or leave it out."""
    if value != default or data.draw(st.booleans(), f"say {name}"):
        kw[name] = value


# ---- minirnn.utils against torch.nn.utils.rnn -----------------------------------------------

@settings(max_examples=60, deadline=None)
@given(data=st.data(), lens=st.lists(st.integers(0, 4), min_size=1, max_size=4),
       trailing=st.sampled_from([(), (2,), (2, 3)]),
       dtype=st.sampled_from(["float64", "float32", "int64"]), batch_first=st.booleans(),
       padding_side=st.sampled_from(["right", "left"]),
       padding_value=st.sampled_from([0.0, -1.0, 2.5]), seed=SEEDS)
def test_utils_match_torch(data, lens, trailing, dtype, batch_first, padding_side,
                           padding_value, seed):
    """pad_sequence: batch_first, padding_value, padding_side; unpad_sequence: batch_first."""
    rng = np.random.default_rng(seed)
    seqs = [(rng.standard_normal((n,) + trailing) * 5).astype(dtype) for n in lens]
    kw = {}
    maybe(data, kw, "batch_first", batch_first, False)
    maybe(data, kw, "padding_value", padding_value, 0.0)
    maybe(data, kw, "padding_side", padding_side, "right")
    got = utils.pad_sequence(seqs, **kw)
    want = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], **kw).numpy()
    assert got.dtype == want.dtype and np.array_equal(got, want)

    n = utils.sequence_lengths(seqs)
    assert np.array_equal(n, utils.lengths(seqs)) and n.tolist() == lens
    padded = utils.pad_sequence(seqs, batch_first=batch_first)          # right padding
    ukw = {}
    maybe(data, ukw, "batch_first", batch_first, False)
    parts = utils.unpad_sequence(padded, n, **ukw)
    t_parts = torch.nn.utils.rnn.unpad_sequence(torch.from_numpy(padded), torch.from_numpy(n),
                                                batch_first=batch_first)
    assert len(parts) == len(seqs)
    for a, b, s in zip(parts, t_parts, seqs):
        assert np.array_equal(a, b.numpy()) and np.array_equal(a, s)


# ---- assert_close ----------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(3,), (2, 4)]), scale=st.floats(1e-9, 1e-3), seed=SEEDS)
def test_assert_close_rtol_atol_name(shape, scale, seed):
    """rtol, atol and name, each given and left at its default."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(shape) + 3.0
    a = b + scale * rng.standard_normal(shape)
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    worst = np.abs(a - b).max()
    assert rel > 1e-12
    minirnn.assert_close(b.copy(), b)                                   # the default rtol: exact
    with pytest.raises(AssertionError, match=r"^tensor: relative error"):
        minirnn.assert_close(a, b)
    minirnn.assert_close(a, b, rtol=2 * rel)
    with pytest.raises(AssertionError, match=r"^dW_hh: relative error .* > rtol"):
        minirnn.assert_close(a, b, rtol=rel / 2, name="dW_hh")
    minirnn.assert_close(a, b, rtol=0.0, atol=2 * worst)
    with pytest.raises(AssertionError, match="max abs error"):
        minirnn.assert_close(a, b, rtol=0.0, atol=worst / 2)
    with pytest.raises(AssertionError, match="shape mismatch"):
        minirnn.assert_close(a[..., :1], b, rtol=1.0, atol=1.0)
    minirnn.assert_close(a[..., :0], b[..., :0], rtol=0.0)              # empty: nothing differs


# ---- what every Module shares ------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(data=st.data(), cell=st.sampled_from(BUILTIN), layers=st.integers(1, 2),
       bidirectional=st.booleans(), batch_first=st.booleans(), seed=SEEDS)
def test_module_methods(data, cell, layers, bidirectional, batch_first, seed):
    """named_parameters / modules (prefix), train (mode), load_state_dict (strict),
    to_time_major / from_time_major (unbatched), state_tuple (name), using_backend,
    preserve_record, last_forward, last_caches; Module (dtype, seed)."""
    model = make_recurrent(cell, 3, 4, num_layers=layers, bidirectional=bidirectional,
                           batch_first=batch_first, seed=seed)
    names = list(model.state_dict())
    assert [n for n, _, _ in model.named_parameters()] == names
    assert [n for n, _, _ in model.named_parameters(prefix="rnn.")] == ["rnn." + n for n in names]
    top = minirnn.Module()
    top.add_module("rnn", model)
    assert [p for p, _ in top.modules()] == ["", "rnn."]
    assert [p for p, _ in top.modules(prefix="m.")] == ["m.", "m.rnn."]
    assert top.train(mode=False) is top and not model.training
    assert top.train() is top and model.training
    assert not top.eval().training and not model.training
    top.train(True)

    rng = np.random.default_rng(seed)
    half = {k: rng.standard_normal(v.shape) for k, v in list(model.state_dict().items())[::2]}
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict(half)
    before = model.state_dict()
    assert model.load_state_dict(half, strict=False) is model
    for k, v in model.state_dict().items():
        assert np.array_equal(v, half[k] if k in half else before[k]), k
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict(half, strict=True)

    T, B, D = 4, 2, model.num_directions
    x = rng.standard_normal((T, B, 3))
    user = model.from_time_major(x)
    assert np.array_equal(user, x.transpose(1, 0, 2) if batch_first else x)
    assert np.array_equal(model.to_time_major(user), x)
    one = model.to_time_major(x[:, 0], unbatched=True)
    assert one.shape == (T, 1, 3) and np.array_equal(model.from_time_major(one, unbatched=True),
                                                     x[:, 0])
    spec = get_cell(cell)
    if len(spec.state_names) == 2:
        h = rng.standard_normal((layers * D, B, 4))
        with pytest.raises(TypeError, match=r"^hx: expected a pair"):
            model.state_tuple(h)
        with pytest.raises(TypeError, match=r"^d_state: expected a pair"):
            model.state_tuple(h, name="d_state")
        assert model.state_value(model.state_tuple((h, h))) == (h, h)
    assert model.state_tuple(None) is None

    assert model.last_forward is None and model.last_caches is None
    lengths = rng.integers(1, T + 1, size=B)
    out, _ = model(user, lengths=lengths)
    d_out = rng.standard_normal(out.shape)
    rec = model.last_forward
    assert np.array_equal(rec.lengths, lengths) and len(model.last_caches) == layers * D
    assert model.last_caches[0] is rec.caches[0] and not rec.unbatched
    with model.preserve_record():                 # a probe pass leaves the record in place
        model(rng.standard_normal(user.shape))
        model.backward(rng.standard_normal(out.shape))
    assert model.last_forward is rec
    model.zero_grad()
    dx, _ = model.backward(d_out)
    grads = model.grad_dict()
    with model.using_backend("numba") as same:
        assert same is model and model.backend == "numba"
        out_nb, _ = model(user, lengths=lengths)
        model.zero_grad()
        dx_nb, _ = model.backward(d_out)
    assert model.backend == "numpy"
    minirnn.assert_close(out_nb, out, name="out numba")
    minirnn.assert_close(dx_nb, dx, name="dx numba")
    for k, g in model.grad_dict().items():
        minirnn.assert_close(g, grads[k], name=k)

    m32 = minirnn.Module(dtype="float32", seed=seed)
    m32.add_param("w", (2, 3), 0.5)
    again = minirnn.Module("float32", seed)
    again.add_param("w", (2, 3), 0.5)
    m64 = minirnn.Module()
    m64.add_param("w", (2, 3), 0.5)
    assert m32.params["w"].dtype == np.float32 and m64.params["w"].dtype == np.float64
    assert np.array_equal(m32.params["w"], again.params["w"])
    assert np.abs(m64.params["w"]).max() <= 0.5


@pytest.mark.parametrize("cell", BUILTIN)
def test_cell_preserve_record(cell):
    rng = np.random.default_rng(3)
    model = make_cell(cell, 3, 4, seed=1)
    state = model.forward_state(rng.standard_normal((2, 3)))
    d = tuple(rng.standard_normal(s.shape) for s in state)
    model.zero_grad()
    want = model.backward_state(d, retain_graph=True)        # kept for the second
    with model.preserve_record():
        model.forward_state(rng.standard_normal((5, 3)))
    model.zero_grad()
    got = model.backward_state(d)
    assert np.array_equal(got[0], want[0])
    for a, b in zip(got[1], want[1]):
        assert np.array_equal(a, b)


# ---- the layers' dtype and defaults ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [None, "float32", "float64"])
def test_layers_dtype_and_defaults(dtype):
    """Linear (bias, dtype, seed), Embedding (padding_idx, dtype), Dropout (p, dtype, seed):
    a default left out is the default given; float32 computes in float32."""
    kw = {} if dtype is None else {"dtype": dtype}
    want = np.dtype(dtype or "float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(want)
    lin, lin_b = minirnn.Linear(3, 2, seed=4, **kw), minirnn.Linear(3, 2, bias=True, seed=4, **kw)
    y = lin.forward(x)
    assert y.dtype == want and np.array_equal(y, lin_b.forward(x))
    assert lin.backward(np.ones_like(y)).dtype == want and lin.grads["weight"].dtype == want
    emb = minirnn.Embedding(6, 2, seed=4, **kw)
    emb_n = minirnn.Embedding(6, 2, padding_idx=None, seed=4, **kw)
    ids = rng.integers(0, 6, size=(2, 3))
    e = emb.forward(ids)
    assert e.dtype == want and np.array_equal(e, emb_n.forward(ids))
    with pytest.raises(ValueError, match=r"^tokens"):
        emb.check_ids(np.array([[7]]), name="tokens")
    with pytest.raises(ValueError, match=r"^idx"):
        emb.check_ids(np.array([[7]]))
    drop, drop_half = minirnn.Dropout(seed=5, **kw), minirnn.Dropout(p=0.5, seed=5, **kw)
    z = drop.forward(x)
    assert z.dtype == want and np.array_equal(z, drop_half.forward(x))
    assert np.array_equal(drop.backward(np.ones_like(x)) != 0, z != 0)


# ---- the tracer's views, gradcheck's tolerances -------------------------------------------------

def test_trace_views_layer_direction_phase_pandas():
    """Trace.step / series (layer, direction), variables (phase), to_frame (pandas)."""
    model = minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 3))
    tr = minirnn.trace(model, x, d_out=rng.standard_normal((4, 2, 8)))
    assert tr.variables() == tr.variables("forward") and "i" in tr.variables()
    assert "dc" in tr.variables(phase="backward") and "dc" not in tr.variables()
    for layer, direction in ((0, 0), (1, 1), (1, 0)):
        h = tr.series("h", layer=layer, direction=direction)
        for t in range(4):
            assert np.array_equal(tr.step(t, layer=layer, direction=direction).h, h[t])
    assert np.array_equal(tr.series("h"), tr.series("h", 0, 0))
    assert np.array_equal(tr.step(1).c, tr.step(1, 0, 0).c)
    rows = tr.to_frame()
    assert rows == tr.to_frame(pandas=False) and {r["phase"] for r in rows} == {"forward",
                                                                              "backward"}
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs pandas"):
            tr.to_frame(pandas=True)
    else:
        assert tr.to_frame(pandas=True).to_dict("records") == rows


def test_gradcheck_eps_rtol_atol():
    """gradcheck's eps, rtol and atol are used (hx left out: zero states); GradcheckReport's
    model names what was checked, and is empty when not given."""
    model = minirnn.RNN(2, 3, seed=1)
    x = np.random.default_rng(1).standard_normal((3, 2, 2))
    default = minirnn.gradcheck(model, x)
    assert default.passed and default.eps == 1e-6
    assert default.model == repr(model) and default.to_dict()["model"] == repr(model)
    bare = GradcheckReport(default.rows, 1e-6, 1e-5, 1e-6, 0, default.loss)
    assert bare.model == "" and bare.passed and bare.to_dict()["model"] == ""
    coarse = minirnn.gradcheck(model, x, eps=1e-2)
    assert coarse.eps == 1e-2
    err = {r.name: r.max_abs_err for r in default.rows}
    assert any(r.max_abs_err > 10 * err[r.name] for r in coarse.rows)   # O(eps^2) truncation
    assert not minirnn.gradcheck(model, x, rtol=0.0, atol=0.0).passed
    assert minirnn.gradcheck(model, x, eps=1e-2, rtol=1e-1, atol=1e-2).passed


@settings(max_examples=15, deadline=None)
@given(cell=st.sampled_from(BUILTIN), layers=st.integers(1, 2), bidirectional=st.booleans(),
       seed=SEEDS)
def test_tool_accessors(cell, layers, bidirectional, seed):
    """state_sizes, param_keys (layer, direction present and absent) and initial_state: what
    the tools in minirnn.grad ask of a module instead of reading its private fields."""
    model = make_recurrent(cell, 3, 4, num_layers=layers, bidirectional=bidirectional, seed=seed)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((5, 2, 3))
    _, state_n = model.forward_state(x)
    assert model.state_sizes == tuple(s.shape[-1] for s in state_n)
    assert model.param_keys() == model.param_keys(0, 0) == model.param_keys(layer=0, direction=0)
    for layer in range(layers):
        for d in range(D):
            keys = model.param_keys(layer, d)
            assert [n for n, _ in keys] == list(get_cell(cell).param_names)
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            assert all(k == n + sfx for n, k in keys)
            assert {k for _, k in keys if k in model.params} == \
                {k for k in model.params if k.endswith(sfx)}
    zeros = model.initial_state(None, 2)
    assert all(z.shape == s.shape and not z.any() for z, s in zip(zeros, state_n))
    given_state = tuple(rng.standard_normal(s.shape) for s in state_n)
    same = model.initial_state(given_state, 2)
    assert all(np.array_equal(a, b) for a, b in zip(same, given_state))
    with pytest.raises(ValueError, match="h0"):
        model.initial_state(tuple(rng.standard_normal((9, 2, s.shape[-1])) for s in state_n), 2)
