"""The fixed parity matrix with torch on CUDA (TF32 off); skipped cleanly without CUDA."""
import pytest

torch = pytest.importorskip("torch")

from minirnn.parity import check_case, make_case, matrix, tolerance  # noqa: E402
from minirnn.parity.configs import DTYPES  # noqa: E402

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", matrix("all"), ids=lambda c: c.name)
def test_matrix_on_cuda(config, dtype):
    from minirnn.parity.torch_ref import run_torch
    case = make_case(config, dtype)
    ref = run_torch(config, case, "cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    report = check_case(config, case, ref, "cuda")
    assert report.tol == tolerance("cuda", dtype)
    assert report.passed, (f"{config.name} {dtype}: {report.worst.name} rel "
                           f"{report.worst.rel:.2e} > {report.tol:.0e}; {report.where}")
