"""minirnn.explore: the numbers in the page are the trace's (float32 of them, exactly), the
connectivity strip is torch autograd's (and a finite difference's), the saturation fractions
are a direct count, the losses are the models' own, and the CLI writes pages for every source."""
import os
import re

import numpy as np
import pytest

import minirnn
from minirnn.debug import explore_data as ed
from minirnn.debug.explore import build, page_html, read_page
from minirnn.nn.layers import Linear
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent
from minirnn.nn.models import LanguageModel, SequenceClassifier

f32 = np.float32


def same(a, b):
    """Exactly equal float32 arrays (NaN where NaN)."""
    a, b = np.asarray(a), np.asarray(b, dtype=f32)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def random_page(tmp_path, cell, layers=2, bidirectional=True, T=7, I=3, H=5, V=4, seed=0):
    model = make_recurrent(cell, I, H, num_layers=layers, bidirectional=bidirectional, seed=seed)
    head = Linear(model.num_directions * H, V, seed=seed + 1)
    x = np.random.default_rng(seed).normal(size=(T, I))
    payload, tr = build(model, x, tokens=list("abcdefghij"[:T]), head=head, vocab=list("wxyz"))
    path = tmp_path / f"{cell}.html"
    path.write_text(page_html(payload), encoding="utf-8")
    return model, head, x, tr, read_page(path)


@pytest.mark.parametrize("cell", BUILTIN)
def test_every_embedded_number_is_the_traces_float32(tmp_path, cell):
    _, _, _, tr, page = random_page(tmp_path, cell)
    A, D = page["arrays"], tr.num_directions
    for layer in range(tr.num_layers):
        for d in range(D):
            k = layer * D + d
            for name in tr.variables("forward") + tr.variables("backward"):
                assert same(A[f"{k}:{name}"], tr.series(name, layer, d)[:, 0]), (k, name)
            dh = tr.series("dh", layer, d)[:, 0]
            assert same(A[f"norm:{k}:dh"].ravel(), np.linalg.norm(dh, axis=1))
    meta = page["meta"]
    assert meta["fvars"] == list(tr.variables("forward"))
    assert meta["gate_names"] == list(tr.spec.gate_names) and meta["T"] == tr.T


def test_projection_batch_first_and_a_diverging_model(tmp_path):
    model = make_recurrent("lstm", 3, 5, num_layers=2, proj_size=2, batch_first=True, seed=9)
    x = np.random.default_rng(9).normal(size=(1, 6, 3))
    payload, tr = build(model, x, head=Linear(2, 3, seed=1))
    A = ed.unpack(payload)
    assert same(A["1:h"], tr.series("h", 1, 0)[:, 0]) and A["1:h"].shape == (6, 2)
    assert A["1:c"].shape == (6, 5) and A["connect"].shape == (6, 6)
    for p in model.params.values():
        p *= 1e200                                          # overflow: NaN / Inf everywhere
    payload, tr = build(model, x, head=Linear(2, 3, seed=1))
    assert payload["meta"]["nonfinite"] is not None and payload["meta"]["loss"] is None
    (tmp_path / "nan.html").write_text(page_html(payload), encoding="utf-8")
    assert np.isnan(read_page(tmp_path / "nan.html")["arrays"]["0:dh"]).any()


def test_pack_round_trips_and_stores_identical_arrays_once():
    a = np.random.default_rng(0).normal(size=(6, 3))
    packed = ed.pack({"a": a, "b": a.copy(), "c": np.array([np.nan, np.inf, -0.0])})
    assert packed["alias"] == {"b": "a"}
    out = ed.unpack(packed)
    assert same(out["a"], a) and same(out["b"], a) and same(out["c"].ravel(), [np.nan, np.inf, -0.0])


def test_predictions_and_loss_are_the_heads():
    from minirnn.nn.losses import cross_entropy, log_softmax
    model = make_recurrent("lstm", 3, 5, seed=1)
    head = Linear(5, 4, seed=2)
    x = np.random.default_rng(1).normal(size=(6, 3))
    targets = np.array([0, 1, 2, 3, 0, 1])
    payload, tr = build(model, x, head=head, targets=targets, top_k=3)
    out = tr.out[:, 0]
    logits = out @ head.params["weight"].T + head.params["bias"]
    p = np.exp(log_softmax(logits))
    ids = np.argsort(-p, axis=1, kind="stable")[:, :3]
    assert payload["meta"]["top_k"] == ids.tolist()
    assert same(ed.unpack(payload)["topk_p"], np.take_along_axis(p, ids, 1))
    assert payload["meta"]["loss"] == pytest.approx(float(cross_entropy(logits, targets)[0]), rel=1e-12)


def torch_connectivity(model, x, U):
    """C[t, s] = ||d(U[t] . out_t)/dx_s|| by torch autograd on the torch twin."""
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import to_torch
    tm = to_torch(model)
    C = np.zeros((len(x), len(x)))
    for t in range(len(x)):
        xt = torch.tensor(x[:, None, :], requires_grad=True)
        out = tm(xt)[0][:, 0]
        (out[t] @ torch.tensor(U[t])).backward()
        C[t] = xt.grad[:, 0].norm(dim=-1).numpy()
    return C


@pytest.mark.parametrize("cell,layers,bidir", [("lstm", 2, False), ("rnn_tanh", 1, True),
                                               ("gru", 2, False), ("rnn_relu", 2, False)])
def test_connectivity_equals_torch_autograd(cell, layers, bidir):
    model = make_recurrent(cell, 3, 4, num_layers=layers, bidirectional=bidir, seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 3))
    U = rng.normal(size=(9, model.num_directions * 4))
    C = ed.connectivity(model, x, U, chunk=4)              # chunks of 4: the copies' seams too
    np.testing.assert_allclose(C, torch_connectivity(model, x, U), rtol=1e-10, atol=1e-14)
    if not bidir:
        assert not np.triu(C, 1).any()                     # nothing flows from the future


def test_connectivity_equals_finite_differences():
    model = make_recurrent("lstm", 2, 3, num_layers=2, seed=4)
    rng = np.random.default_rng(4)
    x, U = rng.normal(size=(5, 2)), rng.normal(size=(5, 3))
    C = ed.connectivity(model, x, U)
    f = lambda xx, t: float(model.forward_state(xx[:, None])[0][t, 0] @ U[t])     # noqa: E731
    eps = 1e-6
    for t in range(5):
        for s in range(5):
            g = []
            for i in range(2):
                xp, xm = x.copy(), x.copy()
                xp[s, i] += eps
                xm[s, i] -= eps
                g.append((f(xp, t) - f(xm, t)) / (2 * eps))
            assert C[t, s] == pytest.approx(np.linalg.norm(g), abs=1e-8)


def test_page_connectivity_is_the_heads_top_prediction_row(tmp_path):
    """The embedded strip is float32 of C with u_t = the head's weight row of the top-1
    prediction at t (and out_t / ||out_t|| without a head)."""
    model, head, x, tr, page = random_page(tmp_path, "gru", layers=1, bidirectional=False)
    top = np.array(page["meta"]["top_k"])[:, 0]
    U = head.params["weight"][top]
    assert same(page["arrays"]["connect"], ed.connectivity(model, x, U))
    np.testing.assert_allclose(page["arrays"]["connect"], torch_connectivity(model, x, U),
                               rtol=1e-6, atol=1e-12)     # float32 rounding of torch's
    payload, tr2 = build(model, x)                          # no head: the output's direction
    out = tr2.out[:, 0]
    U2 = out / np.linalg.norm(out, axis=1, keepdims=True)
    assert same(ed.unpack(payload)["connect"], ed.connectivity(model, x, U2))


@pytest.mark.parametrize("cell", BUILTIN)
def test_saturation_fractions_are_a_direct_count(cell):
    model = make_recurrent(cell, 3, 6, num_layers=2, bidirectional=True, seed=5)
    x = 3.0 * np.random.default_rng(5).normal(size=(12, 3))     # large inputs: gates saturate
    payload, tr = build(model, x, connect=False)
    sat = payload["meta"]["saturation"]
    expect = {"lstm": "ifgo", "gru": "rzn", "rnn_tanh": "a", "rnn_relu": ""}[cell]
    assert "".join(sat) == expect
    for gate, s in sat.items():
        for layer in range(2):
            for d in range(2):
                v = tr.series(gate, layer, d)[:, 0]
                if gate not in tr.spec.sigmoid_gates:
                    v = (v + 1) / 2
                for j in range(6):
                    left = sum(1 for t in range(12) if v[t, j] < 0.1)
                    right = sum(1 for t in range(12) if v[t, j] > 0.9)
                    assert s["left"][layer * 2 + d][j] == left and s["right"][layer * 2 + d][j] == right
        assert s["n"] == 12
    if cell == "lstm":
        assert any(c > 0 for row in sat["f"]["left"] + sat["f"]["right"] for c in row)


def test_classifier_backward_is_the_models_own():
    """The classifier's d_out (at h_n's steps) gives the trace exactly the gradients of
    SequenceClassifier.backward on the cross-entropy of the predicted class."""
    from minirnn.nn.losses import cross_entropy
    model = SequenceClassifier(10, 3, 4, cell="lstm", bidirectional=True, seed=6)
    ids = np.array([1, 4, 2, 7, 7, 0])
    payload, tr = build(model, ids, labels=["a", "b", "c"])
    model.zero_grad()
    logits = model.forward(ids[None])
    k = int(logits[0].argmax())
    model.backward(cross_entropy(logits, np.array([k]))[1])
    for name, g in tr.weight_grads[0].items():
        np.testing.assert_allclose(g, model.rnn.grads[name], rtol=1e-12, atol=1e-15)
    fp = ed.unpack(payload)["final_p"].ravel()
    assert payload["meta"]["final_top"][0] == k and fp[0] == fp.max()
    assert payload["meta"]["top_k"] is None                 # bidirectional: no prefix predictions


def test_language_model_scores_the_next_token_and_is_left_as_found():
    model = LanguageModel(6, 3, 5, num_layers=2, dropout=0.2, seed=7)
    model.train()
    before = {n: g.copy() for n, _, g in model.named_parameters()}
    for _, _, g in model.named_parameters():
        g += 1.0                                           # some accumulated gradient
    ids = np.array([0, 1, 2, 3, 4, 5, 0])
    payload, tr = build(model, ids, vocab=list("abcdef"))
    assert model.training
    for n, _, g in model.named_parameters():
        np.testing.assert_array_equal(g, before[n] + 1.0)
    assert payload["meta"]["tokens"] == list("abcdefa")
    assert "next token" in payload["meta"]["loss_note"]


def test_explore_writes_a_self_contained_page(tmp_path):
    model = make_recurrent("gru", 2, 3, seed=8)
    path = minirnn.explore(model, np.ones((4, 2)), tmp_path / "p.html", title="<b>t</b>")
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\(|<iframe|<img", text)
    assert "<b>t</b>" not in text                           # the title is escaped
    assert read_page(path)["meta"]["T"] == 4


def test_a_two_layer_lstm128_over_300_characters_fits_in_5_mb(tmp_path):
    from minirnn.tutorials.data import char_vocab, load_shakespeare
    text = load_shakespeare()[:300]
    stoi, itos = char_vocab(text)
    model = LanguageModel(len(itos), 32, 128, num_layers=2, seed=0)
    path = minirnn.explore(model, np.array([stoi[c] for c in text]), tmp_path / "big.html",
                           vocab=itos)
    assert os.path.getsize(path) <= 5_000_000


@pytest.mark.parametrize("call,err,words", [
    (lambda m: build(m, np.ones((4, 2, 2))), ValueError, "x: expected ONE sequence"),
    (lambda m: build(m, np.ones((4, 5))), ValueError, "x: expected shape (T, 2)"),
    (lambda m: build(m, np.ones((4, 2)), tokens=["a"]), ValueError, "tokens: expected 4"),
    (lambda m: build(m, np.ones((4, 2)), top_k=0), ValueError, "top_k"),
    (lambda m: build(m, np.ones((4, 2)), head=lambda o: o), TypeError, "head: expected a minirnn Linear"),
    (lambda m: build(m, np.ones((4, 2)), head=Linear(7, 2)), ValueError, "in_features = 3"),
    (lambda m: build("model", np.ones((4, 2))), TypeError, "model: expected"),
    (lambda m: build(LanguageModel(4, 2, 3), np.ones(3)), TypeError, "x: expected integer token ids"),
])
def test_errors_name_the_argument(call, err, words):
    with pytest.raises(err, match=re.escape(words)):
        call(make_recurrent("rnn_tanh", 2, 3, seed=0))


# ---- the command ------------------------------------------------------------------------------
def names_checkpoint(path):
    from minirnn.train.engine import Engine
    from minirnn.tutorials.data import ALPHABET, categories
    from minirnn.tutorials.names import build_classifier
    cats = categories()
    model = build_classifier({"num_classes": len(cats), "hidden_size": 8, "cell": "lstm"})
    Engine(model, backend="numpy").save(path, config={"task": "names", "model": "lstm"},
                                        vocab=list(ALPHABET), labels=list(cats))
    return cats


@pytest.mark.parametrize("args", [["--example", "hihell"], ["--cell", "gru", "--layers", "2",
                                                             "--bidirectional", "--T", "6"],
                                  ["--example", "char", "--train-steps", "3", "--text", "To be"]])
def test_cli_writes_a_page(tmp_path, args, capsys):
    from minirnn.cli import main
    out = tmp_path / "e.html"
    assert main(["explore", *args, "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_page(out)["meta"]["T"] > 0


def test_cli_names_checkpoint_shows_the_class_prediction(tmp_path):
    from minirnn.cli import main
    cats = names_checkpoint(tmp_path / "model.npz")
    out = tmp_path / "n.html"
    assert main(["explore", "--checkpoint", str(tmp_path / "model.npz"), "--text", "Nguyen",
                 "-o", str(out)]) == 0
    meta = read_page(out)["meta"]
    assert meta["kind"] == "classifier" and meta["tokens"] == list("Nguyen")
    assert meta["pred_names"] == cats and len(meta["final_top"]) == 5
    assert main(["explore", "--checkpoint", str(tmp_path / "model.npz"), "--text", "Ng",
                 "--label", "Vietnamese", "--overwrite", "-o", str(out)]) == 0
    assert "Vietnamese" in read_page(out)["meta"]["loss_note"]


def test_cli_word_level_checkpoint_uses_the_scripts_tokens(tmp_path):
    from minirnn.cli import main
    from minirnn.train.engine import Engine
    itos = ["the", "||period||", "||return||", "cat", "||unk||"]
    model = LanguageModel(len(itos), 3, 4, num_layers=1, seed=0)
    Engine(model, backend="numpy").save(tmp_path / "w.npz", config={"task": "script"}, vocab=itos)
    out = tmp_path / "w.html"
    assert main(["explore", "--checkpoint", str(tmp_path / "w.npz"), "--text", "The cat.\nThe dog",
                 "-o", str(out)]) == 0
    meta = read_page(out)["meta"]
    assert meta["tokens"] == ["the", "cat", "||period||", "||return||", "the", "||unk||"]
    assert meta["display"] == ["the", "cat", ".", "↵", "the", "‹unk›"]
    assert meta["token_level"] == "word" and meta["kind"] == "lm"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from minirnn.cli import main
    names_checkpoint(tmp_path / "model.npz")
    assert main(["explore", "--checkpoint", str(tmp_path / "model.npz")]) == 2
    assert "--text: expected" in capsys.readouterr().err
    assert main(["explore", "--checkpoint", str(tmp_path / "model.npz"), "--text", "N@",
                 "-o", str(tmp_path / "x.html")]) == 0          # names drop what the alphabet lacks
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
