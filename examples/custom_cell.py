"""Bring your own cell: the minimal gated unit (MGU; Zhou, Wu, Zhang & Zhou 2016), a cell minirnn
does not ship, written in this one file against minirnn's public cell contract, with its torch
autograd twin, and run through every tool. No file under minirnn/ knows it.

    python examples/custom_cell.py            # every check, a table of what each found
    python examples/custom_cell.py --quick    # smaller sizes (the test suite runs this)

The cell (gate order f, n; W_ih = [W_f; W_n] (2H, I), W_hh = [U_f; U_n] (2H, H), biases 2H):
    f_t = σ(x_t W_f^T + b_if + h_{t-1} U_f^T + b_hf)
    r_t = f_t ⊙ h_{t-1}
    n_t = tanh(x_t W_n^T + b_in + r_t U_n^T + b_hn)
    h_t = (1 - f_t) ⊙ h_{t-1} + f_t ⊙ n_t
Backward (dh = dL/dh_t):
    dn = dh f            da_n = dn (1 - n²)        dr = da_n U_n
    df = dh (n - h_{t-1}) + dr h_{t-1}             da_f = df f (1 - f)
    dh_{t-1} = dh (1 - f) + dr f + da_f U_f        dx = [da_f, da_n] W_ih
    dW_ih = [da_f, da_n]^T x_t    dU_f = da_f^T h_{t-1}    dU_n = da_n^T r_t    db = Σ_b [da_f, da_n]
Tangent (a dot: the derivative along ẋ, ḣ_{t-1}, Ẇ, ḃ):
    ḟ = f (1 - f) (ẋ W_f^T + x Ẇ_f^T + ḣ U_f^T + h U̇_f^T + ḃ_if + ḃ_hf)      ṙ = ḟ h + f ḣ
    ṅ = (1 - n²) (ẋ W_n^T + x Ẇ_n^T + ṙ U_n^T + r U̇_n^T + ḃ_in + ḃ_hn)
    ḣ_t = (1 - f) ḣ + ḟ (n - h_{t-1}) + f ṅ
The R-operator (the tangent of the backward, for Hessian-vector products) differentiates each
backward line by the product rule: see step_backward_jvp.
"""
from __future__ import annotations

import argparse
import sys
from typing import NamedTuple

import numpy as np

import minirnn


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))          # exp-free: no overflow for any z


class MGUStep(NamedTuple):
    x_t: np.ndarray               # (B, I)
    h_prev: np.ndarray            # (B, H)
    gates: np.ndarray             # (B, 2H) f, n: what the stepper and the explorer show
    r: np.ndarray                 # (B, H) f ⊙ h_{t-1}


class MGUTangent(NamedTuple):
    x_dot: np.ndarray             # (B, I)
    h_prev_dot: np.ndarray        # (B, H)
    gates_dot: np.ndarray         # (B, 2H) ḟ, ṅ
    r_dot: np.ndarray             # (B, H)


def _split(a):
    """(..., 2H) -> the f and n halves of a gate array."""
    H = a.shape[-1] // 2
    return a[..., :H], a[..., H:]


def _rows(w):
    """W_hh (2H, H) -> U_f, U_n (H, H)."""
    H = w.shape[0] // 2
    return w[:H], w[H:]


class MGU(minirnn.CellSpec):
    name = "mgu"
    gate_names = ("f", "n")                        # W_ih's two row blocks, in this order
    sigmoid_gates = ("f",)
    summary = "minimal gated unit: one forget gate f, h_t = (1 - f) h_{t-1} + f n_t"

    # ---- the required parts: one step forward, one step backward --------------------------
    def step_forward(self, x_t, state, p):
        (h,) = state
        zi = x_t @ p["weight_ih"].T                    # (B, 2H) the input side of f and n
        if p.get("bias_ih") is not None:               # both biases sit outside any product
            zi = zi + p["bias_ih"] + p["bias_hh"]
        zi_f, zi_n = _split(zi)
        U_f, U_n = _rows(p["weight_hh"])
        f = sigmoid(zi_f + h @ U_f.T)
        r = f * h
        n = np.tanh(zi_n + r @ U_n.T)
        h_t = (1.0 - f) * h + f * n
        return (h_t,), MGUStep(x_t, h, np.concatenate([f, n], axis=-1), r)

    def step_backward(self, c, d_state, p, per_sample=False):
        (dh,) = d_state
        f, n = _split(c.gates)
        U_f, U_n = _rows(p["weight_hh"])
        da_n = dh * f * (1.0 - n * n)
        dr = da_n @ U_n
        da_f = (dh * (n - c.h_prev) + dr * c.h_prev) * f * (1.0 - f)
        da = np.concatenate([da_f, da_n], axis=-1)                     # (B, 2H)
        dh_prev = dh * (1.0 - f) + dr * f + da_f @ U_f
        return da @ p["weight_ih"], (dh_prev,), self._grads(da, c, p, per_sample)

    def _grads(self, da, c, p, per_sample):
        da_f, da_n = _split(da)
        if per_sample:                                                 # (B, *shape) each
            outer = lambda a, b: a[:, :, None] * b[:, None, :]          # noqa: E731
            g = {"weight_ih": outer(da, c.x_t),
                 "weight_hh": np.concatenate([outer(da_f, c.h_prev), outer(da_n, c.r)], axis=1),
                 "bias_ih": da.copy(), "bias_hh": da.copy()}
        else:
            g = {"weight_ih": da.T @ c.x_t,
                 "weight_hh": np.concatenate([da_f.T @ c.h_prev, da_n.T @ c.r], axis=0),
                 "bias_ih": da.sum(axis=0), "bias_hh": da.sum(axis=0)}
        if p.get("bias_ih") is None:
            g["bias_ih"] = g["bias_hh"] = None
        return g

    # ---- optional: forward mode, and the tangent of the backward (second order) -----------
    def step_jvp(self, c, x_dot, state_dot, p, p_dot):
        (h_dot,) = state_dot
        f, n = _split(c.gates)
        zi_dot = x_dot @ p["weight_ih"].T + c.x_t @ p_dot["weight_ih"].T
        if p.get("bias_ih") is not None:
            zi_dot = zi_dot + p_dot["bias_ih"] + p_dot["bias_hh"]
        zi_f_dot, zi_n_dot = _split(zi_dot)
        U_f, U_n = _rows(p["weight_hh"])
        dU_f, dU_n = _rows(p_dot["weight_hh"])
        f_dot = f * (1.0 - f) * (zi_f_dot + h_dot @ U_f.T + c.h_prev @ dU_f.T)
        r_dot = f_dot * c.h_prev + f * h_dot
        n_dot = (1.0 - n * n) * (zi_n_dot + r_dot @ U_n.T + c.r @ dU_n.T)
        h_t_dot = (1.0 - f) * h_dot + f_dot * (n - c.h_prev) + f * n_dot
        return (h_t_dot,), MGUTangent(x_dot, h_dot, np.concatenate([f_dot, n_dot], -1), r_dot)

    def step_backward_jvp(self, c, tc, d_state, d_state_dot, p, p_dot):
        (dh,), (dh_R,) = d_state, d_state_dot                          # R{dh}
        f, n = _split(c.gates)
        f_d, n_d = _split(tc.gates_dot)
        U_f, U_n = _rows(p["weight_hh"])
        dU_f, dU_n = _rows(p_dot["weight_hh"])
        dn, dn_R = dh * f, dh_R * f + dh * f_d
        da_n = dn * (1.0 - n * n)
        da_n_R = dn_R * (1.0 - n * n) - 2.0 * dn * n * n_d
        dr, dr_R = da_n @ U_n, da_n_R @ U_n + da_n @ dU_n
        df = dh * (n - c.h_prev) + dr * c.h_prev
        df_R = dh_R * (n - c.h_prev) + dh * (n_d - tc.h_prev_dot) + dr_R * c.h_prev \
            + dr * tc.h_prev_dot
        da_f = df * f * (1.0 - f)
        da_f_R = df_R * f * (1.0 - f) + df * (1.0 - 2.0 * f) * f_d
        da, da_R = np.concatenate([da_f, da_n], -1), np.concatenate([da_f_R, da_n_R], -1)
        dh_prev = dh * (1.0 - f) + dr * f + da_f @ U_f
        dh_prev_R = (dh_R * (1.0 - f) - dh * f_d + dr_R * f + dr * f_d + da_f_R @ U_f
                     + da_f @ dU_f)
        grads = self._grads(da, c, p, False)
        dots = {"weight_ih": da_R.T @ c.x_t + da.T @ tc.x_dot,
                "weight_hh": np.concatenate([da_f_R.T @ c.h_prev + da_f.T @ tc.h_prev_dot,
                                             da_n_R.T @ c.r + da_n.T @ tc.r_dot], axis=0),
                "bias_ih": None if grads["bias_ih"] is None else da_R.sum(axis=0)}
        dots["bias_hh"] = None if dots["bias_ih"] is None else dots["bias_ih"].copy()
        return ((da @ p["weight_ih"], (dh_prev,), grads),
                (da_R @ p["weight_ih"] + da @ p_dot["weight_ih"], (dh_prev_R,), dots))

    # ---- optional: the torch autograd twin (parity, minirnn.interop.torch.to_torch) -------
    def torch_step(self, x_t, state, p):
        import torch
        (h,) = state
        zi = x_t @ p["weight_ih"].T
        if p.get("bias_ih") is not None:
            zi = zi + p["bias_ih"] + p["bias_hh"]
        H = h.shape[-1]
        f = torch.sigmoid(zi[:, :H] + h @ p["weight_hh"][:H].T)
        n = torch.tanh(zi[:, H:] + (f * h) @ p["weight_hh"][H:].T)
        return ((1.0 - f) * h + f * n,)


def register():
    """Register the MGU once (importing this file twice does not register it twice)."""
    if "mgu" not in minirnn.cells.cell_names():
        minirnn.register_cell(MGU())
    return minirnn.cells.get_cell("mgu")


# ---- every tool on the cell ------------------------------------------------------------------

def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _model(H, **kw):
    return minirnn.nn.make_recurrent("mgu", 3, H, seed=0, **kw)


def check_parity(H):
    """Forward, state, dx, dh0 and every parameter gradient against the torch twin."""
    import torch

    from minirnn.interop.torch import to_torch
    m = _model(H, num_layers=2, bidirectional=True)
    twin, rng = to_torch(m), np.random.default_rng(1)
    x, lengths = rng.standard_normal((7, 3, 3)), [7, 3, 5]
    out, h_n = m(x, lengths=lengths)
    d_out = rng.standard_normal(out.shape)
    dx, dh0 = m.backward(d_out)
    tx = torch.tensor(x, requires_grad=True)
    t_out, _ = twin(tx, None, lengths)
    (t_out * torch.from_numpy(d_out)).sum().backward()
    errs = [_rel(out, t_out.detach()), _rel(dx, tx.grad)]
    errs += [_rel(m.grads[n], p.grad) for n, p in twin.named_parameters()]
    return max(errs), 1e-12


def check_gradcheck(H):
    """gradcheck's three modes and order 2 (finite differences, float64): the tensors that
    failed, and one more if nothing at all was compared."""
    m = _model(H, num_layers=2)
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    reports = [minirnn.gradcheck(m, x, lengths=[4, 2], mode=mode) for mode in
               ("rev", "fwd", "fast")] + [minirnn.gradcheck(m, x, order=2)]
    compared = sum(r.judged[1] for r in reports)
    return float(sum(len(r.failed) for r in reports) + (compared == 0)), 0.0


def check_second_order(H):
    """jvp, hvp and gnvp against torch.func on the twin (an MSE loss on every output)."""
    import torch
    from torch.func import functional_call, grad, jvp, vjp

    from minirnn.interop.torch import to_torch
    from minirnn.parity.torch_ref import load_forward_ad
    load_forward_ad()                 # torch's forward AD, without its TorchScript warnings
    m = _model(H, num_layers=2)
    m.eval()
    twin, rng = to_torch(m), np.random.default_rng(3)
    x, y = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, H))
    v = {k: rng.standard_normal(p.shape) for k, p in m.params.items()}
    tp = {k: p.detach() for k, p in twin.named_parameters()}
    tv = {k: torch.from_numpy(a) for k, a in v.items()}
    f = lambda prm: functional_call(twin, prm, (torch.from_numpy(x),))[0]       # noqa: E731
    loss = lambda prm: ((f(prm) - torch.from_numpy(y)) ** 2).mean()            # noqa: E731
    out_dot = jvp(f, (tp,), (tv,))[1]
    hv_t = jvp(grad(loss), (tp,), (tv,))[1]
    gn_t = vjp(f, tp)[1](out_dot * 2.0 / y.size)[0]
    mse = minirnn.grad.MSELoss(y)
    hv, gn = minirnn.grad.hvp(m, x, mse, v), minirnn.grad.gnvp(m, x, mse, v)
    errs = [_rel(minirnn.grad.jvp(m, x, tangents=v).out_dot, out_dot)]
    errs += [_rel(hv[k], hv_t[k]) for k in v] + [_rel(gn[k], gn_t[k]) for k in v]
    return max(errs), 1e-10


def check_rtrl(H):
    """RTRL's forward-in-time gradient equals the backward's."""
    m = _model(H)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, H))
    res = minirnn.grad.rtrl_gradient(m, x, y)
    m.zero_grad()
    out, _ = m(x)
    m.backward(out - y)
    return max(_rel(g, m.grads[k]) for k, g in res.grads.items()), 1e-12


def check_studies(H):
    """Truncation with a window past T, the lag parts' sum, the Lyapunov spectrum."""
    m = _model(H)
    rng = np.random.default_rng(5)
    x, d_out = rng.standard_normal((12, 2, 3)), rng.standard_normal((12, 2, H))
    full = minirnn.grad.full_gradient(m, x, d_out)
    trunc = minirnn.grad.truncated_gradient(m, x, d_out, k1=12, k2=12)
    lags = minirnn.grad.gradient_by_lag(m, x, d_out).total()
    lyap = minirnn.grad.lyapunov_spectrum(m, x, k=2)
    assert np.all(np.isfinite(lyap.exponents)), "Lyapunov exponents"
    return max(max(_rel(trunc[k], full[k]), _rel(lags[k], full[k])) for k in full), 1e-12


def check_learner(H, out_dir):
    """The stepper's trace and the explorer page show the cell's gates f and n."""
    from pathlib import Path
    m = _model(H)
    x = np.random.default_rng(6).standard_normal((5, 1, 3))
    trace = minirnn.trace(m, x, d_out=np.ones((5, 1, H)))
    step = trace.step(2)
    page = Path(out_dir) / "mgu-explore.html"
    page.unlink(missing_ok=True)                       # this run's page, not an old one
    page = minirnn.explore(m, x, path=page)
    ok = step.f.shape == (1, H) and step.n.shape == (1, H) and Path(page).exists()
    return (0.0 if ok else 1.0), 0.5


def check_training(H):
    """A language model on the MGU learns a repeating sequence with the Engine."""
    lm = minirnn.nn.models.LanguageModel(5, 4, H, cell="mgu", seed=0)
    engine = minirnn.Engine(lm, backend="numpy", optimizer="adam", lr=0.05)
    tokens = np.tile(np.arange(5), (4, 4))[:, :17]
    losses = [engine.step_lm(tokens[:, :-1], tokens[:, 1:])[0] for _ in range(40)]
    return losses[-1] / losses[0], 0.5                     # the loss at least halves


CHECKS = [("parity with the torch twin (rel. error)", check_parity),
          ("gradcheck rev, fwd, fast, order 2 (tensors failing)", check_gradcheck),
          ("jvp, hvp, gnvp vs torch.func (rel. error)", check_second_order),
          ("RTRL = BPTT (rel. error)", check_rtrl),
          ("truncation, lags, Lyapunov (rel. error)", check_studies),
          ("stepper trace and explorer page (0 = shown)", check_learner),
          ("Engine training (final / first loss)", check_training)]


def main(argv=None):
    p = argparse.ArgumentParser(description="Run every minirnn tool on a cell defined here.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=".", help="where the explorer page goes")
    args = p.parse_args(argv)
    register()
    H = 4 if args.quick else 8
    rows, failed = [], 0
    for title, fn in CHECKS:
        value, limit = fn(H, args.out) if fn is check_learner else fn(H)
        ok = value <= limit
        failed += not ok
        rows.append((title, value, limit, "PASS" if ok else "FAIL"))
    width = max(len(r[0]) for r in rows)
    for title, value, limit, verdict in rows:
        print(f"{title:{width}s}  {value:9.2e}  <= {limit:7.1e}  {verdict}")
    print(f"{len(rows) - failed} of {len(rows)} checks passed for the cell 'mgu'")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
