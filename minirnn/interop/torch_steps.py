"""The torch twin of a registered cell that has no torch.nn class: its `torch_step`, run
through time in torch, layer by layer and direction by direction, with autograd.

    twin = StepRecurrent(spec, input_size, hidden_size, num_layers=2, bidirectional=True)
    out, h_n = twin(x, hx, lengths)          # torch's nn.RNN calling convention

It is written here in a few lines of torch on purpose, apart from minirnn's own stack walker
(minirnn.nn.stack): the parity of the two is only a check if the twin is an independent
implementation. Parameters carry minirnn's (and torch's) names, weight_ih_l0, ..._reverse, so
state dicts move both ways. Packed-sequence rules as minirnn's: past a sequence's end the
state is carried and the output is zero; the reverse direction runs each sequence from its
own last step.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..cells import get_cell


class StepRecurrent(nn.Module):
    """A multi-layer, optionally bidirectional recurrence of one registered cell's torch_step."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0):
        super().__init__()
        self.spec = get_cell(cell)
        self.spec.require("torch_step", "a torch twin")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.sizes = self.spec.state_sizes(hidden_size, proj_size)
        D, out = 2 if bidirectional else 1, proj_size or hidden_size
        bound = 1.0 / np.sqrt(hidden_size)
        for layer in range(num_layers):
            shapes = self.spec.param_shapes(input_size if layer == 0 else D * out, hidden_size,
                                            proj_size)
            for sfx in ("", "_reverse")[:D]:
                for name, shape in shapes.items():
                    if bias or not name.startswith("bias"):
                        p = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                        self.register_parameter(f"{name}_l{layer}{sfx}", p)

    def _params(self, layer, sfx):
        return {n: getattr(self, f"{n}_l{layer}{sfx}", None) for n in self.spec.param_names}

    def _run(self, x, state, params, valid):
        """One layer, one direction: x (T, B, I), state tuple of (B, size) -> out, state_T."""
        outs = []
        for t in range(x.shape[0]):
            new = self.spec.torch_step(x[t], state, params)
            v = valid[t][:, None]
            state = tuple(torch.where(v, n, s) for n, s in zip(new, state))
            outs.append(torch.where(v, new[0], torch.zeros_like(new[0])))
        return torch.stack(outs), state

    @staticmethod
    def _flip(x, lengths):
        """Reverse each sequence within its own length (padding stays where it is)."""
        T = x.shape[0]
        idx = [[(n - 1 - t) if t < n else t for t in range(T)] for n in lengths]
        index = torch.as_tensor(idx, device=x.device).T                  # (T, B)
        return x.gather(0, index[..., None].expand_as(x))

    def forward(self, x, hx=None, lengths=None):
        """x (T, B, I) ((B, T, I) with batch_first); hx: h0 or a tuple per state, each
        (L*D, B, size), None = zeros; lengths (B,) -> out, h_n (or the tuple of states)."""
        x = x.transpose(0, 1) if self.batch_first else x
        T, B = x.shape[:2]
        D = 2 if self.bidirectional else 1
        lengths = [T] * B if lengths is None else [int(n) for n in lengths]
        valid = torch.arange(T, device=x.device)[:, None] < torch.as_tensor(lengths,
                                                                            device=x.device)
        states = (hx,) if torch.is_tensor(hx) else hx
        if states is None:
            states = tuple(x.new_zeros(self.num_layers * D, B, s) for s in self.sizes)
        finals, layer_in = [], x
        for layer in range(self.num_layers):
            if layer and self.training and self.dropout:
                layer_in = nn.functional.dropout(layer_in, self.dropout)
            outs = []
            for d in range(D):
                k = layer * D + d
                seq = layer_in if d == 0 else self._flip(layer_in, lengths)
                out, st = self._run(seq, tuple(s[k] for s in states),
                                    self._params(layer, "_reverse" if d else ""), valid)
                outs.append(out if d == 0 else self._flip(out, lengths))
                finals.append(st)
            layer_in = torch.cat(outs, dim=-1)
        out = layer_in.transpose(0, 1) if self.batch_first else layer_in
        state_n = tuple(torch.stack([f[j] for f in finals]) for j in range(len(self.sizes)))
        return out, (state_n[0] if len(state_n) == 1 else state_n)


__all__ = ["StepRecurrent"]
