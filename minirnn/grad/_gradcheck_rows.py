"""What gradcheck (gradcheck.py) and its modes (gradcheck_modes.py) share: one row of a
report, the entries sampled from a tensor, and the dot-product test's tolerance. Both import
this module and neither imports the other back, so the two form no import circle."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

# The dot-product test compares two exact results: only round-off separates them (~1e-16
# relative, measured); a wrong term moves it by O(1). 1e-10 leaves five decades each side.
DOT_RTOL = 1e-10


@dataclass
class GradcheckRow:
    """One checked tensor. A row that compared no entry judged nothing: it never passes."""
    name: str                     # "weight_hh_l0", "x", "h0", "c0"
    shape: tuple
    checked: int                  # entries compared
    total: int                    # entries in the tensor
    max_abs_err: float            # max |analytic - numeric|
    max_rel_err: float            # max |analytic - numeric| / max(|analytic|, |numeric|)
    passed: bool
    indices: np.ndarray = field(repr=False, default=None)   # flat indices checked
    check: str = "rev"            # "rev", "fwd", "fast", "dot" or "hvp" (gradcheck_modes.py)
    worst: str = ""               # the worst element, e.g. "weight_hh_l0[3, 1]"

    def __post_init__(self):
        self.passed = bool(self.passed) and self.checked > 0

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "checked": self.checked,
                "total": self.total, "max_abs_err": self.max_abs_err,
                "max_rel_err": self.max_rel_err, "passed": self.passed, "check": self.check,
                "worst": self.worst}


def rng(seed, name):
    """A generator seeded by (seed, name): the same stream for a tensor whatever else runs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sample(name, size, max_entries, seed):
    """Flat indices to check: all, or max_entries of them drawn without replacement from a
    generator seeded by (seed, name) — the same tensor gets the same entries every run,
    whatever else is checked."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng(seed, name).choice(size, size=max_entries, replace=False))


def index(shape, flat):
    """A flat index -> "i, j, k" in `shape` ("" for a scalar)."""
    return ", ".join(map(str, np.unravel_index(int(flat), shape))) if shape else ""


def row(name, shape, checked, total, err, scale, tol, worst, check, indices=None):
    """A GradcheckRow from the errors of the compared entries (err, scale, tol: flat arrays)."""
    rel = np.divide(err, scale, out=np.zeros_like(err), where=scale > 0)
    return GradcheckRow(name, tuple(shape), int(checked), int(total),
                        float(err.max()) if err.size else 0.0,
                        float(rel.max()) if rel.size else 0.0,
                        bool(err.size) and bool(np.all(err <= tol)),        # NaN fails
                        indices, check, worst)


__all__ = ["GradcheckRow", "DOT_RTOL", "rng", "sample", "index", "row"]
