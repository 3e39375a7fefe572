"""UORO, the unbiased rank-one online gradient estimate (Tallec & Ollivier, ICLR 2018).

A recurrent state s_t = F(x_t, s_{t-1}; θ) (s = h, or [h, c]: S numbers) and a loss
L = Σ_t ℓ_t(s_t) with g_t = ∂ℓ_t/∂s_t. The exact gradient is Σ_t g_t M_t, where the influence
matrix M_t = ∂s_t/∂θ (S × P) obeys RTRL's recursion

    M_t = J_t M_{t-1} + M̄_t,      J_t = ∂s_t/∂s_{t-1},   M̄_t = ∂s_t/∂θ (s_{t-1} held fixed).

UORO keeps a rank-one M_t ≈ ã_t b̃_t^T (a column of S, a row of P) instead. Per step, with
ν a vector of independent random signs (E[ν ν^T] = I, and ν and -ν equally likely):

    p   = J_t ã_{t-1}                       (a forward tangent: S numbers)
    q   = ν^T M̄_t                           (one vector-Jacobian product: P numbers)
    ρ0  = sqrt((‖b̃_{t-1}‖ + ε) / (‖p‖ + ε)),    ρ1 = sqrt((‖q‖ + ε) / (‖ν‖ + ε))
    ã_t = ρ0 p + ρ1 ν
    b̃_t = b̃_{t-1} / ρ0 + q / ρ1
    gradient estimate  += (g_t · ã_t) b̃_t

Why unbiased: ã_t b̃_t^T = p b̃_{t-1}^T + ν ν^T M̄_t + (ρ0/ρ1) p q^T + (ρ1/ρ0) ν b̃_{t-1}^T. Over ν
the two cross terms are odd (q is linear in ν, ρ1 even in it; ρ0 does not see ν), so they
average to zero, and E[ν ν^T] = I leaves E[ã_t b̃_t^T] = J_t E[ã_{t-1} b̃_{t-1}^T] + M̄_t = M_t.
ρ0 and ρ1 only balance the two factors' norms (the variance); any positive values with those
symmetries keep the estimate unbiased, the ε guards included.

Here J_t and M̄_t come dense from the cell's analytic step Jacobians (CellSpec.step_jacobians),
once per sequence, and N independent estimates run side by side on them: the same numbers an
online run would form step by step (uoro_update is that step), N at the price of one
Jacobian pass. The dense M_t also gives RTRL's exact gradient, which must equal BPTT's.

    est = uoro_gradients(minirnn.RNN(2, 3), x, d_out, n_samples=10_000)
    est.exact                 # (P,) BPTT's gradient, model.backward
    est.estimates.mean(0)     # -> est.exact as 1/sqrt(N)
    est.z_scores()            # (P,) (mean - exact) / standard error
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_float_array, check_fits, check_int, check_real, check_seed
from ._stepjac import (check_unidirectional, flatten_params, layer_jacobians, layer_params,
                       param_layout, probing, unflatten_params)


def uoro_update(a, b, p, nu, q, eps=1e-7):
    """One UORO step for a stack of estimates (rows): a (N, S) = ã_{t-1} (unused but for its
    shape), b (N, P) = b̃_{t-1}, p (N, S) = J_t ã_{t-1}, nu (N, S) the signs, q (N, P) =
    ν^T M̄_t -> ã_t (N, S), b̃_t (N, P). The equations of the module docstring."""
    a = _rows("a", a)
    N, S = a.shape
    b = _rows("b", b, N)
    for name, value in (("p", p), ("nu", nu)):
        _rows(name, value, N, S)
    _rows("q", q, N, b.shape[1])
    return _update(b, np.asarray(p), np.asarray(nu), np.asarray(q),
                   check_real("eps", eps, low=0, low_open=True))


def _rows(name, value, N=None, width=None):
    """A stack of N row vectors (N, width) of floats, as it is (no copy, no cast)."""
    arr = np.asarray(value)
    want = f"({'N' if N is None else N}, {'any' if width is None else width})"
    if arr.ndim != 2 or arr.dtype.kind != "f" or (N is not None and arr.shape[0] != N) \
            or (width is not None and arr.shape[1] != width):
        raise ValueError(f"{name}: expected a float array of shape {want}, got "
                         f"{type(value).__name__} of shape {arr.shape}, dtype {arr.dtype}")
    # the update computes arrays of its size: a zero-stride view may be far beyond memory
    check_fits(name, arr.size * arr.itemsize, f"arrays of shape {arr.shape}")
    return arr


def _update(b, p, nu, q, eps):
    """uoro_update's arithmetic on checked arrays (the time loop calls this directly)."""
    rho0 = np.sqrt((np.linalg.norm(b, axis=-1) + eps) / (np.linalg.norm(p, axis=-1) + eps))
    rho1 = np.sqrt((np.linalg.norm(q, axis=-1) + eps) / (np.linalg.norm(nu, axis=-1) + eps))
    a_new = rho0[:, None] * p + rho1[:, None] * nu
    b_new = b / rho0[:, None] + q / rho1[:, None]
    return a_new, b_new


@dataclass
class UOROEstimates:
    """N UORO estimates of one loss's gradient, and the exact gradient, as flat vectors over
    the layer's parameters (`layout`: [(name, shape)], names without the _l0 suffix)."""
    layout: list
    estimates: np.ndarray      # (N, P)
    exact: np.ndarray          # (P,) BPTT (model.backward)
    rtrl: np.ndarray           # (P,) RTRL from the same dense Jacobians: equals exact

    @property
    def n_samples(self):
        return self.estimates.shape[0]

    def _count(self, n):
        """None (every estimate) or a count in 1..n_samples."""
        if n is None:
            return None
        n = check_int("n", n)
        if n > self.n_samples:
            raise ValueError(f"n: expected at most n_samples={self.n_samples}, got {n}")
        return n

    def mean(self, n=None):
        """The mean of the first n estimates (all by default)."""
        return self.estimates[:self._count(n)].mean(axis=0)

    def stderr(self, n=None):
        """(P,) the standard error of that mean, per component (sample std / sqrt(n))."""
        e = self.estimates[:self._count(n)]
        return e.std(axis=0, ddof=1) / np.sqrt(e.shape[0])

    def z_scores(self, n=None):
        """(P,) (mean - exact) / standard error; 0 where a component has no spread and no
        error (e.g. a gradient that is exactly zero in every estimate)."""
        err, se = self.mean(n) - self.exact, self.stderr(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = err / se
        return np.where((se == 0) & (err == 0), 0.0, z)

    def relative_error(self, n=None):
        """‖mean of n estimates - exact‖ / ‖exact‖."""
        return float(np.linalg.norm(self.mean(n) - self.exact) / np.linalg.norm(self.exact))

    def rms_error(self, n):
        """The root-mean-square relative error of a mean of n estimates, over the disjoint
        groups of n that the samples make: sqrt(mean_groups ‖mean - exact‖²) / ‖exact‖. For an
        unbiased estimate it is sqrt(relative_variance() / n): it shrinks like 1/sqrt(n)."""
        groups = self.n_samples // check_int("n", n)
        if groups < 1:
            raise ValueError(f"n: expected at most n_samples={self.n_samples}, got {n}")
        means = self.estimates[:groups * n].reshape(groups, n, -1).mean(axis=1)
        d = means - self.exact
        return float(np.sqrt((d * d).sum(axis=1).mean() / (self.exact @ self.exact)))

    def hotelling(self, n=None):
        """Hotelling's T² of the mean of the first n estimates: T² = n d^T Σ̂^+ d, d = mean -
        exact, Σ̂ the estimates' sample covariance, inverted on its rank r (identical components,
        such as b_ih and b_hh of an Elman cell, make it singular) -> (T², r). For an unbiased
        estimate T² ~ χ²_r (approximately, n ≫ r): a test of all components at once that knows
        they are correlated (every estimate is one rank-one product, so they move together)."""
        e = self.estimates[:self._count(n)]
        d = e.mean(axis=0) - self.exact
        w, V = np.linalg.eigh(np.cov(e, rowvar=False))
        keep = w > w.max() * 1e-12
        y = V[:, keep].T @ d
        return float(e.shape[0] * (y * y / w[keep]).sum()), int(keep.sum())

    def z_along_exact(self, n=None):
        """The error of the mean along the exact gradient's direction, in standard errors."""
        u = self.exact / np.linalg.norm(self.exact)
        proj = self.estimates[:self._count(n)] @ u
        return float((proj.mean() - self.exact @ u) / (proj.std(ddof=1) / np.sqrt(proj.size)))

    def relative_variance(self):
        """E‖ĝ - g‖² / ‖g‖² of one estimate (the mean over the samples)."""
        d = self.estimates - self.exact
        return float((d * d).sum(axis=1).mean() / (self.exact @ self.exact))

    def cosines(self):
        """(N,) cosine similarity of each estimate with the exact gradient."""
        e = self.estimates
        return (e @ self.exact) / (np.linalg.norm(e, axis=1) * np.linalg.norm(self.exact))

    def as_dict(self, vec):
        """A flat (..., P) vector -> {"weight_ih_l0": array, ...} (the model's grad names)."""
        arr = np.asarray(vec)
        P = self.exact.shape[-1]
        if arr.ndim == 0 or arr.shape[-1] != P:
            raise ValueError(f"vec: expected an array of shape (..., {P}) (the flat parameter "
                             f"vector), got {type(vec).__name__} of shape {arr.shape}")
        return unflatten_params(arr, self.layout)


def _time_major(model, arr, name):
    # read as numbers (refused otherwise, and a copy must fit), in the model's dtype as before
    arr = as_float_array(name, arr, np.float64).astype(model.dtype, copy=False)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a batched sequence of shape (T, B, features) "
                         f"(or (B, T, features) with batch_first), got shape {arr.shape}")
    return model.to_time_major(arr)


def exact_gradient(model, x, d_out, state=None):
    """BPTT's gradient of L = Σ d_out · out (model.backward), flat in param_layout order; the
    model's gradients and record are left as they were."""
    check_unidirectional(model, single_layer=True)
    layout = param_layout(model.spec, layer_params(model))
    with probing(model):
        model.zero_grad()
        model.forward_state(x, state)
        model.backward_state(d_out, input_grad=False)
        return flatten_params({n: model.grads[f"{n}_l0"] for n, _ in layout}, layout)


def uoro_gradients(model, x, d_out, n_samples=1, state=None, seed=0, eps=1e-7, progress=False):
    """n_samples independent UORO estimates of the gradient of L = Σ_t d_out[t] · out[t]
    -> UOROEstimates (with BPTT's exact gradient and RTRL's).

    model: a one-layer unidirectional minirnn RNN/LSTM/GRU (any registry cell); x, d_out in
    its layout ((T, B, ·), or (B, T, ·) with batch_first); state: None (zeros) or the tuple
    per spec.state_names, each (1, B, size). Each of the B sequences runs its own estimate
    (fresh signs); the B estimates add up, as the loss does. seed: the signs' generator;
    eps: the ε of ρ0, ρ1; progress: a tqdm bar over the steps.
    """
    check_unidirectional(model, single_layer=True)
    n_samples = check_int("n_samples", n_samples)
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps: expected a positive number, got {eps!r}")
    spec, params = model.spec, layer_params(model)
    layout = param_layout(spec, params)
    xt = _time_major(model, x, "x")
    gt = _time_major(model, d_out, "d_out")
    T, B = xt.shape[:2]
    if gt.shape != (T, B, model.out_size):
        P = model.out_size                # the output's shape, named without allocating it
        raise ValueError(f"d_out: expected the shape of the model's output, "
                         f"{(B, T, P) if model.batch_first else (T, B, P)}, "
                         f"got {np.shape(d_out)}")
    exact = exact_gradient(model, x, d_out, state)
    with probing(model):
        from ._stepjac import StateProbe
        flat0 = StateProbe(model).initial(state, B)               # (B, S), validated
    sizes = model.state_sizes
    S, P = sum(sizes), exact.size
    cuts = np.cumsum([0] + list(sizes[:-1]))
    st = tuple(np.ascontiguousarray(flat0[:, a:a + n]) for a, n in zip(cuts, sizes))
    # the estimates, and per sequence the n_samples pairs (ã, b̃) carried through time
    check_fits("n_samples", 8 * n_samples * (P + B * (S + P)),
               f"{n_samples} estimates of {P} parameters for {B} sequences")
    rng = np.random.default_rng(check_seed("seed", seed))
    estimates = np.zeros((n_samples, P))
    rtrl = np.zeros(P)
    a_t, b_t = np.zeros((B, n_samples, S)), np.zeros((B, n_samples, P))   # per sequence
    M = np.zeros((B, S, P))
    g = np.zeros((B, S))
    from .._progress import progress as bar
    for t in bar(range(T), desc=f"UORO {spec.name}", unit="step", disable=not progress,
                 leave=False):
        J, Mbar, st = layer_jacobians(spec, xt[t], st, params, layout)
        g[:, :model.out_size] = gt[t]                               # the loss sees h (out) only
        M = J @ M + Mbar                                            # RTRL, exact
        rtrl += np.einsum("bs,bsp->p", g, M)
        for b in range(B):                                          # fresh signs per sequence
            nu = rng.integers(0, 2, size=(n_samples, S)) * 2.0 - 1.0
            a_t[b], b_t[b] = _update(b_t[b], a_t[b] @ J[b].T, nu, nu @ Mbar[b], eps)
            estimates += (a_t[b] @ g[b])[:, None] * b_t[b]
    return UOROEstimates(layout, estimates, exact, rtrl)


def normal_quantile(p):
    """Φ^{-1}(p) for 0 < p < 1, by bisection on math.erfc (no scipy needed)."""
    import math
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def chi2_quantile(dof, p):
    """The p-quantile of χ² with dof degrees of freedom (Wilson & Hilferty's cube-root normal
    approximation; at p = 0.999 it is 1.8% above the exact value at 3 dof, 0.6% at 10, 0.2%
    at 30: a test against it errs slightly on the lenient side)."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + normal_quantile(p) * np.sqrt(c)) ** 3


def cosine(a, b):
    """Cosine similarity of two flat vectors."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
