"""SGD (momentum, Nesterov) and Adam with torch's exact update rules, and clip_grad_norm.

Optimisers update ``module.named_parameters()`` in place: (name, param, grad) triples.
Their state is keyed by parameter name, so it round-trips through checkpoints.
"""
from __future__ import annotations

import numpy as np


def clip_grad_norm(module, max_norm):
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), as torch's clip_grad_norm_.

    total_norm is the L2 norm of all gradients together; returns it (before clipping).
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float, np.number)) \
            or not np.isfinite(max_norm) or max_norm <= 0:
        raise ValueError(f"max_norm: expected a positive finite number, got {max_norm!r}")
    grads = [g for _, _, g in module.named_parameters()]
    total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads)))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


class Optimizer:
    hyper: tuple = ()

    def __init__(self, module, lr):
        if not hasattr(module, "named_parameters"):
            raise TypeError(f"module: expected a minirnn Module, got {type(module).__name__}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) \
                or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        self.module, self.lr = module, float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def zero_grad(self):
        self.module.zero_grad()

    def state_dict(self):
        return {"type": type(self).__name__, "steps": self.steps,
                "hyper": {k: getattr(self, k) for k in ("lr",) + self.hyper},
                "state": {n: {k: v.copy() for k, v in s.items()} for n, s in self.state.items()}}

    def load_state_dict(self, sd):
        if sd.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state: expected type {type(self).__name__}, got {sd.get('type')!r}")
        names = {n for n, _, _ in self.module.named_parameters()}
        unknown = set(sd["state"]) - names
        if unknown:
            raise KeyError(f"optimizer state: entries for unknown parameters {sorted(unknown)}")
        for k, v in sd["hyper"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.steps = int(sd["steps"])
        self.state = {n: {k: np.array(v, copy=True) for k, v in s.items()} for n, s in sd["state"].items()}
        return self


class SGD(Optimizer):
    """v = mu v + (g + wd p);  p -= lr v   (Nesterov: p -= lr (g + mu v)); torch's dampening = 0."""
    hyper = ("momentum", "weight_decay", "nesterov")

    def __init__(self, module, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(module, lr)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov: needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)

    def step(self):
        self.steps += 1
        for name, p, g in self.module.named_parameters():
            d = g + self.weight_decay * p if self.weight_decay else g.copy()
            if self.momentum:
                s = self.state.get(name)
                if s is None:                       # torch: the first buffer is the gradient itself
                    s = self.state[name] = {"momentum_buffer": d.copy()}
                else:
                    s["momentum_buffer"] *= self.momentum
                    s["momentum_buffer"] += d
                buf = s["momentum_buffer"]
                d = d + self.momentum * buf if self.nesterov else buf
            p -= self.lr * d


class Adam(Optimizer):
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr m_hat / (sqrt(v_hat) + eps)."""
    hyper = ("betas", "eps", "weight_decay")

    def __init__(self, module, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(module, lr)
        self.betas, self.eps, self.weight_decay = tuple(float(b) for b in betas), float(eps), float(weight_decay)

    def step(self):
        self.steps += 1
        b1, b2 = self.betas
        for name, p, g in self.module.named_parameters():
            if self.weight_decay:
                g = g + self.weight_decay * p
            s = self.state.setdefault(name, {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p),
                                             "step": np.zeros((), dtype=np.int64)})
            s["step"] += 1
            t = int(s["step"])
            s["exp_avg"] *= b1
            s["exp_avg"] += (1 - b1) * g
            s["exp_avg_sq"] *= b2
            s["exp_avg_sq"] += (1 - b2) * g * g
            # the same order of operations as torch's single-tensor Adam, for bit-close parity
            step_size = self.lr / (1 - b1 ** t)
            denom = np.sqrt(s["exp_avg_sq"]) / np.sqrt(1 - b2 ** t) + self.eps
            p -= step_size * s["exp_avg"] / denom


def state_arrays(opt):
    """(name, array) of an optimiser's state, in a fixed order (distributed runs compare them)."""
    return [(f"{n}/{k}", np.asarray(v)) for n, slots in sorted(opt.state.items())
            for k, v in sorted(slots.items())]


__all__ = ["state_arrays", "SGD", "Adam", "Optimizer", "clip_grad_norm"]
