"""hihell: teach an Elman RNN to read "hihell" one-hot and answer "ihello" (next character).

    x_t = one_hot("hihell"[t])                         (T=6, B=1, V=5)
    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)  minirnn.RNN(V, H)
    z_t = W h_t + b                                    Linear(H, V), the head
    loss = mean_t cross_entropy(z_t, "ihello"[t])      Adam, full-batch, until argmax == target

The smallest recurrent problem that needs memory: after "h" the answer is "i" the first time
and "e" the second, so the state must remember how far along it is. The step-through debugger
uses build_example() as its default example.
"""
from __future__ import annotations

import numpy as np

INPUT, TARGET = "hihell", "ihello"
ITOS = ["h", "i", "e", "l", "o"]          # id -> char, the classic order
STOI = {c: i for i, c in enumerate(ITOS)}


def _model(hidden_size, seed, backend):
    from ..nn.layers import Linear
    from ..nn.module import Module
    from ..nn.recurrent import RNN
    net = Module(seed=seed)                 # a container so the optimiser sees both layers
    rnn = net.add_module("rnn", RNN(len(ITOS), hidden_size, seed=seed, backend=backend))
    head = net.add_module("head", Linear(hidden_size, len(ITOS), seed=seed + 1))
    return net, rnn, head


def _logits(rnn, head, inputs):
    out, _ = rnn(inputs)                                    # (T, 1, H)
    T, B, H = out.shape
    return head(out.reshape(T * B, H)), out.shape            # (T*1, V)


def train(hidden_size=8, steps=300, lr=0.05, seed=0, backend="numpy", log=None):
    """Train until the prediction is exactly TARGET (checked every step), at most `steps` steps.
    Returns (rnn, head, inputs, losses, predicted string)."""
    from ..nn.losses import cross_entropy
    from ..train.optim import Adam
    from .data import one_hot
    net, rnn, head = _model(hidden_size, seed, backend)
    opt = Adam(net, lr=lr)
    inputs = one_hot(np.array([STOI[c] for c in INPUT])[:, None], len(ITOS))   # (T, 1, V)
    targets = np.array([STOI[c] for c in TARGET])                               # (T,)
    losses, predicted, stable = [], "", 0
    for step in range(steps):
        logits, shape = _logits(rnn, head, inputs)
        loss, dlogits = cross_entropy(logits, targets)
        predicted = "".join(ITOS[i] for i in logits.argmax(axis=1))
        losses.append(float(loss))
        if log and step % 20 == 0:
            log(f"step {step:3d}  loss {loss:.4f}  predicted {predicted!r}")
        # stop a few steps after the answer is right, so it is not right by a hair's breadth
        stable = stable + 1 if predicted == TARGET else 0
        if stable >= 10:
            break
        opt.zero_grad()
        d_out = head.backward(dlogits).reshape(shape)       # (T, 1, H)
        rnn.backward(d_out)
        opt.step()
    return rnn, head, inputs, losses, predicted


def build_example(seed=0, backend="numpy"):
    """The trained hihell model for the step-through debugger (trains in well under a second).

    Returns {"model": the minirnn.RNN layer, "head": the output Linear, "inputs": (T, 1, V)
    one-hot, "tokens": the characters fed at each step, "itos": id -> char}.
    """
    rnn, head, inputs, _, _ = train(seed=seed, backend=backend)
    return {"model": rnn, "head": head, "inputs": inputs, "tokens": list(INPUT),
            "itos": list(ITOS)}


def predict(rnn, head, inputs):
    logits, _ = _logits(rnn, head, inputs)
    return "".join(ITOS[i] for i in logits.argmax(axis=1))


def main(seed=0, backend="numpy", out=None, quick=False, log=print):
    """`minirnn train hihell`: train, print the predicted string, optionally plot the loss."""
    rnn, head, inputs, losses, predicted = train(seed=seed, backend=backend, log=log)
    log(f"input {INPUT!r} -> predicted {predicted!r} (target {TARGET!r}) after {len(losses)} steps")
    if out:
        from .metrics import plot_curves
        plot_curves(f"{out}/loss.png", {"train": (range(len(losses)), losses)}, xlabel="step",
                    title="hihell: training loss")
    return {"predicted": predicted, "steps": len(losses), "final_loss": losses[-1]}
