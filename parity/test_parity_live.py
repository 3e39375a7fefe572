"""Parity against live torch (CPU) over random configurations (hypothesis)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minirnn.cli import main as cli_main  # noqa: E402
from minirnn.parity import CELLS, Config, check_case, make_case, run_minirnn, tolerance  # noqa: E402
from minirnn.parity.torch_ref import run_torch  # noqa: E402
from minirnn.testing import max_errors  # noqa: E402


@st.composite
def configs(draw, min_hidden=1):
    cell = draw(st.sampled_from(CELLS))
    H = draw(st.integers(min_hidden, 16))
    unbatched = draw(st.booleans()) and draw(st.booleans())          # 1 in 4
    batched = not unbatched
    return Config(
        name="hypothesis", cell=cell, input_size=draw(st.integers(1, 16)), hidden_size=H,
        T=draw(st.integers(1, 40)), B=draw(st.integers(1, 8)),
        num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
        batch_first=batched and draw(st.booleans()), bias=draw(st.booleans()),
        lengths=batched and draw(st.booleans()), unbatched=unbatched,
        proj_size=draw(st.integers(0, H - 1)) if cell == "lstm" and H > 1 and draw(st.booleans()) else 0,
        seed=draw(st.integers(0, 2**16)))


def _float32_failures_explained_by_torch(config, case, report):
    """The float32 tensors that miss the tolerance against torch's float32 and are NOT
    explained by float32 rounding itself (an empty list: all explained).

    Some float32 problems are ill-conditioned for *any* implementation: a gradient that is a
    long sum with cancellation (H = I = 1, T = 39: one scalar ~0.04 summed from terms ~1),
    or a saturated tanh whose derivative 1 - h^2 loses digits. There torch's own float32
    result misses the tolerance too (torch's bias_ih and bias_hh gradients, mathematically
    equal, can differ 10x in accuracy). The referee is torch in float64, independent of
    minirnn, on the same float32-rounded inputs ("truth"), and the problem's own sensitivity
    is measured by torch float64 on those inputs perturbed by one float32 rounding (relative
    2^-24, random sign). Our float32 tensor passes if its error against the truth is within
    the tolerance, or within 4x torch float32's worst error on this case, or within 4x the
    change one float32 rounding of the inputs causes in that tensor. Float64: no referee.
    """
    if report.passed:
        return []
    if report.dtype != "float32":
        return [f"{e.name}: rel {e.rel:.2e}" for e in report.errors if e.rel > report.tol]
    case64 = {k: (v if k == "lengths" else v.astype(np.float64)) for k, v in case.items()}
    ref, truth = run_torch(config, case, "cpu"), run_torch(config, case64, "cpu")
    rng = np.random.default_rng(0)
    nudged = [run_torch(config, {k: (v if k == "lengths" else
                                     v * (1 + 2.0**-24 * rng.choice([-1.0, 1.0], v.shape)))
                                 for k, v in case64.items()}, "cpu") for _ in range(2)]
    ours = run_minirnn(config, case)
    torch_worst = max(max_errors(ref[k], truth[k])[1] for k in truth)
    unexplained = []
    for e in report.errors:
        if e.rel <= report.tol:
            continue
        ours_err = max_errors(ours[e.name], truth[e.name])[1]
        sensitivity = max(max_errors(n[e.name], truth[e.name])[1] for n in nudged)
        if ours_err > max(report.tol, 4.0 * torch_worst, 4.0 * sensitivity):
            unexplained.append(f"{e.name}: vs torch32 {e.rel:.2e}, minirnn32 vs torch64 "
                               f"{ours_err:.2e}; torch32's worst {torch_worst:.2e}, "
                               f"one-rounding sensitivity {sensitivity:.2e}")
    return unexplained


# float32 draws H >= 2: with H = 1 every gradient tensor is one scalar summed with
# cancellation, whose float32 error is a coin flip for minirnn and torch alike (measured:
# either side 2e-6..3e-5 off the float64 truth). float64 covers H = 1 at the strict 1e-12.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(["float32", "float64"]))
def test_matches_torch(data, dtype):
    config = data.draw(configs(min_hidden=2 if dtype == "float32" else 1), label="config")
    case = make_case(config, dtype)
    ref = run_torch(config, case, "cpu")
    report = check_case(config, case, ref, "cpu")
    assert report.tol == tolerance("cpu", dtype)
    assert [e.name for e in report.errors] == list(ref)
    bad = _float32_failures_explained_by_torch(config, case, report)
    assert not bad, (f"{config} {dtype}: {bad}; worst {report.worst.name} rel "
                     f"{report.worst.rel:.2e} > {report.tol:.0e}; {report.where}")


def test_float32_cancellation_case_is_torchs_rounding_not_ours():
    """The case hypothesis found: torch float32 is 1.6e-5 off the exact weight gradient, we
    are 1e-6 off. The strict comparison fails; the referee must see that torch is the one off."""
    config = Config(name="cancel", cell="rnn_tanh", input_size=1, hidden_size=1, T=39, B=1,
                    bidirectional=True, unbatched=True, seed=1)
    case = make_case(config, "float32")
    ref = run_torch(config, case, "cpu")
    report = check_case(config, case, ref, "cpu")
    if report.passed:          # a torch build that sums in another order may not show it
        pytest.skip("this torch build's float32 result is within tolerance here")
    assert _float32_failures_explained_by_torch(config, case, report) == []
    truth = run_torch(config, {k: v.astype(np.float64) for k, v in case.items()}, "cpu")
    ours = run_minirnn(config, case)
    name = report.worst.name
    assert max_errors(ours[name], truth[name])[1] <= report.tol < max_errors(ref[name], truth[name])[1]
    # the same case in float64 passes the strict 1e-12 with no referee
    case64 = make_case(config, "float64")
    assert check_case(config, case64, run_torch(config, case64, "cpu"), "cpu").passed


def test_cli_live_cpu_passes(capsys):
    rc = cli_main(["parity", "--cell", "lstm", "--dtype", "float64"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "reference: torch (live, cpu)" in text
    assert text.count("PASS") >= 13 and "FAIL" not in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_cli_cuda_without_cuda_is_a_clear_error(capsys):
    rc = cli_main(["parity", "--device", "cuda", "--cell", "rnn_tanh"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--device cuda" in err and "not available" in err
