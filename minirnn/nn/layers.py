"""Linear, Embedding, Dropout: torch's layers (names, shapes, initialisation) on NumPy arrays.

Each layer keeps what its last forward needs and its backward accumulates into ``self.grads``
(until ``zero_grad``), exactly like the recurrent layers.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_fits, check_int, check_token_ids
from .module import Module


def _need_forward(layer, attr):
    if getattr(layer, attr) is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward(): run "
                           f"forward first, then backward with the gradient of its output")


class Linear(Module):
    """y = x W^T + b.   W (out, in), b (out,), both uniform in ±1/sqrt(in) as torch.

    backward:  dx = dy W,   dW += dy^T x,   db += sum dy   (over every leading axis)
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float64", seed=None):
        super().__init__(dtype, seed)
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        values = (self.in_features + 1) * self.out_features
        check_fits("in_features, out_features", 2 * values * self.dtype.itemsize,
                   f"{values} parameters and their gradients ({self.dtype.name})")
        bound = 1.0 / np.sqrt(in_features)       # torch: kaiming_uniform(a=sqrt(5)) == this bound
        self.add_param("weight", (out_features, in_features), bound)
        if bias:
            self.add_param("bias", (out_features,), bound)
        self._x = None

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params})"

    def forward(self, x):
        x = as_float_array("x", x, self.dtype)                       # (..., in)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}) "
                             f"(in_features={self.in_features}), got {x.shape}")
        self._x = x
        y = x @ self.params["weight"].T                              # (..., out)
        if "bias" in self.params:
            y = y + self.params["bias"]
        return y

    def backward(self, dy):
        _need_forward(self, "_x")
        x = self._x
        dy = as_float_array("dy", dy, self.dtype)                    # (..., out)
        want = x.shape[:-1] + (self.out_features,)
        if dy.shape != want:
            raise ValueError(f"dy: expected shape {want} (forward's output), got {dy.shape}")
        x2, dy2 = x.reshape(-1, self.in_features), dy.reshape(-1, self.out_features)  # (N, in), (N, out)
        self.grads["weight"] += dy2.T @ x2                           # (out, in)
        if "bias" in self.params:
            self.grads["bias"] += dy2.sum(axis=0)                    # (out,)
        return dy @ self.params["weight"]                            # (..., in)


class Embedding(Module):
    """y = W[idx].   W (num, dim) ~ N(0, 1) as torch; the padding row is zero and never learns.

    backward:  dW[idx] += dy   (a scatter-add: repeated ids sum their gradients)
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype="float64", seed=None):
        super().__init__(dtype, seed)
        self.num_embeddings = check_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        values = self.num_embeddings * self.embedding_dim      # the table, its gradient, the draw
        check_fits("num_embeddings, embedding_dim", values * (2 * self.dtype.itemsize + 8),
                   f"a ({num_embeddings}, {embedding_dim}) table and its gradient")
        if padding_idx is not None:
            if not isinstance(padding_idx, (int, np.integer)) or isinstance(padding_idx, bool) \
                    or not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx: expected None or an integer in "
                                 f"[-{num_embeddings}, {num_embeddings}), got {padding_idx!r}")
            padding_idx = int(padding_idx) % num_embeddings        # torch stores it non-negative
        self.padding_idx = padding_idx
        self.params["weight"] = self._init_rng.standard_normal(
            (num_embeddings, embedding_dim)).astype(self.dtype)      # (V, E)
        self.grads["weight"] = np.zeros((num_embeddings, embedding_dim), dtype=self.dtype)
        if padding_idx is not None:
            self.params["weight"][padding_idx] = 0.0
        self._idx = None

    def __repr__(self):
        return (f"Embedding({self.num_embeddings}, {self.embedding_dim}, "
                f"padding_idx={self.padding_idx})")

    def check_ids(self, idx, name="idx"):
        """Integer ids in [0, num_embeddings); anything else is refused, naming the culprit."""
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str (the argument's name in messages), got "
                            f"{type(name).__name__} {name!r}")
        return check_token_ids(name, idx, self.num_embeddings)

    def forward(self, idx):
        idx = self.check_ids(idx)                                    # (...)
        self._idx = idx
        return self.params["weight"][idx]                            # (..., E)

    def backward(self, dy):
        _need_forward(self, "_idx")
        dy = as_float_array("dy", dy, self.dtype)                    # (..., E)
        want = self._idx.shape + (self.embedding_dim,)
        if dy.shape != want:
            raise ValueError(f"dy: expected shape {want} (forward's output), got {dy.shape}")
        idx, dy2 = self._idx.ravel(), dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:                             # padding gets no gradient
            keep = idx != self.padding_idx
            idx, dy2 = idx[keep], dy2[keep]
        np.add.at(self.grads["weight"], idx, dy2)                    # (V, E)
        return None


class Dropout(Module):
    """Training: y = x * m / (1 - p), m ~ Bernoulli(1 - p) from the module's seeded rng.
    Eval: y = x.   backward: dx = dy * m / (1 - p)."""

    def __init__(self, p=0.5, dtype="float64", seed=None):
        super().__init__(dtype, seed)
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a dropout probability in [0, 1], got {p!r}")
        self.p = float(p)
        self._mask = None

    def __repr__(self):
        return f"Dropout(p={self.p})"

    def forward(self, x):
        x = as_float_array("x", x, self.dtype)
        if not self.training or self.p == 0.0:
            self._mask = None                                        # identity: nothing to keep
            return x
        keep = 1.0 - self.p
        mask = (self.rng.random(x.shape) < keep).astype(self.dtype)  # (same as x)
        self._mask = mask / keep if keep > 0 else mask               # p = 1: everything dropped
        return x * self._mask

    def backward(self, dy):
        dy = as_float_array("dy", dy, self.dtype)
        if self._mask is not None and dy.shape != self._mask.shape:
            raise ValueError(f"dy: expected shape {self._mask.shape} (forward's output), got "
                             f"{dy.shape}")
        return dy if self._mask is None else dy * self._mask


__all__ = ["Linear", "Embedding", "Dropout"]
