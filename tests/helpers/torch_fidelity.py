"""The torch-fidelity tests' shared pieces (tests/interop/test_torch_fidelity_*.py): build the
same module in torch and in minirnn, call both, and compare what each raised or returned."""
import warnings

import numpy as np
import pytest

import minirnn
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
tnn = torch.nn

MODULES = ["RNN", "LSTM", "GRU"]
CELLS = ["RNNCell", "LSTMCell", "GRUCell"]
SIZES = {"RNN": ("input_size", "hidden_size", "num_layers"),
         "LSTM": ("input_size", "hidden_size", "num_layers", "proj_size"),
         "GRU": ("input_size", "hidden_size", "num_layers"),
         "RNNCell": ("input_size", "hidden_size"), "LSTMCell": ("input_size", "hidden_size"),
         "GRUCell": ("input_size", "hidden_size")}
BASE = {"input_size": 3, "hidden_size": 4}
RNG = np.random.default_rng(2024)

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


