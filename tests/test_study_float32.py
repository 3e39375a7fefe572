"""float32 against float64 (minirnn.studies.precision): the errors are a float32 rounding's size
where the dynamics contract, they grow with T where they are chaotic (λ_1 > 0, checked with
the Lyapunov spectrum), every backend is measured against the same float64 reference;
`minirnn study float32`."""
import numpy as np
import pytest

from minirnn.cli import main
from minirnn.studies.precision import (QUANTITIES, float32_error_growth, relative_error,
                                    torch_available)
from minirnn.cells import BUILTIN

U32 = 2.0 ** -24                 # float32 unit roundoff


@pytest.mark.parametrize("cell", BUILTIN)
def test_contracting_networks_lose_a_few_float32_roundings(cell):
    """torch's init contracts (λ_1 < 0, see the Lyapunov study): no error is amplified, so
    every relative error is a modest multiple of 2^-24, and never exactly 0 (the runs really
    are float32)."""
    backends = ("numpy", "numba") + (("torch",) if torch_available() else ())
    rows = float32_error_growth(cell, steps=(1, 20), backends=backends, hidden=6,
                                input_size=3, batch=2, seed=1)
    assert len(rows) == 2 * len(backends) * len(QUANTITIES)
    assert {(r.backend, r.T, r.quantity) for r in rows} == {
        (b, T, q) for b in backends for T in (1, 20) for q in QUANTITIES}
    for r in rows:
        assert 0 < r.rel_error <= 200 * U32, r


def test_chaotic_network_amplifies_the_rounding():
    """tanh with W_hh x 4 driven by input is chaotic here (λ_1 > 0): a float32 rounding grows
    like exp(λ_1 t) until the two runs have nothing in common, so the output error at T=300
    is far above the rounding it started from."""
    from minirnn.studies.flow import scale_recurrent
    from minirnn.grad.lyapunov import lyapunov_spectrum
    from minirnn.nn import make_recurrent
    m = scale_recurrent(make_recurrent("rnn_tanh", 4, 16, seed=0), 4.0)
    x = np.random.default_rng(0).standard_normal((600, 1, 4))
    assert lyapunov_spectrum(m, x, k=1, warmup=100).largest[0] > 0.05
    rows = float32_error_growth("rnn_tanh", steps=(1, 300), backends=("numpy",), hidden=16,
                                input_size=4, batch=1, weight_scale=4.0, seed=0)
    out = {r.T: r.rel_error for r in rows if r.quantity == "out"}
    assert out[1] < 100 * U32 and out[300] > 1e-2


def test_defaults_measure_every_installed_backend():
    rows = float32_error_growth("rnn_relu", steps=(2,))          # B=4, H=32, I=8, W_hh x 1
    want = {"numpy", "numba"} | ({"torch"} if torch_available() else set())
    assert {r.backend for r in rows} == want and len(rows) == 3 * len(want)
    assert all(0 < r.rel_error <= 200 * U32 for r in rows)


def test_relative_error_and_refusals():
    a = np.array([1.0, 2.0, 2.0])
    assert relative_error(a + [0, 0, 0.3], a) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="backends"):
        float32_error_growth("gru", steps=(1,), backends=("cuda",))
    with pytest.raises(ValueError, match="steps"):
        float32_error_growth("gru", steps=(0,))
    with pytest.raises(ValueError, match="weight_scale"):
        float32_error_growth("gru", steps=(1,), weight_scale=0)
    with pytest.raises(ValueError, match="cell"):
        float32_error_growth("elman", steps=(1,))


def test_torch_is_measured_against_the_same_reference():
    pytest.importorskip("torch")
    rows = float32_error_growth("lstm", steps=(5,), backends=("numpy", "torch"), hidden=4,
                                input_size=3, batch=2, progress=True)
    err = {(r.backend, r.quantity): r.rel_error for r in rows}
    for q in QUANTITIES:                        # two float32 runs of one problem: same size
        assert err["torch", q] < 30 * max(err["numpy", q], U32)


def test_cli_float32_writes_csv_png_and_table(tmp_path, capsys):
    out = tmp_path / "f"
    rc = main(["study", "float32", "--cells", "gru", "--T", "1,4", "--hidden", "3",
               "--batch", "2", "--backends", "numpy,numba", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "float32 vs float64" in text and "gru" in text
    rows = (out / "float32.csv").read_text().splitlines()
    assert rows[0] == "cell,backend,T,quantity,rel_error" and len(rows) == 1 + 2 * 2 * 3
    assert main(["study", "float32", "--T", "0", "--out", str(out)]) == 2
    assert main(["study", "float32", "--backends", "cuda", "--out", str(out)]) == 2
    assert main(["study", "float32", "--hidden", "0", "--out", str(out)]) == 2


def test_cli_without_torch_says_so_and_goes_on(tmp_path, capsys, monkeypatch):
    import minirnn.studies.precision as precision
    monkeypatch.setattr(precision, "torch_available", lambda: False)
    out = tmp_path / "f"
    assert main(["study", "float32", "--cells", "rnn_tanh", "--T", "2", "--hidden", "2",
                 "--batch", "1", "--out", str(out)]) == 0
    assert "torch is not installed: the torch backend is skipped" in capsys.readouterr().out
    assert ",torch," not in (out / "float32.csv").read_text()
    assert main(["study", "float32", "--backends", "torch", "--out", str(out)]) == 2
