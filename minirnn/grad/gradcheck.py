"""gradcheck: the model's own BPTT against central finite differences of its own forward.

    report = minirnn.gradcheck(minirnn.LSTM(3, 4, num_layers=2, bidirectional=True), x)
    print(report.table()); assert report.passed

The loss is a fixed random projection of every output the model returns,

    L = sum(u_out * out) + sum(u_h * h_n) [+ sum(u_c * c_n)]      u ~ N(0, 1), seeded,

so dL/d(output) = u and ``model.backward(u_out, (u_h, u_c))`` gives the analytic gradient of
every parameter (from ``model.grads``) and of x, h0, c0 (returned). The numeric gradient of
an entry w is (L(w + eps) - L(w - eps)) / (2 eps), each L from ``model.forward``. Both sides
go through the public methods users call, so a bug anywhere in them (layout, directions,
layer stacking, lengths, the kernels of the chosen backend) shows up here.

Other modes (minirnn/grad/gradcheck_modes.py): mode="fwd" checks forward mode (the JVP)
column by column, mode="fast" one uᵀJv per input/output pair, dot=True the dot-product test
between the JVP and the BPTT, order=2 the Hessian-vector product against differences of the
gradient. Every row names its worst element; raise_on_failure=True raises on any failure.
The verdict counts what it judged ("PASSED: 7 tensors, 31 comparisons"), and a report that
compared nothing is FAILED, never PASSED.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_bool, check_choice, check_int, to_numpy
from .._table import text_table
from . import gradcheck_modes as modes
from ._gradcheck_rows import DOT_RTOL, GradcheckRow, index, row, sample

# Tolerance, per entry:  |analytic - numeric| <= ATOL + RTOL * |numeric|.
# With eps = 1e-6 in float64 the central difference has two errors:
#   truncation  eps^2 / 6 * |L'''|          ~ 1e-13 for O(1) third derivatives;
#   round-off   ~ k * 2^-52 * |L| / eps     ~ 1e-10 * k * |L|, k = a few ulps of forward error.
# The loss is a sum of O(1) terms, |L| ~ sqrt(#outputs) ~ 10-100 at test sizes, so the
# difference is good to ~1e-8 absolute. ATOL = 1e-6 leaves two decades of head-room, and a
# real bug (a flipped sign, a dropped term) moves entries by O(|gradient|) ~ 1e-2..1, four or
# more decades above it. RTOL covers large gradients, whose truncation error grows with them.
RTOL = 1e-5
ATOL = 1e-6


@dataclass
class GradcheckReport:
    """Result of gradcheck: ``.passed``, per-tensor ``.rows``, ``.table()``, ``.to_dict()``."""
    rows: list
    eps: float
    rtol: float
    atol: float
    seed: int
    loss: float
    model: str = ""
    mode: str = "rev"
    order: int = 1

    @property
    def passed(self):
        """Every row passed, and there was at least one: a check of nothing never passes."""
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failed(self):
        """Names of the tensors whose gradient disagrees with finite differences."""
        return [r.name for r in self.rows if not r.passed]

    @property
    def judged(self):
        """(tensors checked, comparisons made): what the verdict rests on."""
        return len({r.name for r in self.rows}), sum(r.checked for r in self.rows)

    def verdict(self):
        """The verdict with its counts: "PASSED: 7 tensors, 31 comparisons", "FAILED: x, h0;
        ..." or, when the report holds no comparison at all, "FAILED: nothing was checked"."""
        tensors, compared = self.judged
        counts = f"{tensors} tensors, {compared} comparisons"
        if not compared:
            return f"FAILED: nothing was checked ({counts})"
        if self.passed:
            return f"PASSED: {counts}"
        return f"FAILED: {', '.join(self.failed)}; {counts}"

    def table(self):
        head = ("check", "tensor", "shape", "checked", "max abs err", "max rel err", "ok",
                "worst element")
        body = [(r.check, r.name, "x".join(map(str, r.shape)) or "()", f"{r.checked}/{r.total}",
                 f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}", "ok" if r.passed else "FAIL",
                 r.worst) for r in self.rows]
        what = f"mode={self.mode}" if self.order == 1 else "order=2 (H v)"
        rules = [what, f"eps={self.eps:g}",
                 f"|analytic - numeric| <= {self.atol:g} + {self.rtol:g}*|numeric|"]
        if any(r.check == "dot" for r in self.rows):     # only a dot test that ran is named
            rules.append(f"dot test rel <= {DOT_RTOL:g}")
        rules.append(f"seed={self.seed}")
        return "\n".join([text_table(head, body),
                          f"gradcheck {self.verdict()}  ({', '.join(rules)})"])

    def raise_if_failed(self):
        """AssertionError naming every failed tensor and its worst element, or saying that
        nothing was checked (no-op if passed)."""
        if not self.rows:
            raise AssertionError(f"gradcheck failed: nothing was checked\n{self.table()}")
        bad = [r for r in self.rows if not r.passed]
        if bad:
            raise AssertionError("gradcheck failed: " + "; ".join(
                f"{r.check} {r.name}: max abs err {r.max_abs_err:.3e}, max rel err "
                f"{r.max_rel_err:.3e} at {r.worst or 'no entry compared'}" for r in bad)
                + "\n" + self.table())

    def __str__(self):
        return self.table()

    def to_dict(self):
        tensors, compared = self.judged
        return {"passed": self.passed, "tensors": tensors, "compared": compared,
                "model": self.model, "mode": self.mode, "order": self.order, "eps": self.eps,
                "rtol": self.rtol, "atol": self.atol, "seed": self.seed, "loss": self.loss,
                "rows": [r.to_dict() for r in self.rows]}


# ----------------------------------------------------------------------------
# one interface over the four model kinds: forward(inputs) -> outputs, backward(u) -> grads

class _Runner:
    """The model's uniform state API: forward(inputs) -> outputs, backward(u) -> input grads."""

    def __init__(self, model, x, hx, lengths):
        from ..nn.cells import _CellBase
        from ..nn.recurrent import RNNBase
        self.model = model
        if isinstance(model, RNNBase):
            self.seq, self.lengths = True, lengths
        elif isinstance(model, _CellBase):
            if lengths is not None:
                raise ValueError("lengths: a cell runs one step; expected None, got lengths")
            self.seq, self.lengths = False, None
        else:
            raise TypeError(f"model: expected a minirnn recurrent module or cell, "
                            f"got {type(model).__name__}")
        self.names = [f"{n}0" for n in model.spec.state_names]       # "h0"[, "c0"]
        inputs = {"x": self._f64("x", x)}
        _refuse_empty(inputs["x"], model if self.seq else None)
        _refuse_non_finite("x", inputs["x"])
        if hx is not None:
            states = (hx,) if len(self.names) == 1 else hx
            if not isinstance(states, (tuple, list)) or len(states) != len(self.names):
                raise TypeError(f"hx: expected {len(self.names)} states {tuple(self.names)} for "
                                f"{type(model).__name__}, got {type(hx).__name__}")
            for k, (n, v) in enumerate(zip(self.names, states)):
                inputs[n] = self._f64("hx" if len(states) == 1 else f"hx[{k}]", v)
                _refuse_non_finite(n, inputs[n])
        else:                                # zeros, given explicitly so that dh0 (dc0) is checked
            outs = self.forward(inputs)
            for n, o in zip(self.names, outs[-len(self.names):]):
                inputs[n] = np.zeros_like(o)
        self.inputs = inputs

    @staticmethod
    def _f64(name, value):
        arr = to_numpy(value)
        if arr.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
        return np.array(arr, dtype=np.float64)          # our own copy: we perturb it

    def forward(self, inputs):
        """-> tuple of every output: (out, h_n[, c_n]) or (h'[, c'])."""
        state = tuple(inputs[n] for n in self.names) if self.names[0] in inputs else None
        if self.seq:
            out, state_n = self.model.forward_state(inputs["x"], state, lengths=self.lengths)
            return (out, *state_n)
        return self.model.forward_state(inputs["x"], state)

    def backward(self, u):
        """u: dL/d(each output) -> {"x": dx, "h0": dh0[, "c0": dc0]}; params land in model.grads."""
        if self.seq:
            dx, d_state = self.model.backward_state(u[0], tuple(u[1:]))
        else:
            dx, d_state = self.model.backward_state(tuple(u))
        return {"x": dx, **dict(zip(self.names, d_state))}


def _refuse_empty(x, seq_model):
    """ValueError for an x with no entries: a gradient of nothing has nothing to check.
    seq_model: the sequence module (its batch_first says where B is), or None for a cell."""
    if x.size:
        return
    if seq_model is None:
        axes = {"B": 0} if x.ndim == 2 else {}
    else:
        axes = {"B": 0 if seq_model.batch_first else 1, "T": 1 if seq_model.batch_first else 0} \
            if x.ndim == 3 else {"T": 0}
    empty = [k for k, a in axes.items() if a < x.ndim and x.shape[a] == 0]
    what = {"B": "an empty batch (B = 0)", "T": "no time steps (T = 0)"}
    why = " and ".join(what[k] for k in empty) or "no entries"
    raise ValueError(f"x: {why}, shape {x.shape}: there is nothing to check (no output, no "
                     f"gradient); give x at least one sequence of at least one step")


def _refuse_non_finite(name, arr):
    """ValueError naming the tensor and its first NaN / inf: finite differences through a
    non-finite value are NaN, and a table of NaN errors would hide where it came from."""
    bad = ~np.isfinite(arr)
    if bad.any():
        at = [int(i) for i in np.argwhere(bad)[0]]
        raise ValueError(f"{name}: non-finite value {arr[tuple(at)]} at {at}; gradcheck needs "
                         f"finite inputs, states and weights (a NaN or inf makes every "
                         f"difference through it NaN)")


MODES = ("rev", "fwd", "fast")


def gradcheck(model, x, hx=None, lengths=None, eps=1e-6, params=None, max_entries=None, seed=0,
              rtol=RTOL, atol=ATOL, mode="rev", order=1, dot=None, raise_on_failure=False):
    """Check ``model.backward`` against central differences of ``model.forward`` -> GradcheckReport.

    model: minirnn.RNN, LSTM (any layers / directions / proj_size / batch_first), RNNCell or
    LSTMCell, in float64 (a float32 model is refused: its round-off, ~1e-7 relative, divided
    by eps swamps any useful tolerance; build it with dtype="float64" to check it).
    x, hx, lengths: as ``model.forward`` takes them; hx=None checks the gradient at zero states.
    x, the states and the weights must be finite and x must hold at least one sequence of
    one step (B, T >= 1): anything else is refused, naming the tensor (and the first NaN/inf).
    params: names of the tensors to check — parameter names as ``model.named_parameters()``
    gives them, and "x", "h0", "c0"; None checks every tensor the check covers (order=2:
    the parameters). An empty list, or a name the check does not cover, is refused.
    max_entries: check at most this many entries of each tensor, sampled reproducibly from
    (seed, tensor name); None checks every entry (2 forwards per entry; order=2 compares that
    many entries of H v per parameter).
    seed: seeds the loss projection and the sampling.
    Pass rule per entry: |analytic - numeric| <= atol + rtol * |numeric| (see RTOL, ATOL).
    mode: "rev" (BPTT against differences, entry by entry), "fwd" (the JVP against
    differences, column by column) or "fast" (one uᵀJv per input/output pair).
    order: 1, or 2 for the Hessian-vector product against differences of the gradient
    (parameters only; then mode is not used). dot: add the dot-product test ⟨Ju, w⟩ =
    ⟨u, Jᵀw⟩ per tensor (None: with mode="fwd"). fwd, dot and order=2 need a sequence
    model (RNN, LSTM, GRU). raise_on_failure: raise AssertionError instead of returning a
    failed report.

    During the check dropout is off (eval mode); the model's training flag, its gradients and
    its record of the last forward are restored afterwards, whatever happens.
    """
    from ..nn.cells import _CellBase
    from ..nn.recurrent import RNNBase
    if not isinstance(model, (RNNBase, _CellBase)):
        raise TypeError(f"model: expected minirnn.RNN, LSTM, GRU or one of their cells, "
                        f"got {type(model).__name__}")
    if np.dtype(model.dtype) != np.float64:
        raise ValueError(f"model: gradcheck needs a float64 model (finite differences in "
                         f"float32 are noise at eps={eps:g}), "
                         f"got dtype {np.dtype(model.dtype).name}; "
                         f"build it with dtype='float64' and load_state_dict the same weights")
    if not (isinstance(eps, (int, float)) and 0 < eps < 1):
        raise ValueError(f"eps: expected a step in (0, 1), got {eps!r}")
    if max_entries is not None:
        check_int("max_entries", max_entries)
    check_choice("mode", mode, MODES)
    check_choice("order", order, (1, 2))
    dot = mode == "fwd" if dot is None else check_bool("dot", dot)
    if (mode == "fwd" or dot or order == 2) and not isinstance(model, RNNBase):
        raise TypeError(f"model: mode={mode!r}, dot={dot}, order={order} need forward mode, "
                        f"which the sequence modules have (RNN, LSTM, GRU; a cell is one "
                        f"step of them: use T=1), got {type(model).__name__}")
    own = {name: p for name, p, _ in model.named_parameters()}
    grads_before = {name: g.copy() for name, _, g in model.named_parameters()}
    was_training = model.training
    model.eval()
    # the record of the last forward (sequence models) or cache (cells) is restored at the end
    with model.preserve_record():
        try:
            report = _check(model, x, hx, lengths, eps, params, max_entries, seed, rtol, atol,
                            own, mode, order, dot)
        finally:
            for name, _, g in model.named_parameters():
                g[...] = grads_before[name]
            model.train(was_training)
    if raise_on_failure:
        report.raise_if_failed()
    return report


def _check(model, x, hx, lengths, eps, params, max_entries, seed, rtol, atol, own, mode="rev",
           order=1, dot=False):
    """The check itself; gradcheck() above restores the model whatever happens here."""
    run = _Runner(model, x, hx, lengths)
    for name, p in own.items():
        _refuse_non_finite(name, p)
    names = _names(params, list(run.inputs), list(own), order)

    outs = run.forward(run.inputs)
    rng = np.random.default_rng(seed)
    u = [rng.standard_normal(np.shape(o)) for o in outs]        # the loss projection

    def loss(inputs):
        return float(sum(np.vdot(ui, oi) for ui, oi in zip(u, run.forward(inputs))))

    if order == 1 and mode == "rev":
        rows = _reverse_rows(run, model, names, own, u, loss, eps, max_entries, seed, rtol, atol)
    if mode != "rev" or order != 1 or dot:
        probe = modes.Probe(model, run, own, seed)
        if order == 2:
            rows = modes.second_order_rows(probe, names, eps, max_entries, seed, rtol, atol)
        elif mode == "fwd":
            rows = modes.forward_rows(probe, names, eps, max_entries, seed, rtol, atol)
        elif mode == "fast":
            rows = modes.fast_rows(probe, names, eps, seed, rtol, atol)
        if dot:
            rows += modes.dot_rows(probe, names, seed)
    return GradcheckReport(rows, float(eps), float(rtol), float(atol), int(seed),
                           loss(run.inputs), repr(model), mode, order)


def _names(params, inputs, own, order):
    """The tensors to check: every one the check covers (params=None), or the names given,
    each known and covered (order 2 covers the parameters only); a list of none is refused,
    since a check of nothing cannot pass."""
    covered = own if order == 2 else inputs + own
    if params is None:
        return covered
    names = [params] if isinstance(params, str) else list(params)
    if not names:
        raise ValueError(f"params: got an empty list, which checks nothing; expected some of "
                         f"{covered}")
    unknown = [n for n in names if n not in inputs + own]
    if unknown:
        raise KeyError(f"params: unknown tensor names {unknown}; expected some of "
                       f"{inputs + own}")
    outside = [n for n in names if n not in covered]
    if outside:
        raise ValueError(f"params: order=2 checks the Hessian-vector product in the "
                         f"parameters only, so {', '.join(map(repr, outside))} cannot be "
                         f"checked there; expected some of {covered} (or order=1 for "
                         f"{', '.join(map(repr, outside))})")
    return names


def _reverse_rows(run, model, names, own, u, loss, eps, max_entries, seed, rtol, atol):
    """mode="rev": the BPTT gradient of every sampled entry against its central difference."""
    # analytic: one backward from fresh zero gradients
    model.zero_grad()
    run.forward(run.inputs)
    analytic = run.backward(u)
    analytic.update({name: g.copy() for name, _, g in model.named_parameters()})

    rows = []
    for name in names:
        target = run.inputs[name] if name in run.inputs else own[name]
        flat = target.reshape(-1)                       # a view: perturb in place
        if not np.shares_memory(flat, target):
            raise RuntimeError(f"{name}: the tensor is not contiguous; cannot perturb it")
        idx = sample(name, flat.size, max_entries, seed)
        num = np.empty(idx.size)
        for n, j in enumerate(idx):
            w = flat[j]
            try:
                flat[j] = w + eps
                lp = loss(run.inputs)
                flat[j] = w - eps
                lm = loss(run.inputs)
            finally:
                flat[j] = w                             # exactly restored, whatever happens
            num[n] = (lp - lm) / (2.0 * eps)
        ana = np.asarray(analytic[name], dtype=np.float64).reshape(-1)[idx]
        err = np.abs(ana - num)
        worst = ""
        if err.size:                                    # a NaN error is the worst of all
            at = idx[np.argmax(np.where(np.isnan(err), np.inf, err))]
            worst = f"{name}[{index(target.shape, at)}]"
        rows.append(row(name, target.shape, idx.size, flat.size, err,
                        np.maximum(np.abs(ana), np.abs(num)), atol + rtol * np.abs(num), worst,
                        "rev", idx))
    return rows


__all__ = ["gradcheck", "GradcheckReport", "GradcheckRow", "RTOL", "ATOL", "MODES"]
