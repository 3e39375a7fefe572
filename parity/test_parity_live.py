"""Parity against live torch (CPU) over random configurations (hypothesis)."""
import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minirnn.cli import main as cli_main  # noqa: E402
from minirnn.parity import Config, check_case, make_case, tolerance  # noqa: E402
from minirnn.parity.torch_ref import run_torch  # noqa: E402


@st.composite
def configs(draw):
    cell = draw(st.sampled_from(["rnn_tanh", "rnn_relu", "lstm"]))
    H = draw(st.integers(1, 16))
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), dtype=st.sampled_from(["float32", "float64"]))
def test_matches_torch(config, dtype):
    case = make_case(config, dtype)
    ref = run_torch(config, case, "cpu")
    report = check_case(config, case, ref, "cpu")
    assert report.tol == tolerance("cpu", dtype)
    assert [e.name for e in report.errors] == list(ref)
    assert report.passed, (f"{config} {dtype}: {report.worst.name} rel {report.worst.rel:.2e} "
                           f"> {report.tol:.0e}; {report.where}")


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
