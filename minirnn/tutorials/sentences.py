"""sentences: a character RNN that learns three sentences by heart and completes them.

    'hey how are you', 'good i am fine', 'have a nice day', each followed by an end mark "\\n"
    x_t = one_hot(c_t);  h_t = tanh(W_ih x_t + W_hh h_{t-1} + b);  z_t = W h_t + b   (H = 12)
    loss = mean cross_entropy(z_t, c_{t+1}) over the real (unpadded) steps, Adam

The three sentences are one minibatch with lengths (the padded steps are ignored by the loss
through ignore_index). Completion is greedy: feed the prime, then append the most likely
character until the end mark. 'h' starts two sentences, so 'hey' and 'have' are only told apart
by the state after the second character.

`minirnn train sentences` writes DIR/model.npz (a LanguageModel with an identity embedding,
as hihell's: `minirnn step --checkpoint DIR/model.npz --text "good"`), metrics.json and
loss.png. One step sees the whole data set, so --epochs N means N steps (default 400);
--model picks the registry cell (default rnn_tanh).
"""
from __future__ import annotations

import numpy as np

SENTENCES = ("hey how are you", "good i am fine", "have a nice day")
END = "\n"
PRIMES = ("good", "hey", "have")
IGNORE = -100


def vocabulary(sentences=SENTENCES):
    itos = sorted(set("".join(sentences)) | {END})
    return {c: i for i, c in enumerate(itos)}, itos


def _batch(sentences, stoi):
    """inputs (T, B, V) one-hot, targets (T, B) with IGNORE past each end, lengths (B,)."""
    from .data import one_hot, pad_batch
    seqs = [np.array([stoi[c] for c in s + END]) for s in sentences]
    tokens, lengths = pad_batch([s[:-1] for s in seqs])                 # (B, T), (B,)
    targets = np.full(tokens.shape, IGNORE, dtype=np.int64)             # (B, T)
    for b, s in enumerate(seqs):
        targets[b, :len(s) - 1] = s[1:]
    return one_hot(tokens.T, len(stoi)), targets.T, lengths


def train(hidden_size=12, steps=400, lr=0.02, seed=0, backend="numpy", log=None, cell="rnn_tanh"):
    """Returns (rnn, head, stoi, itos, losses)."""
    from ..nn.layers import Linear
    from ..nn.losses import cross_entropy
    from ..nn.module import Module
    from ..nn import make_recurrent
    from ..train.optim import Adam
    stoi, itos = vocabulary()
    net = Module(seed=seed)
    rnn = net.add_module("rnn", make_recurrent(cell, len(itos), hidden_size, seed=seed,
                                               backend=backend))
    head = net.add_module("head", Linear(hidden_size, len(itos), seed=seed + 1))
    opt = Adam(net, lr=lr)
    inputs, targets, lengths = _batch(SENTENCES, stoi)
    T, B, V = inputs.shape
    losses = []
    for step in range(steps):
        out, _ = rnn(inputs, lengths=lengths)                           # (T, B, H)
        logits = head(out.reshape(T * B, hidden_size))                  # (T*B, V)
        loss, dlogits = cross_entropy(logits, targets.reshape(-1), ignore_index=IGNORE)
        losses.append(float(loss))
        if log and step % 50 == 0:
            log(f"step {step:3d}  loss {loss:.4f}")
        opt.zero_grad()
        rnn.backward(head.backward(dlogits).reshape(T, B, hidden_size), None)
        opt.step()
    return rnn, head, stoi, itos, losses


def complete(rnn, head, stoi, itos, prime, max_len=40):
    """Greedy completion of `prime` until the end mark (the end mark is not returned)."""
    from .data import one_hot
    if not prime:
        raise ValueError("prime: expected at least one character, got ''")
    unknown = sorted(set(prime) - set(stoi))
    if unknown:
        raise ValueError(f"prime: characters {unknown} are not in the vocabulary {''.join(itos)!r}")
    h, text, c = None, prime, None
    for ch in prime:                                                     # read the prime
        out, h = rnn(one_hot(np.array([[stoi[ch]]]), len(itos)), h)      # (1, 1, H)
    for _ in range(max_len):                                             # then write
        c = itos[int(head(out.reshape(1, -1)).argmax())]
        if c == END:
            break
        text += c
        out, h = rnn(one_hot(np.array([[stoi[c]]]), len(itos)), h)
    return text


def main(seed=0, backend="numpy", out="runs/sentences", quick=False, log=print, epochs=None,
         model=None, overwrite=False, threads=None):
    """`minirnn train sentences`: train, print the three completions; write DIR/model.npz,
    metrics.json, then loss.png (skipped with a note without matplotlib). out=None: no files."""
    from .. import _threads
    from ..cells import cell_name
    from ._run import prepare_out
    from .hihell import save_run
    cell = cell_name(model or "rnn_tanh")
    if out:
        prepare_out(out, overwrite, resumable=False)
    with _threads.limit(_threads.choose(threads, _threads.step_product(3, 12, cell))):
        rnn, head, stoi, itos, losses = train(seed=seed, backend=backend, log=log,
                                              steps=epochs or 400, cell=cell)
        samples = {p: complete(rnn, head, stoi, itos, p) for p in PRIMES}
    for p, s in samples.items():
        log(f"{p!r:8} -> {s!r}")
    result = {"task": "sentences", "model": cell, "samples": samples, "steps": len(losses),
              "final_loss": losses[-1],
              "correct": sorted(samples.values()) == sorted(SENTENCES),
              "loss_per_step": [[i + 1, v] for i, v in enumerate(losses)]}
    if out:
        config = {"task": "sentences", "model": cell, "seed": seed, "example_text": PRIMES[0]}
        save_run(out, rnn, head, itos, config, result, losses, log)
        log(f"wrote {out}/model.npz, metrics.json, loss.png")
    return {"samples": samples, "final_loss": losses[-1]}
