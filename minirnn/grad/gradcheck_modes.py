"""The checks of minirnn.gradcheck that link the modes: forward mode against differences,
uᵀJv in one product, the dot-product test between JVP and VJP, and the HVP against
differences of the gradient. Each returns GradcheckRows (one per checked tensor) whose
`worst` names the worst element; gradcheck() assembles them into its report.

    mode="fwd"   every sampled entry j of a tensor: the JVP along e_j (all outputs: one
                 column of J) against the central difference of every output
    mode="fast"  per input tensor k and output o: uᵀ J_ok v from one backward against
                 uᵀ (f_o(w + eps v) - f_o(w - eps v)) / 2 eps, u and v random (torch's
                 gradcheck fast_mode): two forwards per tensor instead of two per entry
    dot          per input tensor k: ⟨J_k u_k, w⟩ (forward mode) = ⟨u_k, (Jᵀ w)_k⟩ (BPTT),
                 u_k, w random; exact to round-off, no differences at all; the error is
                 relative to max(‖J u‖ ‖w‖, ‖u‖ ‖Jᵀw‖), the size of the terms summed
    order=2      the Hessian-vector product (R-operator on the BPTT) of the probe loss
                 L = Σ u·out + ½ Σ out² + Σ u_s·state_n against (∇L(θ + eps v) - ∇L(θ - eps v))
                 / 2 eps, v random over every parameter; the sampled entries of each
                 parameter's H v are compared (max_entries, as in the other modes)
The row, the sampling and DOT_RTOL come from _gradcheck_rows.py, which gradcheck.py imports too:
this module does not import gradcheck.py back.
"""
from __future__ import annotations

import numpy as np

from ._gradcheck_rows import DOT_RTOL, index, rng, row, sample


class Probe:
    """What the modes share: the runner, the tensors, the outputs' names."""

    def __init__(self, model, run, own, seed):
        self.model, self.run, self.own, self.seed = model, run, own, seed
        self.outs = run.forward(run.inputs)
        self.out_names = ["out"] + [f"{n}_n" for n in model.spec.state_names][:len(self.outs) - 1]

    def target(self, name):
        return self.run.inputs[name] if name in self.run.inputs else self.own[name]

    def state(self):
        names = self.run.names
        return tuple(self.run.inputs[n] for n in names) if names[0] in self.run.inputs else None

    def jvp(self, tangents):
        """(ȯut, ḣ_n[, ċ_n]) along tangents (sequence models only)."""
        from .forward_mode import jvp
        res = jvp(self.model, self.run.inputs["x"], self.state(), tangents, self.run.lengths)
        return (res.out_dot, *res.state_dot)

    def vjp(self, u):
        """Jᵀ u for every input and parameter: {name: array}."""
        self.model.zero_grad()
        self.run.forward(self.run.inputs)
        grads = self.run.backward(u)
        grads.update({n: g.copy() for n, _, g in self.model.named_parameters()})
        return grads

    def perturbed(self, name, direction, eps):
        """The outputs at w + eps d and w - eps d (w restored exactly afterwards)."""
        w = self.target(name)
        saved = w.copy()
        try:
            w += eps * direction
            plus = self.run.forward(self.run.inputs)
            w[...] = saved - eps * direction
            minus = self.run.forward(self.run.inputs)
        finally:
            w[...] = saved
        return plus, minus


def forward_rows(p, names, eps, max_entries, seed, rtol, atol):
    """mode="fwd": JVP columns against central differences, entry by entry."""
    rows = []
    for name in names:
        w = p.target(name)
        idx = sample(name, w.size, max_entries, seed)
        errs, scales, tols, worst = [], [], [], (-1.0, "")
        for j in idx:
            e = np.zeros_like(w)
            e.flat[j] = 1.0
            analytic = p.jvp({name: e})
            plus, minus = p.perturbed(name, e, eps)
            for o, a, fp, fm in zip(p.out_names, analytic, plus, minus):
                num = (fp - fm) / (2.0 * eps)
                err = np.abs(a - num)
                errs.append(err.ravel())
                scales.append(np.maximum(np.abs(a), np.abs(num)).ravel())
                tols.append((atol + rtol * np.abs(num)).ravel())
                if err.size and err.max() > worst[0]:
                    worst = (float(err.max()), f"d{o}[{index(err.shape, err.argmax())}]/"
                                               f"d{name}[{index(w.shape, j)}]")
        cat = lambda a: np.concatenate(a) if a else np.zeros(0)       # noqa: E731
        rows.append(row(name, w.shape, idx.size, w.size, cat(errs), cat(scales), cat(tols),
                         worst[1], "fwd", idx))
    return rows


def fast_rows(p, names, eps, seed, rtol, atol):
    """mode="fast": uᵀJv by one backward per output against one difference per tensor."""
    us = [rng(seed, f"u:{o}").standard_normal(np.shape(y)) for o, y in zip(p.out_names, p.outs)]
    back = []                                  # per output o: Jᵀ (u on o alone)
    for k in range(len(us)):
        back.append(p.vjp([u if i == k else np.zeros_like(u) for i, u in enumerate(us)]))
    rows = []
    for name in names:
        w = p.target(name)
        v = rng(seed, f"v:{name}").standard_normal(w.shape)
        plus, minus = p.perturbed(name, v, eps)
        ana = np.array([np.vdot(back[k][name], v) for k in range(len(us))])
        num = np.array([np.vdot(u, (fp - fm) / (2.0 * eps)) for u, fp, fm in zip(us, plus, minus)])
        err = np.abs(ana - num)
        worst = f"uᵀ J v, output {p.out_names[int(err.argmax())]}" if err.size else ""
        rows.append(row(name, w.shape, len(us), len(us), err,
                         np.maximum(np.abs(ana), np.abs(num)), atol + rtol * np.abs(num), worst,
                         "fast"))
    return rows


def dot_rows(p, names, seed):
    """The dot-product test ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ per input tensor (forward vs reverse mode)."""
    ws = [rng(seed, f"w:{o}").standard_normal(np.shape(y)) for o, y in zip(p.out_names, p.outs)]
    back = p.vjp(ws)
    rows = []
    for name in names:
        w = p.target(name)
        u = rng(seed, f"u:{name}").standard_normal(w.shape)
        ju = p.jvp({name: u})
        fwd = sum(np.vdot(a, b) for a, b in zip(ju, ws))
        rev = np.vdot(u, back[name])
        err = np.array([abs(fwd - rev)])
        # relative to the terms' size (Cauchy-Schwarz), not to the sum, which may cancel
        scale = np.array([max(np.sqrt(sum(np.vdot(a, a) for a in ju) * sum(np.vdot(b, b)
                                                                         for b in ws)),
                              np.linalg.norm(u) * np.linalg.norm(back[name]))])
        rows.append(row(name, w.shape, 1, 1, err, scale, DOT_RTOL * scale,
                         f"⟨Ju,w⟩={fwd:.6g} ⟨u,Jᵀw⟩={rev:.6g}", "dot"))
    return rows


class _ProbeLoss:
    """L = Σ u·out + ½ Σ out²: a linear part (every output entry) and a quadratic one (so the
    loss's own Hessian, the identity, enters the HVP too)."""

    def __init__(self, u):
        self.u = u

    def value(self, out):
        return float(np.vdot(self.u, out) + 0.5 * np.vdot(out, out))

    def grad(self, out):
        return self.u + out

    def hvp(self, out, v):
        return np.array(v, copy=True)


def second_order_rows(p, names, eps, max_entries, seed, rtol, atol):
    """order=2: H v (forward over reverse) against central differences of the gradient, on
    the sampled entries of each named parameter (max_entries of them, as the other modes)."""
    from .second_order import hessian_vector
    model, run = p.model, p.run
    us = [rng(seed, f"u:{o}").standard_normal(np.shape(y)) for o, y in zip(p.out_names, p.outs)]
    loss = _ProbeLoss(us[0])
    v = {n: rng(seed, f"v:{n}").standard_normal(w.shape) for n, w in p.own.items()}
    _, hv = hessian_vector(model, run.inputs["x"], loss, v, p.state(), run.lengths,
                           d_state=tuple(us[1:]))

    def gradient():
        outs = run.forward(run.inputs)
        model.zero_grad()
        run.backward([loss.grad(outs[0])] + us[1:])
        return {n: g.copy() for n, _, g in model.named_parameters()}

    saved = {n: w.copy() for n, w in p.own.items()}
    try:
        for n, w in p.own.items():
            w += eps * v[n]
        g_plus = gradient()
        for n, w in p.own.items():
            w[...] = saved[n] - eps * v[n]
        g_minus = gradient()
    finally:
        for n, w in p.own.items():
            w[...] = saved[n]
    rows = []
    for name in names:                         # parameters only: gradcheck() refuses the rest
        shape = p.own[name].shape
        idx = sample(name, p.own[name].size, max_entries, seed)
        num = ((g_plus[name] - g_minus[name]) / (2.0 * eps)).reshape(-1)[idx]
        ana = np.asarray(hv[name]).reshape(-1)[idx]
        err = np.abs(ana - num)
        worst = f"(Hv){name}[{index(shape, idx[err.argmax()])}]" if err.size else ""
        rows.append(row(name, shape, idx.size, p.own[name].size, err,
                         np.maximum(np.abs(ana), np.abs(num)), atol + rtol * np.abs(num),
                         worst, "hvp", idx))
    return rows


__all__ = ["forward_rows", "fast_rows", "dot_rows", "second_order_rows", "DOT_RTOL", "Probe"]
