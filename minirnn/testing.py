"""One comparison helper for every test and checker: it reports the worst element and raises."""
from __future__ import annotations

import numpy as np

from ._checks import check_fits, check_real, to_numpy


def _real(name, value):
    """value as a float64 array; what is not numbers (strings, ragged lists) is refused."""
    try:
        arr = np.asarray(to_numpy(value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an array of numbers, got {type(value).__name__} "
                        f"that numpy cannot read as one ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    check_fits(name, arr.size * 8, f"a float64 copy of shape {arr.shape}")
    return arr.astype(np.float64)


def max_errors(actual, expected):
    """-> (max abs error, relative error ||a - b|| / ||b||, index of the worst element)."""
    a, b = _real("actual", actual), _real("expected", expected)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: actual {a.shape} vs expected {b.shape}")
    if a.size == 0:
        return 0.0, 0.0, ()
    diff = np.abs(a - b)
    nan_mismatch = np.isnan(a) != np.isnan(b)
    diff = np.where(np.isnan(a) & np.isnan(b), 0.0, diff)
    diff = np.where(nan_mismatch, np.inf, diff)
    worst = np.unravel_index(int(np.argmax(diff)), a.shape)
    norm_b = np.linalg.norm(np.nan_to_num(b))
    norm_d = np.linalg.norm(diff)
    rel = norm_d / norm_b if norm_b > 0 else norm_d
    return float(diff.max()), float(rel), tuple(int(i) for i in worst)


def assert_close(actual, expected, rtol=1e-12, atol=0.0, name="tensor"):
    """Pass when ||a - b|| / ||b|| <= rtol or max|a - b| <= atol; else raise AssertionError
    naming the tensor, the worst element and both errors."""
    rtol, atol = check_real("rtol", rtol, low=0), check_real("atol", atol, low=0)
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__} {name!r}")
    abs_err, rel_err, worst = max_errors(actual, expected)
    if rel_err <= rtol or abs_err <= atol:
        return abs_err, rel_err
    a, b = to_numpy(actual), to_numpy(expected)
    raise AssertionError(
        f"{name}: relative error {rel_err:.3e} > rtol {rtol:.1e} (max abs error {abs_err:.3e}); "
        f"worst element at index {worst}: actual {np.asarray(a)[worst]!r}, "
        f"expected {np.asarray(b)[worst]!r}")
