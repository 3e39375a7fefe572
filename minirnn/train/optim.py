"""SGD (momentum, Nesterov) and Adam with torch's exact update rules, and clip_grad_norm.

Optimisers update ``module.named_parameters()`` in place: (name, param, grad) triples.
Their state is keyed by parameter name, so it round-trips through checkpoints.
"""
from __future__ import annotations

import numpy as np

from .._checks import UnknownKey, check_bool, check_int, check_real


def clip_grad_norm(module, max_norm):
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), as torch's clip_grad_norm_.

    total_norm is the L2 norm of all gradients together; returns it (before clipping).
    """
    _check_module(module)
    check_real("max_norm", max_norm, low=0, low_open=True)
    grads = [g for _, _, g in module.named_parameters()]
    total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads)))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def _check_module(module):
    if not hasattr(module, "named_parameters"):
        raise TypeError(f"module: expected a minirnn Module, got {type(module).__name__}")
    return module


def _betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas: expected a pair (b1, b2), got {betas!r}")
    return tuple(check_real("betas", b, low=0, high=1) for b in betas)


# the checks of each hyperparameter, for the constructors and load_state_dict alike
HYPER_CHECKS = {
    "lr": lambda v: check_real("lr", v, low=0, low_open=True, why=" (the learning rate)"),
    "momentum": lambda v: check_real("momentum", v, low=0),
    "weight_decay": lambda v: check_real("weight_decay", v, low=0),
    "nesterov": lambda v: check_bool("nesterov", v),
    "betas": _betas,
    "eps": lambda v: check_real("eps", v, low=0),
}


class Optimizer:
    hyper: tuple = ()

    def __init__(self, module, lr):
        self.module, self.lr = _check_module(module), HYPER_CHECKS["lr"](lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def zero_grad(self):
        self.module.zero_grad()

    def state_dict(self):
        return {"type": type(self).__name__, "steps": self.steps,
                "hyper": {k: getattr(self, k) for k in ("lr",) + self.hyper},
                "state": {n: {k: v.copy() for k, v in s.items()} for n, s in self.state.items()}}

    def load_state_dict(self, sd):
        if not isinstance(sd, dict):
            raise TypeError(f"sd: expected the dict that state_dict() returns, got "
                            f"{type(sd).__name__}")
        if sd.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state: expected type {type(self).__name__}, got {sd.get('type')!r}")
        for key, kind in (("steps", None), ("hyper", dict), ("state", dict)):
            if key not in sd or (kind is not None and not isinstance(sd[key], kind)):
                raise TypeError(f"sd[{key!r}]: expected {'a dict' if kind else 'an int'} as "
                                f"state_dict() gives, got {type(sd.get(key)).__name__}")
        shapes = {n: p.shape for n, p, _ in self.module.named_parameters()}
        unknown = set(sd["state"]) - set(shapes)
        if unknown:
            raise UnknownKey(f"optimizer state: entries for unknown parameters {sorted(unknown)}")
        for n, slots in sd["state"].items():
            _check_slots(n, slots, shapes[n])
        hyper = {k: HYPER_CHECKS[k](v) for k, v in sd["hyper"].items()
                 if k in ("lr",) + self.hyper}
        if len(hyper) != len(sd["hyper"]):
            raise UnknownKey(f"sd['hyper']: expected some of {('lr',) + self.hyper}, got "
                             f"{sorted(sd['hyper'])}")
        steps = check_int("steps", sd["steps"], low=0)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.steps = steps
        self.state = {n: {k: np.array(v, copy=True) for k, v in s.items()} for n, s in sd["state"].items()}
        return self


def _check_slots(name, slots, shape):
    """One parameter's optimiser state: arrays of the parameter's shape (a step count: 0-d)."""
    if not isinstance(slots, dict):
        raise TypeError(f"sd['state'][{name!r}]: expected a dict of arrays, got "
                        f"{type(slots).__name__}")
    for slot, v in slots.items():
        arr = np.asarray(v) if isinstance(v, (np.ndarray, int, float, np.number)) else None
        if arr is None or arr.dtype.kind not in "iuf" or arr.shape not in (shape, ()):
            raise ValueError(f"sd['state'][{name!r}][{slot!r}]: expected a numeric array of "
                             f"shape {shape} (or a 0-d count), got {type(v).__name__}"
                             + ("" if arr is None else f" of shape {arr.shape}, {arr.dtype}"))


class SGD(Optimizer):
    """v = mu v + (g + wd p);  p -= lr v   (Nesterov: p -= lr (g + mu v)); torch's dampening = 0."""
    hyper = ("momentum", "weight_decay", "nesterov")

    def __init__(self, module, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(module, lr)
        momentum, weight_decay = HYPER_CHECKS["momentum"](momentum), \
            HYPER_CHECKS["weight_decay"](weight_decay)
        if HYPER_CHECKS["nesterov"](nesterov) and momentum <= 0:
            raise ValueError("nesterov: needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, bool(nesterov)

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
        self.betas, self.eps, self.weight_decay = _betas(betas), HYPER_CHECKS["eps"](eps), \
            HYPER_CHECKS["weight_decay"](weight_decay)

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
