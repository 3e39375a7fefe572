"""What tests and checkers compare against: one comparison helper that reports the worst element
and raises (assert_close), and central differences of a recurrent module's outputs and of its
gradient, the independent references for forward mode and the Hessian-vector product."""
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


def central_jvp(model, x, state, lengths, tangents, eps):
    """(f(p + eps v) - f(p - eps v)) / 2 eps for f = (out, *state_n) of a recurrent module,
    along every tangent at once ({param key, "x", "<state>0": tangent}); the parameters are
    restored afterwards. -> [out_dot, *state_dot]."""
    saved = {k: p.copy() for k, p in model.params.items()}

    def shifted(sign):
        for k, p in model.params.items():
            p[...] = saved[k] + sign * eps * tangents[k]
        out, st_n = model.forward_state(x + sign * eps * tangents["x"],
                                        tuple(s + sign * eps * tangents[f"{n}0"] for n, s in
                                              zip(model.spec.state_names, state)), lengths)
        return [out, *st_n]
    plus, minus = shifted(1.0), shifted(-1.0)
    model.load_state_dict(saved)
    return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def central_hvp(model, x, state, lengths, loss, v, eps):
    """(∇L(θ + eps v) - ∇L(θ - eps v)) / 2 eps, ∇L from the module's own backward of
    loss.grad(out), keyed like model.grads; the parameters are restored afterwards."""
    saved = model.state_dict()

    def gradient(sign):
        model.load_state_dict({k: saved[k] + sign * eps * v[k] for k in saved})
        model.zero_grad()
        out, _ = model.forward_state(x, state, lengths)
        model.backward_state(loss.grad(out))
        return model.grad_dict()
    plus, minus = gradient(1.0), gradient(-1.0)
    model.load_state_dict(saved)
    return {k: (plus[k] - minus[k]) / (2 * eps) for k in plus}
