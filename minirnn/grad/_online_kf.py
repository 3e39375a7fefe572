"""KF-RTRL (Mujika, Meier & Steger, NeurIPS 2018), for every cell whose weights each act on
one vector per step -- gated cells included.

Each weight W_p (K_p × m_p; a bias is K_p × 1) meets one vector v_p per step -- x_t for W_ih,
h_{t-1} for W_hh, the LSTM's r_t for W_hr, 1 for a bias -- inside a pre-activation W_p v_p,
so its immediate influence is a Kronecker (outer) product

    ∂s_t/∂W_p[k, j] = Z_p[:, k] v_p[j],      M̄_{t,p} = Z_p ⊗ v_p,   Z_p = ∂s_t/∂(W_p v_p).

KF-RTRL keeps M_{t,p} ≈ A_p u_pᵀ (A_p: S × K_p, u_p: m_p numbers) and, with two random
signs c1, c2 (independent, ±1, fresh each step and sequence, shared by all weights) and two
positive balances ρ1, ρ2 that do not depend on them,

    u_p <- c1 ρ1 u_p + c2 ρ2 v_p,         A_p <- (c1/ρ1) J_t A_p + (c2/ρ2) Z_p.

The new product is J_t A_p u_pᵀ + Z_p v_pᵀ + c1 c2 ((ρ2/ρ1) J_t A_p v_pᵀ + (ρ1/ρ2) Z_p u_pᵀ):
c1² = c2² = 1 and E[c1 c2] = 0, so E[new] = J_t E[old] + M̄_{t,p}, RTRL's recursion, and by
induction from A = 0 the estimate is unbiased at every step. ρ1 = sqrt(‖J A‖/‖u‖),
ρ2 = sqrt(‖Z‖/‖v‖) (norms over all weights, ε-guarded as UORO's) only balance the factors.

Why this is defined for a gated cell. Mujika et al. state KF-RTRL for cells with one weight
matrix on [h_{t-1}; x_t; 1] and J_t = D_t W; the sketched-RTRL code refuses gated cells for
that reason. But the argument above uses nothing about J_t (J_t A_p is computed exactly) and
nothing about the weights sharing Z: only that each M̄_{t,p} is one Kronecker product. That
holds for the LSTM (Z = ∂[h; c]/∂z over both state parts, the four gates stacked in K) and
for the GRU, whose W_ih and W_hh meet different pre-activations (the n gate's r multiplies
only the hidden side): they are two blocks with their own A_p. One sign pair for all blocks
makes the whole a single Kronecker product A ⊗ u over the block-diagonal embedding of the
weights (A = [A_1 ... A_P], u = [u_1 ... u_P]; only the diagonal blocks are parameters).
For an Elman cell every Z_p is the same diag(φ'), and the estimates are Mujika's own (a test
runs their single-A form side by side). A weight whose M̄_p is not a Kronecker product (one
that multiplies two different vectors in a step) has no KF-RTRL: kronecker_factors refuses.

Gauge: Z_p v_pᵀ does not change under Z -> αZ, v -> v/α, but the variance does; each Z_p is
taken with unit Frobenius norm and its largest entry positive (for the Elman cell: the same
positive multiple of Mujika's D for every block, which ρ1/ρ2 absorb).

Memory S·ΣK + Σm per sequence; time S²·ΣK a step for J_t A (Elman ΣK = 4H: four blocks
of diag(φ'), kept apart so that any cell fits the same code).
"""
from __future__ import annotations

import numpy as np

from ._online_trackers import misfit, random_steps


def kronecker_factors(Jp, name="weight", check=True):
    """Jp (B, R, m) -> z (B, R), v (B, m) with Jp[b] = z[b] v[b]ᵀ, ‖z[b]‖ = 1 and z[b]'s
    largest entry positive (z = v = 0 where Jp[b] = 0). check: ValueError if Jp[b] is not of
    rank one (a full-size comparison: KFRTRL does it at random points when it is built)."""
    B = Jp.shape[0]
    rows = np.arange(B)
    col = np.argmax(np.einsum("brm,brm->bm", Jp, Jp), axis=1)        # the largest column
    z = Jp[rows, :, col]                                               # (B, R)
    norm = np.linalg.norm(z, axis=1)
    sign = np.sign(z[rows, np.argmax(np.abs(z), axis=1)])
    z = z * (np.where(sign == 0, 1.0, sign) / np.where(norm > 0, norm, 1.0))[:, None]
    v = np.einsum("br,brm->bm", z, Jp)                                 # (B, m)
    err = misfit(Jp, z[:, :, None] * v[:, None, :]) if check else None
    if err is not None:
        raise ValueError(f"model: KF-RTRL is not defined for this cell: ∂s_t/∂{name} is not "
                         f"a Kronecker product Z ⊗ v (the weight does not act on one vector "
                         f"per step; rank-one residual {err})")
    return z, v


class KFRTRL:
    """The tracker: A (B, S, ΣK), u (B, Σm); blocks in the layout's parameter order."""

    def __init__(self, st, seed=0, eps=1e-7):
        self.B, self.S, self.dtype, self.eps = st.B, st.S, st.dtype, eps
        self.columns, self.tracked_all = st.columns, st.N == st.N0
        self.rng = np.random.default_rng(seed)
        self.blocks = []                               # (name, K, m, A offset, u offset)
        ka = ku = 0
        for name, shape in st.shapes.items():
            K, m = shape[0], int(np.prod(shape[1:]))
            self.blocks.append((name, K, m, ka, ku))
            ka, ku = ka + K, ku + m
        self.KA, self.Ku = ka, ku
        self.numbers = st.B * (st.S * ka + ku)
        for jac in random_steps(st):          # is every weight's M̄ one Kronecker product?
            self._factors(jac.per_param, rows=jac.J.shape[0], check=True)

    def allocate(self):
        self.A = np.zeros((self.B, self.S, self.KA), dtype=self.dtype)   # (B, S, ΣK)
        self.u = np.zeros((self.B, self.Ku), dtype=self.dtype)           # (B, Σm)

    def _factors(self, per_param, rows=None, check=False):
        """Z (B, S, ΣK) and v (B, Σm) of this step's M̄, every weight's block side by side."""
        B, S = rows or self.B, self.S
        Z = np.empty((B, S, self.KA), dtype=self.dtype)
        v = np.empty((B, self.Ku), dtype=self.dtype)
        for name, K, m, ka, ku in self.blocks:
            Jp = per_param[name].reshape(B, S, K, m).reshape(B, S * K, m)
            z, v[:, ku:ku + m] = kronecker_factors(Jp, name, check)
            Z[:, :, ka:ka + K] = z.reshape(B, S, K)
        return Z, v

    def update(self, jac, keep):
        Z, v = self._factors(jac.per_param)
        JA = jac.J @ self.A                                              # (B, S, ΣK)
        c1, c2 = (self.rng.integers(0, 2, size=(2, self.B)) * 2.0 - 1.0)
        eps = self.eps
        norm = lambda a: np.sqrt((a * a).sum(axis=tuple(range(1, a.ndim))))  # noqa: E731
        rho1 = np.sqrt((norm(JA) + eps) / (norm(self.u) + eps))
        rho2 = np.sqrt((norm(Z) + eps) / (norm(v) + eps))
        u = (c1 * rho1)[:, None] * self.u + (c2 * rho2)[:, None] * v
        A = (c1 / rho1)[:, None, None] * JA + (c2 / rho2)[:, None, None] * Z
        if keep is not None:
            u, A = np.where(keep[:, None], u, self.u), np.where(keep[:, None, None], A, self.A)
        self.u, self.A = u, A

    def grads(self, g_s):
        """(B, N): each sequence's own estimate g_s[b] · A_b ⊗ u_b (independent signs)."""
        gA = np.einsum("bs,bsk->bk", g_s, self.A)                        # (B, ΣK)
        flat = np.concatenate([np.einsum("bk,bm->bkm", gA[:, ka:ka + K], self.u[:, ku:ku + m])
                               .reshape(self.B, K * m) for _, K, m, ka, ku in self.blocks],
                              axis=1)                                    # (B, N0)
        return flat if self.tracked_all else flat[:, self.columns]

    def grad(self, g_s):
        return self.grads(g_s).sum(axis=0)
