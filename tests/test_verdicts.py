"""Every verdict counts what it judged, and a run that judged nothing never reports success
(issue 28, section 1): gradcheck in every mode and order, the CLI `gradcheck`, `parity` (live
and --frozen) and the studies' pass/fail lines.

The expected counts are derived here from the model's own sizes (tensors, entries, max_entries),
never read back from the report under test."""
import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

import minirnn
from minirnn.cli import main
from minirnn.grad.gradcheck import GradcheckReport, GradcheckRow, gradcheck
from minirnn.cells import BUILTIN as CELL_NAMES
from minirnn.nn import make_cell, make_recurrent

ROOT = Path(__file__).resolve().parents[1]
MODES = [dict(mode="rev"), dict(mode="fwd"), dict(mode="fast"), dict(mode="rev", dot=True),
         dict(order=2)]


def _lstm(seed=0, **kw):
    return make_recurrent("lstm", 3, 4, seed=seed, **kw)


def _x(seed=0, T=3, B=2, I=3):
    return np.random.default_rng(seed).standard_normal((T, B, I))


def _footer(report):
    return report.table().splitlines()[-1]


# ---- gradcheck: nothing judged is never a pass ------------------------------------------------
@pytest.mark.parametrize("kw", MODES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_an_empty_params_list_is_refused(kw):
    with pytest.raises(ValueError, match=r"params: .*empty.*expected some of .*weight_hh_l0"):
        gradcheck(_lstm(), _x(), params=[], **kw)


def test_order_2_refuses_the_inputs_it_does_not_cover():
    model = _lstm()
    for params, named in ((["x"], "'x'"), (["x", "h0", "weight_hh_l0"], "'x', 'h0'"),
                          ("c0", "'c0'")):
        with pytest.raises(ValueError) as info:
            gradcheck(model, _x(), order=2, params=params)
        text = str(info.value)
        assert text.startswith("params: ") and named in text, text
        assert "parameters only" in text and "weight_hh_l0" in text and "bias_ih_l0" in text


def test_a_report_with_no_rows_fails_and_says_so():
    report = GradcheckReport([], 1e-6, 1e-5, 1e-6, 0, 0.0)
    assert not report.passed
    assert "FAILED" in _footer(report) and "nothing was checked" in _footer(report)
    assert "PASSED" not in report.table()
    with pytest.raises(AssertionError, match="nothing was checked"):
        report.raise_if_failed()
    assert report.to_dict()["passed"] is False and report.to_dict()["compared"] == 0


def test_a_row_that_compared_no_entries_is_not_a_pass():
    empty = GradcheckRow("x", (0, 2, 3), 0, 0, 0.0, 0.0, True, np.zeros(0, int), "rev", "")
    report = GradcheckReport([empty], 1e-6, 1e-5, 1e-6, 0, 0.0)
    assert not report.passed and report.failed == ["x"]
    assert "FAILED" in _footer(report)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_footer_counts_tensors_and_comparisons(cell):
    model = make_recurrent(cell, 3, 4, seed=1)
    x, k = _x(1), 5
    sizes = {"x": x.size, **{f"{n}0": 2 * 4 for n in model.spec.state_names},
             **{n: p.size for n, p in model.params.items()}}
    report = gradcheck(model, x, max_entries=k)
    want = sum(min(k, s) for s in sizes.values())
    footer = _footer(report)
    assert report.passed and footer.startswith("gradcheck PASSED")
    assert f"{len(sizes)} tensors, {want} comparisons" in footer, footer
    assert report.to_dict()["compared"] == want and report.to_dict()["tensors"] == len(sizes)


def test_order_2_honours_max_entries_and_counts_them():
    model = _lstm(seed=2)
    report = gradcheck(model, _x(2), order=2, max_entries=5, seed=3)
    by = {r.name: r for r in report.rows}
    assert set(by) == set(model.params)
    for name, p in model.params.items():
        assert by[name].checked == min(5, p.size) and by[name].total == p.size, name
        assert by[name].indices is not None and len(set(by[name].indices)) == by[name].checked
    again = gradcheck(model, _x(2), order=2, max_entries=5, seed=3, params=["weight_hh_l0"])
    np.testing.assert_array_equal(again.rows[0].indices, by["weight_hh_l0"].indices)
    want = sum(min(5, p.size) for p in model.params.values())
    assert f"{len(model.params)} tensors, {want} comparisons" in _footer(report)
    full = gradcheck(model, _x(2), order=2, params=["weight_hh_l0"])
    assert full.rows[0].checked == model.params["weight_hh_l0"].size


@pytest.mark.parametrize("kw, dot", [(dict(mode="rev"), False), (dict(mode="fast"), False),
                                     (dict(order=2), False), (dict(mode="fwd"), True),
                                     (dict(mode="rev", dot=True), True),
                                     (dict(mode="fwd", dot=False), False)])
def test_the_dot_test_footer_only_when_the_dot_test_ran(kw, dot):
    report = gradcheck(_lstm(), _x(), max_entries=2, **kw)
    assert any(r.check == "dot" for r in report.rows) == dot
    assert ("dot test" in _footer(report)) == dot, _footer(report)


# ---- gradcheck: non-finite and empty input ------------------------------------------------------
@pytest.mark.parametrize("kw", MODES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("where, value", [("x", np.nan), ("h0", np.inf), ("c0", -np.inf),
                                          ("weight_hh_l0", np.nan)])
def test_non_finite_input_names_the_tensor_and_the_first_bad_index(kw, where, value):
    model = _lstm(seed=4)
    rng = np.random.default_rng(4)
    x = _x(4)
    hx = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    target = {"x": x, "h0": hx[0], "c0": hx[1], "weight_hh_l0": model.params["weight_hh_l0"]}
    bad = target[where]
    first = tuple(int(i) for i in np.unravel_index(5, bad.shape))
    bad[first] = value
    bad.flat[bad.size - 1] = value                       # a later one must not be the one named
    with pytest.raises(ValueError) as info:
        gradcheck(model, x, hx, **kw)
    text = str(info.value)
    assert text.startswith(f"{where}: ") and str(list(first)) in text and "finite" in text, text


def test_non_finite_input_to_a_cell_is_refused_too():
    cell = make_cell("gru", 3, 4, seed=0, dtype="float64")
    x = _x(5)[0]
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^x: .*\[1, 2\]"):
        gradcheck(cell, x)


@pytest.mark.parametrize("kw", MODES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_an_empty_batch_is_refused_with_a_reason(kw):
    with pytest.raises(ValueError, match=r"x: .*empty batch \(B = 0\).*nothing to check"):
        gradcheck(_lstm(), np.zeros((3, 0, 3)), **kw)
    with pytest.raises(ValueError, match=r"x: .*empty batch \(B = 0\)"):
        gradcheck(make_recurrent("gru", 3, 4, batch_first=True), np.zeros((0, 3, 3)), **kw)


def test_an_empty_batch_to_a_cell_is_refused_too():
    with pytest.raises(ValueError, match=r"x: .*empty batch \(B = 0\)"):
        gradcheck(make_cell("lstm", 3, 4, dtype="float64"), np.zeros((0, 3)))


# ---- gradcheck: the CLI ---------------------------------------------------------------------------
def test_cli_gradcheck_prints_the_counts(capsys):
    args = ["gradcheck", "--cell", "gru", "--layers", "1", "--T", "2", "--B", "2",
            "--input-size", "2", "--hidden", "3", "--max-entries", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    model = make_recurrent("gru", 2, 3)
    sizes = [2 * 2 * 2, 2 * 3] + [p.size for p in model.params.values()]
    assert f"gradcheck PASSED: {len(sizes)} tensors, {sum(min(4, s) for s in sizes)} " \
           f"comparisons" in out, out


def test_cli_gradcheck_that_judged_nothing_exits_1(monkeypatch, capsys):
    import minirnn.grad.gradcheck as gc
    monkeypatch.setattr(gc, "gradcheck",
                        lambda *a, **k: GradcheckReport([], 1e-6, 1e-5, 1e-6, 0, 0.0))
    assert main(["gradcheck", "--cell", "rnn_tanh", "--T", "2", "--B", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "PASSED" not in out


# ---- parity ---------------------------------------------------------------------------------------
def test_parity_frozen_counts_cases_and_tensors(capsys):
    from minirnn.parity import matrix
    from minirnn.parity.harness import make_case
    assert main(["parity", "--frozen", "--cell", "gru", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    configs = matrix("gru")
    # the tensors of each case: out, h_n, dx, dh0 and every parameter gradient
    tensors = sum(4 + sum(k.startswith("param.") for k in make_case(c)) for c in configs)
    assert f"{len(configs)} cases, {tensors} tensors compared" in out, out
    assert f"{len(configs)}/{len(configs)} passed: every case of the matrix" in out


def test_parity_frozen_with_dumps_holding_no_case_fails(tmp_path, capsys):
    from minirnn.parity.frozen import refs_path, write_refs
    write_refs(refs_path("gru", tmp_path), [])
    rc = main(["parity", "--frozen", "--cell", "gru", "--refs", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 1, captured
    assert "FAILED" in captured.out and "0 of" in captured.out and "passed in" not in captured.out


def test_parity_frozen_with_dumps_missing_cases_says_which_were_not_judged(tmp_path, capsys):
    from minirnn.parity.frozen import read_refs, refs_path, write_refs
    _, entries = read_refs(refs_path("gru"))
    write_refs(refs_path("gru", tmp_path), entries[:3])
    rc = main(["parity", "--frozen", "--cell", "gru", "--refs", str(tmp_path)])
    out = capsys.readouterr().out
    from minirnn.parity import matrix
    expected = 2 * len(matrix("gru"))
    assert rc == 1 and f"{expected - 3} of {expected}" in out and "not judged" in out, out


def test_parity_live_that_ran_nothing_fails(monkeypatch, capsys):
    pytest.importorskip("torch")
    import minirnn.parity as parity
    monkeypatch.setattr(parity, "run_parity", lambda *a, **k: [])
    rc = main(["parity", "--cell", "gru", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAILED" in out and "passed in" not in out


def test_a_case_report_that_compared_no_tensor_is_not_a_pass():
    from minirnn.parity import CaseReport, compare, matrix
    config = matrix("gru")[0]
    report = CaseReport(config, "float64", "cpu", 1e-12)
    assert not report.passed
    assert not compare(config, {}, {}, "float64").passed
    json.dumps(report.to_dict())                          # no crash on the empty worst


# ---- the studies' pass/fail lines -----------------------------------------------------------------
def test_study_verdict_that_judged_nothing_fails():
    from minirnn.cli._study_util import verdict
    line, code = verdict("parts sum to the BPTT gradient", judged=[], failed=[], unit="runs")
    assert code == 1 and "FAILED" in line and "nothing" in line and "PASSED" not in line
    line, code = verdict("x", judged=["a", "b"], failed=["b"], unit="cells")
    assert code == 1 and "FAILED" in line and "1 of 2 cells" in line and "b" in line
    line, code = verdict("x", judged=["a", "b"], failed=[], unit="cells")
    assert code == 0 and line.startswith("x: PASSED") and "2 of 2 cells" in line


def test_lags_study_verdict_counts_its_runs():
    from minirnn.cli.study_lags import sum_verdict
    assert sum_verdict({})[1] == 1 and "FAILED" in sum_verdict({})[0]
    line, code = sum_verdict({("lstm", "init"): 1e-16, ("lstm", "trained"): 2e-16})
    assert code == 0 and "PASSED" in line and "2 of 2 runs" in line
    line, code = sum_verdict({("lstm", "init"): 1e-16, ("gru", "trained"): 1e-3})
    assert code == 1 and "FAILED" in line and "gru trained" in line


def test_uoro_study_verdict_counts_its_cells_and_a_rank_0_test_judges_nothing():
    from minirnn.cli.study_uoro import unbiased_verdict
    ok = dict(t2=3.0, rank=4, t2_limit=18.5)
    assert unbiased_verdict({})[1] == 1 and "FAILED" in unbiased_verdict({})[0]
    line, code = unbiased_verdict({"lstm": ok, "gru": ok})
    assert code == 0 and "PASSED" in line and "2 of 2 cells" in line
    line, code = unbiased_verdict({"lstm": ok, "gru": dict(t2=0.0, rank=0, t2_limit=np.nan)})
    assert code == 1 and "FAILED" in line and "gru" in line and "not judged" in line
    line, code = unbiased_verdict({"lstm": ok, "gru": dict(t2=99.0, rank=4, t2_limit=18.5)})
    assert code == 1 and "FAILED" in line and "gru" in line


def test_lyapunov_study_counts_the_runs_it_compared(tmp_path, capsys):
    out = tmp_path / "l"
    assert main(["study", "lyapunov", "--cells", "rnn_tanh", "--hidden", "3", "--T", "30",
                 "--warmup", "5", "--weight-scale", "1,2", "--fixed-T", "20",
                 "--readout-steps", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"\|QR - direct simulation\| over 2 of 2 runs: at most \S+", text), text


# ---- gradcheck and its modes: no import circle ----------------------------------------------------
def _imported_modules(path, package):
    """Every module a file imports, at any depth (function-level imports too), as absolute
    names: `from .x import y` in package p gives p.x and p.x.y (y may be a submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[:len(parts) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_gradcheck_modes_does_not_import_gradcheck():
    """gradcheck.py uses gradcheck_modes.py; the modes take what they share with it (the row,
    the sampling) from a module both import, so the two no longer import each other."""
    grad = ROOT / "minirnn" / "grad"
    modes = _imported_modules(grad / "gradcheck_modes.py", "minirnn.grad")
    assert "minirnn.grad.gradcheck_modes" in _imported_modules(grad / "gradcheck.py",
                                                               "minirnn.grad")
    assert "minirnn.grad.gradcheck" not in modes, sorted(modes)
    assert minirnn.grad.GradcheckReport is GradcheckReport
