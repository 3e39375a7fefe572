"""Training runs against torch step by step, the torch backend, resuming, switching backends."""
import numpy as np
import pytest

from minirnn.nn.models import LanguageModel, SequenceClassifier
from minirnn.testing import assert_close
from minirnn.train.engine import Engine

torch = pytest.importorskip("torch")
F = torch.nn.functional
from minirnn.interop.torch import to_torch  # noqa: E402  (needs torch)

V, C, B, T = 8, 4, 6, 7


def _data(seed, n_batches=3):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        tokens = rng.integers(0, V, size=(B, T))
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        out.append((tokens, lengths, rng.integers(0, C, size=B)))
    return out


def _lm_chunks(seed, n=4):
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, V, size=(B, n * T + 1))
    return [(stream[:, k * T:(k + 1) * T], stream[:, k * T + 1:(k + 1) * T + 1]) for k in range(n)]


CONFIGS = [
    dict(model=dict(cell="lstm", embedding_dim=5, num_layers=1), opt=dict(optimizer="adam", lr=0.05),
         clip=0.5, weighted=True),
    dict(model=dict(cell="rnn_tanh", embedding_dim=None, bidirectional=True, num_layers=2),
         opt=dict(optimizer="sgd", lr=0.2, momentum=0.9), clip=None, weighted=False),
    dict(model=dict(cell="rnn_relu", embedding_dim=3, num_layers=1),
         opt=dict(optimizer="sgd", lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01),
         clip=1.0, weighted=False),
    dict(model=dict(cell="gru", embedding_dim=4, bidirectional=True, num_layers=2),
         opt=dict(optimizer="adam", lr=0.03), clip=1.0, weighted=True),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["lstm-adam-clip-weights", "birnn-2layer-sgd",
                                              "relu-nesterov-wd", "gru-bi-adam-clip"])
def test_training_run_matches_torch_loss_curve(cfg):
    """12 steps of the numpy engine vs a plain torch loop on the to_torch twin."""
    model = SequenceClassifier(V, C, 6, seed=4, **cfg["model"])
    weights = np.random.default_rng(9).uniform(0.5, 2.0, C) if cfg["weighted"] else None
    twin = to_torch(model)
    o = cfg["opt"]
    if o["optimizer"] == "adam":
        topt = torch.optim.Adam(twin.parameters(), lr=o["lr"])
    else:
        topt = torch.optim.SGD(twin.parameters(), lr=o["lr"], momentum=o["momentum"],
                               nesterov=o.get("nesterov", False), weight_decay=o.get("weight_decay", 0))
    engine = Engine(model, clip=cfg["clip"], class_weight=weights, backend="numpy", **o)
    tw = None if weights is None else torch.tensor(weights)
    batches = _data(1) * 4
    for k, (tokens, lengths, y) in enumerate(batches):
        loss = engine.step(tokens, y, lengths=lengths)
        topt.zero_grad()
        tl = F.cross_entropy(twin(tokens, lengths), torch.tensor(y), weight=tw)
        tl.backward()
        if cfg["clip"]:
            torch.nn.utils.clip_grad_norm_(twin.parameters(), cfg["clip"])
        topt.step()
        assert_close(loss, tl.item(), rtol=1e-10, name=f"loss at step {k + 1}")
    assert len(batches) >= 10
    for name, p in twin.state_dict().items():
        assert_close(model.state_dict()[name], p, rtol=1e-10, name=name)


def test_to_torch_agrees_with_hand_built_lstm_and_linear():
    model = SequenceClassifier(V, C, 6, cell="lstm", embedding_dim=5, num_layers=2,
                               bidirectional=True, seed=2)
    sd = {k: torch.tensor(v) for k, v in model.state_dict().items()}
    emb = torch.nn.Embedding(V, 5).double()
    lstm = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    fc = torch.nn.Linear(12, C).double()
    emb.load_state_dict({"weight": sd["embedding.weight"]})
    lstm.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")})
    fc.load_state_dict({k[3:]: v for k, v in sd.items() if k.startswith("fc.")})
    tokens, lengths, _ = _data(3)[0]
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(emb(torch.tensor(tokens)),
                                                         torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        _, (h_n, _) = lstm(packed)
        by_hand = fc(torch.cat([h_n[-2], h_n[-1]], dim=-1))
        twin_logits = to_torch(model)(tokens, lengths)
    assert_close(twin_logits, by_hand, rtol=1e-13, name="to_torch vs hand-built")
    assert_close(model(tokens, lengths), by_hand, rtol=1e-12, name="minirnn vs hand-built")


def _classifier_losses(backend, steps=4, device="cpu", model_backend="numpy"):
    model = SequenceClassifier(V, C, 5, cell="lstm", embedding_dim=4, seed=6, backend=model_backend)
    engine = Engine(model, optimizer="adam", lr=0.03, clip=1.0, backend=backend, device=device)
    losses = [engine.step(tok, y, lengths=ln) for tok, ln, y in (_data(2) * 2)[:steps]]
    tok, ln, _ = _data(5)[0]
    return losses, engine.predict(tok, lengths=ln), engine


def _lm_losses(backend, device="cpu", cell="lstm"):
    model = LanguageModel(V, 4, 5, cell=cell, num_layers=2, seed=8)
    engine = Engine(model, optimizer="sgd", lr=0.5, momentum=0.9, clip=2.0, backend=backend,
                    device=device)
    state, losses = None, []
    for x, y in _lm_chunks(0):
        loss, state = engine.step_lm(x, y, state=state)          # state carried, gradient cut
        losses.append(loss)
    logits, _ = engine.predict_lm(_lm_chunks(1)[0][0], state=state)
    return losses, logits, engine


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_torch_backend_gives_the_numpy_numbers(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    ref, ref_pred, _ = _classifier_losses("numpy")
    got, pred, engine = _classifier_losses("torch", device=device)
    assert_close(got, ref, rtol=1e-10, name="classifier losses")
    assert isinstance(pred, np.ndarray)
    assert_close(pred, ref_pred, rtol=1e-10, name="predict")
    engine.sync()                                   # engine.model holds torch's weights now
    engine.model.eval()
    assert_close(engine.model(*_data(5)[0][:2]), ref_pred, rtol=1e-10, name="synced model")
    for cell in ("lstm", "rnn_tanh", "gru"):
        ref, ref_logits, _ = _lm_losses("numpy", cell=cell)
        got, logits, _ = _lm_losses("torch", device=device, cell=cell)
        assert_close(got, ref, rtol=1e-10, name=f"{cell} LM losses (truncated BPTT)")
        assert_close(logits, ref_logits, rtol=1e-10, name=f"{cell} LM predict")


def test_numba_backend_gives_the_numpy_numbers():
    pytest.importorskip("numba")
    try:
        ref, ref_pred, _ = _classifier_losses("numpy")
        got, pred, _ = _classifier_losses("numba")
    except ImportError as e:                          # the kernels are not there yet
        pytest.skip(f"numba backend unavailable: {e}")
    assert_close(got, ref, rtol=1e-10, name="numba losses")
    assert_close(pred, ref_pred, rtol=1e-10, name="numba predict")


def _resume(tmp_path, make, run, backend_after="numpy", n=6, cut=3):
    """Train n steps straight; then cut steps, save, load, the rest. Same numbers?"""
    straight = run(make(), range(n))
    engine = make()
    first = run(engine, range(cut))
    engine.save(tmp_path / "ck.npz", config={"task": "test"}, vocab=list("abcdefgh"))
    resumed = Engine.load(tmp_path / "ck.npz", backend=backend_after)
    assert resumed.checkpoint.config["task"] == "test" and resumed.checkpoint.vocab[0] == "a"
    assert resumed.steps == cut
    return straight, first + run(resumed, range(cut, n)), resumed


def test_resume_equals_not_stopping(tmp_path):
    batches = _data(4, n_batches=6)

    def make():                                # dropout on: its RNG state must survive too
        m = SequenceClassifier(V, C, 5, cell="lstm", embedding_dim=4, num_layers=2, dropout=0.3,
                               seed=1)
        return Engine(m, optimizer="adam", lr=0.02, clip=1.0, backend="numpy")

    def run(engine, ks):
        return [engine.step(batches[k][0], batches[k][2], lengths=batches[k][1]) for k in ks]
    straight, resumed, engine = _resume(tmp_path, make, run)
    assert straight == resumed                          # bit for bit
    assert engine.optimizer.steps == 6

    chunks = _lm_chunks(3, n=6)

    def make_lm():
        return Engine(LanguageModel(V, 4, 5, num_layers=2, dropout=0.2, seed=2),
                      optimizer="sgd", lr=0.3, momentum=0.9, backend="numpy")

    def run_lm(engine, ks):
        return [engine.step_lm(*chunks[k])[0] for k in ks]    # fresh state each chunk here
    straight, resumed, _ = _resume(tmp_path, make_lm, run_lm)
    assert straight == resumed


def test_a_model_trained_on_numpy_continues_on_torch(tmp_path):
    batches = _data(7, n_batches=6)

    def make():
        m = SequenceClassifier(V, C, 5, cell="rnn_tanh", embedding_dim=4, seed=3)
        return Engine(m, optimizer="adam", lr=0.02, backend="numpy")

    def run(engine, ks):
        return [engine.step(batches[k][0], batches[k][2], lengths=batches[k][1]) for k in ks]
    straight, mixed, engine = _resume(tmp_path, make, run, backend_after="torch")
    assert_close(mixed, straight, rtol=1e-10, name="numpy then torch")
    engine.save(tmp_path / "after_torch.npz")          # and back to numpy, one step more
    back = Engine.load(tmp_path / "after_torch.npz", backend="numpy")
    ref = make()
    run(ref, range(6))
    assert_close(run(back, [0]), run(ref, [0]), rtol=1e-10, name="torch then numpy")


def test_engine_errors(tmp_path):
    clf = SequenceClassifier(V, C, 4, seed=0)
    with pytest.raises(TypeError, match="model: expected"):
        Engine(object())
    with pytest.raises(ValueError, match="backend: expected"):
        Engine(clf, backend="jax")
    with pytest.raises(ValueError, match="optimizer: expected"):
        Engine(clf, optimizer="rmsprop")
    with pytest.raises(ValueError, match="device"):
        Engine(clf, backend="numpy", device="cuda")
    with pytest.raises(ValueError, match="class_weight"):
        Engine(clf, class_weight=np.ones(C + 1), backend="numpy")
    engine = Engine(clf, backend="numpy")
    with pytest.raises(TypeError, match="step_lm: needs a LanguageModel"):
        engine.step_lm(np.zeros((1, 2), dtype=int), np.zeros((1, 2), dtype=int))
    with pytest.raises(ValueError, match="tokens: expected ids"):
        engine.step(np.full((2, 3), V), np.array([0, 1]))
    from minirnn.train.checkpoint import CheckpointError, save_checkpoint
    save_checkpoint(tmp_path / "plain.npz", clf)
    with pytest.raises(CheckpointError, match="Engine.save"):
        Engine.load(tmp_path / "plain.npz", backend="numpy")
