"""Torch twins of minirnn models, and their weights both ways.

A twin has the SAME state_dict keys ("rnn.weight_ih_l0", "fc.bias") and the same forward
semantics (lengths -> packed sequences), in the model's dtype, on any device; torch autograd
and cuDNN do the work. The torch training path (minirnn.train.torch_trainer) stands on these,
and converts the optimiser state as well.
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
from ..cells import get_cell
from ..nn.models import LanguageModel, SequenceClassifier

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
    lengths_api=True: the subclass whose forward also takes lengths (packed sequences). A
    registered cell without a torch.nn class gets its torch_step run through time
    (minirnn.interop.torch_steps.StepRecurrent, which always takes lengths)."""
    spec = get_cell(cell)
    if spec.module is None:
        from .torch_steps import StepRecurrent
        return StepRecurrent(spec, input_size, hidden_size, num_layers, bias, batch_first,
                             dropout if num_layers > 1 else 0.0, bidirectional, proj_size)
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


__all__ = ["to_torch", "copy_from_torch", "load_state_into_torch", "torch_recurrent",
           "TorchRNN", "TorchLSTM", "TorchGRU", "TorchSequenceClassifier", "TorchLanguageModel"]
