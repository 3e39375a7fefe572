"""hihell: teach an Elman RNN to read "hihell" one-hot and answer "ihello" (next character).

    x_t = one_hot("hihell"[t])                         (T=6, B=1, V=5)
    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)  minirnn.RNN(V, H)
    z_t = W h_t + b                                    Linear(H, V), the head
    loss = mean_t cross_entropy(z_t, "ihello"[t])      Adam, full-batch, until argmax == target

The smallest recurrent problem that needs memory: after "h" the answer is "i" the first time
and "e" the second, so the state must remember how far along it is. The step-through debugger
uses build_example() as its default example.

`minirnn train hihell` writes DIR/model.npz (the RNN and its head as a LanguageModel whose
embedding is the identity, so x_t stays one-hot: `minirnn step --checkpoint DIR/model.npz`
opens it), metrics.json and loss.png. One step sees the whole data set, so --epochs N means
at most N steps; --model picks the registry cell (default rnn_tanh).
"""
from __future__ import annotations

import numpy as np

INPUT, TARGET = "hihell", "ihello"
ITOS = ["h", "i", "e", "l", "o"]          # id -> char, the classic order
STOI = {c: i for i, c in enumerate(ITOS)}


def _model(hidden_size, seed, backend, cell="rnn_tanh"):
    from ..nn.layers import Linear
    from ..nn.module import Module
    from ..nn import make_recurrent
    net = Module(seed=seed)                 # a container so the optimiser sees both layers
    rnn = net.add_module("rnn", make_recurrent(cell, len(ITOS), hidden_size, seed=seed,
                                               backend=backend))
    head = net.add_module("head", Linear(hidden_size, len(ITOS), seed=seed + 1))
    return net, rnn, head


def _logits(rnn, head, inputs):
    out, _ = rnn(inputs)                                    # (T, 1, H)
    T, B, H = out.shape
    return head(out.reshape(T * B, H)), out.shape            # (T*1, V)


def train(hidden_size=8, steps=300, lr=0.05, seed=0, backend="numpy", log=None, cell="rnn_tanh"):
    """Train until the prediction is exactly TARGET (checked every step), at most `steps` steps.
    Returns (rnn, head, inputs, losses, predicted string)."""
    from ..nn.losses import cross_entropy
    from ..train.optim import Adam
    from .data import one_hot
    net, rnn, head = _model(hidden_size, seed, backend, cell)
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


def save_language_model(path, rnn, head, itos, config, cell):
    """rnn + head -> a checkpoint of a LanguageModel with an identity embedding (x_t = one-hot
    row of it), loadable by minirnn.train.engine.load_model and `minirnn step --checkpoint`."""
    from ..train.checkpoint import save_checkpoint
    from ..nn.models import LanguageModel
    V, H = len(itos), rnn.hidden_size
    lm = LanguageModel(V, V, H, cell=cell, num_layers=rnn.num_layers, dropout=0.0, seed=0)
    state = {"embedding.weight": np.eye(V)}
    state.update({f"rnn.{k}": v for k, v in rnn.state_dict().items()})
    state.update({f"fc.{k}": v for k, v in head.state_dict().items()})
    lm.load_state_dict(state)
    config = dict(config, engine={"model_class": "LanguageModel", "model_kwargs": lm.kwargs})
    return save_checkpoint(path, lm, config=config, vocab=list(itos))


def save_run(out, rnn, head, itos, config, result, losses, log):
    """A full-batch tutorial's files (hihell, sentences) in `out`: model.npz (as
    save_language_model), metrics.json (`result`), loss.png (skipped with a note without
    matplotlib). config: the checkpoint's, with its "task" and "model" (the cell)."""
    import os

    from .._io import write_json
    from ._run import try_plots
    from .metrics import plot_curves
    save_language_model(os.path.join(out, "model.npz"), rnn, head, itos, config, config["model"])
    write_json(os.path.join(out, "metrics.json"), result)
    try_plots(log, lambda: plot_curves(os.path.join(out, "loss.png"),
                                       {"train": (range(1, len(losses) + 1), losses)},
                                       xlabel="step (the whole data set)",
                                       ylabel="cross-entropy",
                                       title=f"{config['task']}: training loss"))


def main(seed=0, backend="numpy", out="runs/hihell", quick=False, log=print, epochs=None,
         model=None, overwrite=False, threads=None):
    """`minirnn train hihell`: train, print the predicted string; write DIR/model.npz,
    metrics.json, then loss.png (skipped with a note without matplotlib). out=None: no files.
    epochs: at most this many full-batch steps (default 300); model: the registry cell."""
    from .. import _threads
    from ..cells import cell_name
    from ._run import prepare_out
    cell = cell_name(model or "rnn_tanh")
    if out:
        prepare_out(out, overwrite, resumable=False)
    with _threads.limit(_threads.choose(threads, _threads.step_product(1, 8, cell))):
        rnn, head, inputs, losses, predicted = train(seed=seed, backend=backend, log=log,
                                                     steps=epochs or 300, cell=cell)
    log(f"input {INPUT!r} -> predicted {predicted!r} (target {TARGET!r}) after {len(losses)} steps")
    result = {"task": "hihell", "model": cell, "predicted": predicted, "target": TARGET,
              "correct": predicted == TARGET, "steps": len(losses), "final_loss": losses[-1],
              "loss_per_step": [[i + 1, v] for i, v in enumerate(losses)]}
    if out:
        config = {"task": "hihell", "model": cell, "seed": seed, "example_text": INPUT,
                  "target": TARGET}
        save_run(out, rnn, head, ITOS, config, result, losses, log)
        log(f"wrote {out}/model.npz, metrics.json, loss.png; step through it with: "
            f"minirnn step --checkpoint {out}/model.npz")
    return {"predicted": predicted, "steps": len(losses), "final_loss": losses[-1]}
