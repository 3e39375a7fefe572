"""Engine: one training loop for the minirnn models on three backends.

    numpy / numba : forward, cross-entropy, the engine's own BPTT, clip, optimiser step
    torch         : the same model as a torch twin (same keys), autograd, torch.optim with the
                    same hyperparameters, on device "cpu" or "cuda"

``engine.model`` is always the minirnn model; with torch, weights and optimiser state are
synced back before saving or predicting, so checkpoints are one format for every backend and
a run can continue on another backend.
"""
from __future__ import annotations

import numpy as np

from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .models import MODELS, LanguageModel, SequenceClassifier
from .nn.losses import cross_entropy
from .optim import SGD, Adam, clip_grad_norm

BACKENDS = ("numba", "numpy", "torch")
OPTIMIZERS = ("adam", "sgd")


def _modules(module, prefix=""):
    """(path, module) for a module and all its children: their dropout RNGs are saved."""
    yield prefix, module
    for name, child in module._children.items():
        yield from _modules(child, prefix + name + ".")


class Engine:
    def __init__(self, model, optimizer="adam", lr=1e-3, momentum=0.0, clip=None,
                 class_weight=None, ignore_index=-100, backend="numba", device="cpu", seed=0,
                 weight_decay=0.0, nesterov=False):
        if not isinstance(model, (SequenceClassifier, LanguageModel)):
            raise TypeError(f"model: expected a minirnn.models SequenceClassifier or "
                            f"LanguageModel, got {type(model).__name__}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if clip is not None and not float(clip) > 0:
            raise ValueError(f"clip: expected None or a positive max norm, got {clip!r}")
        if device != "cpu" and backend != "torch":
            raise ValueError(f"device: only backend='torch' runs on {device!r}; "
                             f"backend {backend!r} runs on 'cpu'")
        if backend == "torch":
            from .torch_backend import check_device
            check_device(device)
        self.model, self.backend, self.device, self.seed = model, backend, device, seed
        self.clip, self.ignore_index = (None if clip is None else float(clip)), ignore_index
        self.optimizer_name = optimizer
        if class_weight is not None:
            class_weight = np.asarray(class_weight, dtype=model.dtype)
            C = getattr(model, "num_classes", None) or model.vocab_size
            if class_weight.shape != (C,):
                raise ValueError(f"class_weight: expected one weight per class, shape ({C},), "
                                 f"got {class_weight.shape}")
        self.class_weight = class_weight
        if backend != "torch":
            model.backend = backend                  # the recurrent layer's kernels
        if optimizer == "adam":
            self.optimizer = Adam(model, lr=lr, weight_decay=weight_decay)
        else:
            self.optimizer = SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                 nesterov=nesterov)
        self.steps = 0
        self._torch_side = None                      # torch_backend.TorchTrainer, on first use
        self._stale = False                          # True: torch holds newer weights
        self._torch_rng = None                       # torch RNG state from a checkpoint

    # ---- the torch side ------------------------------------------------------------------
    def _torch(self):
        """The TorchTrainer (twin + torch optimiser), built on first use."""
        if self._torch_side is None:
            from .torch_backend import TorchTrainer
            self._torch_side = TorchTrainer(self.model, self.optimizer, self.device, self.seed,
                                            self._torch_rng)
        return self._torch_side

    def sync(self):
        """Copy torch's weights and optimiser state back into the minirnn model/optimiser."""
        if self._stale:
            self._torch_side.sync_to(self.model, self.optimizer)
            self.optimizer.steps = self.steps
            self._stale = False
        return self.model

    def _torch_step(self, logits, targets):
        tt = self._torch()
        loss = tt.update(tt.loss(logits, targets, self.class_weight, self.ignore_index), self.clip)
        self.steps += 1
        self._stale = True
        return loss

    # ---- the numpy side ---------------------------------------------------------------------
    def _update(self, logits, targets, backward):
        loss, d_logits = cross_entropy(logits, targets, self.class_weight, self.ignore_index)
        self.model.zero_grad()
        backward(d_logits)
        if self.clip is not None:
            clip_grad_norm(self.model, self.clip)
        self.optimizer.step()
        self.steps += 1
        return loss

    def _check(self, cls, what):
        if not isinstance(self.model, cls):
            raise TypeError(f"{what}: needs a {cls.__name__}, the engine holds a "
                            f"{type(self.model).__name__}")

    # ---- classifier ----------------------------------------------------------------------------
    def step(self, inputs, targets, lengths=None):
        """One step on a batch: tokens (B, T), targets (B,) class ids, lengths (B,) -> loss."""
        self._check(SequenceClassifier, "step")
        if self.backend == "torch":
            twin = self._torch().twin.train()
            return self._torch_step(twin(inputs, lengths), targets)
        self.model.train()
        logits = self.model.forward(inputs, lengths)                 # (B, C)
        return self._update(logits, targets, self.model.backward)

    def predict(self, inputs, lengths=None):
        """tokens (B, T), lengths -> logits (B, C) as numpy, in eval mode (no dropout)."""
        self._check(SequenceClassifier, "predict")
        if self.backend == "torch":
            tt = self._torch()
            self.sync()                              # engine.model mirrors the twin
            return tt.to_numpy(tt.predict(inputs, lengths))
        self.model.eval()
        try:
            return self.model.forward(inputs, lengths)
        finally:
            self.model.train()

    # ---- language model ------------------------------------------------------------------------
    def step_lm(self, inputs, targets, state=None):
        """Truncated BPTT on one chunk: tokens (B, T), targets (B, T), state from the previous
        chunk or None -> (loss, new state). The state carries values, never gradients."""
        self._check(LanguageModel, "step_lm")
        if self.backend == "torch":
            tt = self._torch()
            logits, new_state = tt.twin.train()(inputs, tt.state_to_torch(state))
            targets = self._lm_targets(targets, tuple(logits.shape[:2]))
            loss = self._torch_step(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            return loss, tt.to_numpy(new_state)
        self.model.train()
        logits, new_state = self.model.forward(inputs, state)        # (B, T, V)
        B, T, V = logits.shape
        targets = self._lm_targets(targets, (B, T))

        def backward(d):
            self.model.backward(d.reshape(B, T, V))
        return self._update(logits.reshape(B * T, V), targets.reshape(-1), backward), new_state

    def predict_lm(self, inputs, state=None):
        """tokens (B, T), state -> (logits (B, T, V) numpy, new state), eval mode."""
        self._check(LanguageModel, "predict_lm")
        if self.backend == "torch":
            tt = self._torch()
            self.sync()                              # engine.model mirrors the twin
            logits, new_state = tt.predict(inputs, tt.state_to_torch(state))
            return tt.to_numpy(logits), tt.to_numpy(new_state)
        self.model.eval()
        try:
            return self.model.forward(inputs, state)
        finally:
            self.model.train()

    @staticmethod
    def _lm_targets(targets, shape):
        from ._checks import to_numpy
        t = to_numpy(targets)
        if t.shape != shape:
            raise ValueError(f"targets: expected shape {shape} (one next token per input), got {t.shape}")
        return t

    def _torch_rng_state(self):
        """torch's CPU RNG state (its dropout masks) once the torch side has run, else None:
        saved so that a run resumed on torch draws the same masks as one that never stopped."""
        if str(self.device).startswith("cuda"):
            return None                              # CUDA dropout uses the device's own RNG
        if self._torch_side is None:                 # not run on torch since loading: keep it
            return self._torch_rng
        return self._torch_side.rng_state()

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self, path, config=None, vocab=None, labels=None, step=None, extra=None):
        """One .npz: weights, optimiser state, your config plus config['engine'] (model class,
        constructor kwargs, optimiser and loss settings, dropout RNG states) for Engine.load."""
        self.sync()
        config = dict(config or {})
        opt = self.optimizer
        config["engine"] = {
            "model_class": type(self.model).__name__, "model_kwargs": self.model.kwargs,
            "optimizer": self.optimizer_name, "lr": opt.lr,
            "momentum": getattr(opt, "momentum", 0.0), "nesterov": getattr(opt, "nesterov", False),
            "weight_decay": opt.weight_decay, "clip": self.clip,
            "class_weight": None if self.class_weight is None else self.class_weight.tolist(),
            "ignore_index": self.ignore_index, "seed": self.seed, "steps": self.steps,
            "rng_states": {p: m.rng.bit_generator.state for p, m in _modules(self.model)},
            "torch_rng_state": self._torch_rng_state(),
        }
        return save_checkpoint(path, self.model, opt, config=config, vocab=vocab, labels=labels,
                               step=self.steps if step is None else step, extra=extra)

    @classmethod
    def load(cls, path, backend="numba", device="cpu"):
        """Rebuild model and optimiser from a checkpoint written by Engine.save; training goes on
        exactly where it stopped (same weights, optimiser moments, step count, dropout RNGs)."""
        from .checkpoint import CheckpointError
        ck = load_checkpoint(path)
        cfg = (ck.config or {}).get("engine") if isinstance(ck.config, dict) else None
        if not cfg or cfg.get("model_class") not in MODELS:
            raise CheckpointError(f"checkpoint {ck.path!r}: no engine settings (config['engine'] "
                                  f"with a model_class in {sorted(MODELS)}); was it written by "
                                  f"Engine.save?")
        model = MODELS[cfg["model_class"]](**cfg["model_kwargs"],
                                           backend="numpy" if backend == "torch" else backend)
        load_model_state(model, ck)
        for p, m in _modules(model):
            if p in cfg.get("rng_states", {}):
                m.rng.bit_generator.state = cfg["rng_states"][p]
        engine = cls(model, optimizer=cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
                     clip=cfg["clip"], class_weight=cfg["class_weight"],
                     ignore_index=cfg["ignore_index"], backend=backend, device=device,
                     seed=cfg["seed"], weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
        if ck.optimizer_state is not None:
            engine.optimizer.load_state_dict(ck.optimizer_state)
        engine.steps = int(cfg.get("steps", ck.step))
        engine._torch_rng = cfg.get("torch_rng_state")
        engine.checkpoint = ck
        return engine


__all__ = ["Engine", "BACKENDS", "OPTIMIZERS"]
