"""minirnn against the frozen torch dumps (parity/refs/*.npz): runs where torch is absent.

Also checks the harness itself: a planted disagreement must fail and be located.
"""
import json

import numpy as np
import pytest

from minirnn.cli import main as cli_main
from minirnn.parity import check_case, compare, matrix, run_minirnn, tolerance
from minirnn.parity.configs import CELLS, DTYPES
from minirnn.parity.frozen import FORMAT_VERSION, default_refs_dir, read_refs, refs_path, write_refs


@pytest.fixture(scope="module", params=CELLS)
def dump(request):
    return request.param, read_refs(refs_path(request.param))


def test_dumps_are_small_and_versioned(dump):
    cell, (meta, entries) = dump
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["device"] == "cpu"
    total = sum(p.stat().st_size for p in default_refs_dir().glob("*.npz"))
    assert total < 1_000_000, f"frozen dumps total {total} bytes, budget is 1 MB"


def test_dumps_cover_the_current_matrix(dump):
    """configs.py and the dumps must not drift apart: same names, same configurations."""
    cell, (_, entries) = dump
    stored = {(c.name, dt): c for c, dt, _, _ in entries}
    for config in matrix(cell):
        for dtype in DTYPES:
            assert (config.name, dtype) in stored, f"{config.name} {dtype} missing from dump"
            assert stored[(config.name, dtype)] == config


def test_cases_have_no_zeros_hiding_bugs(dump):
    """Random non-zero biases, states and upstream gradients everywhere."""
    _, (_, entries) = dump
    for config, dtype, case, _ in entries:
        for name, v in case.items():
            if name == "lengths":
                assert v.min() >= 1 and v.max() <= config.T
                continue
            assert v.dtype == np.dtype(dtype), name
            assert np.count_nonzero(v) == v.size, f"{config.name}: {name} has zeros"


def test_minirnn_matches_frozen_torch(dump):
    _, (_, entries) = dump
    failures = []
    for config, dtype, case, ref in entries:
        report = check_case(config, case, ref, "cpu")
        assert report.tol == tolerance("cpu", dtype)
        assert {e.name for e in report.errors} == set(ref)
        if not report.passed:
            failures.append(f"{config.name} {dtype}: {report.worst.name} rel "
                            f"{report.worst.rel:.2e}; {report.where}")
    assert not failures, "\n".join(failures)


def _entry(cell, name, dtype="float64"):
    _, entries = read_refs(refs_path(cell))
    return next(e for e in entries if e[0].name == name and e[1] == dtype)


def test_planted_output_error_is_located_in_time_and_direction():
    config, dtype, case, ref = _entry("lstm", "lstm/bi")
    ours = run_minirnn(config, case)
    bad = dict(ref)
    bad["out"] = ref["out"].copy()
    bad["out"][3, 1, config.out_size + 2] += 1e-3         # step 3, reverse direction
    report = compare(config, ours, bad, dtype)
    assert not report.passed and report.worst.name == "out"
    assert report.worst.worst_index == (3, 1, config.out_size + 2)
    assert any("out diverges" in w and "t=3" in w and "reverse" in w for w in report.where), report.where


def test_planted_state_gradient_error_is_located_in_layer():
    config, dtype, case, ref = _entry("rnn_tanh", "rnn_tanh/L2-bi")
    ours = run_minirnn(config, case)
    bad = dict(ref)
    bad["dh0"] = ref["dh0"].copy()
    bad["dh0"][3] *= 1.001                                 # layer 1, reverse direction
    report = compare(config, ours, bad, dtype)
    assert not report.passed
    assert [e.name for e in report.errors if e.rel > report.tol] == ["dh0"]
    assert report.where == [report.where[0]] and "layer 1 reverse" in report.where[0]
    assert "layer 0" not in report.where[0]


def test_planted_dx_error_reports_steps():
    config, dtype, case, ref = _entry("rnn_relu", "rnn_relu/bf")     # batch_first: (B, T, I)
    ours = run_minirnn(config, case)
    bad = dict(ref)
    bad["dx"] = ref["dx"].copy()
    bad["dx"][1, 2] += 1e-2                                # batch 1, step 2
    report = compare(config, ours, bad, dtype)
    assert any(w.startswith("dx diverges at steps 2..2") for w in report.where), report.where


def test_compare_refuses_missing_tensors():
    config, dtype, case, ref = _entry("rnn_tanh", "rnn_tanh/base")
    ours = run_minirnn(config, case)
    del ours["grad.bias_hh_l0"]
    with pytest.raises(KeyError, match="grad.bias_hh_l0"):
        compare(config, ours, ref, dtype)


def test_round_trip_and_version_check(tmp_path):
    entries = [_entry("lstm", "lstm/L2-bi-len-proj", dt) for dt in DTYPES]
    path = write_refs(tmp_path / "x.npz", entries, torch_version="t", device="cpu")
    meta, back = read_refs(path)
    assert meta["torch_version"] == "t" and len(back) == 2
    for (c0, d0, case0, ref0), (c1, d1, case1, ref1) in zip(entries, back):
        assert c0 == c1 and d0 == d1 and list(case0) == list(case1) and list(ref0) == list(ref1)
        for k in case0:
            assert case0[k].dtype == case1[k].dtype and np.array_equal(case0[k], case1[k]), k
        for k in ref0:
            assert np.array_equal(ref0[k], ref1[k]), k
    # a dump of another format version is refused, naming both versions
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta["format_version"] = FORMAT_VERSION + 1
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "y.npz", **arrays)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*expected {FORMAT_VERSION}"):
        read_refs(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError, match="make_refs"):
        read_refs(tmp_path / "missing.npz")


def test_cli_frozen_passes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "parity.json"
    rc = cli_main(["parity", "--frozen", "--cell", "rnn_relu", "--dtype", "float64",
                   "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "worst relative error  rnn_relu  float64" in text and "FAIL" not in text
    data = json.loads(out.read_text())
    assert data["passed"] and data["frozen"]
    assert len(data["cases"]) == len(matrix("rnn_relu"))
    assert all(c["worst_rel"] <= 1e-12 for c in data["cases"])


def test_cli_frozen_fails_on_a_corrupted_reference(tmp_path, capsys):
    config, dtype, case, ref = _entry("rnn_tanh", "rnn_tanh/base", "float64")
    ref = dict(ref, h_n=ref["h_n"] + 1e-6)
    write_refs(refs_path("rnn_tanh", tmp_path), [(config, dtype, case, ref)])
    rc = cli_main(["parity", "--frozen", "--cell", "rnn_tanh", "--refs", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in text and "h_n diverges at layer 0 forward" in text
