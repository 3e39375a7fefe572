"""A learner's first hour: BLAS threads chosen on purpose, runs that never lose work (refused
output directories, Ctrl-C, --resume), missing extras and bad input without tracebacks, and
the feedback a training run prints."""
import json
import os
import re
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minirnn.cli import main


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _same_run(a, b):
    """Two run directories hold the same results: metrics (but the seconds) and weights."""
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for m in (ma, mb):
        for k in ("train_seconds", "seconds_per_epoch"):
            m.pop(k, None)
    assert ma == mb
    za, zb = np.load(a / "model.npz"), np.load(b / "model.npz")
    assert za.files == zb.files
    for k in za.files:
        if k.startswith(("model/", "optim/")):
            np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


# ---- threads ------------------------------------------------------------------------------
def test_thread_choice_follows_flag_then_environment_then_size(monkeypatch):
    from minirnn import _threads as T
    monkeypatch.delenv(T.ENV, raising=False)
    assert T.choose(3, 10**12) == (3, "--threads")
    monkeypatch.setenv(T.ENV, "2")
    assert T.choose(None, 1) == (2, T.ENV)
    assert T.choose(1, 10**12).threads == 1                        # the flag wins
    monkeypatch.setenv(T.ENV, "zero")
    with pytest.raises(ValueError, match="MINIRNN_NUM_THREADS: expected a positive integer"):
        T.choose()
    monkeypatch.delenv(T.ENV)
    names = T.step_product(64, 128, "lstm")                          # the names classifier
    assert names == 64 * 128 * 512 < T.SMALL_PRODUCT
    assert T.choose(None, names).threads == 1
    big = T.step_product(128, 512, "lstm")
    assert big >= T.SMALL_PRODUCT and T.choose(None, big).threads == T.usable_cores()
    assert "1 BLAS thread" in T.describe(T.choose(None, names))
    with pytest.raises(ValueError, match="--threads"):
        T.choose(0)


def test_limit_applies_the_count_and_restores_it():
    from minirnn import _threads as T
    before = T.blas_threads()
    if not before:
        pytest.skip("no BLAS library visible to threadpoolctl")
    with T.limit(T.Choice(1, "test")) as actual:
        assert actual == 1 and T.blas_threads() == [1] * len(before)
    assert T.blas_threads() == before


def test_train_reports_and_uses_its_thread_choice(tmp_path, capsys, monkeypatch):
    from minirnn import _threads as T
    monkeypatch.delenv(T.ENV, raising=False)
    code, out, _ = _cli(["train", "hihell", "--backend", "numpy", "--out", str(tmp_path / "h"),
                         "--threads", "1"], capsys)
    assert code == 0
    code, out, err = _cli(["train", "names", "--threads", "0", "--out", str(tmp_path / "n")],
                          capsys)
    assert code == 2 and "--threads: expected an integer >= 1" in err


# ---- runs never lose work -----------------------------------------------------------------
def test_a_run_refuses_a_directory_that_holds_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(["train", "hihell", "--backend", "numpy", "--out", str(out)], capsys)[0] == 0
    before = (out / "model.npz").read_bytes()
    (out / "notes.txt").write_text("mine")
    code, _, err = _cli(["train", "hihell", "--backend", "numpy", "--epochs", "3", "--out",
                         str(out)], capsys)
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    assert (out / "model.npz").read_bytes() == before               # nothing was touched
    code, out_text, _ = _cli(["train", "hihell", "--backend", "numpy", "--epochs", "3",
                              "--overwrite", "--out", str(out)], capsys)
    assert code == 0 and "after 3 steps" in out_text
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3
    assert (out / "notes.txt").read_text() == "mine"                # not ours: left alone


_KILL_AT = textwrap.dedent("""
    import os, signal, sys
    from minirnn.train.engine import Engine
    N = int(os.environ["KILL_AT_STEP"])
    def wrap(real):
        def step(self, *args, **kwargs):
            result = real(self, *args, **kwargs)
            if self.steps == N:                       # a real SIGINT, as Ctrl-C sends it
                os.kill(os.getpid(), signal.SIGINT)
            return result
        return step
    Engine.step, Engine.step_lm = wrap(Engine.step), wrap(Engine.step_lm)
    from minirnn.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("task, kill_at, extra", [
    ("names", 40, ["--epochs", "3"]),          # after the first checkpoint (epoch 1 = 32 steps)
    ("char", 35, ["--epochs", "2"]),           # mid-epoch 2 of a language model (29 a epoch)
])
def test_ctrl_c_saves_a_checkpoint_and_resume_continues_exactly(task, kill_at, extra,
                                                                tmp_path, capsys):
    args = ["train", task, "--quick", "--backend", "numpy", "--no-progress", *extra]
    assert _cli(args + ["--out", str(tmp_path / "straight")], capsys)[0] == 0
    env = dict(os.environ, KILL_AT_STEP=str(kill_at), PYTHONUNBUFFERED="1")
    run = subprocess.run([sys.executable, "-c", _KILL_AT, *args, "--out", "stopped"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 130, run.stderr
    assert f"(step {kill_at}); saved stopped/last.npz" in run.stderr
    assert f"continue with: minirnn train {task} --resume stopped" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "stopped" / "metrics.json").exists()
    from minirnn.train.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "stopped" / "last.npz").step == kill_at
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        code, text, err = _cli(["train", task, "--resume", "stopped", "--no-progress"], capsys)
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert "resuming stopped/last.npz" in text
    _same_run(tmp_path / "straight", tmp_path / "stopped")


def test_resume_keeps_the_run_settings(tmp_path, capsys):
    out = tmp_path / "n"
    assert _cli(["train", "char", "--quick", "--backend", "numpy", "--no-progress", "--out",
                 str(out)], capsys)[0] == 0
    code, _, err = _cli(["train", "char", "--resume", str(out), "--model", "gru"], capsys)
    assert code == 2 and "was trained with --model lstm" in err
    code, _, err = _cli(["train", "script", "--resume", str(out)], capsys)
    assert code == 2 and "not a checkpoint of `minirnn train script`" in err
    code, _, err = _cli(["train", "hihell", "--resume", str(out)], capsys)
    assert code == 2 and "keeps no resumable checkpoint" in err
    code, _, err = _cli(["train", "char", "--resume", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no such checkpoint" in err


def test_hihell_and_sentences_write_a_run_that_step_can_open(tmp_path, capsys, monkeypatch):
    import io
    out = tmp_path / "h"
    assert _cli(["train", "hihell", "--backend", "numpy", "--out", str(out)], capsys)[0] == 0
    assert {"model.npz", "metrics.json"} <= set(os.listdir(out))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\nquit\n"))
    code, text, err = _cli(["step", "--checkpoint", str(out / "model.npz")], capsys)
    assert code == 0, err
    assert "token 'h'  predicts 'i'" in text and "token 'i'  predicts 'h'" in text
    out = tmp_path / "s"
    assert _cli(["train", "sentences", "--backend", "numpy", "--out", str(out)], capsys)[0] == 0
    code, text, err = _cli(["step", "--checkpoint", str(out / "model.npz"), "--text", "hey",
                            "--render", str(tmp_path / "s.html")], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["correct"] is True


def test_flags_are_honoured_or_refused(tmp_path, capsys):
    code, text, _ = _cli(["train", "hihell", "--backend", "numpy", "--model", "lstm", "--epochs",
                          "300", "--out", str(tmp_path / "l")], capsys)
    assert code == 0
    m = json.loads((tmp_path / "l" / "metrics.json").read_text())
    assert m["model"] == "lstm" and m["steps"] <= 300
    from minirnn.train.engine import load_model
    model, _ = load_model(tmp_path / "l" / "model.npz")
    assert model.rnn.spec.name == "lstm"
    code, _, err = _cli(["train", "hihell", "--model", "tutorial-rnn"], capsys)
    assert code == 2 and "tutorial-rnn" in err
    code, _, err = _cli(["train", "sentences", "--log-every", "5"], capsys)
    assert code == 2 and "--log-every" in err
    for backend in ("torch", "numba"):
        code, _, err = _cli(["train", "names", "--model", "tutorial-rnn", "--backend", backend],
                            capsys)
        assert code == 2 and f"runs on numpy only (its own BPTT over Linear layers), got " \
            f"--backend {backend}" in err


def test_gru_trains_in_the_tutorials(tmp_path, capsys):
    code, text, err = _cli(["train", "hihell", "--backend", "numpy", "--model", "gru", "--out",
                            str(tmp_path / "h")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "h" / "metrics.json").read_text())["model"] == "gru"
    code, text, err = _cli(["train", "char", "--quick", "--backend", "numpy", "--model", "gru",
                            "--no-progress", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert m["model"] == "gru" and 1 < m["val_perplexity"] < m["vocab_size"] * 2


# ---- missing extras and bad input ---------------------------------------------------------
@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_train_without_matplotlib_writes_results_and_names_the_extra(tmp_path, capsys,
                                                                    no_matplotlib):
    code, text, err = _cli(["train", "hihell", "--backend", "numpy", "--out",
                            str(tmp_path / "h")], capsys)
    assert code == 0, err
    assert "plots skipped: the loss plots needs matplotlib" in text
    assert "pip install 'minirnn[plot]'" in text
    assert sorted(os.listdir(tmp_path / "h")) == ["metrics.json", "model.npz"]
    out = tmp_path / "n"
    code, text, err = _cli(["train", "names", "--quick", "--backend", "numpy", "--no-progress",
                            "--out", str(out)], capsys)
    assert code == 0, err
    assert "pip install 'minirnn[plot]'" in text and "Traceback" not in err
    assert sorted(os.listdir(out)) == ["last.npz", "metrics.json", "model.npz"]
    # the learner's feedback: the running loss with a sample, as the seed tutorial prints it
    lines = [ln for ln in text.splitlines() if re.match(r"^\d+ \d+% \(\d+m \d+s\) \d+\.\d{4} ", ln)]
    assert len(lines) >= 10
    assert all(re.search(r" / \w+ (✓|✗ \(\w+\)|ok|x \(\w+\))$", ln) for ln in lines), lines[:3]
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["loss_per_step"]) >= 10 and len(m["train_loss_per_epoch"]) == 2


def test_study_and_step_without_matplotlib(tmp_path, capsys, no_matplotlib):
    code, text, err = _cli(["study", "gradflow", "--cells", "rnn_tanh", "--T", "8", "--hidden",
                            "4", "--weight-scale", "1", "--no-demo", "--out",
                            str(tmp_path / "g")], capsys)
    assert code == 0, err
    assert "plot skipped" in text and "minirnn[plot]" in text
    assert os.listdir(tmp_path / "g") == ["gradflow.csv"]
    html, png = tmp_path / "s.html", tmp_path / "s.png"
    code, text, err = _cli(["step", "--cell", "lstm", "--T", "3", "--render", str(html),
                            "--heatmap", str(png)], capsys)
    assert code == 2
    assert err.strip() == ("minirnn step: error: the heatmap (--heatmap) needs matplotlib, which "
                           "is not installed: pip install 'minirnn[plot]' (or pip install "
                           "matplotlib)")
    assert html.exists() and not png.exists()                      # the page came first


def test_backend_torch_without_torch_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    code, _, err = _cli(["train", "names", "--backend", "torch", "--out", str(tmp_path / "t")],
                        capsys)
    assert code == 2 and "--backend torch needs torch" in err and "minirnn[torch]" in err
    assert not (tmp_path / "t").exists()


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    from minirnn._progress import progress
    bar = progress(range(3), desc="x")
    assert list(bar) == [0, 1, 2]
    bar.set_postfix(loss="1.0")
    bar.close()


def _names_checkpoint(path):
    """A small untrained names classifier, written as `minirnn train names` writes one."""
    from minirnn.train.engine import Engine
    from minirnn.tutorials.data import ALPHABET, categories
    from minirnn.tutorials.names import build_classifier, classifier_config
    cats = categories()
    config = classifier_config(cats, "lstm", 8)
    Engine(build_classifier(config), backend="numpy").save(path, config=config,
                                                           vocab=list(ALPHABET), labels=cats)
    return str(path)


def test_predict_gives_each_name_a_result_or_an_error(tmp_path, capsys, monkeypatch):
    import io
    ck = _names_checkpoint(tmp_path / "m.npz")
    code, text, err = _cli(["predict", "names", "--checkpoint", ck, "--top", "2", "Smith", "",
                            "123", "Nguyen"], capsys)
    assert code == 1
    blocks = text.split("\n")
    assert blocks[0] == "Smith" and blocks[3] == "''" and blocks[5] == "123"
    assert blocks[4].startswith("  error: name: expected at least one letter")
    assert text.count("%") == 4 and "2 of 4 name(s) could not be classified" in err
    code, text, _ = _cli(["predict", "names", "--checkpoint", ck, "--json", "Smith", "!!"], capsys)
    res = json.loads(text)
    assert code == 1 and len(res[0]["predictions"]) == 3 and "error" in res[1]
    monkeypatch.setattr("sys.stdin", io.StringIO("Smith\n\nSchmidt\n"))
    code, text, _ = _cli(["predict", "names", "--checkpoint", ck, "--json"], capsys)
    assert code == 0 and [r["name"] for r in json.loads(text)] == ["Smith", "Schmidt"]


@pytest.mark.parametrize("content, why", [(b"\x80\x04K\x01.", "not a zip archive"),
                                          (b"hello, not a model\n", "not a zip archive"),
                                          (b"", "empty")])
def test_a_file_that_is_not_an_npz_is_a_checkpoint_error(content, why, tmp_path, capsys):
    from minirnn.train.checkpoint import CheckpointError, load_checkpoint
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=why) as e:
        load_checkpoint(path)
    assert "pickle" not in str(e.value)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load_checkpoint(tmp_path / "a.npy")
    code, _, err = _cli(["predict", "names", "--checkpoint", str(path), "Smith"], capsys)
    assert code == 2 and err.startswith("minirnn predict: error: checkpoint") and \
        err.count("\n") == 1 and "pickle" not in err


def test_torch_engine_validates_the_token_layout_before_dispatch():
    pytest.importorskip("torch")
    from minirnn.train.engine import Engine
    from minirnn.nn.models import LanguageModel, SequenceClassifier
    eng = Engine(SequenceClassifier(7, 3, 4, seed=0), backend="torch")
    tokens = np.zeros((5, 2, 1), dtype=np.int64)                      # (T, B, 1): the wrong layout
    with pytest.raises(ValueError, match=r"tokens: expected integer ids of shape \(B, T\)"):
        eng.step(tokens, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="tokens"):
        eng.step(np.full((2, 3), 9), np.zeros(2, dtype=np.int64))     # ids >= vocab_size
    lm = Engine(LanguageModel(7, 3, 4, seed=0), backend="torch")
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        lm.step_lm(np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64))
    assert eng._trainer is None and lm._trainer is None              # torch never saw them


def test_a_misspelled_option_shows_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "names", "--epocs", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: minirnn train") and "did you mean --epochs?" in err
    with pytest.raises(SystemExit):
        main(["study", "gradflow", "--out", "x", "--hiden", "4"])
    err = capsys.readouterr().err
    assert err.startswith("usage: minirnn study gradflow") and "--hidden" in err


def test_error_messages_have_no_doubled_quotes(tmp_path, capsys):
    from minirnn.cli import _message
    assert _message(KeyError("word 'zebra' is not in the vocabulary")) == \
        "word 'zebra' is not in the vocabulary"
    out = tmp_path / "c"
    assert _cli(["train", "char", "--quick", "--backend", "numpy", "--no-progress", "--out",
                 str(out)], capsys)[0] == 0
    code, _, err = _cli(["generate", "char", "--checkpoint", str(out / "model.npz"), "--prime",
                         "First ~"], capsys)
    assert code == 2
    assert err == ("minirnn generate: error: prime: characters ['~'] are not in the model's "
                   f"vocabulary ({json.loads((out / 'metrics.json').read_text())['vocab_size']} "
                   "characters); leave them out\n")
    code, _, err = _cli(["generate", "char", "--checkpoint", str(tmp_path / "no.npz")], capsys)
    assert code == 2 and '"' not in err


def test_unknown_words_are_refused_like_unknown_characters(tmp_path, capsys):
    out = tmp_path / "s"
    assert _cli(["train", "script", "--quick", "--backend", "numpy", "--no-progress", "--out",
                 str(out)], capsys)[0] == 0
    code, _, err = _cli(["generate", "script", "--checkpoint", str(out / "model.npz"), "--prime",
                         "first zyzzyva citizen"], capsys)
    assert code == 2 and "prime: words ['zyzzyva'] are not in the model's vocabulary" in err


def test_output_files_get_normal_permissions(tmp_path):
    from minirnn import _io
    old = os.umask(0o022)
    try:
        _io.write_json(tmp_path / "a.json", {"a": 1})
        assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
        os.chmod(tmp_path / "a.json", 0o600)                       # a file's own mode is kept
        _io.write_json(tmp_path / "a.json", {"a": 2})
        assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_grads_typo_lists_the_valid_keys():
    import minirnn
    m = minirnn.LSTM(3, 4, bidirectional=True)
    with pytest.raises(KeyError, match=r"weight_hh_l0_reverse") as e:
        m.grads["weight_hh_l0_revers"]
    assert "grads['weight_hh_l0_revers']: no such parameter" in str(e.value)
    with pytest.raises(KeyError, match="params"):
        m.params["bias"]
    assert len(m.parameters()) == len(m.params) == 8


def test_the_clipping_panel_marks_where_the_unclipped_run_diverges():
    plt = pytest.importorskip("matplotlib.pyplot")
    from minirnn.cli.study_gradflow import _plot_demo
    demo = {"cell": "rnn_relu", "weight_scale": 4.0, "max_norm": 1.0,
            "runs": {"no_clip": {"grad_norm": [1.7e15, 3e30, float("inf")], "finite": False},
                     "clip": {"grad_norm": [1.7e15, 2.0, 1.5, 1.2], "finite": True}}}
    fig, ax = plt.subplots()
    _plot_demo(ax, demo)
    assert ax.get_yscale() == "log"
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
    # the third norm is inf: step 3, counted from 1 as in the table (its `steps` column)
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [3]
    assert ax.get_ylim()[1] > 3e30                                   # the explosion is on it
    assert any("diverged at step 3" in t.get_text() for t in ax.texts)
    plt.close(fig)
