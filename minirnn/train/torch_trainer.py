"""The Engine's torch backend: a torch twin of the model (minirnn.interop.torch), a torch
optimiser with the minirnn optimiser's hyperparameters and state, autograd steps, and the way
back, so that a model trained on one backend continues on the other.
"""
from __future__ import annotations

import numpy as np
import torch

from ..interop.torch import copy_from_torch, to_torch
from .optim import SGD, Adam, state_arrays


# ---- optimiser state ---------------------------------------------------------------------
def _torch_params(model, torch_module):
    """The twin's parameters in the order of model.named_parameters(), matched by name."""
    tp = dict(torch_module.named_parameters())
    names = [n for n, _, _ in model.named_parameters()]
    missing = [n for n in names if n not in tp]
    if missing:
        raise KeyError(f"torch_module: has no parameters {missing} of the minirnn model")
    return names, [tp[n] for n in names]


def optimizer_to_torch(opt, torch_module):
    """A torch.optim.SGD / Adam over the twin's parameters with opt's hyperparameters and state."""
    names, params = _torch_params(opt.module, torch_module)
    if isinstance(opt, SGD):
        topt = torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                               weight_decay=opt.weight_decay, nesterov=opt.nesterov)
    elif isinstance(opt, Adam):
        topt = torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                weight_decay=opt.weight_decay)
    else:
        raise TypeError(f"opt: expected a minirnn SGD or Adam, got {type(opt).__name__}")
    for name, p in zip(names, params):
        slots = opt.state.get(name)
        if not slots:
            continue
        st = topt.state[p]
        for slot, value in slots.items():
            if slot == "step":          # torch keeps Adam's step as a float scalar tensor
                st["step"] = torch.tensor(float(value), dtype=torch.get_default_dtype())
            else:
                st[slot] = torch.as_tensor(np.array(value), device=p.device, dtype=p.dtype)
    return topt


def optimizer_from_torch(torch_opt, model, opt):
    """The torch optimiser's state and hyperparameters -> minirnn `opt` (over `model`), in place."""
    names = [n for n, _, _ in model.named_parameters()]
    params = [p for g in torch_opt.param_groups for p in g["params"]]
    if len(params) != len(names):
        raise ValueError(f"torch_opt: expected {len(names)} parameters (the model's), got {len(params)}")
    group = torch_opt.param_groups[0]
    opt.lr = float(group["lr"])
    if isinstance(opt, SGD):
        slots = ("momentum_buffer",)
    elif isinstance(opt, Adam):
        slots = ("exp_avg", "exp_avg_sq", "step")
    else:
        raise TypeError(f"opt: expected a minirnn SGD or Adam, got {type(opt).__name__}")
    state = {}
    for name, p, (_, mine, _) in zip(names, params, model.named_parameters()):
        st = torch_opt.state.get(p, {})
        if p.shape != mine.shape:
            raise ValueError(f"torch_opt: parameter {name!r} has shape {tuple(p.shape)}, "
                             f"the model's is {mine.shape}")
        got = {}
        for slot in slots:
            v = st.get(slot)
            if v is None:
                continue
            if slot == "step":
                got[slot] = np.array(int(float(v)), dtype=np.int64)
            else:
                got[slot] = v.detach().cpu().numpy().astype(mine.dtype)
        if got:
            state[name] = got
    opt.state = state
    opt.steps = max([int(s["step"]) for s in state.values() if "step" in s] or [opt.steps])
    return opt


# ---- the Engine's torch side --------------------------------------------------------------
def check_device(device):
    """Refuse a CUDA device torch cannot see, with what to do instead."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} was asked for, but torch sees no CUDA device "
                         f"(torch.cuda.is_available() is False); use 'cpu'")


class TorchTrainer:
    """What `minirnn.train.engine.Engine` does on backend 'torch' (the same interface as its
    KernelTrainer): the twin, a torch optimiser with the minirnn optimiser's hyperparameters
    and state, autograd steps, and the way back (sync)."""

    def __init__(self, model, optimizer, device, seed, loss_kwargs, clip, rng_state=None,
                 group=None):
        self.model, self.minirnn_optimizer = model, optimizer
        self.device, self.clip, self.group = device, clip, group
        self.ddp = None                              # the DDP wrapper, once join() made it
        self.class_weight = loss_kwargs.get("weight")
        self.ignore_index = loss_kwargs.get("ignore_index", -100)
        torch.manual_seed(seed)                      # dropout masks come from torch's RNG
        self.twin = to_torch(model, device)          # (its throwaway init draws too)
        self.optimizer = optimizer_to_torch(optimizer, self.twin)
        if rng_state is not None:                    # resumed: continue torch's dropout stream
            torch.set_rng_state(torch.tensor(rng_state, dtype=torch.uint8))
        self._stale = False                          # True: the twin holds newer weights

    def _loss(self, logits, targets):
        t = torch.as_tensor(np.asarray(targets), dtype=torch.int64, device=logits.device)
        w = None if self.class_weight is None else torch.as_tensor(
            self.class_weight, dtype=logits.dtype, device=logits.device)
        return torch.nn.functional.cross_entropy(logits, t, weight=w, ignore_index=self.ignore_index)

    def join(self):
        """Data-parallel: wrap the twin in DistributedDataParallel (which starts every rank from
        rank 0's weights and averages the gradients in backward); same optimiser state."""
        from torch.nn.parallel import DistributedDataParallel
        self.group.check_same(state_arrays(self.minirnn_optimizer), "optimizer state")
        dev = torch.device(self.device)
        self.ddp = DistributedDataParallel(
            self.twin, device_ids=[dev.index] if dev.type == "cuda" else None)
        self._stale = True                           # rank 0's weights may differ from ours

    def _net(self):
        """The module a training step runs: the DDP wrapper when data-parallel."""
        return self.twin if self.ddp is None else self.ddp

    def _update(self, loss, logits=None, targets=None):
        """backward, optional global-norm clip, optimiser step -> the loss as a float.
        Data-parallel, the loss is first scaled by this shard's share of the global mean."""
        self.optimizer.zero_grad()
        if self.group is not None:
            from .distributed import loss_weight
            w_r = loss_weight(targets, self.class_weight, self.ignore_index)
            value, scale = self.group.loss_share(loss.item() if w_r else 0.0, w_r)
            (loss * scale if w_r else logits.sum() * 0.0).backward()   # 0: contributes nothing
            if self.clip is not None:
                torch.nn.utils.clip_grad_norm_(self.twin.parameters(), self.clip)
            self.optimizer.step()
            self._stale = True
            return value
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.twin.parameters(), self.clip)
        self.optimizer.step()
        self._stale = True
        return float(loss.item())

    def _predict(self, *inputs):
        """The twin in eval mode, no autograd -> its outputs as they come (tensors)."""
        with torch.no_grad():
            try:
                return self.twin.eval()(*inputs)
            finally:
                self.twin.train()

    def classify_step(self, tokens, targets, lengths):
        self.twin.train()
        logits = self._net()(tokens, lengths)
        return self._update(self._loss(logits, targets), logits, targets)

    def classify(self, tokens, lengths):
        return self.to_numpy(self._predict(tokens, lengths))

    def lm_step(self, tokens, targets, state):
        self.twin.train()
        logits, new_state = self._net()(tokens, self.state_to_torch(state))
        flat = logits.reshape(-1, logits.shape[-1])
        loss = self._update(self._loss(flat, targets.reshape(-1)), flat, targets)
        return loss, self.to_numpy(new_state)

    def lm_truncated(self, tokens, targets, state, windows):
        """Engine.step_truncated on the twin: per window (w, s, e) a forward from the detached
        state entering step w, split where the next window starts (its entering state is
        taken there, detached), the loss of steps s..e, one update."""
        if self.group is not None:
            raise ValueError("distributed: step_truncated on backend 'torch' runs one window "
                             "in several forward calls, which DistributedDataParallel does not "
                             "allow; use backend 'numpy' or 'numba', or step_lm")
        self.twin.train()
        detach = lambda st: tuple(t.detach() for t in st) if isinstance(st, tuple) \
            else st.detach()                                                 # noqa: E731
        losses, entering = [], self.state_to_torch(state)
        for n, (w, s, e) in enumerate(windows):
            nxt = windows[n + 1][0] if n + 1 < len(windows) else e + 1
            bounds = [w] + ([nxt] if w < nxt <= e else []) + [e + 1]
            pieces, st, following = [], entering, entering
            for a, b in zip(bounds, bounds[1:]):
                logits, st = self.twin(tokens[:, a:b], st)
                pieces.append(logits)
                if b == nxt:
                    following = detach(st)
            flat = torch.cat(pieces, dim=1)[:, s - w:].reshape(-1, pieces[0].shape[-1])
            losses.append(self._update(self._loss(flat, targets[:, s:e + 1].reshape(-1)), flat,
                                       targets[:, s:e + 1]))
            entering = following
        return losses, self.to_numpy(entering)

    def lm_predict(self, tokens, state):
        logits, new_state = self._predict(tokens, self.state_to_torch(state))
        return self.to_numpy(logits), self.to_numpy(new_state)

    def state_to_torch(self, state):
        if state is None:
            return None
        dt = self.twin.fc.weight.dtype
        conv = lambda s: torch.as_tensor(np.asarray(s), dtype=dt, device=self.device)  # noqa: E731
        return tuple(conv(s) for s in state) if isinstance(state, (tuple, list)) else conv(state)

    @staticmethod
    def to_numpy(value):
        """A tensor or a tuple of them -> numpy; detaching is the truncated-BPTT cut."""
        conv = lambda s: s.detach().cpu().numpy()                     # noqa: E731
        return tuple(conv(s) for s in value) if isinstance(value, tuple) else conv(value)

    def sync(self):
        """The twin's weights and optimiser state -> the minirnn model and optimiser."""
        if self._stale:
            copy_from_torch(self.model, self.twin)
            optimizer_from_torch(self.optimizer, self.model, self.minirnn_optimizer)
            self._stale = False

    def rng_state(self):
        """torch's CPU RNG state (its dropout masks); None on CUDA, whose dropout uses the
        device's own generator."""
        if str(self.device).startswith("cuda"):
            return None
        return torch.get_rng_state().tolist()


__all__ = ["optimizer_to_torch", "optimizer_from_torch", "check_device", "TorchTrainer"]
