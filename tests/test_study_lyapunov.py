"""Lyapunov spectra (minirnn.grad.lyapunov): answers derived by hand at fixed points of every
cell, direct simulation of a tiny perturbation in a chaotic network, the step Jacobians two
independent ways, the training-time readout through Engine.add_hook, `minirnn study
lyapunov`."""
import numpy as np
import pytest

from minirnn.cli import main
from minirnn.grad._stepjac import StateProbe, probing
from minirnn.grad.lyapunov import (LyapunovReadout, initial_frame, lyapunov_spectrum,
                                   perturbation_growth)
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent


def _zero_bias(model):
    for n in ("bias_ih_l0", "bias_hh_l0"):
        model.params[n][...] = 0.0
    return model


def _log_abs_sorted(eigenvalues):
    return np.sort(np.log(np.abs(eigenvalues)))[::-1]


def _symmetric(rng, eigenvalues):
    """A random symmetric matrix with the given eigenvalues (normal: the frame converges to
    its eigenvectors and every exponent is exact once it has)."""
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues),) * 2))
    return Q @ np.diag(eigenvalues) @ Q.T


def _spectrum_at_rest(model, T, warmup, k=None, state=None):
    x = np.zeros((T, 1, model.input_size))
    return lyapunov_spectrum(model, x, k=k, warmup=warmup, state=state).exponents[0]


# ---- fixed points: the exponents are log|eig(J*)| ---------------------------------------------
# tanh, zero input, zero bias: h = 0 stays 0 and J* = diag(1 - tanh(0)^2) W_hh = W_hh.
def test_tanh_fixed_point_non_normal_real_eigenvalues():
    rng = np.random.default_rng(0)
    lam = np.array([0.8, -0.6, 0.45, -0.3, 0.2, 0.1])       # distinct moduli, signs mixed
    V = rng.standard_normal((6, 6))
    W = V @ np.diag(lam) @ np.linalg.inv(V)                  # non-normal
    m = _zero_bias(make_recurrent("rnn_tanh", 3, 6, seed=1))
    m.params["weight_hh_l0"][...] = W
    got = _spectrum_at_rest(m, T=400, warmup=300)
    assert np.abs(got - _log_abs_sorted(np.linalg.eigvals(W))).max() <= 1e-6


def test_tanh_fixed_point_normal_with_complex_pairs():
    """A normal W with rotation blocks r(cos θ, -sin θ; sin θ, cos θ): a complex pair r e^{±iθ}
    gives two exponents log r (multiplicity), exact once the frame spans its plane."""
    rng = np.random.default_rng(1)
    blocks = [(0.9, 0.7), (0.5, 2.0)]
    D = np.zeros((5, 5))
    for j, (r, th) in enumerate(blocks):
        D[2 * j:2 * j + 2, 2 * j:2 * j + 2] = r * np.array([[np.cos(th), -np.sin(th)],
                                                            [np.sin(th), np.cos(th)]])
    D[4, 4] = -0.3
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    W = Q @ D @ Q.T
    m = _zero_bias(make_recurrent("rnn_tanh", 2, 5, seed=0))
    m.params["weight_hh_l0"][...] = W
    want = np.log([0.9, 0.9, 0.5, 0.5, 0.3])
    assert np.abs(_spectrum_at_rest(m, T=300, warmup=200) - want).max() <= 1e-6


def test_generic_random_w_sums_are_exact_and_pairs_converge_like_one_over_t():
    """A generic W (non-normal, complex pairs). Exact, whatever T: the sum of all S exponents
    is log|det W| (|det R_t| = |det J_t| every step). After warm-up the frame spans the
    leading invariant subspaces, so a real eigenvalue of distinct modulus is exact and so is
    the sum over a complex pair; a pair's members only converge like 1/T."""
    rng = np.random.default_rng(2)
    H = 6
    W = rng.standard_normal((H, H))
    W *= 0.9 / np.abs(np.linalg.eigvals(W)).max()
    m = _zero_bias(make_recurrent("rnn_tanh", 2, H, seed=0))
    m.params["weight_hh_l0"][...] = W
    eig = np.linalg.eigvals(W)
    eig = eig[np.argsort(-np.abs(eig), kind="stable")]
    want = np.log(np.abs(eig))
    got = _spectrum_at_rest(m, T=900, warmup=600)
    assert abs(got.sum() - np.log(abs(np.linalg.det(W)))) <= 1e-12
    is_pair = np.abs(eig.imag) > 1e-12
    assert is_pair.any() and (~is_pair).any()           # the case this test is about
    i = 0
    while i < H:
        span = 2 if is_pair[i] else 1
        assert abs(got[i:i + span].sum() - want[i:i + span].sum()) <= 1e-9
        if span == 1:
            assert abs(got[i] - want[i]) <= 1e-6
        i += span
    no_warmup = lyapunov_spectrum(m, np.zeros((2000, 1, 2)), seed=4).running[:, 0]
    e_short, e_long = (np.abs(no_warmup[n - 1] - want)[is_pair].max() for n in (200, 2000))
    assert e_long < e_short / 3                          # O(1/T): 10x the steps, ~10x less


def test_gru_fixed_point():
    """GRU, zero input and bias, h = 0: r = z = 1/2, n = tanh(0) = 0. h_t = (1-z) n + z h:
    ∂h_t/∂h = diag(z) + (1-z)(1-n²) r W_hn (the r, z paths carry the factors hn = 0 and
    h - n = 0) -> J* = I/2 + W_hn/4. W_hn symmetric: real eigenvalues, exact."""
    rng = np.random.default_rng(3)
    w = np.array([1.6, -1.2, 0.7, -0.3])
    m = _zero_bias(make_recurrent("gru", 2, 4, seed=0))
    m.params["weight_hh_l0"][8:12] = _symmetric(rng, w)      # the n block (r, z, n)
    want = _log_abs_sorted(0.5 + 0.25 * w)
    assert np.abs(_spectrum_at_rest(m, T=300, warmup=200) - want).max() <= 1e-6


def test_lstm_fixed_point():
    """LSTM, zero input and bias, (h, c) = 0: i = f = o = 1/2, g = 0. c_t = f c + i g gives
    ∂c/∂h = i (1-g²) W_g = W_g/2, ∂c/∂c = f = I/2; h_t = o tanh(c_t) gives ∂h = ∂c/2, so
    J* = [[W_g/4, I/4], [W_g/2, I/2]]. On an eigenvector of W_g (eigenvalue w) the block is
    [[w/4, 1/4], [w/2, 1/2]]: eigenvalues w/4 + 1/2 and 0. The first H exponents are
    log|w/4 + 1/2|; the other H are -inf (a rank-H Jacobian), so k = H."""
    rng = np.random.default_rng(4)
    w = np.array([1.5, -1.4, 0.6, -0.2])
    m = _zero_bias(make_recurrent("lstm", 2, 4, seed=0))
    m.params["weight_hh_l0"][8:12] = _symmetric(rng, w)      # the g block (i, f, g, o)
    want = _log_abs_sorted(0.25 * w + 0.5)
    assert np.abs(_spectrum_at_rest(m, T=300, warmup=200, k=4) - want).max() <= 1e-6


def test_relu_in_its_linear_region():
    """relu(0) is a corner (J* = 0), so: W_hh >= 0 elementwise, symmetric, spectral radius < 1,
    positive bias, zero input, started at its fixed point h* = (I - W)^{-1} b > 0. Every unit
    stays active, relu is the identity there and J = W_hh at every step."""
    rng = np.random.default_rng(5)
    A = rng.uniform(0.0, 1.0, (5, 5))
    W = (A + A.T) / 2
    W *= 0.8 / np.abs(np.linalg.eigvalsh(W)).max()
    m = make_recurrent("rnn_relu", 2, 5, seed=0)
    m.params["weight_hh_l0"][...] = W
    m.params["bias_ih_l0"][...] = 0.3
    m.params["bias_hh_l0"][...] = 0.2
    h_star = np.linalg.solve(np.eye(5) - W, np.full(5, 0.5))
    assert (h_star > 0).all()
    got = _spectrum_at_rest(m, T=400, warmup=300, state=(h_star[None, None],))
    assert np.abs(got - _log_abs_sorted(np.linalg.eigvalsh(W))).max() <= 1e-6


# ---- direct simulation -------------------------------------------------------------------------
def _chaotic_tanh():
    """tanh, H = 24, W_hh ~ N(0, 3²/H), weak input: chaotic (λ_1 > 0)."""
    rng = np.random.default_rng(6)
    H, I = 24, 3
    m = make_recurrent("rnn_tanh", I, H, seed=2)
    m.params["weight_hh_l0"][...] = rng.standard_normal((H, H)) * 3.0 / np.sqrt(H)
    m.params["weight_ih_l0"][...] = rng.standard_normal((H, I))
    return m, 0.2 * rng.standard_normal((700, 2, I))


def test_tiny_perturbation_grows_at_the_largest_exponent():
    """Same trajectory, same start direction: the renormalised difference of two forward runs
    ε apart is the QR method's first tangent vector up to what each step injects, O(ε) of
    nonlinearity (ε = 1e-8; tanh's second derivative is O(1)) and O(1e-16/ε) of round-off.
    Those deviations decay at the gap λ_1 - λ_2 on average, but where the finite-time leading
    direction is briefly unstable they grow first: on these trajectories the two rates differ
    by 1e-9 to 1e-5 (7e-6 the largest seen), so the tolerance is 1e-4, a hundredth of λ_1 and
    far below the margin that tells chaos from contraction. From a random direction the copy
    must first turn onto the leading direction, which the gap (> 0.05, asserted) does within
    the 150 warm-up steps (e^-7.5): the same tolerance holds."""
    m, x = _chaotic_tanh()
    spec = lyapunov_spectrum(m, x, k=3, warmup=150, seed=9)
    lam = spec.largest
    assert (lam > 0.02).all()                                  # chaotic indeed
    assert (spec.exponents[:, 0] - spec.exponents[:, 1] > 0.05).all()   # a gap
    same = perturbation_growth(m, x, eps=1e-8, warmup=150, seed=9)
    assert np.abs(same.rate - lam).max() <= 1e-4
    d = np.random.default_rng(1).standard_normal((2, 24))
    other = perturbation_growth(m, x, eps=1e-8, warmup=150, direction=d)
    assert np.abs(other.rate - lam).max() <= 1e-4
    assert same.log_growth.shape == (550, 2)
    s0 = (0.1 * np.ones((1, 2, 24)),)                           # a given start state: both
    a = lyapunov_spectrum(m, x[:300], k=1, state=s0, warmup=100, seed=4, progress=True)
    b = perturbation_growth(m, x[:300], state=s0, warmup=100, seed=4)
    assert np.abs(a.largest - b.rate).max() <= 1e-4
    np.testing.assert_allclose(same.log_growth[-1] / 550, same.rate, rtol=1e-12)


def test_perturbation_default_direction_is_the_frames_first_column():
    frame = initial_frame(3, 2, 5, 4)
    np.testing.assert_array_equal(frame[:, :, :1], initial_frame(3, 2, 5, 1))


# ---- the step Jacobians, two independent derivations --------------------------------------------
@pytest.mark.parametrize("cell", BUILTIN)
def test_state_jacobian_from_backward_equals_the_cells_analytic_one(cell):
    m = make_recurrent(cell, 3, 4, seed=1)
    rng = np.random.default_rng(0)
    x_t = rng.standard_normal((2, 3))
    state = tuple(rng.standard_normal((2, 4)) for _ in m.spec.state_names)
    params = {n: m.params.get(f"{n}_l0") for n in m.spec.param_names}
    J_analytic, _ = m.spec.step_jacobians(x_t, state, params)
    with probing(m):
        probe = StateProbe(m)
        J = probe.jacobian(x_t, np.concatenate(state, axis=1))
    np.testing.assert_allclose(J, J_analytic, rtol=1e-12, atol=1e-14)


def test_two_layer_jacobian_against_finite_differences():
    m = make_recurrent("lstm", 3, 4, num_layers=2, batch_first=True, seed=2)
    rng = np.random.default_rng(1)
    with probing(m):
        probe = StateProbe(m)
        x_t, s = rng.standard_normal((2, 3)), rng.standard_normal((2, probe.S))
        J = probe.jacobian(x_t, s)
        eps, fd = 1e-6, np.empty_like(J)
        for j in range(probe.S):
            e = np.zeros(probe.S)
            e[j] = eps
            fd[:, :, j] = (probe.step(x_t, s + e) - probe.step(x_t, s - e)) / (2 * eps)
    assert np.abs(J - fd).max() <= 1e-8
    spec = lyapunov_spectrum(m, rng.standard_normal((2, 30, 3)), k=2, progress=False)
    assert spec.exponents.shape == (2, 2)


# ---- the training-time readout ---------------------------------------------------------------
def test_readout_hook_logs_the_largest_exponent_every_n_steps():
    from minirnn.train.engine import Engine
    from minirnn.nn.models import LanguageModel
    rng = np.random.default_rng(0)
    model = LanguageModel(7, 4, 5, cell="gru", num_layers=1, seed=0)
    engine = Engine(model, lr=1e-2, backend="numpy")
    probe = rng.integers(0, 7, size=(2, 30))
    readout = LyapunovReadout(probe, k=2, warmup=5, seed=1)
    assert engine.add_hook(readout, every=2) is readout
    calls = []
    engine.add_hook(lambda e: calls.append(e.steps))             # every step
    for step in range(5):
        tok = rng.integers(0, 7, size=(3, 8))
        engine.step_lm(tok, np.roll(tok, -1, axis=1))
        if step == 3:                          # the readout after step 4 saw these weights
            direct = lyapunov_spectrum(model.rnn, model.embed(probe), k=2, warmup=5, seed=1)
    assert [h[0] for h in readout.history] == [2, 4] and calls == [1, 2, 3, 4, 5]
    assert readout.history[-1][1] == pytest.approx(direct.largest.mean(), abs=1e-12)
    engine.step_truncated(rng.integers(0, 7, size=(2, 9)), rng.integers(0, 7, size=(2, 9)), 3)
    # 3 updates in one call (steps 6 to 8): a due hook runs once, after the call
    assert [h[0] for h in readout.history] == [2, 4, 8]
    x = rng.standard_normal((2, 10, 4))                          # the layer's own layout
    assert LyapunovReadout(x)(model.rnn, step=7) == readout_value(model.rnn, x)
    with pytest.raises(TypeError, match="token ids"):
        LyapunovReadout(probe)(model.rnn)
    with pytest.raises(TypeError, match="fn"):
        engine.add_hook(3)
    with pytest.raises(ValueError, match="every"):
        engine.add_hook(print, every=0)


def readout_value(rnn, x):
    return float(lyapunov_spectrum(rnn, x, k=1).largest.mean())


# ---- edges and refusals ---------------------------------------------------------------------
def test_an_exploding_relu_state_is_reported_not_averaged():
    m = make_recurrent("rnn_relu", 2, 6, seed=0)
    m.params["weight_hh_l0"][...] = np.abs(m.params["weight_hh_l0"]) * 40.0
    x = np.random.default_rng(0).standard_normal((400, 1, 2))
    spec = lyapunov_spectrum(m, x)
    assert spec.diverged_at is not None and spec.running.shape[0] <= spec.diverged_at
    assert np.isnan(perturbation_growth(m, x).rate).all()


def test_refusals():
    m = make_recurrent("gru", 2, 3)
    x = np.zeros((5, 1, 2))
    with pytest.raises(ValueError, match="warmup"):
        lyapunov_spectrum(m, x, warmup=5)
    with pytest.raises(ValueError, match="k: expected at most"):
        lyapunov_spectrum(m, x, k=4)
    with pytest.raises(ValueError, match="x: expected shape"):
        lyapunov_spectrum(m, x[:, 0])
    with pytest.raises(ValueError, match="eps"):
        perturbation_growth(m, x, eps=2.0)
    with pytest.raises(ValueError, match="direction"):
        perturbation_growth(m, x, direction=np.ones((1, 4)))
    with pytest.raises(ValueError, match="unidirectional"):
        lyapunov_spectrum(make_recurrent("gru", 2, 3, bidirectional=True), x)
    with pytest.raises(TypeError, match="state"):
        lyapunov_spectrum(m, x, state=np.zeros((1, 1, 3)))


def test_cli_lyapunov_writes_csv_png_and_table(tmp_path, capsys):
    out = tmp_path / "l"
    rc = main(["study", "lyapunov", "--cells", "rnn_tanh,gru", "--hidden", "3", "--T", "40",
               "--warmup", "10", "--weight-scale", "1,4", "--fixed-T", "50",
               "--readout-steps", "4", "--readout-every", "2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "QR method / direct simulation" in text and "readout gru" in text
    rows = (out / "lyapunov.csv").read_text().splitlines()
    assert rows[0] == "part,cell,weight_scale,index,value"
    assert sum(r.startswith("spectrum,gru,4,") for r in rows) == 3
    assert [r.split(",")[3] for r in rows if r.startswith("readout,gru")] == ["0", "2", "4"]
    assert main(["study", "lyapunov", "--warmup", "50", "--T", "50", "--out", str(out)]) == 2
    assert main(["study", "lyapunov", "--weight-scale", "0", "--out", str(out)]) == 2
