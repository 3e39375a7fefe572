"""Two composed models, each a Module whose keys are torch's: a sequence classifier and a
language model. Forward and backward run through the engine's own RNN/LSTM/GRU and its BPTT.

Shapes: B = batch, T = time, V = vocabulary, E = embedding, H = hidden, D = directions,
L = layers, C = classes.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_int
from .layers import Dropout, Embedding, Linear
from .module import Module
from .recurrent import make_recurrent


def _child_seeds(seed, n):
    """n independent integer seeds from one (None stays None: fresh entropy each)."""
    if seed is None:
        return [None] * n
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def _recurrent(cell, input_size, hidden_size, num_layers, dropout, bidirectional, dtype, seed,
               backend):
    import warnings
    with warnings.catch_warnings():
        # the models apply their own dropout after the recurrent layer, so a one-layer model
        # with dropout is meaningful here: torch's "no effect with one layer" does not apply
        warnings.filterwarnings("ignore", message="dropout=.* has no effect", category=UserWarning)
        return make_recurrent(cell, input_size, hidden_size, num_layers=num_layers,
                              batch_first=True, dropout=dropout, bidirectional=bidirectional,
                              dtype=dtype, seed=seed, backend=backend)


class _Composed(Module):
    """Shared plumbing: token checks, embedding or one-hot input, the backend switch."""

    def _tokens(self, tokens):
        tokens = self.embedding.check_ids(tokens, "tokens") if self.embedding is not None \
            else self._check_one_hot(tokens)
        if tokens.ndim != 2 or 0 in tokens.shape:
            raise ValueError(f"tokens: expected integer ids of shape (B, T) with B, T >= 1, "
                             f"got shape {tokens.shape}")
        return tokens

    def _check_one_hot(self, tokens):
        from .._checks import check_token_ids
        return check_token_ids("tokens", tokens, self.vocab_size)

    def embed(self, tokens):
        """tokens (B, T) -> the recurrent layer's input (B, T, E), or one-hot (B, T, V)."""
        if self.embedding is not None:
            return self.embedding.forward(tokens)                    # (B, T, E)
        return np.eye(self.vocab_size, dtype=self.dtype)[tokens]     # (B, T, V) one-hot

    @property
    def backend(self):
        return self.rnn.backend

    @backend.setter
    def backend(self, name):
        from ..functional.backends import get_backend
        get_backend(name)                                            # refuses an unknown one
        self.rnn.backend = name


class SequenceClassifier(_Composed):
    """tokens -> [embedding | one-hot] -> RNN/LSTM/GRU -> h_n of the last layer (directions
    concatenated) -> dropout -> linear -> logits (B, C)."""

    def __init__(self, vocab_size, num_classes, hidden_size, cell="lstm", num_layers=1,
                 embedding_dim=None, bidirectional=False, dropout=0.0, dtype="float64",
                 seed=None, backend="numpy"):
        super().__init__(dtype, seed)
        check_int("vocab_size", vocab_size)
        check_int("num_classes", num_classes)
        self.kwargs = dict(vocab_size=vocab_size, num_classes=num_classes, hidden_size=hidden_size,
                           cell=cell, num_layers=num_layers, embedding_dim=embedding_dim,
                           bidirectional=bidirectional, dropout=dropout,
                           dtype=self.dtype.name, seed=seed)
        self.config = self.kwargs        # constructor kwargs: Engine.save/load rebuild the model
        self.vocab_size, self.num_classes, self.cell = vocab_size, num_classes, cell
        s = _child_seeds(seed, 4)
        self.embedding = None
        if embedding_dim is not None:
            self.embedding = self.add_module("embedding", Embedding(vocab_size, embedding_dim,
                                                                    dtype=dtype, seed=s[0]))
        in_size = vocab_size if embedding_dim is None else embedding_dim
        self.rnn = self.add_module("rnn", _recurrent(cell, in_size, hidden_size, num_layers,
                                                     dropout, bidirectional, dtype, s[1], backend))
        self.drop = self.add_module("drop", Dropout(dropout, dtype=dtype, seed=s[2]))
        D = self.rnn.num_directions
        self.fc = self.add_module("fc", Linear(D * hidden_size, num_classes, dtype=dtype, seed=s[3]))
        self._shape = None

    def forward(self, tokens, lengths=None):
        """tokens (B, T) int, lengths (B,) or None -> logits (B, C)."""
        tokens = self._tokens(tokens)
        x = self.embed(tokens)                                      # (B, T, E)
        out, state = self.rnn.forward_state(x, None, lengths)
        h_n = state[0]                                               # (L*D, B, H)
        D = self.rnn.num_directions
        feat = np.concatenate(list(h_n[-D:]), axis=-1)               # (B, D*H) last layer
        self._shape = (out.shape, h_n.shape)
        return self.fc.forward(self.drop.forward(feat))              # (B, C)

    def backward(self, d_logits):
        """d_logits (B, C): accumulate every gradient (fc, RNN/LSTM/GRU by BPTT, embedding)."""
        if self._shape is None:
            raise RuntimeError("backward() called before forward()")
        out_shape, hn_shape = self._shape
        d_feat = self.drop.backward(self.fc.backward(d_logits))     # (B, D*H)
        D, H = self.rnn.num_directions, self.rnn.hidden_size
        d_hn = np.zeros(hn_shape, dtype=self.dtype)                  # (L*D, B, H)
        for d in range(D):                                           # only h_n reaches the loss
            d_hn[len(d_hn) - D + d] = d_feat[:, d * H:(d + 1) * H]
        d_out = np.zeros(out_shape, dtype=self.dtype)                # (B, T, D*H): unused outputs
        extra = (None,) * (len(self.rnn.spec.state_names) - 1)       # c_n does not reach the loss
        # one-hot input (no embedding) needs no gradient: skip the rnn's dx product
        dx, _ = self.rnn.backward_state(d_out, (d_hn, *extra),
                                        input_grad=self.embedding is not None)
        if self.embedding is not None:
            self.embedding.backward(dx)


class LanguageModel(_Composed):
    """tokens -> embedding -> RNN/LSTM/GRU (dropout between layers) -> dropout -> linear -> logits.

    Truncated BPTT: forward(tokens, state) continues from `state` (h_n or (h_n, c_n) of the
    previous chunk); backward sends no gradient into it, which is the cut.
    """

    def __init__(self, vocab_size, embedding_dim, hidden_size, cell="lstm", num_layers=2,
                 dropout=0.0, dtype="float64", seed=None, backend="numpy"):
        super().__init__(dtype, seed)
        check_int("vocab_size", vocab_size)
        self.kwargs = dict(vocab_size=vocab_size, embedding_dim=embedding_dim,
                           hidden_size=hidden_size, cell=cell, num_layers=num_layers,
                           dropout=dropout, dtype=self.dtype.name, seed=seed)
        self.config = self.kwargs        # constructor kwargs: Engine.save/load rebuild the model
        self.vocab_size, self.cell = vocab_size, cell
        s = _child_seeds(seed, 4)
        self.embedding = self.add_module("embedding", Embedding(vocab_size, embedding_dim,
                                                                dtype=dtype, seed=s[0]))
        self.rnn = self.add_module("rnn", _recurrent(cell, embedding_dim, hidden_size, num_layers,
                                                     dropout, False, dtype, s[1], backend))
        self.drop = self.add_module("drop", Dropout(dropout, dtype=dtype, seed=s[2]))
        self.fc = self.add_module("fc", Linear(hidden_size, vocab_size, dtype=dtype, seed=s[3]))

    def init_state(self, batch):
        """Zeros: (L, B, H), or a pair of them for the LSTM."""
        h = np.zeros((self.rnn.num_layers, batch, self.rnn.hidden_size), dtype=self.dtype)
        state = tuple(h.copy() for _ in self.rnn.spec.state_names)
        return state if len(state) > 1 else state[0]

    def forward(self, tokens, state=None):
        """tokens (B, T) int, state or None -> logits (B, T, V), new_state (copies)."""
        tokens = self._tokens(tokens)
        x = self.embedding.forward(tokens)                           # (B, T, E)
        out, new_state = self.rnn.forward(x, state)                  # (B, T, H)
        logits = self.fc.forward(self.drop.forward(out))             # (B, T, V)
        if isinstance(new_state, tuple):
            return logits, tuple(s.copy() for s in new_state)
        return logits, new_state.copy()

    def backward(self, d_logits):
        """d_logits (B, T, V); no gradient flows into the carried state (the truncation)."""
        d_out = self.drop.backward(self.fc.backward(d_logits))      # (B, T, H)
        dx, _ = self.rnn.backward(d_out)
        self.embedding.backward(dx)


MODELS = {"SequenceClassifier": SequenceClassifier, "LanguageModel": LanguageModel}

__all__ = ["SequenceClassifier", "LanguageModel", "MODELS"]
