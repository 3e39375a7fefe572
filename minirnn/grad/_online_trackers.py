"""The influence trackers behind minirnn.grad.online: what each method keeps of M_t and why.

Notation (minirnn/grad/online.py): s_t = F(s_{t-1}, x_t; θ), S state numbers, N parameters;
J_t = ∂s_t/∂s_{t-1} (S × S), M̄_t = ∂s_t/∂θ at fixed s_{t-1} (S × N); RTRL's influence
M_t = J_t M_{t-1} + M̄_t, M_0 = 0; the gradient Σ_t g_t M_t with g_t = ∂L_t/∂s_t. Every
tracker has update(StepJacobians, keep) (keep: (B,) bool or None; False carries a finished
sequence's influence), grad(g_t (B, S)) -> (N,) summed over the batch, `numbers` (floats it
will hold) and allocate().

The parameters enter every cell through pre-activations: W_hh only as W_hh h_{t-1} + b_hh
(the contract's core parameters), so with Z_h = ∂s_t/∂(W_hh h_{t-1} + b_hh) = ∂s_t/∂b_hh

    ∂s_t/∂W_hh = Z_h ⊗ h_{t-1},      J_t = Z_h W_hh (on the h columns) + J_t^d,

where J_t^d, the "direct" part, is every dependence of s_t on s_{t-1} that does not pass
through W_hh: 0 for an Elman cell, diag(z_t) for the GRU (h_t = (1 - z) n + z h_{t-1}), and
the LSTM's c-paths [[0, diag(o (1 - tanh² c) f)], [0, diag(f)]] (h_t and c_t on c_{t-1}).
direct_jacobian reads Z_h off the bias Jacobian (a zero bias is supplied where the model has
none) and checks the first identity before it uses the second.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._online_step import StepJacobians, cell_step
from .uoro import uoro_update


# ---- the direct part of J_t ------------------------------------------------------------------

def direct_jacobian(jac, P, check=False):
    """J_t^d = J_t - [Z_h W_hh | 0] (B, S, S): the step's state Jacobian without the paths
    through W_hh (P: the width of h, the first P state columns). check: first confirm that W_hh
    enters as W_hh h_{t-1} + b_hh (a full-size comparison, so done where the trackers are
    built, at random points: structure(direct=True), not at every step)."""
    Zh = jac.per_param.get("bias_hh")                                   # (B, S, GH)
    if check:
        Jw = jac.per_param["weight_hh"]                                 # (B, S, GH, P)
        want = None if Zh is None else Zh[..., None] * jac.h_prev[:, None, None, :]
        err = "bias_hh is not among its parameters" if Zh is None else misfit(Jw, want)
        if err is not None:
            raise ValueError("model: e-prop and RFLO need W_hh to be a matrix entering the "
                             "cell only as W_hh h_{t-1} + b_hh (∂s/∂W_hh = ∂s/∂b_hh ⊗ h_{t-1}), "
                             "so that the paths through it can be told from the cell's own "
                             f"dynamics; this cell's W_hh Jacobian {Jw.shape[1:]} differs from "
                             f"that: {err}")
    Jd = jac.J.copy()
    Jd[:, :, :P] -= Zh @ jac.w_hh
    return Jd


def misfit(got, want):
    """None if got equals want to round-off (1000 ulps of its largest entry), else how far."""
    scale = np.abs(got).max(initial=0.0)
    err = np.abs(got - want).max(initial=0.0) if got.shape == want.shape else np.inf
    if err <= 1e3 * np.finfo(got.dtype).eps * max(scale, np.finfo(got.dtype).tiny):
        return None
    return f"{err:.3g} (of {scale:.3g})"


def random_steps(st, draws=4, rows=8, seed=20240531):
    """StepJacobians at `draws` random points for OnlineState `st`'s cell: fresh parameters
    (W_hh under st.mask, both biases present), `rows` random inputs and states each. What the
    structural checks look at: a property that holds at random points holds everywhere for
    the analytic cells (a structural zero is zero at every point; an entry nonzero somewhere is
    nonzero at a random point with probability 1; relu's gate: 1/2 per row, so 1 - 2^-32 over
    the 32 rows)."""
    rng = np.random.default_rng(seed)
    shapes = dict(st.shapes)
    shapes.update({n: shapes["weight_hh"][:1] for n in st.bias_names()})
    for _ in range(draws):
        params = {n: rng.standard_normal(s) * 0.5 for n, s in shapes.items()}
        if st.mask is not None:
            params["weight_hh"] = params["weight_hh"] * st.mask
        x = rng.standard_normal((rows, shapes["weight_ih"][1]))
        state = tuple(rng.standard_normal((rows, n)) for n in st.sizes)
        _, J, per = cell_step(st.spec, x, state, params)
        Mbar = np.concatenate([st.tracked(n, per[n].reshape(rows, st.S, st.size(n)))
                               for n in st.keys], axis=-1)
        yield StepJacobians(J, Mbar, per, state[0], params["weight_hh"])


# ---- structure: which entries can ever be nonzero --------------------------------------------

class Structure(NamedTuple):
    J: np.ndarray                 # (S, S) bool: the pattern of J_t
    J_direct: np.ndarray          # (S, S) bool: of J_t^d (None unless asked for)
    Mbar: np.ndarray              # (S, N) bool: of M̄_t (the tracked columns)


def structure(st, direct=False):
    """The structural nonzero patterns of J_t, M̄_t and (direct=True, checked) J_t^d for
    OnlineState `st`: their union over random_steps."""
    S = st.S
    pats = [np.zeros((S, S), bool), np.zeros((S, S), bool) if direct else None,
            np.zeros((S, st.N), bool)]
    for jac in random_steps(st):
        Jd = direct_jacobian(jac, st.P, check=True) if direct else None
        for k, a in enumerate((jac.J, Jd, jac.Mbar)):
            if a is not None:
                pats[k] |= np.any(a != 0, axis=0)
    return Structure(*pats)


def _spread(P, J):
    """The pattern one more step reaches: P ∪ pat(J) · P (bool (S, N), (S, S))."""
    return P | ((J.astype(np.float32) @ P.astype(np.float32)) > 0)


def snap_pattern(s, n):
    """SnAp-n's pattern P_n: P_1 = pat(M̄), P_{k+1} = P_1 ∪ pat(J) P_k. The exact M_t lies in
    P_t (its recursion adds J M_{t-1} to M̄_t), and P_k grows with k, so for t ≤ n every exact
    entry is inside P_n: SnAp-n with n ≥ T is RTRL over T steps."""
    P = s.Mbar
    for _ in range(n - 1):
        nxt = P | _spread(P, s.J)
        if np.array_equal(nxt, P):
            break
        P = nxt
    return P


def closed_pattern(P, J):
    """The smallest pattern containing P that pat(J) maps into itself."""
    while True:
        nxt = _spread(P, J)
        if np.array_equal(nxt, P):
            return P
        P = nxt


# ---- the trackers ----------------------------------------------------------------------------

class DenseRTRL:
    """RTRL: M_t = J_t M_{t-1} + M̄_t, all of it, (B, S, N). Time S²·N a step."""

    def __init__(self, st):
        self.B, self.S, self.N, self.dtype = st.B, st.S, st.N, st.dtype
        self.numbers = st.B * st.S * st.N

    def allocate(self):
        self.M = np.zeros((self.B, self.S, self.N), dtype=self.dtype)    # (B, S, N)

    def update(self, jac, keep):
        M = jac.J @ self.M + jac.Mbar
        self.M = M if keep is None else np.where(keep[:, None, None], M, self.M)

    def grad(self, g_s):
        return np.einsum("bs,bsn->n", g_s, self.M)


class PatternTracker:
    """M_t = (Π_t M_{t-1} + M̄_t) kept on a fixed pattern P (S × N bool) closed enough for the
    method, with a propagator Π_t (S × S) of the method's choosing.

    The columns (parameters) with the same row set R are one group: their block of M is
    (|R| × |C|) and its update needs only Π_t[R, R] -- so the time per step is Σ_groups
    |R|²·|C| and the memory Σ |R|·|C| = nnz(P). Groups of one shape are stacked and updated
    in one batched product (buckets)."""

    def __init__(self, st, pattern):
        self.B, self.dtype = st.B, st.dtype
        self.N = st.N
        self.buckets = _buckets(pattern)                          # [(rows (G, K), cols (G, C))]
        self.numbers = st.B * sum(r.size * c.shape[1] for r, c in self.buckets)
        self.nnz = int(pattern.sum())

    def allocate(self):
        self.M = [np.zeros((self.B,) + r.shape + (c.shape[1],), dtype=self.dtype)
                  for r, c in self.buckets]                       # each (B, G, K, C)

    def propagator(self, jac):
        raise NotImplementedError

    def update(self, jac, keep):
        prop = self.propagator(jac)                                    # (B, S, S)
        for k, (rows, cols) in enumerate(self.buckets):
            P_RR = prop[:, rows[:, :, None], rows[:, None, :]]        # (B, G, K, K)
            Mbar = jac.Mbar[:, rows[:, :, None], cols[:, None, :]]    # (B, G, K, C)
            M = P_RR @ self.M[k] + Mbar
            self.M[k] = M if keep is None else np.where(keep[:, None, None, None], M, self.M[k])

    def grad(self, g_s):
        g = np.zeros(self.N, dtype=self.dtype)
        for (rows, cols), M in zip(self.buckets, self.M):
            g[cols] += np.einsum("bgk,bgkc->gc", g_s[:, rows], M)
        return g


def _buckets(pattern):
    """Columns grouped by their row set in `pattern` (S, N) -> [(rows (G, K), cols (G, C))],
    one entry per group shape (K, C). Columns no state reaches are left out (their M is 0)."""
    uniq, inverse = np.unique(pattern.T, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1])
    by_shape = {}
    for key, cols in zip(uniq, members):
        rows = np.flatnonzero(key)
        if rows.size:
            by_shape.setdefault((rows.size, cols.size), []).append((rows, cols))
    return [(np.stack([r for r, _ in v]), np.stack([c for _, c in v])) for v in by_shape.values()]


class SnAp(PatternTracker):
    """SnAp-n (Menick et al., ICLR 2021): RTRL's recursion with Π_t = J_t, kept on P_n, the
    entries that θ reaches within n steps (snap_pattern). SnAp-1 keeps each parameter's
    immediate influence (for an Elman cell: unit k's own weights on unit k), propagated by the
    diagonal blocks of J_t. Where J_t itself never leaves that pattern (a diagonal recurrence,
    W_hh = diag), SnAp-1 drops nothing: it is RTRL."""

    def __init__(self, st, n):
        super().__init__(st, snap_pattern(structure(st), n))

    def propagator(self, jac):
        return jac.J


class EProp(PatternTracker):
    """e-prop (Bellec et al., Nat. Commun. 2020): eligibility traces propagated by each
    unit's own dynamics, Π_t = J_t^d (direct_jacobian), never through W_hh; the learning
    signal is the immediate ∂L_t/∂s_t (this symmetric form: the true, not a random, feedback).
    The LSTM's trace is the e-prop LSTM trace: ε_t = diag(f_t) ε_{t-1} + ∂c_t/∂θ on c, read
    out on h through ∂h_t/∂c_t, plus the output gate's immediate term. An Elman cell has no
    internal dynamics (J^d = 0): its trace is the immediate M̄_t.

    When W_hh = 0, J_t = J_t^d exactly (J_t - J_t^d = Z_h W_hh), so the recursions are the
    same and e-prop is RTRL, for every cell. The pattern is P_1 closed under pat(J^d)."""

    def __init__(self, st):
        s = structure(st, direct=True)
        self.P = st.P
        super().__init__(st, closed_pattern(s.Mbar, s.J_direct))

    def propagator(self, jac):
        return direct_jacobian(jac, self.P)


class RFLO(PatternTracker):
    """RFLO (Murray, eLife 2019), in this symmetric-feedback form: each state variable's
    trace decays by its own leak only, Π_t = diag(J_t^d), kept on P_1 (which a diagonal Π
    leaves in place). For the leaky RNN Murray wrote it for, h_t = (1-α) h_{t-1} + α φ(·),
    J^d = (1-α) I and this is his trace B_t = (1-α) B_{t-1} + α φ' ⊗ [h; x; 1]. decay γ:
    a fixed Π = γ I instead (the time constant 1/(1-γ) of the published baselines).

    When W_hh = 0, J_t = J_t^d; where J_t^d is diagonal -- Elman cells (0) and the GRU
    (diag z) -- Π_t = J_t and RFLO is RTRL. The LSTM's J^d is not diagonal (h_t depends on
    c_{t-1} through c_t), so its RFLO drops the c -> h path even there; e-prop keeps it."""

    def __init__(self, st, decay=None):
        super().__init__(st, structure(st, direct=decay is None).Mbar)
        self.P, self.decay, self.S = st.P, decay, st.S

    def propagator(self, jac):
        if self.decay is not None:
            return np.broadcast_to(self.decay * np.eye(self.S, dtype=self.dtype),
                                   jac.J.shape)
        d = np.einsum("bii->bi", direct_jacobian(jac, self.P))
        return d[:, :, None] * np.eye(self.S, dtype=self.dtype)


class UOROTracker:
    """UORO (minirnn.grad.uoro): M_t ≈ ã_t b̃_tᵀ per sequence, unbiased. Time S² + S·N."""

    def __init__(self, st, seed=0, eps=1e-7):
        self.B, self.S, self.N, self.dtype, self.eps = st.B, st.S, st.N, st.dtype, eps
        self.rng = np.random.default_rng(seed)
        self.numbers = st.B * (st.S + st.N)

    def allocate(self):
        self.a = np.zeros((self.B, self.S), dtype=self.dtype)          # (B, S)
        self.b = np.zeros((self.B, self.N), dtype=self.dtype)          # (B, N)

    def update(self, jac, keep):
        p = np.einsum("bij,bj->bi", jac.J, self.a)
        nu = self.rng.integers(0, 2, size=(self.B, self.S)) * 2.0 - 1.0
        q = np.einsum("bs,bsn->bn", nu, jac.Mbar)
        a, b = uoro_update(self.a, self.b, p, nu, q, self.eps)
        if keep is not None:
            a, b = np.where(keep[:, None], a, self.a), np.where(keep[:, None], b, self.b)
        self.a, self.b = a, b

    def grads(self, g_s):
        """(B, N): each sequence's own estimate (g_s[b] · ã_b) b̃_b (independent signs)."""
        return np.einsum("bs,bs->b", g_s, self.a)[:, None] * self.b

    def grad(self, g_s):
        return np.einsum("bs,bs->b", g_s, self.a) @ self.b
