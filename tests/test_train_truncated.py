"""Engine.step_truncated: truncated BPTT (k1, k2) training. k1 = k2 is step_lm on chunks; a
torch hand loop written from the definition gives the same weights; numpy, numba and torch
agree; the step count and the refusals."""
import numpy as np
import pytest

from minirnn.testing import assert_close
from minirnn.train.engine import Engine
from minirnn.nn.models import LanguageModel, SequenceClassifier

V = 5


def _stream(seed, B=3, T=13):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, V, size=(B, T + 1))
    return s[:, :-1], s[:, 1:]


def _engine(cell, backend, layers=2, opt=None):
    model = LanguageModel(V, 3, 4, cell=cell, num_layers=layers, seed=5)
    return Engine(model, backend=backend, **(opt or dict(optimizer="sgd", lr=0.4, momentum=0.5,
                                                        clip=1.5)))


def _weights(engine):
    engine.sync()
    return {k: v.copy() for k, v in engine.model.state_dict().items()}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_equal_k1_k2_is_step_lm_on_chunks(cell):
    x, y = _stream(1, T=14)                           # 14 = 4 + 4 + 4 + 2: a short last chunk
    a = _engine(cell, "numpy", opt=dict(optimizer="adam", lr=0.05, clip=0.5))
    st, ref = None, []
    for s in range(0, 14, 4):
        loss, st = a.step_lm(x[:, s:s + 4], y[:, s:s + 4], state=st)
        ref.append(loss)
    b = _engine(cell, "numpy", opt=dict(optimizer="adam", lr=0.05, clip=0.5))
    losses, st_b = b.step_truncated(x, y, 4)          # k2 omitted: k2 = k1
    assert losses == ref and b.steps == a.steps == 4
    for n, w in _weights(a).items():
        assert_close(_weights(b)[n], w, rtol=0, name=n)
    for u, v in zip(st if isinstance(st, tuple) else (st,),
                    st_b if isinstance(st_b, tuple) else (st_b,)):
        assert_close(v, u, rtol=0, name="final state")


def _torch_hand_loop(engine, x, y, k1, k2, lr):
    """Plain SGD on the torch twin, from the definition: chunks s..e of k1 steps; the window
    starts w = max(0, s - (k2 - k1)); the state entering it is the one the most recent forward
    pass computed for step w - 1 (detached); loss = mean cross-entropy of steps s..e."""
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import to_torch
    twin = to_torch(engine.model)
    opt = torch.optim.SGD(twin.parameters(), lr=lr)
    T, seen, losses = x.shape[1], {}, []
    for s in range(0, T, k1):
        e = min(s + k1, T) - 1
        w = max(0, s - (k2 - k1))
        st = seen.get(w - 1)
        logits = []
        for t in range(w, e + 1):                     # one step at a time: every state kept
            lg, st = twin(x[:, t:t + 1], st)
            seen[t] = tuple(v.detach() for v in st) if isinstance(st, tuple) else st.detach()
            logits.append(lg)
        lg = torch.cat(logits, dim=1)[:, s - w:]
        loss = torch.nn.functional.cross_entropy(lg.reshape(-1, V),
                                                 torch.as_tensor(y[:, s:e + 1]).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().numpy() for k, v in twin.state_dict().items()}


@pytest.mark.parametrize("cell, k1, k2", [("lstm", 2, 5), ("gru", 3, 4), ("rnn_relu", 1, 3)])
def test_matches_a_torch_hand_loop(cell, k1, k2):
    x, y = _stream(2)
    e = _engine(cell, "numpy", opt=dict(optimizer="sgd", lr=0.3))
    ref_losses, ref_w = _torch_hand_loop(e, x, y, k1, k2, 0.3)
    losses, _ = e.step_truncated(x, y, k1, k2)
    assert_close(losses, ref_losses, rtol=1e-12, name="losses")
    for n, w in ref_w.items():
        assert_close(_weights(e)[n], w, rtol=1e-12, name=n)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_backends_agree(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    x, y = _stream(3)
    rng = np.random.default_rng(0)
    state = (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4)))
    ref = _engine("lstm", "numpy")
    got = _engine("lstm", backend)
    ref_losses, ref_state = ref.step_truncated(x, y, 3, 7, state=state)
    losses, new_state = got.step_truncated(x, y, 3, 7, state=state)
    assert_close(losses, ref_losses, rtol=1e-10, name=f"{backend} losses")
    for a, b in zip(new_state, ref_state):
        assert_close(a, b, rtol=1e-10, name=f"{backend} state")
    for n, w in _weights(ref).items():
        assert_close(_weights(got)[n], w, rtol=1e-10, name=f"{backend} {n}")
    assert got.steps == ref.steps == 5                # ceil(13 / 3) updates


def test_refusals():
    x, y = _stream(4)
    e = _engine("gru", "numpy")
    with pytest.raises(ValueError, match="k2: expected k2 >= k1 = 3"):
        e.step_truncated(x, y, 3, 2)
    with pytest.raises(ValueError, match="targets: expected shape"):
        e.step_truncated(x, y[:, :-1], 3)
    clf = Engine(SequenceClassifier(V, 2, 4, cell="gru", embedding_dim=3), backend="numpy")
    with pytest.raises(TypeError, match="step_truncated: needs a LanguageModel"):
        clf.step_truncated(x, y, 2)
    assert e.steps == 0
