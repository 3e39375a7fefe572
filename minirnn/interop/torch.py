"""The torch training path: torch twins of minirnn models, and optimiser state both ways.

A twin has the SAME state_dict keys ("rnn.weight_ih_l0", "fc.bias") and the same forward
semantics (lengths -> packed sequences), in the model's dtype, on any device; torch autograd
and cuDNN do the work. Weights and optimiser state convert both ways, so a model trained on
one backend continues on the other.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._checks import check_keys
from ..nn.layers import Dropout, Embedding, Linear
from ..nn.module import Module
from ..nn.recurrent import RNNBase
from ..registry import get_cell
from ..train.models import LanguageModel, SequenceClassifier
from ..train.optim import SGD, Adam

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _run(rnn_cls, self, x, hx, lengths):
    """torch's nn.RNN/nn.LSTM forward; with lengths, through a packed sequence (output is
    zero past each sequence's end and h_n is taken at each sequence's last step)."""
    if lengths is None:
        return rnn_cls.forward(self, x, hx)
    T = x.shape[1 if self.batch_first else 0]
    lengths = torch.as_tensor(np.asarray(lengths), dtype=torch.int64).cpu()
    packed = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
    out, state = rnn_cls.forward(self, packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
    return out, state


class TorchRNN(nn.RNN):
    """nn.RNN whose forward also takes lengths, like minirnn.RNN."""

    def forward(self, x, hx=None, lengths=None):
        return _run(nn.RNN, self, x, hx, lengths)


class TorchLSTM(nn.LSTM):
    """nn.LSTM whose forward also takes lengths, like minirnn.LSTM."""

    def forward(self, x, hx=None, lengths=None):
        return _run(nn.LSTM, self, x, hx, lengths)


class TorchGRU(nn.GRU):
    """nn.GRU whose forward also takes lengths, like minirnn.GRU."""

    def forward(self, x, hx=None, lengths=None):
        return _run(nn.GRU, self, x, hx, lengths)


_WITH_LENGTHS = {"RNN": TorchRNN, "LSTM": TorchLSTM, "GRU": TorchGRU}


def torch_recurrent(cell, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                    dropout=0.0, bidirectional=False, proj_size=0, lengths_api=False):
    """The torch.nn module for a registry cell (CPU, float32 until moved), torch's init.
    lengths_api=True: the subclass whose forward also takes lengths (packed sequences)."""
    spec = get_cell(cell)
    cls = _WITH_LENGTHS[spec.module] if lengths_api else getattr(nn, spec.module)
    # dropout acts between layers: with one layer torch would only warn that it does nothing
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first,
              dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
              **spec.module_kwargs())
    if proj_size:
        kw["proj_size"] = proj_size
    return cls(input_size, hidden_size, **kw)


def _tokens(tokens, device):
    return torch.as_tensor(np.asarray(tokens), dtype=torch.int64, device=device)


class TorchSequenceClassifier(nn.Module):
    def __init__(self, model: SequenceClassifier):
        super().__init__()
        self.vocab_size = model.vocab_size
        self.embedding = _twin(model.embedding) if model.embedding is not None else None
        self.rnn = _twin(model.rnn)
        self.drop = nn.Dropout(model.drop.p)
        self.fc = _twin(model.fc)

    def forward(self, tokens, lengths=None):
        tokens = _tokens(tokens, self.fc.weight.device)
        if self.embedding is not None:
            x = self.embedding(tokens)
        else:
            x = nn.functional.one_hot(tokens, self.vocab_size).to(self.fc.weight.dtype)
        _, state = self.rnn(x, None, lengths)
        h_n = state[0] if isinstance(state, tuple) else state      # (L*D, B, H)
        D = 2 if self.rnn.bidirectional else 1
        feat = torch.cat(list(h_n[-D:]), dim=-1)                     # (B, D*H)
        return self.fc(self.drop(feat))


class TorchLanguageModel(nn.Module):
    def __init__(self, model: LanguageModel):
        super().__init__()
        self.embedding = _twin(model.embedding)
        self.rnn = _twin(model.rnn)
        self.drop = nn.Dropout(model.drop.p)
        self.fc = _twin(model.fc)

    def forward(self, tokens, state=None):
        """-> logits (B, T, V), new state (not detached: the caller cuts the graph)."""
        x = self.embedding(_tokens(tokens, self.fc.weight.device))
        out, new_state = self.rnn(x, state)
        return self.fc(self.drop(out)), new_state


def _twin(model):
    """The torch module (CPU, not yet typed) with the same structure; weights copied later."""
    if isinstance(model, Linear):
        return nn.Linear(model.in_features, model.out_features, bias="bias" in model.params)
    if isinstance(model, Embedding):
        return nn.Embedding(model.num_embeddings, model.embedding_dim, padding_idx=model.padding_idx)
    if isinstance(model, Dropout):
        return nn.Dropout(model.p)
    if isinstance(model, RNNBase):
        return torch_recurrent(model.spec, model.input_size, model.hidden_size,
                               num_layers=model.num_layers, bias=model.bias,
                               batch_first=model.batch_first, dropout=model.dropout,
                               bidirectional=model.bidirectional, proj_size=model.proj_size,
                               lengths_api=True)
    if isinstance(model, SequenceClassifier):
        return TorchSequenceClassifier(model)
    if isinstance(model, LanguageModel):
        return TorchLanguageModel(model)
    raise TypeError(f"model: expected a minirnn Linear, Embedding, Dropout, RNN, LSTM, GRU, "
                    f"SequenceClassifier or LanguageModel, got {type(model).__name__}")


def to_torch(model, device="cpu"):
    """A torch twin of `model` with the same keys and weights, in the model's dtype, on device."""
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a minirnn Module, got {type(model).__name__}")
    twin = _twin(model).to(device=device, dtype=_DTYPES[model.dtype.name])
    load_state_into_torch(twin, model.state_dict())
    twin.train(model.training)
    return twin


def load_state_into_torch(torch_module, state_dict):
    """Copy numpy arrays into a torch module (strict: same keys and shapes, else an error)."""
    own = torch_module.state_dict()
    check_keys("state_dict", own, state_dict.keys())
    for k, v in own.items():
        if tuple(np.shape(state_dict[k])) != tuple(v.shape):
            raise ValueError(f"state_dict[{k!r}]: expected shape {tuple(v.shape)}, "
                             f"got {tuple(np.shape(state_dict[k]))}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(torch.as_tensor(np.asarray(state_dict[k])))
    return torch_module


def copy_from_torch(model, torch_module):
    """Weights of a torch twin -> the minirnn model, in place (keys and shapes checked)."""
    model.load_state_dict({k: v for k, v in torch_module.state_dict().items()})
    return model


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
        from ..train.engine import _optimizer_arrays
        self.group.check_same(_optimizer_arrays(self.minirnn_optimizer), "optimizer state")
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
            from ..train.distributed import loss_weight
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


__all__ = ["to_torch", "copy_from_torch", "load_state_into_torch", "optimizer_to_torch",
           "optimizer_from_torch", "torch_recurrent", "TorchRNN", "TorchLSTM", "TorchGRU", "TorchSequenceClassifier",
           "TorchLanguageModel", "TorchTrainer", "check_device"]
