"""The numbers behind `minirnn.explore`: what is traced, the loss, the predictions, the
connectivity matrix, the saturation counts, and how they are packed into the page.

Everything shown comes from `minirnn.trace` (the engine's own forward and BPTT) except what is
derived here, each from the engine's numbers:
  predictions   softmax of the head (a Linear) applied to the traced output, top-k per step
  connectivity  C[t, s] = || d(u_t . out_t) / d x_s ||, one engine backward per output step t
                with d_out nonzero only at t (u_t: the head's weight row of the top prediction
                at t, or out_t / ||out_t|| without a head); unidirectional -> zero for s > t
  saturation    per bounded gate, layer, direction and unit: how many steps the gate is
                below 0.1 (left) / above 0.9 (right); sigmoid gates as they are, tanh gates
                (LSTM g, GRU n, Elman tanh a) mapped to [0, 1] by (v + 1) / 2; relu: none

Packing: every array is rounded ONCE to float32 (the page shows float32 numbers: the tests
compare them with np.float32 of the trace's, exactly; beyond float32's range a value shows
as +-Inf, and the page names the trace's first non-finite value), identical arrays are
stored once (an LSTM's `out` is its `h`, layer 1's `x` is layer 0's `out`), the bytes are split into four
byte planes (exponent bytes together compress well), deflated (zlib) and base64-encoded.
The page inflates them with the browser's DecompressionStream; `unpack` is the Python twin.
"""
from __future__ import annotations

import base64
import hashlib
import zlib
from types import SimpleNamespace

import numpy as np

IGNORE = -100                       # a target that adds nothing to the loss (cross_entropy's)
# the loss whose gradient `explore` and `minirnn step` show: "model" = the model's own loss
# where it has a head (else the sum), "sum" = the sum of every output (d_out = ones)
LOSSES = ("model", "sum")
LOSS_HELP = ("the loss the backward pass differentiates: model = the model's own loss where it "
             "has an output layer (cross-entropy of its predictions: the next token of a "
             "language model, the predicted class of a classifier, hihell's targets), else "
             "the sum of the outputs; sum = the sum of every output (d_out = ones)")
SUM_NOTE = "L = the sum of every output (d_out = ones)"
LEFT, RIGHT = 0.1, 0.9              # Karpathy et al.'s saturation thresholds


# ---- packing -------------------------------------------------------------------------------
def pack(arrays):
    """name -> array -> {"index": {name: [offset, rows, cols]}, "alias": {name: earlier name},
    "blob": base64(deflate(byte planes of the float32 values))}. Arrays are 1-D or 2-D."""
    index, alias, seen, parts, offset = {}, {}, {}, [], 0
    for name, a in arrays.items():
        with np.errstate(over="ignore"):           # beyond float32's range: +-Inf, as shown
            a32 = np.ascontiguousarray(a, dtype="<f4")
        a32 = a32.reshape(len(a32), -1) if a32.ndim != 1 else a32.reshape(1, -1)
        key = (a32.shape, hashlib.sha1(a32.tobytes()).hexdigest())
        if key in seen:                           # the same bytes: store them once
            alias[name] = seen[key]
            continue
        seen[key] = name
        index[name] = [offset, int(a32.shape[0]), int(a32.shape[1])]
        parts.append(a32.ravel())
        offset += a32.size
    raw = np.concatenate(parts) if parts else np.zeros(0, "<f4")
    planes = raw.view(np.uint8).reshape(-1, 4).T.tobytes()      # byte b of every value together
    blob = base64.b64encode(zlib.compress(planes, 9)).decode("ascii")
    return {"index": index, "alias": alias, "blob": blob}


def unpack(packed):
    """The inverse of pack: name -> float32 array (rows, cols), as the page decodes it."""
    planes = np.frombuffer(zlib.decompress(base64.b64decode(packed["blob"])), np.uint8)
    raw = planes.reshape(4, -1).T.copy().view("<f4").ravel()
    out = {name: raw[o:o + r * c].reshape(r, c) for name, (o, r, c) in packed["index"].items()}
    out.update({name: out[src] for name, src in packed["alias"].items()})
    return out


# ---- what is explored ------------------------------------------------------------------------
def prepare(model, x, tokens=None, head=None, vocab=None, labels=None, targets=None, hx=None):
    """Normalise the arguments of `explore` -> a namespace: rnn (the recurrent module), x_tm
    (T, I) time-major, kind ("lm" | "classifier" | "head" | "none"), W / head, names (of the
    head's outputs), tokens, ids, targets, hx (uniform state tuple with the batch axis)."""
    from ..nn.layers import Linear
    from ..nn.recurrent import RNNBase
    from ..nn.models import LanguageModel, SequenceClassifier
    sub = SimpleNamespace(ids=None, model=model)
    if isinstance(model, (LanguageModel, SequenceClassifier)):
        if head is not None:
            raise ValueError(f"head: a {type(model).__name__} uses its own fc as the head; "
                             f"expected None, got {type(head).__name__}")
        ids = np.asarray(x)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"x: expected integer token ids for a {type(model).__name__}, "
                            f"got dtype {ids.dtype}")
        ids = ids[0] if ids.ndim == 2 and ids.shape[0] == 1 else ids
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"x: expected one sequence of token ids, shape (T,) or (1, T) with "
                             f"T >= 1, got shape {np.asarray(x).shape}")
        sub.ids, sub.rnn, head = ids, model.rnn, model.fc
        sub.x_tm = model.embed(ids[None])[0]                          # (T, E) or one-hot (T, V)
        sub.kind = "lm" if isinstance(model, LanguageModel) else "classifier"
        names = vocab if sub.kind == "lm" else labels
        if tokens is None and vocab is not None:
            tokens = [vocab[i] for i in ids]
    elif isinstance(model, RNNBase):
        sub.rnn, names = model, vocab
        xa = np.asarray(x, dtype=model.dtype)
        if xa.ndim == 3:
            b_axis = 0 if model.batch_first else 1
            if xa.shape[b_axis] != 1:
                raise ValueError(f"x: expected ONE sequence (batch size 1), got batch "
                                 f"{xa.shape[b_axis]} in shape {xa.shape}")
            xa = xa[0] if model.batch_first else xa[:, 0]
        if xa.ndim != 2 or xa.shape[1] != model.input_size or xa.shape[0] == 0:
            raise ValueError(f"x: expected shape (T, {model.input_size}) or one sequence with "
                             f"a batch axis of size 1, got {np.asarray(x).shape}")
        sub.x_tm = xa
        sub.kind = "none" if head is None else "head"
    else:
        raise TypeError(f"model: expected a minirnn RNN/LSTM/GRU, SequenceClassifier or "
                        f"LanguageModel, got {type(model).__name__}")
    rnn = sub.rnn
    sub.T, sub.D, sub.P = len(sub.x_tm), rnn.num_directions, rnn.out_size
    sub.head, sub.W = head, None
    if head is not None:
        if not isinstance(head, Linear):
            raise TypeError(f"head: expected a minirnn Linear (out -> logits), got "
                            f"{type(head).__name__}")
        if head.in_features != sub.D * sub.P:
            raise ValueError(f"head: expected in_features = {sub.D * sub.P} (the model's output "
                             f"size), got {head.in_features}")
        sub.W = head.params["weight"]                                # (V, D*P)
    if names is not None:
        names = [str(n) for n in names]
        V = None if head is None else head.out_features
        if V is not None and len(names) != V:
            raise ValueError(f"{'labels' if sub.kind == 'classifier' else 'vocab'}: expected "
                             f"{V} names (one per head output), got {len(names)}")
    sub.names = names
    if tokens is not None:
        tokens = [str(t) for t in tokens]
        if len(tokens) != sub.T:
            raise ValueError(f"tokens: expected {sub.T} tokens (one per step), got {len(tokens)}")
    sub.tokens, sub.targets = tokens, targets
    sub.hx = None
    if hx is not None:                                # one sequence: give the states a batch axis
        st = rnn.state_tuple(hx)
        sub.hx = tuple(np.asarray(s)[:, None] if np.ndim(s) == 2 else np.asarray(s) for s in st)
    return sub


def to_layout(rnn, a_tm):
    """(T, n) time-major, one sequence -> the module's layout with a batch axis of 1."""
    return a_tm[None] if rnn.batch_first else a_tm[:, None]


def from_layout(rnn, a):
    return a[0] if rnn.batch_first else a[:, 0]


def _feature(sub, o):
    """A classifier's fc input from the outputs (T, D*P): h_n of the last layer, directions
    concatenated = the forward half at t = T-1 and the reverse half at t = 0."""
    P = sub.P
    return np.concatenate([o[-1, :P]] + ([o[0, P:]] if sub.D == 2 else []))


def make_loss(sub, which="model"):
    """(callable out -> (loss, d_out) for minirnn.trace, or "sum"; one sentence saying what
    it is). which: one of LOSSES."""
    from .._checks import check_choice
    from ..nn.losses import cross_entropy
    check_choice("loss", which, LOSSES)
    rnn, kind, T = sub.rnn, sub.kind, sub.T
    if which == "sum":
        return "sum", SUM_NOTE
    if kind == "none":
        return "sum", SUM_NOTE + ": no head to score them"
    if kind == "classifier":
        tgt = sub.targets
        if isinstance(tgt, str):
            if sub.names is None or tgt not in sub.names:
                raise ValueError(f"targets: expected a class label in {sub.names}, got {tgt!r}")
            tgt = sub.names.index(tgt)
        if tgt is not None and not (isinstance(tgt, (int, np.integer)) and 0 <= tgt < len(sub.W)):
            raise ValueError(f"targets: expected a class index 0..{len(sub.W) - 1}, a label or "
                             f"None, got {sub.targets!r}")

        def loss(out):
            o = from_layout(rnn, out)
            logits = sub.head.forward(_feature(sub, o)[None])            # (1, C)
            k = int(np.nan_to_num(logits[0]).argmax()) if tgt is None else int(tgt)
            sub.loss_class = k
            value, dlog = cross_entropy(logits, np.array([k]))
            d_feat, d = (dlog @ sub.W)[0], np.zeros_like(o)              # only h_n is scored
            d[-1, :sub.P] = d_feat[:sub.P]
            if sub.D == 2:
                d[0, sub.P:] = d_feat[sub.P:]
            return value, to_layout(rnn, d)
        what = ("the predicted class" if tgt is None
                else f"class {sub.names[tgt] if sub.names else tgt}")
        return loss, f"L = cross-entropy of the final prediction against {what}"
    if sub.targets is not None:
        tg = np.asarray(sub.targets)
        if tg.shape != (T,) or tg.dtype.kind not in "iu":
            raise ValueError(f"targets: expected {T} integer ids (one per step, {IGNORE} = "
                             f"none), got {tg.dtype} shape {tg.shape}")
        what = "the given targets"
    elif kind == "lm":
        tg = np.append(sub.ids[1:], IGNORE)          # the next token; the last step has none
        what = "the next token (the last step has none)"
    else:
        tg = None
        what = "its own top prediction at each step"

    def loss(out):
        o = from_layout(rnn, out)
        logits = sub.head.forward(o)                                  # (T, V)
        t = np.nan_to_num(logits).argmax(axis=1) if tg is None else tg
        if (t == IGNORE).all():                       # nothing to score (T = 1 language model)
            return 0.0, np.zeros_like(out)
        value, dlog = cross_entropy(logits, t, ignore_index=IGNORE)
        return value, to_layout(rnn, dlog @ sub.W)
    return loss, f"L = mean cross-entropy of each step's prediction against {what}"


def trace_loss(sub, which="model"):
    """-> (Trace, the sentence naming its loss, the loss value or None): the model's trace
    with the backward of make_loss(sub, which), the one loss both tools show."""
    from .tracing import trace
    loss, note = make_loss(sub, which)
    value = {}

    def scored(out):                                  # keep the loss value for the screen
        v, d = loss(out)
        value["loss"] = float(v)
        return v, d
    rnn = sub.rnn
    hx = None if sub.hx is None else rnn.state_value(sub.hx)
    tr = trace(rnn, to_layout(rnn, sub.x_tm), hx=hx, loss=scored if callable(loss) else loss)
    if not callable(loss):
        with np.errstate(all="ignore"):
            value["loss"] = float(np.sum(tr.out))
    v = value.get("loss", np.nan)
    return tr, note, (v if np.isfinite(v) else None)


def outputs(tr):
    """The model's output (T, D*P) of the one sequence, time-major, from the trace."""
    L = tr.num_layers - 1
    return np.concatenate([tr.series("out", L, d)[:, 0] for d in range(tr.num_directions)], -1)


def predictions(sub, tr, k):
    """-> (top-k ids (T, K) or None, their probabilities (T, K) or None, final (ids, probs) of
    a classifier or None, the class / token whose logit the connectivity follows per step)."""
    from ..nn.losses import log_softmax
    if sub.W is None:
        return None, None, None, None
    o = outputs(tr)
    with np.errstate(all="ignore"):
        if sub.kind == "classifier":
            final = np.exp(log_softmax(sub.head.forward(_feature(sub, o)[None]))[0])
            f_ids = np.argsort(-np.nan_to_num(final), kind="stable")[:k]
            final = (f_ids, final[f_ids])
            if sub.D == 2:             # a prefix prediction needs the reverse half: none per step
                ids = probs = None
            else:
                p = np.exp(log_softmax(sub.head.forward(o)))                    # (T, C)
                ids = np.argsort(-np.nan_to_num(p), axis=1, kind="stable")[:, :k]
                probs = np.take_along_axis(p, ids, 1)
            follow = np.full(sub.T, getattr(sub, "loss_class", int(f_ids[0])))
            return ids, probs, final, follow
        p = np.exp(log_softmax(sub.head.forward(o)))                            # (T, V)
    ids = np.argsort(-np.nan_to_num(p), axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(p, ids, 1), None, ids[:, 0]


def direction_rows(sub, tr, follow):
    """u_t (T, D*P): what the connectivity differentiates at each step."""
    if follow is not None:
        return sub.W[follow]
    o = outputs(tr)
    with np.errstate(all="ignore"):
        n = np.linalg.norm(o, axis=1, keepdims=True)
        return np.where(n > 0, o / np.where(n > 0, n, 1.0), 0.0)


def connectivity(rnn, x_tm, U, hx=None, chunk=32):
    """C (T, T): C[t, s] = || d(U[t] . out_t) / d x_s ||, by the engine's backward.

    One backward per output step t, `chunk` of them at once: the sequence is copied into a
    batch, copy j gets d_out nonzero only at its own step. A unidirectional model's output at
    t does not depend on later inputs, so a chunk only runs up to its last step (half the work).
    """
    T, DP = U.shape
    C = np.zeros((T, T))
    causal = rnn.num_directions == 1
    for a in range(0, T, chunk):
        b = min(a + chunk, T)
        n, end = b - a, (b if causal else T)
        xb = np.repeat(x_tm[:end, None, :], n, axis=1)                       # (end, n, I)
        state = None if hx is None else tuple(np.repeat(s[:, :1], n, axis=1) for s in hx)
        with np.errstate(all="ignore"):
            rnn.forward_state(xb.transpose(1, 0, 2) if rnn.batch_first else xb, state)
            d = np.zeros((end, n, DP), dtype=rnn.dtype)
            d[np.arange(a, b), np.arange(n)] = U[a:b]
            dx, _ = rnn.backward_state(d.transpose(1, 0, 2) if rnn.batch_first else d)
            dx = dx if rnn.batch_first else dx.transpose(1, 0, 2)            # (n, end, I)
            C[a:b, :end] = np.linalg.norm(dx, axis=-1)
    return C


def bounded_gates(spec):
    """[(gate, "sigmoid" | "tanh")]: the gates with a saturation plot (relu has no bound)."""
    out = []
    for g in spec.gate_names:
        if g in spec.sigmoid_gates:
            out.append((g, "sigmoid"))
        elif spec.nonlinearity in (None, "tanh"):    # LSTM g, GRU n and Elman tanh are tanh
            out.append((g, "tanh"))
    return out


def saturation(tr, gate, kind, layer, direction):
    """-> (left counts (H,), right counts (H,), valid steps) of one gate, layer and direction
    of batch element 0: steps with the gate (tanh: (v + 1) / 2) < 0.1, resp. > 0.9."""
    v = tr.series(gate, layer, direction)[:, 0][tr.valid[:, 0]]                # (n, H)
    v = (v + 1.0) / 2.0 if kind == "tanh" else v
    return (v < LEFT).sum(axis=0), (v > RIGHT).sum(axis=0), int(len(v))


class _Preserved:
    """Leave the modules as found: training mode and accumulated gradients are restored (the
    trace and the connectivity run backwards, which accumulate into grads)."""

    def __init__(self, *modules):
        self.modules = [m for m in modules if m is not None]

    def __enter__(self):
        self.modes = [m.training for m in self.modules]
        self.grads = [[g.copy() for _, _, g in m.named_parameters()] for m in self.modules]
        for m in self.modules:
            m.eval()                                  # dropout off: the numbers are the model's
        return self

    def __exit__(self, *exc):
        for m, mode, saved in zip(self.modules, self.modes, self.grads):
            m.train(mode)
            for (_, _, g), s in zip(m.named_parameters(), saved):
                g[...] = s
        return False


def one_blas_thread():
    """One BLAS thread inside: these products are small (one sequence, or a chunk of copies)
    and on a busy machine a second thread made them 10x slower here (1 s -> 12 s)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def preserved(sub):
    return _Preserved(sub.model, sub.head if sub.model is sub.rnn else None)


__all__ = ["pack", "unpack", "prepare", "make_loss", "trace_loss", "LOSSES", "LOSS_HELP",
           "predictions", "connectivity", "saturation", "bounded_gates", "outputs",
           "direction_rows", "LEFT", "RIGHT"]
