"""Eleven things a new user tripped on (issue 20, part 3), each pinned by a test that failed
before its fix: the dtype hint, the progress bar's loss, one loss for `step` and `explore`,
--proj-size on a cell without a projection, non-finite and wrong-shape checkpoints, output
paths (--mkdir, --overwrite), the gradflow study's band and step numbers, help texts that
name every cell, flagged bench rows, and Ctrl-C at the debugger's prompt (in a real pty).
The explorer page's axes and strip labels are checked in tests/test_explore_browser.py."""
import io
import json
import os
import re
import sys
import time

import numpy as np
import pytest

import minirnn
from minirnn.cli import main
from minirnn.cells import CELLS


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _names_checkpoint(path, hidden=6, seed=0):
    """A small untrained names classifier, written as `minirnn train names` writes one."""
    from minirnn.train.engine import Engine
    from minirnn.tutorials.data import ALPHABET, categories
    from minirnn.tutorials.names import build_classifier, classifier_config
    cats = categories()
    config = classifier_config(cats, "lstm", hidden, seed=seed)
    Engine(build_classifier(config), backend="numpy").save(path, config=config,
                                                           vocab=list(ALPHABET), labels=cats)
    return str(path)


def _rewrite(path, change):
    """Rewrite one entry of a checkpoint .npz: change(name, array) -> array."""
    z = np.load(path)
    arrays = {k: change(k, z[k]) for k in z.files}
    z.close()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# ---- 1. the dtype hint ---------------------------------------------------------------------
def test_an_integer_input_into_a_float32_model_suggests_a_cast_to_the_models_dtype():
    rng = np.random.default_rng(1)
    m = minirnn.GRU(3, 4, dtype="float32", seed=0)
    x = rng.integers(-9, 9, size=(5, 2, 3))                            # int64
    with pytest.raises(TypeError) as e:
        m(x)
    msg = str(e.value)
    assert "x.astype(np.float32)" in msg and "int64" in msg
    assert "dtype='int64'" not in msg                                  # a model refuses it
    with pytest.raises(TypeError, match="dtype"):
        minirnn.GRU(3, 4, dtype="int64")
    m(x.astype(np.float32))                                            # the suggestion works
    with pytest.raises(TypeError) as e:                                # float64: both fixes
        m(rng.standard_normal((5, 2, 3)))
    assert "x.astype(np.float32)" in str(e.value) and "dtype='float64'" in str(e.value)
    from minirnn.functional import rnn_forward
    with pytest.raises(TypeError) as e:                                # the functional API too
        rnn_forward(rng.standard_normal((3, 1, 2)).astype(np.float32),
                    np.zeros((1, 4), np.float32), rng.integers(0, 3, (4, 2)).astype(np.int32),
                    np.eye(4, dtype=np.float32))
    assert "w_ih.astype(np.float32)" in str(e.value) and "dtype='int32'" not in str(e.value)


# ---- 2. the progress bar's loss right after a log line ---------------------------------------
def test_the_running_loss_shown_right_after_a_log_line_is_a_number():
    from minirnn.tutorials._run import Meter
    losses = np.random.default_rng(2).uniform(0.5, 3.0, 5)
    m = Meter(total=10, every=2, curve_every=1)
    assert not m.add(losses[0]) and m.add(losses[1])                  # step 2: a log step
    m.line(1.0)                                                         # prints and resets
    assert m.peek() == pytest.approx(losses[:2].mean())                # not nan
    resumed = Meter(10, 2, 1, state=json.loads(json.dumps(m.state())))
    assert resumed.peek() == pytest.approx(losses[:2].mean())          # a resumed run too
    m.add(losses[2])
    assert m.peek() == pytest.approx(losses[2])                        # the new window
    old = {k: v for k, v in m.state().items() if k != "last"}          # an older checkpoint
    assert Meter(10, 2, 1, state=old).peek() == pytest.approx(losses[2])


# ---- 3. one loss for step and explore ---------------------------------------------------------
def _step_dh(argv, monkeypatch, capsys):
    """`minirnn step ARGV` piped: the loss line and dh at the backward walk's first step
    (t = T-1) and at t = 0."""
    monkeypatch.setattr("sys.stdin", io.StringIO("backward\nshow dh\ngoto 0\nshow dh\nquit\n"))
    code, text, err = _cli(["step", *argv], capsys)
    assert code == 0, err
    shown = re.findall(r"^dh\[0:\d+\]\s+(.*)$", text, re.M)
    assert len(shown) == 2, text
    dh = [np.array([float(v) for v in s.split()]) for s in shown]
    return text, dh[0], dh[1]


def test_step_and_explore_show_the_same_gradient_of_the_same_named_loss(tmp_path, capsys,
                                                                          monkeypatch):
    from minirnn.debug.explore import read_page
    ck = _names_checkpoint(tmp_path / "m.npz")
    text_in = "Nguyen"
    page = tmp_path / "p.html"
    assert main(["explore", "--checkpoint", ck, "--text", text_in, "-o", str(page)]) == 0
    capsys.readouterr()
    p = read_page(page)
    note, dh = p["meta"]["loss_note"], p["arrays"]["0:dh"]
    assert "cross-entropy" in note
    text, dh_last, dh_first = _step_dh(["--checkpoint", ck, "--text", text_in], monkeypatch,
                                       capsys)
    assert note in text                                                # named on screen
    assert re.search(r"^backward of L = ", text, re.M)                 # and at `backward`
    np.testing.assert_allclose(dh_last, dh[-1], atol=6e-4, rtol=1e-2)
    np.testing.assert_allclose(dh_first, dh[0], atol=6e-4, rtol=1e-2)
    assert np.abs(dh[-1]).max() > 2e-3                                 # not a trivial check
    # --loss sum in both: d_out = ones, so the last step's dh is all ones (out = h)
    text, dh_last, _ = _step_dh(["--checkpoint", ck, "--text", text_in, "--loss", "sum"],
                                monkeypatch, capsys)
    assert "sum of every output" in text and np.all(dh_last == 1.0)
    assert main(["explore", "--checkpoint", ck, "--text", text_in, "--loss", "sum",
                 "--overwrite", "-o", str(page)]) == 0
    p = read_page(page)
    assert "sum of every output" in p["meta"]["loss_note"]
    np.testing.assert_array_equal(p["arrays"]["0:dh"][-1], 1.0)


def test_a_model_without_a_head_backpropagates_the_sum_and_says_so(tmp_path, capsys,
                                                                  monkeypatch):
    text, dh_last, _ = _step_dh(["--cell", "gru", "--T", "4", "--hidden", "3"], monkeypatch,
                                capsys)
    assert "sum of every output" in text and "no head" in text and np.all(dh_last == 1.0)
    for tool in ("step", "explore"):
        with pytest.raises(SystemExit):
            main([tool, "--help"])
        assert "--loss {model,sum}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:                              # argparse's choices
        main(["step", "--loss", "mse"])
    assert e.value.code == 2 and "--loss" in capsys.readouterr().err


def test_explore_takes_the_loss_as_an_argument(tmp_path):
    from minirnn.debug.explore import build
    from minirnn.nn.layers import Linear
    model = minirnn.LSTM(3, 4, seed=0)
    head = Linear(4, 5, seed=1)
    x = np.random.default_rng(3).normal(size=(6, 3))
    default, tr = build(model, x, head=head)
    summed, tr_sum = build(model, x, head=head, loss="sum")
    assert "cross-entropy" in default["meta"]["loss_note"]
    assert "sum of every output" in summed["meta"]["loss_note"]
    np.testing.assert_array_equal(tr_sum.step(5).dh, np.ones((1, 4)))
    assert not np.allclose(tr.step(5).dh, 1.0)
    path = minirnn.explore(model, x, tmp_path / "s.html", head=head, loss="sum")
    assert "sum of every output" in minirnn.debug.explore.read_page(path)["meta"]["loss_note"]
    with pytest.raises(ValueError, match="loss: expected one of"):
        build(model, x, head=head, loss="mse")


# ---- 4. --proj-size on a cell without a projection --------------------------------------------
def test_proj_size_on_a_cell_without_a_projection_is_a_one_line_cli_error(capsys):
    with_proj = [s.module for s in CELLS.values() if "weight_hr" in s.extra_params]
    for cell, spec in CELLS.items():
        if "weight_hr" in spec.extra_params:
            continue
        code, _, err = _cli(["gradcheck", "--cell", cell, "--proj-size", "3"], capsys)
        assert code == 2
        assert err.strip().splitlines() == [f"minirnn gradcheck: error: --proj-size: "
                                            f"{' or '.join(with_proj)} only (--cell {cell} "
                                            f"has no projection)"]
    code, text, err = _cli(["gradcheck", "--cell", "lstm", "--proj-size", "2", "--layers", "1",
                            "--T", "3", "--B", "1", "--hidden", "3", "--max-entries", "3"], capsys)
    assert code == 0, err


# ---- 5. checkpoints: non-finite weights, wrong shapes ----------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_checkpoint_with_non_finite_weights_is_refused_at_load(tmp_path, capsys, bad):
    from minirnn.train.checkpoint import CheckpointError, load_checkpoint
    ck = _names_checkpoint(tmp_path / "m.npz")
    key = "model/rnn.weight_hh_l0"

    def poison(name, a):
        if name == key:
            a = a.copy()
            a[2, 1] = bad
        return a
    _rewrite(ck, poison)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ck)
    msg = str(e.value)
    assert ck in msg and "rnn.weight_hh_l0" in msg and "[2, 1]" in msg
    code, text, err = _cli(["predict", "names", "--checkpoint", ck, "Smith"], capsys)
    assert code == 2 and "%" not in text and ck in err and "rnn.weight_hh_l0" in err


def test_a_wrong_shape_checkpoint_names_the_file_in_every_cli(tmp_path, capsys):
    from minirnn.train.engine import Engine
    from minirnn.nn.models import LanguageModel
    ck = _names_checkpoint(tmp_path / "m.npz")
    _rewrite(ck, lambda n, a: a[:-1] if n == "model/fc.weight" else a)
    code, text, err = _cli(["predict", "names", "--checkpoint", ck, "Smith"], capsys)
    assert code == 2 and ck in err and "fc.weight" in err, err
    for tool in (["step"], ["explore", "-o", str(tmp_path / "x.html")]):
        code, _, err = _cli([*tool, "--checkpoint", ck, "--text", "Smith"], capsys)
        assert code == 2 and ck in err and "fc.weight" in err, err
    lm = tmp_path / "lm.npz"
    config = {"task": "char", "vocab_size": 5, "embedding_dim": 3, "hidden_size": 4,
              "num_layers": 1, "dropout": 0.0}                     # as `train char` writes
    Engine(LanguageModel(5, 3, 4, seed=0), backend="numpy").save(lm, config=config,
                                                                  vocab=list("abcde"))
    _rewrite(str(lm), lambda n, a: a[:, :-1] if n == "model/rnn.weight_ih_l0" else a)
    code, _, err = _cli(["generate", "char", "--checkpoint", str(lm), "--prime", "ab",
                         "--length", "3"], capsys)
    assert code == 2 and str(lm) in err and "weight_ih_l0" in err, err


# ---- 6. output paths ------------------------------------------------------------------------
def test_the_output_path_rule(tmp_path, monkeypatch):
    from minirnn._io import check_output_path
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert check_output_path("-o", "page.html") == "page.html"        # an existing directory
    assert check_output_path("-o", "runs/a/page.html") == "runs/a/page.html"   # under cwd
    assert not (work / "runs").exists()                                # created when written
    missing = outside / "missing" / "x.html"
    with pytest.raises(ValueError) as e:
        check_output_path("--render", missing)
    msg = str(e.value)
    assert msg.startswith("--render: ") and str(outside / "missing") in msg and "--mkdir" in msg
    assert not (outside / "missing").exists()
    assert check_output_path("--render", missing, mkdir=True) == str(missing)
    assert check_output_path("--out", outside / "new", directory=True) == str(outside / "new")
    with pytest.raises(ValueError, match="--mkdir"):
        check_output_path("--out", outside / "a" / "b", directory=True)
    (outside / "page.html").write_text("x")
    assert check_output_path("-o", outside / "page.html", overwrite=True)
    with pytest.raises(ValueError, match="already exists.*--overwrite"):
        check_output_path("-o", outside / "page.html", overwrite=False)
    with pytest.raises(ValueError, match="is a directory"):
        check_output_path("-o", outside)
    with pytest.raises(ValueError, match="not a directory"):
        check_output_path("-o", outside / "page.html" / "x.html")


OUTPUT_FLAGS = [
    (["explore", "--cell", "rnn_tanh", "--T", "3", "--hidden", "2"], "-o", "x.html"),
    (["step", "--cell", "lstm", "--T", "3", "--hidden", "2"], "--render", "x.html"),
    (["step", "--cell", "lstm", "--T", "3", "--hidden", "2"], "--heatmap", "x.png"),
    (["bench"], "--json", "b.json"),
    (["bench"], "--plot", "b.png"),
    (["gradcheck", "--layers", "1", "--T", "2", "--B", "1", "--hidden", "2"], "--json", "g.json"),
    (["parity", "--frozen", "--cell", "gru", "--dtype", "float64"], "--json", "p.json"),
    (["study", "gradflow", "--T", "3", "--hidden", "2", "--cells", "gru", "--weight-scale", "1",
      "--no-demo"], "--out", "gf/sub"),
    (["train", "hihell"], "--out", "run"),
]


@pytest.mark.parametrize("argv, flag, name", OUTPUT_FLAGS, ids=lambda v: str(v)[:20])
def test_no_output_flag_creates_a_directory_outside_the_working_directory(
        tmp_path, capsys, monkeypatch, argv, flag, name):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = tmp_path / "nonexistent" / "dir" / name
    t0 = time.perf_counter()
    code, _, err = _cli([*argv, flag, str(target)], capsys)
    assert time.perf_counter() - t0 < 10                               # refused before the work
    assert code == 2
    line = err.strip()
    assert "\n" not in line and flag in line and "--mkdir" in line
    assert str(tmp_path / "nonexistent") in line
    assert not (tmp_path / "nonexistent").exists()
    if argv[0] == "bench":
        return                                                         # not worth running it
    if flag == "--heatmap":
        pytest.importorskip("matplotlib")
    code, _, err = _cli([*argv, flag, str(target), "--mkdir"], capsys)
    assert code == 0, err
    assert target.exists()
    local = os.path.join("new", name)                                  # under cwd: created
    code, _, err = _cli([*argv, flag, local], capsys)
    assert code == 0, err
    assert (work / local).exists()


@pytest.mark.parametrize("study", __import__("minirnn.cli.study", fromlist=["STUDIES"]).STUDIES)
def test_every_study_refuses_an_out_dir_outside_the_working_directory(
        tmp_path, capsys, monkeypatch, study):
    """The dispatcher checks --out before any study runs (every study, the later ones too)."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path.parent / f"nonexistent-{tmp_path.name}" / "dir"
    t0 = time.perf_counter()
    code, _, err = _cli(["study", study, "--out", str(target)], capsys)
    assert time.perf_counter() - t0 < 10 and code == 2
    assert "--out" in err and "--mkdir" in err and not target.parent.exists()


def test_explore_refuses_to_replace_a_page_unless_told(tmp_path, capsys):
    out = tmp_path / "page.html"
    argv = ["explore", "--cell", "gru", "--T", "3", "--hidden", "2", "-o", str(out)]
    assert _cli(argv, capsys)[0] == 0
    before = out.read_bytes()
    code, _, err = _cli(argv[:-2] + ["--seed", "1", "-o", str(out)], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == before                                  # untouched
    assert _cli(argv + ["--seed", "1", "--overwrite"], capsys)[0] == 0
    assert out.read_bytes() != before


# ---- 8. the gradient-flow study --------------------------------------------------------------
def test_a_rate_near_one_is_stable_in_the_band_the_table_states(tmp_path, capsys, monkeypatch):
    from minirnn.studies import flow
    lo, hi = flow.STABLE_BAND
    assert lo < 1 < hi
    assert flow.behaviour(0.9996) == "stable" and flow.behaviour(lo) == "stable"
    assert flow.behaviour(lo * 0.999) == "vanishing" and flow.behaviour(hi * 1.001) == "exploding"
    assert flow.behaviour(float("nan")) == "nan"
    monkeypatch.setattr(flow, "decay_rate", lambda g: 0.9996)
    code, text, err = _cli(["study", "gradflow", "--cells", "rnn_tanh", "--T", "4", "--hidden",
                            "3", "--weight-scale", "1", "--no-demo", "--out",
                            str(tmp_path / "g")], capsys)
    assert code == 0, err
    row = next(line for line in text.splitlines() if line.strip().startswith("rnn_tanh"))
    assert row.split()[-1] == "stable"
    assert f"stable: {lo:g}" in text and f"{hi:g}" in text                # the band, stated


def test_a_plot_legend_states_the_band(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    from minirnn.cli.study_gradflow import _plot
    from minirnn.studies.flow import STABLE_BAND
    seen = {}
    real = plt.Figure.savefig

    def keep(fig, *a, **k):
        legends = [ax.get_legend() for ax in fig.axes]
        seen["texts"] = [t.get_text() for lg in legends for t in [lg.get_title(), *lg.get_texts()]]
        return real(fig, *a, **k)
    g = np.geomspace(1, 0.5, 6)
    args = type("A", (), {"T": 6, "hidden": 3})()
    plt.Figure.savefig, saved = keep, plt.Figure.savefig
    try:
        _plot(str(tmp_path / "g.png"), [("gru", 1.0, g, 0.9996), ("lstm", 2.0, g, 0.5)], None, args)
    finally:
        plt.Figure.savefig = saved
    assert any("stable" in t for t in seen["texts"])
    assert any(f"{STABLE_BAND[0]:g}" in t and f"{STABLE_BAND[1]:g}" in t for t in seen["texts"])


def test_gradflow_refuses_fewer_than_two_steps(tmp_path, capsys):
    code, text, err = _cli(["study", "gradflow", "--T", "1", "--cells", "gru", "--out",
                            str(tmp_path / "g")], capsys)
    assert code == 2 and "nan" not in text
    assert err.strip().startswith("minirnn study: error: --T: expected at least 2")
    assert "\n" not in err.strip()


def test_the_table_csv_and_plot_count_sgd_steps_from_one(capsys):
    plt = pytest.importorskip("matplotlib.pyplot")
    from minirnn.cli.study_gradflow import _plot_demo, _print_demo, _table
    from minirnn.studies.flow import exploding_demo
    demo = exploding_demo("rnn_relu", weight_scale=4.0, T=30, hidden=16, steps=6, seed=0)
    k = len(demo["runs"]["no_clip"]["loss"])              # the step at which it went inf/nan
    assert not demo["runs"]["no_clip"]["finite"]
    _print_demo(demo, _table)
    assert f"DIVERGED at step {k}" in capsys.readouterr().out
    fig, ax = plt.subplots()
    _plot_demo(ax, demo)
    assert any(f"diverged at step {k}" in t.get_text() for t in ax.texts)
    assert ax.get_xlim()[0] > 0                                        # step 1 is the first
    plt.close(fig)


# ---- 9. every cell in the help texts ----------------------------------------------------------
def test_the_help_texts_name_every_cell(capsys):
    from minirnn.cli import cell_kinds
    kinds = {s.summary.split(",")[0] for s in CELLS.values()}
    listed = cell_kinds()
    assert all(k in listed for k in kinds) and " and " in listed and ", " in listed
    assert cell_kinds("or").endswith(f" or {list(CELLS.values())[-1].summary.split(',')[0]}")
    for argv in ([], ["step"], ["gradcheck"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for kind in kinds:
            assert kind in text, (argv, kind)
    import minirnn as pkg
    root = os.path.dirname(pkg.__file__)
    stale = re.compile(r"RNN ?/ ?LSTM(?! ?/ ?GRU)|Elman RNN and LSTM\b(?! and)")   # lists
    found = []
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    found += [f"{f}: {m.group(0)}" for m in stale.finditer(fh.read())]
    assert not found


# ---- 10. flagged bench rows --------------------------------------------------------------------
def test_a_row_flagged_peak_shows_no_ratio():
    from minirnn.bench import format_table, row_flags
    from minirnn.bench.rows import validity
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "docs", "bench-quick.json")) as f:
        result = json.load(f)
    r = next(q for q in result["rows"] if q["regime"] == "fastrnns" and q["engine"] == "numba")
    r["peak_fraction"]["proj"] = 1.3                                   # a split phase over peak
    r["flags"] = [dict(code=c, message=m) for c, m in row_flags(r)]
    r["valid"], r["split_valid"] = validity(r)
    assert "peak" in [f["code"] for f in r["flags"]] and r["valid"]
    line = next(ln for ln in format_table(result).splitlines()
                if ln.startswith("fastrnns") and " numba " in ln)
    ratio = r["ratio"]["torch@2"]["fwd_bwd"]["median"]
    assert f"{ratio:.2f}" not in line and "!" in line and "peak" in line


# ---- 11. Ctrl-C at the (step) prompt ---------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_ctrl_c_at_the_prompt_cancels_and_ctrl_d_leaves():
    import pty
    import select

    def read_until(fd, marker, timeout=30.0):
        buf, t0 = b"", time.monotonic()
        while marker not in buf:
            assert time.monotonic() - t0 < timeout, buf.decode(errors="replace")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:                      # the child closed the pty
                    break
                if not chunk:
                    break
                buf += chunk
        assert marker in buf, buf.decode(errors="replace")
        return buf.decode(errors="replace")

    code = "import sys; from minirnn.cli import main; sys.exit(main(sys.argv[1:]))"
    pid, fd = pty.fork()
    if pid == 0:                                      # the child: the debugger on a terminal
        os.execv(sys.executable, [sys.executable, "-c", code, "step", "--cell", "gru", "--T",
                                  "3", "--hidden", "2"])
    try:
        read_until(fd, b"(step) ")
        os.write(fd, b"wher")                         # a half-typed command, then Ctrl-C
        time.sleep(0.2)
        os.write(fd, b"\x03")
        after = read_until(fd, b"(step) ")          # cancelled, back at the prompt
        assert "cancelled" in after and "Ctrl-D" in after, after
        os.write(fd, b"where\n")                      # still at the prompt: it answers
        assert "forward  t=0/2" in read_until(fd, b"(step) ")
        os.write(fd, b"\x04")                         # Ctrl-D leaves
        _, status = os.waitpid(pid, 0)
        pid = None
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
