"""The torch-free half of the parity harness: make a case, run minirnn, compare, localise.

A *case* is a dict of NumPy arrays that fully determines one comparison:

    x, h0, [c0], [lengths]          the input, in the module's user layout
    d_out, d_h_n, [d_c_n]           random upstream gradients (every step, every state)
    param.<torch key>               the weights, e.g. param.weight_hh_l1_reverse

A *result* (ours or torch's) is a dict: out, h_n, [c_n], dx, dh0, [dc0], grad.<torch key>.
The loss both sides differentiate is the random projection
    L = sum(d_out * out) + sum(d_h_n * h_n) (+ sum(d_c_n * c_n)),
so every output element and every state contributes with its own random weight.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..cells import get_cell
from ..nn import make_recurrent
from ..testing import max_errors
from .configs import CELLS, Config, tolerance

FORWARD_TENSORS = ("out", "h_n", "c_n")
STATE_GRADS = ("dh0", "dc0")


def _rng(config):
    # one stream per (seed, cell): the same case every run, different cells differ
    return np.random.default_rng([config.seed, CELLS.index(config.cell), 20240611])


def build_model(config, dtype="float64", backend="numpy"):
    """The minirnn module for `config` (weights from its seeded init, torch's distribution)."""
    extra = {"proj_size": config.proj_size} if config.proj_size else {}
    return make_recurrent(config.cell, config.input_size, config.hidden_size,
                          num_layers=config.num_layers, bias=config.bias,
                          batch_first=config.batch_first, bidirectional=config.bidirectional,
                          dtype=dtype, seed=config.seed, backend=backend, **extra)


def state_names(config):
    """("h",) or ("h", "c"): the case's keys are h0 [c0], d_h_n [d_c_n]; results h_n [c_n], dh0 [dc0]."""
    return get_cell(config.cell).state_names


def make_case(config, dtype="float64"):
    """Seeded random inputs, weights and upstream gradients for `config`, all in `dtype`.

    Drawn in float64 and then cast, so the float32 case is the float64 case rounded.
    Nothing is zero: biases, h0, c0 and every upstream gradient are random normal/uniform.
    """
    rng = _rng(config)
    T, B, I, H, P = config.T, config.B, config.input_size, config.hidden_size, config.out_size
    LD = config.num_layers * config.num_directions
    D = config.num_directions
    batch = lambda *tail: ((T,) + tail) if config.unbatched else (  # noqa: E731
        (B, T) + tail if config.batch_first else (T, B) + tail)
    state = lambda size: (LD, size) if config.unbatched else (LD, B, size)  # noqa: E731
    size = {"h": P, "c": H}
    case = {"x": rng.standard_normal(batch(I))}
    for n in state_names(config):
        case[f"{n}0"] = rng.standard_normal(state(size[n])) * 0.5
    if config.lengths:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T                     # torch pads to the longest anyway
        if T > 1 and B > 1 and np.all(lengths == T):
            lengths[0] = rng.integers(1, T)              # at least one sequence ends early
        case["lengths"] = lengths.astype(np.int64)
    case["d_out"] = rng.standard_normal(batch(D * P))
    for n in state_names(config):
        case[f"d_{n}_n"] = rng.standard_normal(state(size[n]))
    for name, p in build_model(config, "float64").state_dict().items():
        case["param." + name] = p
    return {k: (v if k == "lengths" else v.astype(dtype)) for k, v in case.items()}


def case_params(case):
    """The state dict (torch keys) held in a case."""
    return {k[len("param."):]: v for k, v in case.items() if k.startswith("param.")}


def run_minirnn(config, case, backend="numpy"):
    """Forward and backward of the minirnn module on a case -> result dict (numpy)."""
    dtype = case["x"].dtype.name
    model = build_model(config, dtype, backend)
    model.load_state_dict(case_params(case))
    names = state_names(config)
    out, state_n = model.forward_state(case["x"], tuple(case[f"{n}0"] for n in names),
                                       lengths=case.get("lengths"))
    dx, d_state0 = model.backward_state(case["d_out"], tuple(case[f"d_{n}_n"] for n in names))
    res = {"out": out, **{f"{n}_n": s for n, s in zip(names, state_n)}, "dx": dx,
           **{f"d{n}0": s for n, s in zip(names, d_state0)}}
    for name, g in model.grad_dict().items():
        res["grad." + name] = g
    return res


# ---------------------------------------------------------------------------------------
# comparison

@dataclass
class TensorError:
    name: str
    max_abs: float
    rel: float
    worst_index: tuple


@dataclass
class CaseReport:
    """The comparison of one config in one dtype on one device."""
    config: Config
    dtype: str
    device: str
    tol: float
    errors: list = field(default_factory=list)       # [TensorError], in result order
    where: list = field(default_factory=list)        # localisation lines for failing tensors

    @property
    def worst(self):
        """The tensor of largest relative error; with no tensor compared, a stand-in of
        infinite error (a case that compared nothing is the worst case, never a pass)."""
        if not self.errors:
            return TensorError("nothing compared", math.inf, math.inf, ())
        return max(self.errors, key=lambda e: e.rel)

    @property
    def max_abs(self):
        return self.worst.max_abs if not self.errors else max(e.max_abs for e in self.errors)

    @property
    def passed(self):
        """Every tensor within tolerance, and at least one compared."""
        return bool(self.errors) and all(e.rel <= self.tol for e in self.errors)

    def to_dict(self):
        return {"config": self.config.to_dict(), "summary": self.config.summary(),
                "dtype": self.dtype, "device": self.device, "tol": self.tol,
                "passed": self.passed, "worst_tensor": self.worst.name,
                "worst_rel": self.worst.rel, "max_abs": self.max_abs,
                "errors": [dataclasses.asdict(e) for e in self.errors], "where": self.where}


def compare(config, ours, ref, dtype, device="cpu", tol=None):
    """Every tensor of `ref` against `ours` -> CaseReport (missing or extra tensors raise)."""
    if set(ours) != set(ref):
        raise KeyError(f"results: tensors differ, minirnn has {sorted(set(ours) - set(ref))} "
                       f"extra, torch has {sorted(set(ref) - set(ours))} extra")
    tol = tolerance(device, dtype) if tol is None else tol
    report = CaseReport(config, dtype, device, tol)
    for name in ref:
        a, b = np.asarray(ours[name]), np.asarray(ref[name])
        if a.shape != b.shape:
            raise ValueError(f"{name}: shape differs, minirnn {a.shape} vs torch {b.shape}")
        max_abs, rel, idx = max_errors(a, b)
        report.errors.append(TensorError(name, max_abs, rel, idx))
        if rel > tol:
            report.where.append(locate(config, name, a, b, tol))
    return report


def _tbf(config, arr):
    """A sequence tensor in user layout -> (T, B, F) float64."""
    arr = np.asarray(arr, dtype=np.float64)
    if config.unbatched:
        return arr[:, None, :]
    return arr.transpose(1, 0, 2) if config.batch_first else arr


def _first_bad_step(diff, ref, tol, order):
    """diff, ref (T, ...): the first step in `order` whose error norm exceeds tol*||ref||/sqrt(T).

    If the whole tensor fails (||diff|| > tol ||ref||), at least one step exceeds that share,
    so a failing tensor always has a first bad step.
    """
    T = diff.shape[0]
    share = tol * max(np.linalg.norm(ref), np.finfo(float).tiny) / np.sqrt(T)
    norms = np.sqrt((diff.reshape(T, -1) ** 2).sum(axis=1))
    bad = [t for t in order if norms[t] > share]
    return (bad[0], norms[bad[0]]) if bad else (None, 0.0)


def locate(config, name, ours, ref, tol):
    """One line saying where a failing tensor first diverges: step, layer, direction."""
    D, P, L = config.num_directions, config.out_size, config.num_layers
    T = config.T
    dirs = ("forward", "reverse")
    if name in ("out", "dx"):
        a, b = _tbf(config, ours), _tbf(config, ref)
        if name == "out":
            # the last layer's outputs, one direction per block of P columns; each direction
            # is reported in the order it computes its steps
            lines = []
            for d in range(D):
                cols = slice(d * P, (d + 1) * P)
                order = range(T) if d == 0 else reversed(range(T))
                t, err = _first_bad_step(a[..., cols] - b[..., cols], b[..., cols], tol, order)
                if t is not None:
                    lines.append(f"step t={t} ({dirs[d]} direction, |err|={err:.2e})")
            return (f"out diverges first at layer {L - 1}: " + "; ".join(lines)) if lines else \
                "out: diverges, spread over all steps"
        # dx: BPTT of the forward direction starts at the last step, so report both ends
        t_late, err = _first_bad_step(a - b, b, tol, reversed(range(T)))
        t_early, _ = _first_bad_step(a - b, b, tol, range(T))
        return (f"dx diverges at steps {t_early}..{t_late} (BPTT of the forward direction "
                f"reaches t={t_late} first, |err|={err:.2e})")
    if name in FORWARD_TENSORS + STATE_GRADS:
        a = np.asarray(ours, dtype=np.float64)
        b = np.asarray(ref, dtype=np.float64)
        if config.unbatched:
            a, b = a[:, None], b[:, None]
        bad = []
        for k in range(L * D):
            _, rel, _ = max_errors(a[k], b[k])
            if rel > tol:
                bad.append((k // D, dirs[k % D], rel))
        # forward states go bottom-up, state gradients top-down: the first in that order
        # is where the disagreement starts
        bad.sort(key=lambda r: r[0], reverse=name in STATE_GRADS)
        desc = ", ".join(f"layer {l} {d} (rel {r:.2e})" for l, d, r in bad)
        return f"{name} diverges at {desc}" if bad else f"{name}: diverges (no single layer)"
    _, rel, idx = max_errors(ours, ref)
    return f"{name} diverges (rel {rel:.2e}, worst element {idx})"


def check_case(config, case, ref, device="cpu", backend="numpy", tol=None):
    """run_minirnn on `case` and compare with torch's `ref` -> CaseReport."""
    return compare(config, run_minirnn(config, case, backend), ref, case["x"].dtype.name,
                   device, tol)


__all__ = ["build_model", "make_case", "case_params", "run_minirnn", "compare", "locate",
           "check_case", "CaseReport", "TensorError"]
