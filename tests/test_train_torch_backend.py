"""torch_backend: twins of every layer/model, optimiser state both ways, float32, errors.

Each twin is checked against the minirnn forward AND backward (float64, <= 1e-12), and optimiser
state converted mid-run must continue exactly as if it had never left its backend.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minirnn
from minirnn.nn.models import LanguageModel, SequenceClassifier
from minirnn.nn.layers import Embedding, Linear
from minirnn.train.optim import SGD, Adam
from minirnn.testing import assert_close

torch = pytest.importorskip("torch")
from minirnn.interop.torch import copy_from_torch, to_torch  # noqa: E402
from minirnn.train.torch_trainer import optimizer_from_torch, optimizer_to_torch  # noqa: E402

FAST = settings(max_examples=8, deadline=None)


def _grads_match(model, twin, rtol=1e-12):
    tp = dict(twin.named_parameters())
    assert list(tp) == [n for n, _, _ in model.named_parameters()]       # same keys, same order
    for name, _, g in model.named_parameters():
        assert_close(g, tp[name].grad, rtol=rtol, atol=1e-14, name=f"d{name}")


def test_linear_and_embedding_twins_forward_backward():
    rng = np.random.default_rng(0)
    lin = Linear(5, 3, seed=1)
    x, dy = rng.standard_normal((4, 2, 5)), rng.standard_normal((4, 2, 3))
    tl = to_torch(lin)
    assert tl.weight.dtype == torch.float64
    tx = torch.tensor(x, requires_grad=True)
    ty = tl(tx)
    ty.backward(torch.tensor(dy))
    assert_close(lin.forward(x), ty.detach(), name="linear y")
    assert_close(lin.backward(dy), tx.grad, name="linear dx")
    _grads_match(lin, tl)

    emb = Embedding(6, 3, padding_idx=2, seed=1)
    idx = rng.integers(0, 6, size=(3, 4))
    idx[0, 0] = 2                                                      # the padding row is used
    te = to_torch(emb)
    assert te.padding_idx == 2
    dy = rng.standard_normal((3, 4, 3))
    te(torch.tensor(idx)).backward(torch.tensor(dy))
    emb.forward(idx)
    emb.backward(dy)
    _grads_match(emb, te)
    assert not emb.grads["weight"][2].any()


@FAST
@given(lstm=st.booleans(), layers=st.integers(1, 2), bidi=st.booleans(), bias=st.booleans(),
       batch_first=st.booleans(), proj=st.booleans(), use_lengths=st.booleans(),
       seed=st.integers(0, 2**16))
def test_recurrent_twins_forward_backward(lstm, layers, bidi, bias, batch_first, proj,
                                          use_lengths, seed):
    rng = np.random.default_rng(seed)
    T, B, I, H = 5, 3, 3, 4
    kw = dict(num_layers=layers, bidirectional=bidi, bias=bias, batch_first=batch_first, seed=seed)
    if lstm:
        m = minirnn.LSTM(I, H, proj_size=2 if proj else 0, **kw)
    else:
        m = minirnn.RNN(I, H, nonlinearity="relu" if proj else "tanh", **kw)
    twin = to_torch(m)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    if use_lengths:
        lengths[0] = T                              # torch pads the output to the longest
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_state = twin(tx, None, lengths)
    out, state = m(x, None, lengths)
    assert_close(out, t_out.detach(), name="out")
    d_out = rng.standard_normal(out.shape)
    if lstm:
        assert_close(state[0], t_state[0].detach(), name="h_n")
        assert_close(state[1], t_state[1].detach(), name="c_n")
        d_h, d_c = rng.standard_normal(state[0].shape), rng.standard_normal(state[1].shape)
        torch.autograd.backward([t_out, *t_state],
                                [torch.tensor(d_out), torch.tensor(d_h), torch.tensor(d_c)])
        dx, _ = m.backward(d_out, (d_h, d_c))
    else:
        assert_close(state, t_state.detach(), name="h_n")
        d_h = rng.standard_normal(state.shape)
        torch.autograd.backward([t_out, t_state], [torch.tensor(d_out), torch.tensor(d_h)])
        dx, _ = m.backward(d_out, d_h)
    assert_close(dx, tx.grad, rtol=1e-11, atol=1e-14, name="dx")
    _grads_match(m, twin, rtol=1e-11)


@pytest.mark.parametrize("cell", ["lstm", "rnn_tanh", "gru"])
def test_model_twins_forward_backward(cell):
    rng = np.random.default_rng(1)
    clf = SequenceClassifier(7, 3, 4, cell=cell, embedding_dim=3, num_layers=2,
                             bidirectional=True, seed=2)
    twin = to_torch(clf)
    tokens, lengths = rng.integers(0, 7, size=(4, 6)), np.array([6, 1, 3, 5])
    d = rng.standard_normal((4, 3))
    twin(tokens, lengths).backward(torch.tensor(d))
    clf.forward(tokens, lengths)
    clf.backward(d)
    _grads_match(clf, twin, rtol=1e-11)

    lm = LanguageModel(7, 3, 4, cell=cell, num_layers=2, seed=2)
    twin = to_torch(lm)
    state = lm.init_state(4)
    state = tuple(rng.standard_normal(s.shape) for s in state) if cell == "lstm" \
        else rng.standard_normal(state.shape)
    t_state = tuple(torch.tensor(s) for s in state) if cell == "lstm" else torch.tensor(state)
    t_logits, _ = twin(tokens, t_state)
    logits, _ = lm.forward(tokens, state)
    assert_close(logits, t_logits.detach(), name="LM logits from a carried state")
    d = rng.standard_normal(logits.shape)
    t_logits.backward(torch.tensor(d))
    lm.backward(d)
    _grads_match(lm, twin, rtol=1e-11)


def test_float32_twin():
    rng = np.random.default_rng(3)
    clf = SequenceClassifier(6, 3, 4, cell="lstm", embedding_dim=3, dtype="float32", seed=0)
    twin = to_torch(clf)
    assert all(p.dtype == torch.float32 for p in twin.parameters())
    tokens = rng.integers(0, 6, size=(2, 5))
    with torch.no_grad():
        t = twin(tokens, [5, 2]).numpy()
    assert t.dtype == np.float32
    assert_close(clf(tokens, [5, 2]), t, rtol=1e-5, atol=1e-6, name="float32 logits")


def _loss_grad(model, tokens, lengths, y):
    from minirnn.nn.losses import cross_entropy
    model.zero_grad()
    loss, d = cross_entropy(model.forward(tokens, lengths), y)
    model.backward(d)
    return loss


def _torch_loss_grad(twin, topt, tokens, lengths, y):
    topt.zero_grad()
    loss = torch.nn.functional.cross_entropy(twin(tokens, lengths), torch.tensor(y))
    loss.backward()
    return loss.item()


@pytest.mark.parametrize("make_opt", [
    lambda m: SGD(m, lr=0.2, momentum=0.9, weight_decay=0.01),
    lambda m: SGD(m, lr=0.2, momentum=0.5, nesterov=True),
    lambda m: Adam(m, lr=0.03, betas=(0.8, 0.99), weight_decay=0.02),
], ids=["sgd-momentum-wd", "sgd-nesterov", "adam-wd"])
def test_optimizer_state_round_trips_mid_run(make_opt):
    """numpy 3 steps -> torch 3 steps -> numpy 2 steps == numpy all the way (same weights)."""
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, 6, size=(3, 4)), rng.integers(1, 5, size=3),
                rng.integers(0, 3, size=3)) for _ in range(8)]

    def fresh():
        m = SequenceClassifier(6, 3, 4, cell="rnn_tanh", embedding_dim=3, seed=7)
        return m, make_opt(m)

    ref, ref_opt = fresh()
    ref_losses = []
    for b in batches:
        ref_losses.append(_loss_grad(ref, *b))
        ref_opt.step()

    m, opt = fresh()
    losses = []
    for b in batches[:3]:
        losses.append(_loss_grad(m, *b))
        opt.step()
    twin = to_torch(m)
    topt = optimizer_to_torch(opt, twin)
    for b in batches[3:6]:
        losses.append(_torch_loss_grad(twin, topt, *b))
        topt.step()
    back, back_opt = fresh()
    copy_from_torch(back, twin)
    optimizer_from_torch(topt, back, back_opt)
    for b in batches[6:]:
        losses.append(_loss_grad(back, *b))
        back_opt.step()
    assert_close(losses, ref_losses, rtol=1e-10, name="losses numpy -> torch -> numpy")
    for k, v in ref.state_dict().items():
        assert_close(back.state_dict()[k], v, rtol=1e-10, atol=1e-14, name=k)


def test_truncated_bptt_state_continues_the_sequence():
    """predict_lm over two chunks with the state carried == one pass over the whole sequence."""
    from minirnn.train.engine import Engine
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 9, size=(2, 10))
    for backend in ("numpy", "torch"):
        e = Engine(LanguageModel(9, 4, 5, num_layers=2, seed=1), backend=backend)
        whole, _ = e.predict_lm(tokens)
        a, state = e.predict_lm(tokens[:, :6])
        b, _ = e.predict_lm(tokens[:, 6:], state=state)
        assert_close(np.concatenate([a, b], axis=1), whole, rtol=1e-12, name=f"{backend} logits")


def test_models_rebuild_from_their_config():
    for m in (SequenceClassifier(6, 3, 4, cell="rnn_relu", embedding_dim=None, seed=3),
              LanguageModel(6, 3, 4, cell="lstm", num_layers=1, dropout=0.1, seed=3)):
        again = type(m)(**m.config)
        assert again.config == m.config
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(again.state_dict()[k], v)


def test_errors():
    with pytest.raises(TypeError, match="model: expected a minirnn Module"):
        to_torch(torch.nn.Linear(2, 2))
    small, big = Linear(3, 2, seed=0), Linear(3, 4, seed=0)
    with pytest.raises(ValueError, match="shape"):
        copy_from_torch(small, to_torch(big))
    with pytest.raises(KeyError, match="weight_hh_l0|missing"):
        copy_from_torch(minirnn.RNN(3, 2, seed=0), to_torch(small))
    with pytest.raises(KeyError, match="no parameters"):
        optimizer_to_torch(SGD(minirnn.RNN(3, 2, seed=0), lr=0.1), to_torch(small))
    with pytest.raises(TypeError, match="SGD or Adam"):
        optimizer_to_torch(object.__new__(type("Other", (), {"module": small})), to_torch(small))


def test_numpy_scalars_in_checkpoint_metadata(tmp_path):
    """A config built from numpy values (len of an array, a mean loss) is stored as plain JSON."""
    from minirnn.train.checkpoint import load_checkpoint, save_checkpoint
    m = SequenceClassifier(np.int64(5), np.int64(3), 4, seed=np.int64(2))
    save_checkpoint(tmp_path / "m.npz", m, config={"loss": np.float32(0.5), "w": np.arange(3)},
                    extra=dict(m.config), step=np.int64(4))
    ck = load_checkpoint(tmp_path / "m.npz")
    assert ck.config == {"loss": 0.5, "w": [0, 1, 2]} and ck.step == 4
    assert type(SequenceClassifier(**ck.extra)) is SequenceClassifier


def _rng_states(model):
    return {p: m.rng.bit_generator.state for p, m in model.modules()}


def _set_rng_states(model, states):
    for p, m in model.modules():
        m.rng.bit_generator.state = states[p]


@pytest.mark.parametrize("which", ["classifier", "lm"])
def test_dropout_models_match_finite_differences(which):
    """torch cannot share our dropout masks, so check BPTT through dropout by central finite
    differences instead: every forward replays the same masks from saved RNG states."""
    from minirnn.nn.losses import cross_entropy
    rng = np.random.default_rng(11)
    tokens = rng.integers(0, 6, size=(3, 5))
    if which == "classifier":
        model = SequenceClassifier(6, 3, 4, cell="lstm", embedding_dim=3, num_layers=2,
                                   bidirectional=True, dropout=0.4, seed=5)
        lengths, y = np.array([5, 2, 4]), rng.integers(0, 3, size=3)

        def loss_and_grad():
            loss, d = cross_entropy(model.forward(tokens, lengths), y)
            return loss, d
    else:
        model = LanguageModel(6, 3, 4, cell="rnn_tanh", num_layers=2, dropout=0.4, seed=5)
        state = rng.standard_normal((2, 3, 4))
        y = rng.integers(0, 6, size=(3, 5))

        def loss_and_grad():
            logits, _ = model.forward(tokens, state)
            loss, d = cross_entropy(logits.reshape(-1, 6), y.reshape(-1))
            return loss, d.reshape(logits.shape)
    saved = _rng_states(model)
    model.zero_grad()
    _, d = loss_and_grad()
    model.backward(d)
    eps = 1e-6
    for name, p, g in model.named_parameters():
        for flat in rng.choice(p.size, size=min(3, p.size), replace=False):
            i = np.unravel_index(flat, p.shape)
            old = p[i]
            losses = []
            for delta in (eps, -eps):
                p[i] = old + delta
                _set_rng_states(model, saved)
                losses.append(loss_and_grad()[0])
            p[i] = old
            fd = (losses[0] - losses[1]) / (2 * eps)
            assert abs(g[i] - fd) <= 1e-7 + 1e-5 * abs(fd), (name, i, g[i], fd)


def test_torch_resume_with_dropout_equals_not_stopping(tmp_path):
    """On the torch backend the dropout masks come from torch's RNG: its state is saved too."""
    from minirnn.train.engine import Engine
    rng = np.random.default_rng(4)
    batches = [(rng.integers(0, 6, size=(3, 5)), rng.integers(1, 6, size=3),
                rng.integers(0, 3, size=3)) for _ in range(6)]

    def make():
        m = SequenceClassifier(6, 3, 4, cell="lstm", embedding_dim=3, num_layers=2, dropout=0.5,
                               seed=1)
        return Engine(m, optimizer="adam", lr=0.05, backend="torch", seed=3)

    def run(engine, ks):
        return [engine.step(batches[k][0], batches[k][2], lengths=batches[k][1]) for k in ks]
    straight = run(make(), range(6))
    engine = make()
    first = run(engine, range(3))
    engine.save(tmp_path / "ck.npz")
    torch.manual_seed(12345)                      # someone else draws from torch meanwhile
    torch.rand(7)
    resumed = Engine.load(tmp_path / "ck.npz", backend="torch")
    assert first + run(resumed, range(3, 6)) == straight


@pytest.mark.parametrize("cell", ["lstm", "rnn_relu", "gru"])
def test_numba_language_model_gives_the_numpy_numbers(cell):
    pytest.importorskip("numba")
    from minirnn.train.engine import Engine
    rng = np.random.default_rng(6)
    chunks = [(rng.integers(0, 7, size=(3, 4)), rng.integers(0, 7, size=(3, 4))) for _ in range(4)]

    def run(backend):
        e = Engine(LanguageModel(7, 3, 5, cell=cell, num_layers=2, seed=2), optimizer="sgd",
                   lr=0.3, momentum=0.9, clip=1.0, backend=backend)
        state, losses = None, []
        for x, y in chunks:
            loss, state = e.step_lm(x, y, state=state)
            losses.append(loss)
        return losses, e.predict_lm(chunks[0][0], state=state)[0]
    ref, ref_logits = run("numpy")
    try:
        got, logits = run("numba")
    except ImportError as e:                       # the kernels are not there yet
        pytest.skip(f"numba backend unavailable: {e}")
    assert_close(got, ref, rtol=1e-10, name=f"{cell} numba LM losses")
    assert_close(logits, ref_logits, rtol=1e-10, atol=1e-13, name=f"{cell} numba LM logits")
