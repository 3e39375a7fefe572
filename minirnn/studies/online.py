"""Online learning with each method, its alignment with the exact gradient measured as it
learns (the study behind `minirnn study online`).

    from minirnn.studies.online import train_online
    from minirnn.studies.online_tasks import two_dependency_stream
    run = train_online(two_dependency_stream(8, 2000), "gru", "snap-1", hidden=8)
    run.cosines.mean(), run.final_loss()

The learner: one recurrent layer (any registry cell) and a linear read-out, both trained
after every step that carries a loss, by Adam: the read-out on its exact gradient, the
recurrent layer on the method's estimate of dL_t/dθ (minirnn.grad.online). Beside the method
an exact RTRL tracker (the shadow) runs on the same states and parameters, so every step
gives the cosine between the method's gradient and the exact one for that step's loss -- the
alignment of Marschall, Cho & Savin (JMLR 2020) and of the sketched-RTRL benchmark, measured
the same way (per step, the batch's summed gradient, the recurrent parameters only).
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np


class OnlineRun(NamedTuple):
    task: str
    cell: str
    method: str
    hidden: int
    steps: np.ndarray             # (n,) the steps that carried a loss
    losses: np.ndarray            # (n,) the loss there (batch mean), before the update
    cosines: np.ndarray           # (n,) cos(method's dL_t/dθ, RTRL's); nan without a shadow
    numbers: int                  # floats the method's influence holds (the whole batch)
    wall: float                   # seconds
    watched: dict = None          # label -> (n,) cosines of a method run beside, not learning

    def final_loss(self, fraction=0.25):
        """The mean loss over the last `fraction` of the losses: where the run ended up."""
        n = max(1, int(round(fraction * len(self.losses))))
        return float(self.losses[-n:].mean())

    def alignment(self):
        """The mean cosine over every step that had one."""
        ok = np.isfinite(self.cosines)
        return float(self.cosines[ok].mean()) if ok.any() else float("nan")

    def binned(self, bins=10):
        """(step at each bin's end, mean cosine, mean loss) over `bins` equal stretches."""
        parts = np.array_split(np.arange(len(self.steps)), bins)
        return [(int(self.steps[p[-1]]), _nanmean(self.cosines[p]), float(self.losses[p].mean()))
                for p in parts if p.size]


def _nanmean(a):
    """The mean of the finite entries (nan if there are none)."""
    ok = np.isfinite(a)
    return float(a[ok].mean()) if ok.any() else float("nan")


def _cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _learner(cell, n_in, hidden, n_out, seed):
    """-> the whole (what Adam steps), its recurrent layer, its read-out."""
    from ..nn.layers import Linear
    from ..nn.module import Module
    from ..nn import make_recurrent
    model = Module(seed=seed)
    rnn = model.add_module("rnn", make_recurrent(cell, n_in, hidden, seed=seed))
    head = model.add_module("head", Linear(hidden, n_out, seed=seed + 1))
    return model, rnn, head


def _head_loss(stream, head, h, y_t):
    """The read-out's loss on h (B, P) and dL/dh; the read-out's gradient accumulated."""
    from ..nn.losses import cross_entropy
    out = head.forward(h)
    if stream.kind == "ce":
        value, d_out = cross_entropy(out, y_t)
    else:
        diff = out - y_t
        value, d_out = float(np.mean(diff * diff)), 2.0 * diff / diff.size
    return value, head.backward(d_out)


def train_online(stream, cell, method, hidden=8, lr=0.01, seed=0, shadow=True, options=None,
                 mask=None, watch=None, progress=None):
    """Train `cell` (hidden units) and a read-out online on `stream` with `method` (and its
    options, as minirnn.grad.online_gradient's) -> OnlineRun. mask: W_hh's fixed sparsity
    (recurrent_mask), for every tracker; the weights outside it start and stay 0. shadow: run
    exact RTRL beside it for the cosines (RTRL's own are 1 by definition and not measured).
    watch: {label: (method, options)} run beside on the same states and parameters without
    steering them -- their alignment on this method's trajectory (OnlineRun.watched).
    progress(n): called with the steps done, every 100 steps."""
    from ..grad.online import OnlineState, make_tracker
    from ..train.optim import Adam
    T, B = stream.x.shape[:2]
    model, rnn, head = _learner(cell, stream.x.shape[-1], hidden, stream.n_out, seed)
    if mask is not None:
        rnn.params["weight_hh_l0"][~mask] = 0.0
    zeros = tuple(np.zeros((B, n)) for n in rnn.state_sizes)
    st = OnlineState(rnn, B, zeros, mask)
    tracker = make_tracker(method, st, options)
    watchers = {label: make_tracker(m, st, opts) for label, (m, opts) in (watch or {}).items()}
    exact = tracker if method == "rtrl" else \
        make_tracker("rtrl", st) if shadow or watchers else None
    everyone = [tracker] + [tr for tr in [exact, *watchers.values()]
                            if tr is not None and tr is not tracker]
    opt = Adam(model, lr=lr)
    steps, losses, cosines = [], [], []
    watched = {label: [] for label in watchers}
    t0 = time.perf_counter()
    for t in range(T):
        if stream.reset[t]:
            st.state = zeros
            for tr in everyone:
                tr.allocate()                                       # M back to 0
        jac = st.advance(stream.x[t])
        for tr in everyone:
            tr.update(jac, None)
        if progress is not None and (t + 1) % 100 == 0:
            progress(100)
        if not stream.has_target[t]:
            continue
        model.zero_grad()
        value, dh = _head_loss(stream, head, st.output(), stream.y[t])
        g_s = np.zeros((B, st.S))
        g_s[:, :st.P] = dh
        g = tracker.grad(g_s)
        g_exact = None if exact is None else g if exact is tracker else exact.grad(g_s)
        cosines.append(1.0 if method == "rtrl" else
                       _cosine(g, g_exact) if shadow else float("nan"))
        for label, tr in watchers.items():
            watched[label].append(_cosine(tr.grad(g_s), g_exact))
        for key, v in st.unflatten(g).items():
            rnn.grads[key][...] = v
        opt.step()
        steps.append(t)
        losses.append(value)
    if progress is not None:
        progress(T % 100)
    return OnlineRun(stream.name, cell, method, hidden, np.array(steps), np.array(losses),
                     np.array(cosines), tracker.numbers, time.perf_counter() - t0,
                     {label: np.array(c) for label, c in watched.items()})


__all__ = ["OnlineRun", "train_online"]
