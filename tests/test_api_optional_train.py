"""Optional arguments of the training and explorer API that no other test passes, each present
and absent (issue 20): Engine's defaults spelled out, ignore_index, predict's lengths,
predict_lm's state, save's metadata and load's backend / device, the models' forward
(lengths, state), explore's hx, token_level and default path. Which test covers which argument
is listed in tests/test_api_optional.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn.debug.explore import read_page
from minirnn.train.checkpoint import load_checkpoint, save_checkpoint
from minirnn.train.engine import Engine
from minirnn.nn.models import LanguageModel, SequenceClassifier

torch = pytest.importorskip("torch")
V, C, B, T = 6, 3, 4, 5


def _batch(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    return rng.integers(0, V, size=(B, T)), rng.integers(0, C, size=B), lengths


def test_engine_defaults_predict_lengths_save_and_load(tmp_path):
    """Engine: every keyword at its default, spelled out, is the Engine without it;
    step / predict (lengths); save (config, vocab, labels, step, extra); load (backend, device;
    distributed only at its default None: a real group needs the launcher, see
    test_distributed); add_hook (every)."""
    plain = Engine(SequenceClassifier(V, C, 4, seed=1), backend="numpy")
    spelled = Engine(SequenceClassifier(V, C, 4, cell="lstm", num_layers=1, embedding_dim=None,
                                        bidirectional=False, dropout=0.0, dtype="float64",
                                        seed=1, backend="numpy"),
                     optimizer="adam", lr=1e-3, momentum=0.0, clip=None, class_weight=None,
                     ignore_index=-100, backend="numpy", device="cpu", seed=0,
                     weight_decay=0.0, nesterov=False)
    for k in range(2):
        tokens, y, lengths = _batch(k)
        assert plain.step(tokens, y, lengths=lengths) == spelled.step(tokens, y, lengths)
    full = np.full(B, T)
    assert plain.step(tokens, y) == spelled.step(tokens, y, lengths=full)
    for a, b in zip(plain.model.state_dict().values(), spelled.model.state_dict().values()):
        assert np.array_equal(a, b)

    tokens, _, lengths = _batch(7)
    logits = plain.predict(tokens, lengths=lengths)
    model = plain.model.eval()
    assert np.array_equal(logits, model.forward(tokens, lengths))
    assert np.array_equal(plain.predict(tokens), model.forward(tokens, full))
    assert not np.allclose(logits, plain.predict(tokens))          # lengths are used
    model.train()

    path = tmp_path / "e.npz"
    plain.save(path, config={"why": "test"}, vocab=list("abcdef"), labels=["x", "y", "z"],
               step=5, extra={"note": 1})
    ck = load_checkpoint(path)
    assert ck.config["why"] == "test" and ck.vocab == list("abcdef")
    assert ck.labels == ["x", "y", "z"] and ck.step == 5 and ck.extra == {"note": 1}
    save_checkpoint(tmp_path / "opt.npz", plain.model, optimizer=plain.optimizer)
    save_checkpoint(tmp_path / "no_opt.npz", plain.model)
    assert load_checkpoint(tmp_path / "opt.npz").optimizer_state["steps"] == plain.steps
    assert load_checkpoint(tmp_path / "no_opt.npz").optimizer_state is None
    plain.save(tmp_path / "bare.npz")
    bare = load_checkpoint(tmp_path / "bare.npz")
    assert bare.vocab is None and bare.labels is None and bare.extra in (None, {})
    a, b = Engine.load(path), Engine.load(path, backend="numpy", device="cpu", distributed=None)
    assert a.backend == "numba" and b.backend == "numpy"
    tokens, y, lengths = _batch(9)
    la, lb = a.step(tokens, y, lengths), b.step(tokens, y, lengths)
    minirnn.assert_close(la, lb, name="loss after load, numba vs numpy")
    assert la == pytest.approx(plain.step(tokens, y, lengths), rel=1e-12)

    calls, every_step = [], []
    plain.add_hook(lambda e: calls.append(e.steps), every=2)
    plain.add_hook(lambda e: every_step.append(e.steps))
    start = plain.steps
    for k in range(4):
        plain.step(*_batch(10 + k)[:2])
    after = list(range(start + 1, start + 5))
    assert every_step == after and calls == [n for n in after if n % 2 == 0]


def test_engine_ignore_index_and_predict_lm_state():
    """Engine (ignore_index), step_lm / predict_lm (state), LanguageModel.forward (state):
    the loss skips ignored targets as torch's cross_entropy does; a state carried across two
    chunks is the whole sequence at once."""
    from minirnn.interop.torch import to_torch
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, V, size=(2, 2 * T))
    targets = rng.integers(0, V, size=tokens.shape)
    targets[rng.random(targets.shape) < 0.3] = -1
    model = LanguageModel(V, 3, 4, cell="gru", num_layers=1, seed=2)
    twin = to_torch(model)
    logits, _ = twin(torch.from_numpy(tokens[:, :T]))
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                             torch.from_numpy(targets[:, :T]).reshape(-1),
                                             ignore_index=-1).item()
    engine = Engine(model, ignore_index=-1, backend="numpy")
    loss, state = engine.step_lm(tokens[:, :T], targets[:, :T])
    minirnn.assert_close(loss, want, rtol=1e-10, name="loss with ignore_index")
    with pytest.raises(ValueError):                        # -1 is no id without ignore_index
        Engine(LanguageModel(V, 3, 4, seed=2), backend="numpy").step_lm(tokens[:, :T],
                                                                        targets[:, :T])
    engine.step_lm(tokens[:, T:], np.maximum(targets[:, T:], 0), state=state)

    whole, _ = engine.predict_lm(tokens)
    first, st = engine.predict_lm(tokens[:, :T])
    second, _ = engine.predict_lm(tokens[:, T:], state=st)
    minirnn.assert_close(np.concatenate([first, second], axis=1), whole, name="chunked logits")
    fresh, _ = engine.predict_lm(tokens[:, T:])
    assert not np.allclose(fresh, second)                  # the state is used
    m = engine.model.eval()
    direct, _ = m.forward(tokens[:, T:], state=st)
    assert np.array_equal(direct, m.forward(tokens[:, T:], st)[0])
    minirnn.assert_close(direct, second, name="LanguageModel.forward with state")
    zero, _ = m.forward(tokens[:, T:], m.init_state(2))
    assert np.array_equal(zero, m.forward(tokens[:, T:])[0])    # None is the zero state


def test_explore_hx_token_level_and_default_path(tmp_path, monkeypatch):
    """explore (path default, hx, token_level, tokens, title, connect): None is the zero
    state, a given hx is the trace of model.forward(x, hx)."""
    model = minirnn.GRU(2, 3, seed=0)
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((4, 2)), rng.standard_normal((1, 3))
    monkeypatch.chdir(tmp_path)
    assert minirnn.explore(model, x, connect=False) == "explore.html"
    base = read_page(tmp_path / "explore.html")
    zero = read_page(minirnn.explore(model, x, tmp_path / "z.html", hx=np.zeros((1, 3)),
                                     connect=False))
    given = read_page(minirnn.explore(model, x, tmp_path / "h.html", hx=h0, connect=False))
    for name, arr in base["arrays"].items():
        assert np.array_equal(arr, zero["arrays"][name]), name
    out, _ = model(x, h0)
    h_arrays = [a for a in given["arrays"].values() if a.shape == (4, 3)]
    assert any(np.array_equal(a, out.astype(np.float32)) for a in h_arrays)
    assert not any(np.array_equal(a, out.astype(np.float32))
                   for a in base["arrays"].values() if a.shape == (4, 3))
    toks = ["ab", "c", "d", "e"]
    words = read_page(minirnn.explore(model, x, tmp_path / "w.html", tokens=toks,
                                      connect=False, title="t"))
    chars = read_page(minirnn.explore(model, x, tmp_path / "c.html", tokens=toks,
                                      token_level="char", connect=False))
    assert words["meta"]["token_level"] == "word" and chars["meta"]["token_level"] == "char"
