"""Losses on a model's outputs for the second-order products (minirnn.grad.hvp, gnvp).

A loss here is any object with three methods of the output ``out`` (the model's user layout):

    value(out) -> float          L(out)
    grad(out) -> array           ∂L/∂out, out's shape
    hvp(out, v) -> array         (∂²L/∂out²) v, out's shape: the Hessian-vector product that the
                                 R-operator (HVP) and the Gauss-Newton product both need

Two are given: a mean squared error against a target, and a fixed linear projection (whose
Hessian is zero, so its HVP is the network's own curvature and its Gauss-Newton product is 0).
"""
from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_fits, to_numpy


def check_loss(loss):
    """A loss has value, grad and hvp (see the module docstring)."""
    missing = [m for m in ("value", "grad", "hvp") if not callable(getattr(loss, m, None))]
    if missing:
        raise TypeError(f"loss: expected an object with value(out), grad(out) and hvp(out, v) "
                        f"(e.g. minirnn.grad.MSELoss), got {type(loss).__name__} without "
                        f"{', '.join(missing)}")
    return loss


def _fixed(name, value):
    return as_float_array(name, value, np.float64)        # a copy that must fit first


def _output(name, value, like=None):
    """The model's output (or a direction `like` it): a floating-point array, kept in its
    dtype (the model's)."""
    try:
        arr = np.asarray(to_numpy(value))
    except (TypeError, ValueError) as e:                  # a ragged list, ...
        raise TypeError(f"{name}: expected a floating-point array, got {type(value).__name__} "
                        f"that numpy cannot read as one ({e})") from None
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array (the model's output), got "
                        f"dtype {arr.dtype}")
    if like is not None and arr.shape != like.shape:
        raise ValueError(f"{name}: expected the shape of out {like.shape}, got {arr.shape}")
    # a result of its size is computed from it: a zero-stride view may be far beyond memory
    check_fits(name, arr.size * arr.itemsize, f"an array of shape {arr.shape}")
    return arr


def _match(name, arr, out):
    out = _output("out", out)
    if arr.shape != np.shape(out):
        raise ValueError(f"{name}: expected the shape of the model's output {np.shape(out)}, "
                         f"got {arr.shape}")
    return arr.astype(np.asarray(out).dtype, copy=False)


class MSELoss:
    """L = mean((out - target)^2), as torch's nn.MSELoss: ∂L/∂out = 2 (out - target) / N,
    Hessian 2/N times the identity (N = out.size)."""

    def __init__(self, target):
        self.target = _fixed("target", target)

    def value(self, out):
        return float(np.mean((out - _match("target", self.target, out)) ** 2))

    def grad(self, out):
        return 2.0 * (out - _match("target", self.target, out)) / np.size(out)

    def hvp(self, out, v):
        out = _output("out", out)
        return 2.0 * _output("v", v, out) / np.size(out)


class LinearLoss:
    """L = sum(u * out), a fixed projection: ∂L/∂out = u, zero Hessian."""

    def __init__(self, u):
        self.u = _fixed("u", u)

    def value(self, out):
        return float(np.vdot(_match("u", self.u, out), out))

    def grad(self, out):
        return _match("u", self.u, out).copy()

    def hvp(self, out, v):
        return np.zeros_like(_output("v", v, _output("out", out)))


__all__ = ["MSELoss", "LinearLoss", "check_loss"]
