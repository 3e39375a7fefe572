"""The tutorials: data, split, tokenizers, metrics (against naive code), and quick smoke runs
of every `minirnn train` task with the predict / generate commands on their checkpoints."""
import glob
import io
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.tutorials import data as D
from minirnn.tutorials import metrics as M


def _needs(*modules):
    """Skip cleanly while a module of the training stack (issue 4 part A) is missing."""
    for m in modules:
        pytest.importorskip(m, reason=f"{m} (training stack) not available")


# ---- data -------------------------------------------------------------------------------
def test_names_cover_every_line_of_the_shipped_files():
    names, labels, cats = D.load_names()
    files = sorted(glob.glob(os.path.join(D.DATA_DIR, "names", "*.txt")))
    assert len(cats) == 18 == len(files)
    # an independent count: non-empty lines per file
    counts = [sum(1 for line in open(f, encoding="utf-8").read().split("\n") if line.strip())
              for f in files]
    assert len(names) == sum(counts)
    assert np.bincount(labels).tolist() == counts
    assert cats[labels[0]] == "Arabic" and "Vietnamese" in cats
    assert all(set(n) <= set(D.ALPHABET) and n for n in names)


def test_transliteration_as_the_tutorial():
    assert D.unicode_to_ascii("Ślusàrski") == "Slusarski"
    assert D.unicode_to_ascii("Nguyễn") == "Nguyen"
    assert D.unicode_to_ascii("O'Néill") == "O'Neill"
    assert len(D.ALPHABET) == D.N_LETTERS == 57
    with pytest.raises(ValueError, match="name"):
        D.encode_name("  ")
    with pytest.raises(TypeError, match="name"):
        D.unicode_to_ascii(3)


@pytest.mark.parametrize("seed", [0, 7])
def test_split_is_stratified_deterministic_disjoint(seed):
    _, labels, cats = D.load_names()
    s1, s2 = D.split_names(labels, seed=seed), D.split_names(labels, seed=seed)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(s1[k], s2[k])
    all_idx = np.concatenate([s1["train"], s1["val"], s1["test"]])
    assert len(all_idx) == len(labels) == len(np.unique(all_idx))       # disjoint and complete
    for c in range(len(cats)):
        n = int((labels == c).sum())
        n_val, n_test = (int((labels[s1[k]] == c).sum()) for k in ("val", "test"))
        assert n_val >= 1 and n_test >= 1
        assert abs(n_val - 0.1 * n) <= 1 and abs(n_test - 0.1 * n) <= 1
    other = D.split_names(labels, seed=seed + 1)
    assert not np.array_equal(other["test"], s1["test"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["the", "king", "lord", "a", ".", ",", "!", "?", ";", ":", "\n",
                                 "-", "(", ")", '"', "o"]), min_size=1, max_size=30))
def test_word_tokens_round_trip(pieces):
    text = " ".join(pieces)
    toks = D.tokenize_words(text)
    assert all(" " not in t and t for t in toks)
    stoi, itos = D.build_vocab(toks)
    ids = D.encode(toks, stoi)
    assert [itos[i] for i in ids] == toks                                # ids round trip
    # detokenize -> tokenize gives the same tokens back
    assert D.tokenize_words(D.detokenize_words(toks)) == toks


def test_vocab_sorted_by_frequency_and_punctuation_tokens():
    toks = D.tokenize_words("First Citizen:\nBefore we proceed, hear me speak. Speak, speak.")
    assert toks[:5] == ["first", "citizen", "||colon||", "||return||", "before"]
    stoi, itos = D.build_vocab(toks)
    assert itos[0] == "speak" and itos[1] in ("||comma||", "||period||")
    counts = [toks.count(t) for t in itos]
    assert counts == sorted(counts, reverse=True)
    with pytest.raises(KeyError, match="zebra"):
        D.encode(["zebra"], stoi)


def test_lm_batches_are_contiguous_streams():
    ids = np.arange(103)
    b = D.lm_batches(ids, batch_size=4, seq_len=5)
    x = np.concatenate([xb for xb, _ in b], axis=1)
    y = np.concatenate([yb for _, yb in b], axis=1)
    np.testing.assert_array_equal(y, x + 1)                              # next token
    np.testing.assert_array_equal(x[1], np.arange(25, 50))               # stream 1 is contiguous


# ---- metrics ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=1,
                         max_size=60))))
def test_metrics_match_naive(case):
    C, pairs = case
    y, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    cm = M.confusion_matrix(y, p, C)
    for i in range(C):
        for j in range(C):
            assert cm[i, j] == sum(1 for a, b in pairs if a == i and b == j)
    assert M.accuracy(y, p) == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
    recalls = []
    for c in range(C):
        members = [b for a, b in pairs if a == c]
        r = M.per_class_recall(cm)[c]
        if members:
            recalls.append(sum(b == c for b in members) / len(members))
            assert r == pytest.approx(recalls[-1])
        else:
            assert np.isnan(r)
    assert M.macro_accuracy(cm) == pytest.approx(sum(recalls) / len(recalls))


def test_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="y_pred"):
        M.confusion_matrix(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match="y_true"):
        M.confusion_matrix(np.array([0, 5]), np.array([0, 1]), 2)
    with pytest.raises(TypeError, match="y_true"):
        M.accuracy(np.array([0.5]), np.array([0]))


def test_plots_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    M.plot_confusion(np.array([[3, 1], [0, 2]]), ["a", "b"], tmp_path / "cm.png")
    M.plot_curves(tmp_path / "l.png", {"train": ([1, 2, 3], [3.0, 2.0, 1.5])})
    for f in ("cm.png", "l.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampling_temperature_and_top_k():
    from minirnn.tutorials.script import sample_next
    logits = np.array([0.0, 3.0, 1.0, 2.5])
    assert sample_next(logits, temperature=0) == 1
    rng = np.random.default_rng(0)
    draws = [sample_next(logits, 1.0, top_k=2, rng=rng) for _ in range(400)]
    assert set(draws) == {1, 3}                                          # only the top two
    freq = np.mean(np.array(draws) == 1)
    expect = np.exp(3.0) / (np.exp(3.0) + np.exp(2.5))
    assert abs(freq - expect) < 0.08
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, -1.0)
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, 1.0, top_k=0)


# ---- smoke runs -------------------------------------------------------------------------
def _cli(argv, capsys, stdin=None, monkeypatch=None):
    from minirnn.cli import main
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hihell_converges_and_builds_the_debugger_example(capsys, tmp_path):
    _needs("minirnn.nn.layers", "minirnn.nn.losses", "minirnn.train.optim")
    from minirnn.tutorials import hihell
    ex = hihell.build_example(seed=0)
    assert set(ex) >= {"model", "head", "inputs", "tokens", "itos"}
    assert ex["inputs"].shape == (6, 1, 5) and ex["tokens"] == list("hihell")
    np.testing.assert_array_equal(ex["inputs"].sum(axis=-1), 1.0)
    assert hihell.predict(ex["model"], ex["head"], ex["inputs"]) == "ihello"
    code, out, _ = _cli(["train", "hihell", "--backend", "numpy", "--out", str(tmp_path / "h")],
                        capsys)
    assert code == 0 and "predicted 'ihello'" in out
    assert {"model.npz", "metrics.json"} <= set(os.listdir(tmp_path / "h"))


def test_sentences_completes_all_three(capsys, tmp_path):
    _needs("minirnn.nn.layers", "minirnn.nn.losses", "minirnn.train.optim")
    code, out, _ = _cli(["train", "sentences", "--backend", "numpy", "--quick", "--out",
                         str(tmp_path / "s")], capsys)
    assert code == 0
    for prime, full in (("good", "good i am fine"), ("hey", "hey how are you"),
                        ("have", "have a nice day")):
        assert f"{prime!r:8} -> {full!r}" in out


def test_tutorial_rnn_backward_matches_finite_differences():
    _needs("minirnn.nn.layers", "minirnn.nn.losses")
    from minirnn.nn.losses import cross_entropy
    from minirnn.tutorials.names import TutorialRNN
    net = TutorialRNN(n_categories=4, hidden_size=5, seed=3)
    ids, target = D.encode_name("Abel"), np.array([2])

    def loss():
        return float(cross_entropy(net.forward(ids)[0][None], target)[0])
    z, combined = net.forward(ids)
    _, dz = cross_entropy(z[None], target)
    net.net.zero_grad()
    net.backward(dz[0], combined)
    for name, p, g in net.net.named_parameters():
        for k in np.random.default_rng(0).choice(p.size, min(6, p.size), replace=False):
            old = p.flat[k]
            p.flat[k] = old + 1e-6
            up = loss()
            p.flat[k] = old - 1e-6
            down = loss()
            p.flat[k] = old
            assert g.flat[k] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9), name


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "tutorial-rnn"])
def test_names_quick_and_predict(model, tmp_path, capsys, monkeypatch):
    _needs("minirnn.nn.layers", "minirnn.nn.losses", "minirnn.train.optim",
           "minirnn.train.checkpoint", "minirnn.nn.models", "minirnn.train.engine")
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    code, _, err = _cli(["train", "names", "--model", model, "--backend", "numpy", "--quick",
                         "--out", str(out)], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "macro_accuracy", "per_class_recall", "train_seconds"} <= set(metrics)
    assert len(metrics["per_class_recall"]) == 18
    assert 0.0 <= metrics["macro_accuracy"] <= 1.0 and metrics["test_accuracy"] > 1 / 18
    for f in ("model.npz", "confusion.png", "loss.png"):
        assert (out / f).stat().st_size > 0
    ck = str(out / "model.npz")
    code, text, _ = _cli(["predict", "names", "--checkpoint", ck, "--top", "2", "Ślusàrski"], capsys)
    assert code == 0 and text.startswith("Ślusàrski") and text.count("%") == 2
    code, text, _ = _cli(["predict", "names", "--checkpoint", ck, "--json", "--top", "18"],
                         capsys, stdin="Nguyen\nSmith\n", monkeypatch=monkeypatch)
    res = json.loads(text)
    assert [r["name"] for r in res] == ["Nguyen", "Smith"]
    for r in res:
        probs = [p["prob"] for p in r["predictions"]]
        assert len(probs) == 18 and sum(probs) == pytest.approx(1.0)
        assert probs == sorted(probs, reverse=True)
    code, text, err = _cli(["predict", "names", "--checkpoint", ck, "--top", "2", "", "Smith"],
                           capsys)
    assert code == 1 and "error: name: expected at least one letter" in text
    assert "1 of 2 name(s) could not be classified" in err and text.count("%") == 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["script", "char"])
def test_language_model_quick_and_generate(kind, tmp_path, capsys):
    _needs("minirnn.nn.layers", "minirnn.nn.losses", "minirnn.train.optim",
           "minirnn.train.checkpoint", "minirnn.nn.models", "minirnn.train.engine")
    pytest.importorskip("matplotlib")
    out = tmp_path / kind
    code, _, err = _cli(["train", kind, "--backend", "numpy", "--quick", "--out", str(out)], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert 1.0 < metrics["val_perplexity"] < metrics["vocab_size"] * 2
    assert (out / "perplexity.png").stat().st_size > 0
    prime = "first citizen" if kind == "script" else "First"
    code, text, _ = _cli(["generate", kind, "--checkpoint", str(out / "model.npz"), "--prime", prime,
                          "--length", "25", "--temperature", "0.8", "--top-k", "5", "--seed", "1"],
                         capsys)
    assert code == 0 and text.endswith("\n")
    text = text[:-1]                                  # print's newline
    if kind == "char":
        assert len(text) == len(prime) + 25 and text.startswith(prime)
    else:
        assert len(D.tokenize_words(text)) == 2 + 25 and text.startswith(prime)
    code, _, err = _cli(["generate", kind, "--checkpoint", str(out / "model.npz"), "--prime", prime,
                         "--length", "0"], capsys)
    assert code == 2 and "length" in err
