"""Engine: one training loop for the minirnn models on three backends.

    numpy / numba : forward, cross-entropy, the engine's own BPTT, clip, optimiser step
                    (KernelTrainer, below)
    torch         : the same model as a torch twin (same keys), autograd, torch.optim with the
                    same hyperparameters, on device "cpu" or "cuda"
                    (minirnn.train.torch_trainer.TorchTrainer)

Both trainers have one interface -- classify_step, classify, lm_step, lm_truncated,
lm_predict, sync -- and the Engine validates every input once, before it dispatches, so each
backend gives the same clear error for the same mistake.

Token layout: tokens are (B, T) integer ids, batch first, as the tutorials' data loaders and
torch's embedding-based models produce them; the models hand (B, T, E) to their recurrent
layer with batch_first=True. (The recurrent modules themselves default to time-major
(T, B, I), as torch's nn.RNN does.)

``engine.model`` is always the minirnn model; with torch, weights and optimiser state are
synced back before saving or predicting, so checkpoints are one format for every backend and
a run can continue on another backend. The model's own ``backend`` is never changed: the
engine runs it on the engine's backend inside each call (Module.using_backend).

Data-parallel (``distributed=``, a minirnn.train.distributed.Group): each rank steps on its
shard of the batch; the loss is the global one, the gradients are averaged over the ranks
before clipping and the optimiser step (numpy/numba: in place on model.grads; torch:
DistributedDataParallel), so every rank takes the same step (see distributed.py).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_lengths, check_token_ids, to_numpy
from ..cells import BACKENDS as KERNEL_BACKENDS
from ..nn.losses import cross_entropy
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from ..nn.models import MODELS, LanguageModel, SequenceClassifier
from .optim import SGD, Adam, clip_grad_norm, state_arrays

TRAIN_BACKENDS = KERNEL_BACKENDS + ("torch",)     # the kernel tiers, and torch autograd
OPTIMIZERS = ("adam", "sgd")


class KernelTrainer:
    """The Engine's steps on a kernel backend ("numpy" | "numba"): the model's own forward,
    cross-entropy, BPTT, global-norm clipping and the minirnn optimiser."""

    def __init__(self, model, optimizer, backend, loss_kwargs, clip, group=None):
        self.model, self.optimizer, self.backend = model, optimizer, backend
        self.loss_kwargs, self.clip, self.group = loss_kwargs, clip, group

    def join(self):
        """Data-parallel: every rank starts from rank 0's weights and the same optimiser state."""
        self.group.broadcast_((n, p) for n, p, _ in self.model.named_parameters())
        self.group.check_same(state_arrays(self.optimizer), "optimizer state")

    def _update(self, logits, targets, backward):
        loss, d_logits = cross_entropy(logits, targets, **self.loss_kwargs)
        if self.group is not None:               # this shard's share of the global mean loss
            from .distributed import loss_weight
            loss, scale = self.group.loss_share(loss, loss_weight(targets, **_weights(self)))
            if scale != 1.0:
                d_logits *= scale
        self.model.zero_grad()
        backward(d_logits)
        if self.group is not None:               # averaged in place, before clip and step
            self.group.all_reduce_grads((n, g) for n, _, g in self.model.named_parameters())
        if self.clip is not None:
            clip_grad_norm(self.model, self.clip)
        self.optimizer.step()
        return loss

    def classify_step(self, tokens, targets, lengths):
        with self.model.using_backend(self.backend):
            self.model.train()
            logits = self.model.forward(tokens, lengths)             # (B, C)
            return self._update(logits, targets, self.model.backward)

    def _inference(self, *inputs):
        """The model's forward in eval mode (no dropout), back to train mode afterwards."""
        with self.model.using_backend(self.backend):
            self.model.eval()
            try:
                return self.model.forward(*inputs)
            finally:
                self.model.train()

    def classify(self, tokens, lengths):
        return self._inference(tokens, lengths)

    def lm_step(self, tokens, targets, state):
        with self.model.using_backend(self.backend):
            self.model.train()
            logits, new_state = self.model.forward(tokens, state)    # (B, T, V)
            B, T, V = logits.shape

            def backward(d):
                self.model.backward(d.reshape(B, T, V))
            return self._update(logits.reshape(B * T, V), targets.reshape(-1), backward), new_state

    def lm_truncated(self, tokens, targets, state, windows):
        """Truncated BPTT over windows [(w, s, e)] (minirnn.grad.truncated.tbptt_windows): per
        window a forward from the state entering step w, the loss of steps s..e, BPTT back to
        w (the entering state is cut), an update. The next window's entering state is read
        from this window's record: values computed before the update, as step_lm carries."""
        from ..grad._common import states_in_record
        losses, entering, rnn = [], state, self.model.rnn
        with self.model.using_backend(self.backend):
            self.model.train()
            for n, (w, s, e) in enumerate(windows):
                logits, state_n = self.model.forward(tokens[:, w:e + 1], entering)  # (B, n, V)
                nxt = windows[n + 1][0] if n + 1 < len(windows) else e + 1
                if nxt > w:                      # else the next window starts where this did
                    entering = state_n if nxt == e + 1 else \
                        rnn.state_value(states_in_record(rnn, nxt - 1 - w))
                B, _, V = logits.shape

                def backward(d, shape=logits.shape, off=s - w):
                    full = np.zeros(shape, dtype=d.dtype)       # no loss before step s
                    full[:, off:] = d.reshape(B, -1, V)
                    self.model.backward(full)
                losses.append(self._update(logits[:, s - w:].reshape(-1, V),
                                           targets[:, s:e + 1].reshape(-1), backward))
        return losses, entering

    def lm_predict(self, tokens, state):
        return self._inference(tokens, state)

    def sync(self):
        """Nothing to bring back: the minirnn model and optimiser are the ones trained."""

    def rng_state(self):
        return None


def _weights(trainer):
    return dict(weight=trainer.loss_kwargs.get("weight"),
                ignore_index=trainer.loss_kwargs.get("ignore_index", -100))


def _engine_config(ck):
    from .checkpoint import CheckpointError
    cfg = (ck.config or {}).get("engine") if isinstance(ck.config, dict) else None
    if not cfg or cfg.get("model_class") not in MODELS:
        raise CheckpointError(f"checkpoint {ck.path!r}: no engine settings (config['engine'] "
                              f"with a model_class in {sorted(MODELS)}); was it written by "
                              f"Engine.save?")
    return cfg


def load_model(path, backend="numpy"):
    """The model of a checkpoint written by Engine.save, rebuilt from the constructor arguments
    it stores and loaded with its weights -> (model, Checkpoint)."""
    ck = path if hasattr(path, "state_dict") else load_checkpoint(path)
    cfg = _engine_config(ck)
    model = MODELS[cfg["model_class"]](**cfg["model_kwargs"], backend=backend)
    load_model_state(model, ck)
    return model, ck


class Engine:
    def __init__(self, model, optimizer="adam", lr=1e-3, momentum=0.0, clip=None,
                 class_weight=None, ignore_index=-100, backend="numba", device="cpu", seed=0,
                 weight_decay=0.0, nesterov=False, distributed=None):
        if not isinstance(model, (SequenceClassifier, LanguageModel)):
            raise TypeError(f"model: expected a minirnn.nn.models SequenceClassifier or "
                            f"LanguageModel, got {type(model).__name__}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
        if backend not in TRAIN_BACKENDS:
            raise ValueError(f"backend: expected one of {TRAIN_BACKENDS}, got {backend!r}")
        if clip is not None and not float(clip) > 0:
            raise ValueError(f"clip: expected None or a positive max norm, got {clip!r}")
        if device != "cpu" and backend != "torch":
            raise ValueError(f"device: only backend='torch' runs on {device!r}; "
                             f"backend {backend!r} runs on 'cpu'")
        if backend == "torch":
            from .torch_trainer import check_device
            check_device(device)
        if distributed is not None:              # a minirnn.train.distributed.Group
            if getattr(distributed, "backend", None) == "nccl" and backend != "torch":
                raise ValueError(f"distributed: an NCCL group all-reduces CUDA tensors; backend "
                                 f"{backend!r} keeps its gradients in NumPy arrays (use gloo)")
            if device == "cuda":                 # one GPU per local rank
                device = f"cuda:{distributed.local_rank}"
        self.distributed, self._joined = distributed, False
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
        if optimizer == "adam":
            self.optimizer = Adam(model, lr=lr, weight_decay=weight_decay)
        else:
            self.optimizer = SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                 nesterov=nesterov)
        self.steps = 0
        self._trainer = None                         # built on first use (torch: a twin)
        self._torch_rng = None                       # torch RNG state from a checkpoint
        self.hooks = []                              # [(every, fn)]: see add_hook

    @property
    def trainer(self):
        """The backend's trainer: KernelTrainer, or torch_trainer.TorchTrainer (built once)."""
        if self._trainer is None:
            loss_kwargs = dict(weight=self.class_weight, ignore_index=self.ignore_index)
            if self.backend == "torch":
                from .torch_trainer import TorchTrainer
                self._trainer = TorchTrainer(self.model, self.optimizer, self.device, self.seed,
                                             loss_kwargs, self.clip, self._torch_rng,
                                             group=self.distributed)
            else:
                self._trainer = KernelTrainer(self.model, self.optimizer, self.backend,
                                              loss_kwargs, self.clip, group=self.distributed)
        return self._trainer

    def _training(self):
        """The trainer for a step; data-parallel, the ranks join up at the first one (together:
        a prediction on rank 0 alone before it must not start a collective)."""
        if self.distributed is not None and not self._joined:
            self.trainer.join()
            self._joined = True
        return self.trainer

    def sync(self):
        """Bring the trainer's weights and optimiser state back into engine.model (torch)."""
        if self._trainer is not None:
            self._trainer.sync()
            self.optimizer.steps = self.steps
        return self.model

    def add_hook(self, fn, every=1):
        """Call fn(engine) after every `every`-th optimiser step: a training-time readout, e.g.
        minirnn.grad.LyapunovReadout (the largest Lyapunov exponent every N steps) -> fn."""
        from .._checks import check_int
        if not callable(fn):
            raise TypeError(f"fn: expected a callable fn(engine), got {type(fn).__name__}")
        self.hooks.append((check_int("every", every), fn))
        return fn

    def _count_steps(self, n):
        """n more optimiser steps; then each hook whose period was crossed runs once (a
        truncated stretch takes several steps in one call: its hooks run after it)."""
        before, self.steps = self.steps, self.steps + n
        for every, fn in self.hooks:
            if self.steps // every > before // every:
                fn(self)

    def _check(self, cls, what):
        if not isinstance(self.model, cls):
            raise TypeError(f"{what}: needs a {cls.__name__}, the engine holds a "
                            f"{type(self.model).__name__}")

    # ---- validation, once, before any backend sees the data --------------------------------
    def _tokens(self, tokens):
        t = check_token_ids("tokens", tokens, self.model.vocab_size)
        if t.ndim != 2 or 0 in t.shape:
            raise ValueError(f"tokens: expected integer ids of shape (B, T) (batch first, B, T "
                             f">= 1), got shape {t.shape}")
        return t

    def _classes(self, targets, B):
        t = to_numpy(targets)
        if t.shape != (B,):
            raise ValueError(f"targets: expected one class id per sequence, shape ({B},), "
                             f"got shape {t.shape}")
        return check_token_ids("targets", t, self.model.num_classes)

    def _lm_targets(self, targets, shape):
        t = to_numpy(targets)
        if t.shape != shape:
            raise ValueError(f"targets: expected shape {shape} (one next token per input), got {t.shape}")
        if t.dtype.kind not in "iu":
            raise TypeError(f"targets: expected integer token ids, got dtype {t.dtype}")
        return t.astype(np.int64)

    def _lengths(self, lengths, tokens):
        B, T = tokens.shape
        return None if lengths is None else check_lengths(lengths, B, T)

    # ---- classifier ----------------------------------------------------------------------------
    def step(self, inputs, targets, lengths=None):
        """One step on a batch: tokens (B, T), targets (B,) class ids, lengths (B,) -> loss."""
        self._check(SequenceClassifier, "step")
        tokens = self._tokens(inputs)
        targets = self._classes(targets, tokens.shape[0])
        loss = self._training().classify_step(tokens, targets, self._lengths(lengths, tokens))
        self._count_steps(1)
        return loss

    def predict(self, inputs, lengths=None):
        """tokens (B, T), lengths -> logits (B, C) as numpy, in eval mode (no dropout)."""
        self._check(SequenceClassifier, "predict")
        tokens = self._tokens(inputs)
        self.sync()                                  # engine.model mirrors the trainer
        return self.trainer.classify(tokens, self._lengths(lengths, tokens))

    # ---- language model ------------------------------------------------------------------------
    def step_lm(self, inputs, targets, state=None):
        """Truncated BPTT on one chunk: tokens (B, T), targets (B, T), state from the previous
        chunk or None -> (loss, new state). The state carries values, never gradients."""
        self._check(LanguageModel, "step_lm")
        tokens = self._tokens(inputs)
        targets = self._lm_targets(targets, tokens.shape)
        loss, new_state = self._training().lm_step(tokens, targets, state)
        self._count_steps(1)
        return loss, new_state

    def step_truncated(self, inputs, targets, k1, k2=None, state=None):
        """Truncated BPTT (k1, k2) along a stretch of a stream: tokens (B, T), targets (B, T),
        the state entering it (None: zeros) -> (losses, one per update; the state after it).
        Every k1 steps one update on the losses of those steps, backpropagated through the last
        k2 steps (k2 >= k1, default k1; the schedule: minirnn.grad.truncated). k1 = k2 = T is
        one step_lm; windows do not reach back before the call (the entering state is cut)."""
        from ..grad.truncated import tbptt_windows
        self._check(LanguageModel, "step_truncated")
        tokens = self._tokens(inputs)
        targets = self._lm_targets(targets, tokens.shape)
        windows = tbptt_windows(tokens.shape[1], k1, k2)          # refuses bad k1, k2
        losses, new_state = self._training().lm_truncated(tokens, targets, state, windows)
        self._count_steps(len(losses))
        return losses, new_state

    def predict_lm(self, inputs, state=None):
        """tokens (B, T), state -> (logits (B, T, V) numpy, new state), eval mode."""
        self._check(LanguageModel, "predict_lm")
        tokens = self._tokens(inputs)
        self.sync()
        return self.trainer.lm_predict(tokens, state)

    def _torch_rng_state(self):
        """torch's CPU RNG state (its dropout masks) once the torch side has run, else None:
        saved so that a run resumed on torch draws the same masks as one that never stopped."""
        if str(self.device).startswith("cuda"):
            return None                              # CUDA dropout uses the device's own RNG
        state = None if self._trainer is None else self._trainer.rng_state()
        return self._torch_rng if state is None else state   # not run on torch: keep the loaded one

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
            "rng_states": {p: m.rng.bit_generator.state for p, m in self.model.modules()},
            "torch_rng_state": self._torch_rng_state(),
            "world_size": 1 if self.distributed is None else self.distributed.world_size,
            "dist_backend": None if self.distributed is None else self.distributed.backend,
        }
        return save_checkpoint(path, self.model, opt, config=config, vocab=vocab, labels=labels,
                               step=self.steps if step is None else step, extra=extra)

    @classmethod
    def load(cls, path, backend="numba", device="cpu", distributed=None):
        """Rebuild model and optimiser from a checkpoint written by Engine.save; training goes on
        exactly where it stopped (same weights, optimiser moments, step count, dropout RNGs)."""
        model, ck = load_model(path, backend="numpy" if backend == "torch" else backend)
        cfg = _engine_config(ck)
        for p, m in model.modules():
            if p in cfg.get("rng_states", {}):
                m.rng.bit_generator.state = cfg["rng_states"][p]
        engine = cls(model, optimizer=cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
                     clip=cfg["clip"], class_weight=cfg["class_weight"],
                     ignore_index=cfg["ignore_index"], backend=backend, device=device,
                     seed=cfg["seed"], weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"],
                     distributed=distributed)
        if ck.optimizer_state is not None:
            engine.optimizer.load_state_dict(ck.optimizer_state)
        engine.steps = int(cfg.get("steps", ck.step))
        engine._torch_rng = cfg.get("torch_rng_state")
        engine.checkpoint = ck
        return engine


__all__ = ["Engine", "KernelTrainer", "load_model", "TRAIN_BACKENDS", "OPTIMIZERS"]
