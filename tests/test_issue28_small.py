"""The smaller things a new user hit (issue 28, section 5): one overwrite rule for every page
and picture the debugger writes, --weight-scale refusing a non-finite factor, train hihell's
--resume message, `dir(minirnn.grad)`, the Lyapunov study's overflow text, the lag study's
test loss at init, the CLI telling a bug from bad input, torch's forward-mode AD loading
without TorchScript warnings, and comments that name only what the repository keeps."""
import re

import numpy as np
import pytest

import minirnn
from minirnn.cli import main


# ---- the lag study's init rows have their test loss ---------------------------------------------
def test_lags_study_reports_the_test_loss_at_init_too(tmp_path, capsys):
    from minirnn.studies.seqtask import cross_entropy_on_task, task_model
    assert main(["study", "lags", "--cells", "gru", "--T", "6", "--hidden", "3", "--batch", "2",
                 "--train-steps", "16", "--window", "4", "--seed", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines()
            if line.startswith("gru ") and line.split()[1] in ("init", "trained")}
    assert set(rows) == {"init", "trained"}, out
    want = cross_entropy_on_task(task_model(3, "gru", 2, "numpy"), seed=4)   # same data, untrained
    assert float(rows["init"][2]) == pytest.approx(want, abs=5e-5)
    assert float(rows["trained"][2]) != float(rows["init"][2])


# ---- the Lyapunov study says what README says ------------------------------------------------
def test_lyapunov_study_reports_a_state_overflow_as_readme_does(tmp_path, capsys):
    from minirnn.studies.flow import scale_recurrent
    from minirnn.grad.lyapunov import lyapunov_spectrum
    from minirnn.nn import make_recurrent
    args = ["--cells", "rnn_relu", "--hidden", "8", "--input-size", "4", "--T", "300",
            "--warmup", "20", "--weight-scale", "1000", "--fixed-T", "20", "--readout-steps", "0",
            "--seed", "0"]
    assert main(["study", "lyapunov", *args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    m = scale_recurrent(make_recurrent("rnn_relu", 4, 8, seed=0), 1000.0)
    x = np.random.default_rng(0).standard_normal((300, 1, 4))
    step = lyapunov_spectrum(m, x, warmup=20, seed=0).diverged_at
    assert step is not None
    assert f"state overflow (step {step})" in out and "diverged at" not in out, out
    assert "not compared on any of 1 runs (1 state overflow: not compared)" in out


# ---- one overwrite rule for the debugger's pages and pictures --------------------------------
def _small_trace():
    model = minirnn.GRU(2, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 1, 2))
    return model, x, minirnn.trace(model, x, d_out=np.ones((4, 1, 3)))


def test_explore_refuses_to_replace_a_page_unless_told(tmp_path):
    model, x, _ = _small_trace()
    path = tmp_path / "p.html"
    path.write_text("keep me")
    with pytest.raises(ValueError, match=r"^path: .*p\.html already exists.*overwrite=True"):
        minirnn.explore(model, x[:, 0], path, connect=False)
    assert path.read_text() == "keep me"
    assert minirnn.explore(model, x[:, 0], path, connect=False, overwrite=True) == str(path)
    assert "minirnn-data" in path.read_text()


@pytest.mark.parametrize("writer, name", [("render_html", "s.html"), ("render_heatmap", "h.png")])
def test_the_step_renderers_refuse_to_replace_a_file_unless_told(tmp_path, writer, name):
    from minirnn.debug import render
    if writer == "render_heatmap":
        pytest.importorskip("matplotlib")
    _, _, tr = _small_trace()
    path = tmp_path / name
    path.write_bytes(b"keep me")
    with pytest.raises(ValueError, match=rf"^path: .*{name.replace('.', '[.]')} already exists"):
        getattr(render, writer)(tr, path)
    assert path.read_bytes() == b"keep me"
    getattr(render, writer)(tr, path, overwrite=True)
    assert path.read_bytes() != b"keep me"


@pytest.mark.parametrize("flag, name", [("--render", "s.html"), ("--heatmap", "h.png")])
def test_step_render_follows_the_rule_of_explore_o(tmp_path, capsys, flag, name):
    if flag == "--heatmap":
        pytest.importorskip("matplotlib")
    path = tmp_path / name
    path.write_bytes(b"keep me")
    assert main(["step", "--cell", "gru", flag, str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{flag}: {path} already exists" in err and "--overwrite" in err
    assert path.read_bytes() == b"keep me"
    assert main(["step", "--cell", "gru", flag, str(path), "--overwrite"]) == 0
    assert path.read_bytes() != b"keep me"


# ---- step --weight-scale ----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_step_refuses_a_non_finite_weight_scale(capsys, value):
    assert main(["step", "--cell", "rnn_tanh", f"--weight-scale={value}"]) == 2
    err = capsys.readouterr().err
    assert "--weight-scale: expected a finite number" in err and value in err


# ---- train hihell --resume ----------------------------------------------------------------------
@pytest.mark.parametrize("task", ["hihell", "sentences"])
def test_train_refuses_resume_for_the_sub_second_tasks_whatever_the_path(tmp_path, capsys,
                                                                        task):
    assert main(["train", task, "--resume", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {task} trains in under a second" in err and "no such" not in err


# ---- dir(minirnn.grad) --------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["minirnn", "minirnn.grad"])
def test_dir_lists_the_public_names_not_the_import_machinery(module):
    import importlib
    mod = importlib.import_module(module)
    names = dir(mod)
    assert "importlib" not in names
    assert set(mod.__all__) <= set(names)


# ---- the CLI tells a bug from bad input -------------------------------------------------------
@pytest.mark.parametrize("exc", [TypeError("unsupported operand"), KeyError("weight_hh_l0"),
                                 RuntimeError("kernel failed"), IndexError("out of range"),
                                 AttributeError("no attribute")])
def test_cli_shows_minirnns_own_error_as_a_bug(monkeypatch, capsys, exc):
    import minirnn.cli.gradcheck as cmd

    def broken(args):
        raise exc
    monkeypatch.setattr(cmd, "_run", broken)
    monkeypatch.delenv("MINIRNN_DEBUG", raising=False)
    rc = main(["gradcheck", "--T", "2"])
    err = capsys.readouterr().err
    assert rc == 70, err
    assert "Traceback" in err and type(exc).__name__ in err
    assert "bug in minirnn" in err and "error: " not in err.splitlines()[-1][:30]


def test_cli_argument_checks_stay_one_line_user_errors(monkeypatch, capsys):
    monkeypatch.delenv("MINIRNN_DEBUG", raising=False)
    assert main(["gradcheck", "--T", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "minirnn gradcheck: error: --T: expected an integer >= 1, got 0"


def test_cli_debug_shows_the_traceback_of_both(monkeypatch):
    import minirnn.cli.gradcheck as cmd
    monkeypatch.setenv("MINIRNN_DEBUG", "1")
    with pytest.raises(ValueError, match="--T"):
        main(["gradcheck", "--T", "0"])

    def broken(args):
        raise KeyError("weight_hh_l0")
    monkeypatch.setattr(cmd, "_run", broken)
    with pytest.raises(KeyError):
        main(["gradcheck"])


def _no_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")


@pytest.mark.parametrize("argv, message", [
    (["parity", "--device", "cuda", "--cell", "gru"], "--device cuda: CUDA is not available"),
    (["train", "char", "--backend", "torch", "--device", "cuda", "--quick"],
     "device: 'cuda' was asked for, but torch sees no CUDA device"),
])
def test_asking_for_a_cuda_device_torch_cannot_see_is_bad_input(tmp_path, capsys, argv, message):
    _no_cuda()
    assert main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_plot_without_a_torch_reference_is_bad_input(tmp_path):
    from minirnn.bench import save_plot
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="plot: no ratio to torch"):
        save_plot({"meta": {"ratio_references": []}, "rows": []}, tmp_path / "p.png")


# ---- torch's forward-mode AD without TorchScript warnings -------------------------------------
_FIRST_JVP = """
import sys, warnings
import torch
if sys.argv[1] == "load":
    from minirnn.parity.torch_ref import load_forward_ad
    load_forward_ad()
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    out, tangent = torch.func.jvp(torch.tanh, (torch.ones(3, dtype=torch.float64),),
                                  (torch.ones(3, dtype=torch.float64),))
assert torch.allclose(tangent, 1 - torch.tanh(torch.ones(3, dtype=torch.float64)) ** 2)
print(sum("torch.jit.script" in str(w.message) for w in seen))
"""


def test_the_first_forward_mode_jvp_warns_nothing_once_loaded_here():
    """torch's forward AD imports TorchScript decompositions at its first use in a process,
    each torch.jit.script call of which warns that TorchScript is deprecated (18 of them in
    the test run). Fresh interpreters: without load_forward_ad the first jvp warns (so this
    test can see the warnings), with it none does, and the jvp is still torch's."""
    import subprocess
    import sys
    pytest.importorskip("torch")
    counts = {how: subprocess.run([sys.executable, "-c", _FIRST_JVP, how], capture_output=True,
                                  text=True, timeout=300) for how in ("plain", "load")}
    for how, res in counts.items():
        assert res.returncode == 0, res.stderr
    assert int(counts["plain"].stdout.split()[-1]) > 0
    assert int(counts["load"].stdout.split()[-1]) == 0


# ---- comments name what the repository keeps ---------------------------------------------------
def _comments_and_docstrings(path):
    import io
    import tokenize
    src = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING):
            yield tok.start[0], tok.string


def test_comments_point_at_nothing_outside_the_repository():
    """A comment or docstring of the package or the benchmarks that cites a measurement names
    a file the repository keeps, or says what was measured: no path under the repository's
    folders that is gone, no scratch directory (/tmp), no directory beside the checkout.
    (The folders beside the checkout are read at run time, not named here.)"""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    top = {p.name for p in root.iterdir()}
    beside = {p.name for p in root.parent.iterdir() if p.is_dir()} - top - {root.name}
    folders = ("minirnn", "benchmarks", "parity", "tests", "docs", "examples")
    inside = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*[\w-])" % "|".join(folders))
    outside = re.compile(r"(?<![\w./-])(%s)/[\w.-]" % "|".join(map(re.escape, beside))
                         if beside else r"(?!x)x")
    scratch = re.compile(r"(?<![\w.])/tmp\b")
    bad = []
    for folder in ("minirnn", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            for line, text in _comments_and_docstrings(path):
                where = f"{path.relative_to(root)}:{line}"
                for m in inside.finditer(text):
                    ref = m.group(1).rstrip(".")
                    before = text[:m.start()]
                    if before.endswith(("torch's ", "torch ")):              # torch's own tree
                        continue
                    if re.search(r"(^|\s)(--[\w-]+|-o)[ =]$", before):       # a command's output
                        continue
                    if not ref.endswith("_") and not (root / ref).exists():
                        bad.append(f"{where}: {ref} (not in the repository)")
                bad += [f"{where}: {m.group(0)}... (beside the checkout)"
                        for m in outside.finditer(text)]
                bad += [f"{where}: /tmp (a scratch directory)" for _ in scratch.finditer(text)]
    assert not bad, "\n".join(bad)
