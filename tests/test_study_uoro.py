"""UORO (minirnn.grad.uoro): RTRL from the same Jacobians equals BPTT, the estimate is
unbiased (its N-sample mean within the standard errors of the exact gradient) and its error
shrinks like 1/sqrt(N); a biased variant is caught by the same test; `minirnn study uoro`."""
import numpy as np
import pytest

from minirnn.cli import main
from minirnn.grad._stepjac import layer_jacobians, layer_params, param_layout
from minirnn.grad.uoro import (chi2_quantile, cosine, exact_gradient, normal_quantile,
                               uoro_gradients, uoro_update)
from minirnn.cells import BUILTIN
from minirnn.nn import make_recurrent


def _problem(cell, T=5, B=1, I=2, H=3, seed=0, **kw):
    model = make_recurrent(cell, I, H, seed=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((T, B, I))
    d_out = rng.standard_normal((T, B, model.out_size))
    if kw.get("batch_first"):
        x, d_out = x.transpose(1, 0, 2), d_out.transpose(1, 0, 2)
    return model, x, d_out


@pytest.mark.parametrize("cell", BUILTIN)
def test_rtrl_from_the_step_jacobians_equals_bptt(cell):
    """M_t = J_t M_{t-1} + M̄_t summed against the loss is BPTT's gradient, to round-off:
    the Jacobians UORO multiplies are the right ones."""
    for kw in ({}, {"bias": False, "batch_first": True}):
        model, x, d_out = _problem(cell, T=6, B=2, seed=3, **kw)
        rng = np.random.default_rng(7)
        state = tuple(rng.standard_normal((1, 2, 3)) for _ in model.spec.state_names)
        est = uoro_gradients(model, x, d_out, state=state)
        assert np.abs(est.rtrl - est.exact).max() <= 1e-12 * np.abs(est.exact).max()
        assert est.estimates.shape == (1, est.exact.size)


def test_lstm_projection_and_the_result_helpers():
    model, x, d_out = _problem("lstm", T=4, H=4, proj_size=2)
    est = uoro_gradients(model, x, d_out, n_samples=20, seed=1, eps=1e-6, progress=False)
    assert np.abs(est.rtrl - est.exact).max() <= 1e-12 * np.abs(est.exact).max()
    grads = est.as_dict(est.exact)                     # the model's own gradient names
    model.zero_grad()
    model.forward(x)
    model.backward(d_out)
    for name, g in grads.items():
        np.testing.assert_allclose(g, model.grads[name], rtol=1e-12, atol=1e-14)
    assert est.n_samples == 20 and est.cosines().shape == (20,)
    assert np.all(np.abs(est.cosines()) <= 1 + 1e-12)


def test_the_statistics_of_the_first_n_estimates():
    model, x, d_out = _problem("rnn_relu", T=4, seed=4)
    state = (np.full((1, 1, 3), 0.1),)
    est = uoro_gradients(model, x, d_out, n_samples=3000, state=state, seed=2, progress=True)
    np.testing.assert_allclose(est.exact, exact_gradient(model, x, d_out, state), rtol=1e-12)
    e = est.estimates[:100]
    np.testing.assert_allclose(est.mean(100), e.mean(0), rtol=1e-12)
    np.testing.assert_allclose(est.stderr(100), e.std(0, ddof=1) / 10, rtol=1e-12)
    z = est.z_scores(100)
    ok = est.stderr(100) > 0
    np.testing.assert_allclose(z[ok], (e.mean(0) - est.exact)[ok] / est.stderr(100)[ok])
    d = est.mean(100) - est.exact
    assert est.relative_error(100) == pytest.approx(np.linalg.norm(d) / np.linalg.norm(est.exact))
    t2, rank = est.hotelling(2000)
    assert 0 < rank <= est.exact.size and t2 >= 0
    u = est.exact / np.linalg.norm(est.exact)
    p = e @ u
    assert est.z_along_exact(100) == pytest.approx((p.mean() - est.exact @ u) * 10 / p.std(ddof=1))
    assert est.relative_variance() == pytest.approx(
        ((est.estimates - est.exact) ** 2).sum(1).mean() / (est.exact @ est.exact))


def test_uoro_update_is_the_rank_one_identity():
    """One step, by hand: ã b̃^T = p b^T + ν q^T + (ρ0/ρ1) p q^T + (ρ1/ρ0) ν b^T, with
    ρ0 = sqrt((|b|+ε)/(|p|+ε)), ρ1 = sqrt((|q|+ε)/(|ν|+ε))."""
    rng = np.random.default_rng(0)
    a, b, p = rng.standard_normal((3, 4)), rng.standard_normal((3, 7)), rng.standard_normal((3, 4))
    nu, q = np.sign(rng.standard_normal((3, 4))), rng.standard_normal((3, 7))
    eps = 1e-3
    a2, b2 = uoro_update(a, b, p, nu, q, eps)
    for n in range(3):
        r0 = np.sqrt((np.linalg.norm(b[n]) + eps) / (np.linalg.norm(p[n]) + eps))
        r1 = np.sqrt((np.linalg.norm(q[n]) + eps) / (np.linalg.norm(nu[n]) + eps))
        want = (np.outer(p[n], b[n]) + np.outer(nu[n], q[n]) + r0 / r1 * np.outer(p[n], q[n])
                + r1 / r0 * np.outer(nu[n], b[n]))
        np.testing.assert_allclose(np.outer(a2[n], b2[n]), want, rtol=1e-12, atol=1e-12)
    a3, b3 = uoro_update(a, b, p, nu, q)               # the default ε
    assert a3.shape == a.shape and b3.shape == b.shape


# The unbiasedness criterion. Per component, z = (mean - exact) / SE with SE = sd / sqrt(N).
# Asking "|z| <= 3 for every component" of an unbiased estimate fails by chance once in
# 1 - 0.9973^P runs: about 20% for the LSTM's P = 84 parameters. So three tests, each with a
# false-alarm rate of about 0.1-0.3% for an unbiased estimate, all with fixed seeds:
#   * Hotelling's T² = N d^T Σ̂^+ d over all components at once (Σ̂ the estimates' covariance,
#     inverted on its rank r: every estimate is a rank-one product, so the components are
#     strongly correlated and a plain sum of z² would be misjudged) against χ²_r's 99.9%
#     quantile;
#   * the "within 3 standard errors", applied to one number: the error of the mean
#     along the exact gradient's direction;
#   * every component within the Bonferroni bound Φ^{-1}(1 - 0.0005/P) (family-wise 0.1%).
# The planted-bias test below shows the same criteria failing a biased estimator.
def _assert_unbiased(est, n=None):
    t2, rank = est.hotelling(n)
    assert t2 <= chi2_quantile(rank, 0.999), (t2, rank)
    assert abs(est.z_along_exact(n)) <= 3.0
    P = est.exact.size
    assert np.abs(est.z_scores(n)).max() <= normal_quantile(1 - 0.0005 / P)


@pytest.mark.parametrize("cell", BUILTIN)
def test_mean_of_10k_estimates_is_within_standard_errors_of_the_exact_gradient(cell):
    model, x, d_out = _problem(cell, T=5, H=3, seed=1)
    est = uoro_gradients(model, x, d_out, n_samples=10_000, seed=11)
    _assert_unbiased(est)
    assert est.relative_error() < 0.2 * est.relative_error(10)   # far closer than a few


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_error_of_the_mean_shrinks_like_one_over_sqrt_n(cell):
    model, x, d_out = _problem(cell, T=5, H=3, seed=2)
    est = uoro_gradients(model, x, d_out, n_samples=40_000, seed=5)
    ns = np.array([1, 10, 100, 1000])
    rms = np.array([est.rms_error(n) for n in ns])     # over 40000/n disjoint groups
    slope = np.polyfit(np.log(ns), np.log(rms), 1)[0]
    assert -0.6 <= slope <= -0.4, slope
    with pytest.raises(ValueError, match="n: expected at most"):
        est.rms_error(50_000)


def test_a_biased_estimator_fails_the_same_criterion():
    """UORO without its memory (ã_t = ρ1 ν, p = 0) estimates Σ_t g_t M̄_t, truncated BPTT with
    k = 1: unbiased for that, clearly biased for the full gradient."""
    model, x, d_out = _problem("rnn_tanh", T=5, H=3, seed=1)
    spec, params = model.spec, layer_params(model)
    layout = param_layout(spec, params)
    N, rng = 10_000, np.random.default_rng(3)
    st = (np.zeros((1, 3)),)
    P = sum(int(np.prod(shape)) for _, shape in layout)
    b, est = np.zeros((N, P)), np.zeros((N, P))
    for t in range(x.shape[0]):
        J, Mbar, st = layer_jacobians(spec, x[t], st, params, layout)
        nu = rng.integers(0, 2, size=(N, 3)) * 2.0 - 1.0
        a, b = uoro_update(np.zeros((N, 3)), np.zeros_like(b), np.zeros((N, 3)), nu,
                           nu @ Mbar[0])
        est += (a @ d_out[t, 0])[:, None] * b
    full = uoro_gradients(model, x, d_out, n_samples=2)
    from minirnn.grad.truncated import truncated_gradient
    k1 = truncated_gradient(model, x, d_out, 1)
    k1 = np.concatenate([np.ravel(k1[f"{n}_l0"]) for n, _ in layout])
    biased = type(full)(layout, est, full.exact, full.rtrl)
    t2, rank = biased.hotelling()
    assert t2 > 100 * chi2_quantile(rank, 0.999)              # caught
    assert abs(biased.z_along_exact()) > 3 or np.abs(biased.z_scores()).max() > 5
    _assert_unbiased(type(full)(layout, est, k1, full.rtrl))   # ... it estimates tBPTT(1)
    assert cosine(k1, full.exact) < 0.999


def test_refuses_what_it_cannot_estimate():
    model, x, d_out = _problem("gru")
    with pytest.raises(ValueError, match="n_samples"):
        uoro_gradients(model, x, d_out, n_samples=0)
    with pytest.raises(ValueError, match="eps"):
        uoro_gradients(model, x, d_out, eps=-1.0)
    with pytest.raises(ValueError, match="d_out"):
        uoro_gradients(model, x, d_out[:, :, :2])
    with pytest.raises(ValueError, match="x: expected a batched"):
        uoro_gradients(model, x[:, 0], d_out)
    with pytest.raises(ValueError, match="num_layers=1"):
        uoro_gradients(make_recurrent("gru", 2, 3, num_layers=2), x, d_out)
    with pytest.raises(ValueError, match="unidirectional"):
        exact_gradient(make_recurrent("gru", 2, 3, bidirectional=True), x, d_out)
    with pytest.raises(TypeError, match="model"):
        uoro_gradients(object(), x, d_out)


def test_quantile_helpers_match_known_values():
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
    # χ² tables: 99.9% quantiles 16.266 (3 dof), 29.588 (10), 59.703 (30), 149.449 (100)
    for dof, q, rel in ((3, 16.266, 0.02), (10, 29.588, 0.007), (30, 59.703, 0.002),
                        (100, 149.449, 0.001)):
        assert chi2_quantile(dof, 0.999) == pytest.approx(q, rel=rel)


def test_cli_uoro_writes_csv_png_and_table(tmp_path, capsys):
    out = tmp_path / "u"
    rc = main(["study", "uoro", "--cells", "rnn_tanh,lstm", "--T", "3", "--hidden", "2",
               "--samples", "400", "--variance-T", "2,3", "--variance-samples", "50",
               "--truncation", "1,2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "UORO unbiasedness" in text and "tBPTT k=2" in text
    csv = (out / "uoro.csv").read_text().splitlines()
    assert csv[0] == "cell,part,T,n,method,value"
    assert any(r.startswith("lstm,cosine,3,1,tbptt_k2,") for r in csv)
    if (out / "uoro.png").exists():
        assert (out / "uoro.png").stat().st_size > 10_000
    assert main(["study", "uoro", "--cells", "elman", "--out", str(out)]) == 2
    assert main(["study", "uoro", "--truncation", "0", "--out", str(out)]) == 2
    assert main(["study", "uoro", "--samples", "5", "--out", str(out)]) == 2
