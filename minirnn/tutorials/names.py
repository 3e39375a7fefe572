"""names: surname -> language (18 languages), the PyTorch char-RNN tutorial, two ways.

1. The tutorial's from-scratch RNN ("tutorial-rnn"), one name at a time:
       combined_t = [x_t ; hidden_{t-1}]                 (57 + 128,)  x_t one-hot letter
       hidden_t   = i2h(combined_t)                      Linear, no nonlinearity (as the tutorial)
       output     = log_softmax(i2o(combined_{T-1}))     Linear, only the last step is scored
       loss = NLL(output, language);  SGD p -= 0.005 * grad, random language then random name
   Backward is our own BPTT loop over minirnn's Linear layers (each step re-runs the layer's
   forward so its backward sees that step's input).
2. A proper classifier ("lstm" / "rnn"): SequenceClassifier (one-hot chars -> LSTM -> Linear)
   trained by Engine on padded minibatches with lengths, Adam, class weights, early stopping on
   the validation accuracy; the best epoch is the checkpoint.

Both use the fixed stratified split of minirnn.tutorials.data.split_names (seed 0 unless told:
80/10/10 per language) and report test accuracy and macro accuracy (mean per-class recall).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .data import N_LETTERS, encode_name, load_names, one_hot, pad_batch, split_names
from .metrics import accuracy, confusion_matrix, macro_accuracy, per_class_recall

MODELS = ("lstm", "rnn", "tutorial-rnn")


# ---- 1. the tutorial's RNN ---------------------------------------------------------------
class TutorialRNN:
    def __init__(self, n_categories, hidden_size=128, seed=0):
        from ..nn.layers import Linear
        from ..nn.module import Module
        self.hidden_size, self.n_categories = hidden_size, n_categories
        self.net = Module(seed=seed)
        self.i2h = self.net.add_module("i2h", Linear(N_LETTERS + hidden_size, hidden_size, seed=seed))
        self.i2o = self.net.add_module("i2o", Linear(N_LETTERS + hidden_size, n_categories, seed=seed + 1))

    def forward(self, ids):
        """ids (T,) -> logits (C,) of the last step, and the combined inputs kept for backward."""
        x = one_hot(ids)                                             # (T, 57)
        hidden = np.zeros(self.hidden_size)                          # (128,)
        combined = []
        for t in range(len(ids)):
            combined.append(np.concatenate([x[t], hidden]))          # (57 + 128,)
            if t < len(ids) - 1:                                     # the last hidden is unused
                hidden = self.i2h(combined[-1][None])[0]
        return self.i2o(combined[-1][None])[0], combined

    def backward(self, d_logits, combined):
        """BPTT: d_logits (C,) at the last step, back through every i2h step."""
        V = N_LETTERS
        self.i2o.forward(combined[-1][None])
        dh = self.i2o.backward(d_logits[None])[0, V:]                # dL/dhidden_{T-2}
        for t in range(len(combined) - 2, -1, -1):
            self.i2h.forward(combined[t][None])                      # this step's input
            dh = self.i2h.backward(dh[None])[0, V:]                  # -> dL/dhidden_{t-1}

    def logits(self, ids):
        return self.forward(ids)[0]


def train_tutorial(names, labels, split, n_categories, steps=100_000, lr=0.005, seed=0,
                   hidden_size=128, log=None):
    from .._progress import progress
    from ..nn.losses import cross_entropy
    model = TutorialRNN(n_categories, hidden_size, seed)
    rng = np.random.default_rng(seed)
    by_class = [split["train"][labels[split["train"]] == c] for c in range(n_categories)]
    encoded = {}
    losses, running, curve = [], 0.0, []
    every = max(steps // 100, 1)
    for step in progress(range(1, steps + 1), desc="tutorial-rnn", mininterval=1.0, disable=log is None):
        c = int(rng.integers(n_categories))                          # random language,
        i = int(rng.choice(by_class[c]))                             # then a random name
        ids = encoded.setdefault(i, encode_name(names[i]))
        z, combined = model.forward(ids)
        loss, dz = cross_entropy(z[None], np.array([c]))             # log_softmax + NLL
        model.net.zero_grad()
        model.backward(dz[0], combined)
        for _, p, g in model.net.named_parameters():                 # plain SGD, as the tutorial
            p -= lr * g
        running += float(loss)
        if step % every == 0:
            curve.append((step, running / every))
            running = 0.0
    return model, curve


# ---- 2. the LSTM / RNN classifier --------------------------------------------------------
def class_weights(labels, n_categories, power=0.25):
    """(N / (C * n_c)) ** power: 1 = fully balanced, 0 = none. 0.25 lifts the small languages
    (macro accuracy) at little cost in accuracy; 0.5 cost ~3 points of accuracy in our runs."""
    counts = np.bincount(labels, minlength=n_categories).astype(np.float64)
    return (len(labels) / (n_categories * np.maximum(counts, 1))) ** power


def build_classifier(config):
    from ..train.models import SequenceClassifier
    return SequenceClassifier(N_LETTERS, config["num_classes"], config["hidden_size"],
                              cell=config["cell"], num_layers=config.get("num_layers", 1),
                              embedding_dim=config.get("embedding_dim"),
                              bidirectional=config.get("bidirectional", False),
                              dropout=config.get("dropout", 0.0),
                              seed=config.get("seed", 0), backend=config.get("backend", "numpy"))


def batches(indices, encoded, labels, batch_size, rng=None):
    if rng is not None:
        indices = rng.permutation(indices)
    for s in range(0, len(indices), batch_size):
        idx = indices[s:s + batch_size]
        tokens, lengths = pad_batch([encoded[i] for i in idx])      # (B, T), (B,)
        yield tokens, lengths, labels[idx]


def predict_classes(engine, indices, encoded, labels, batch_size=512):
    preds = [np.asarray(engine.predict(tok, lengths=ln)).argmax(axis=1)
             for tok, ln, _ in batches(indices, encoded, labels, batch_size)]
    return np.concatenate(preds)


def train_classifier(names, labels, split, cats, cell="lstm", hidden_size=128, epochs=20,
                     batch_size=64, lr=2e-3, patience=4, weight_power=0.25, bidirectional=False,
                     embedding_dim=None, dropout=0.0, seed=0, backend="numpy", device="cpu",
                     ckpt=None, log=None):
    """Returns (engine of the best epoch, loss curves, seconds spent training)."""
    from .._progress import progress
    from ..train.engine import Engine
    config = {"task": "names", "model": "rnn" if cell.startswith("rnn") else cell, "cell": cell, "num_classes": len(cats),
              "hidden_size": hidden_size, "bidirectional": bidirectional,
              "embedding_dim": embedding_dim, "dropout": dropout, "seed": seed, "split_seed": seed}
    model = build_classifier(dict(config, backend="numpy" if backend == "torch" else backend))
    w = class_weights(labels[split["train"]], len(cats), weight_power) if weight_power else None
    engine = Engine(model, optimizer="adam", lr=lr, class_weight=w, backend=backend,
                    device=device, seed=seed)
    encoded = [encode_name(n) for n in names]
    rng = np.random.default_rng(seed)
    curves = {"train": ([], []), "validation error": ([], [])}
    best, bad, seconds = -1.0, 0, 0.0
    n_batches = -(-len(split["train"]) // batch_size)
    for epoch in range(1, epochs + 1):
        t0, total = time.perf_counter(), 0.0
        bar = progress(batches(split["train"], encoded, labels, batch_size, rng), total=n_batches,
                       desc=f"epoch {epoch}/{epochs}", leave=False, disable=log is None)
        for tokens, lengths, y in bar:
            total += float(engine.step(tokens, y, lengths=lengths))
        seconds += time.perf_counter() - t0                       # training time only
        val = accuracy(labels[split["val"]], predict_classes(engine, split["val"], encoded, labels))
        curves["train"][0].append(epoch)
        curves["train"][1].append(total / n_batches)
        curves["validation error"][0].append(epoch)
        curves["validation error"][1].append(1.0 - val)
        if log:
            log(f"epoch {epoch:2d}  train loss {total / n_batches:.4f}  val accuracy {val:.4f}")
        if val > best:
            best, bad = val, 0
            engine.save(ckpt, config=config, vocab=list(_alphabet()), labels=list(cats), step=epoch)
        else:
            bad += 1
            if bad >= patience:
                if log:
                    log(f"early stop: no better validation accuracy for {patience} epochs")
                break
    return Engine.load(ckpt, backend=backend, device=device), curves, seconds


def _alphabet():
    from .data import ALPHABET
    return ALPHABET


# ---- the whole example -------------------------------------------------------------------
def main(model="lstm", backend="numpy", device="cpu", epochs=None, seed=0, out="runs/names",
         quick=False, log=print):
    """Train, evaluate on the test split, write model.npz, metrics.json, confusion.png, loss.png."""
    from .._io import write_json
    from .metrics import plot_confusion, plot_curves
    if model not in MODELS:
        raise ValueError(f"model: expected one of {MODELS}, got {model!r}")
    names, labels, cats = load_names()
    split = split_names(labels, seed=seed)
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "model.npz")
    encoded = [encode_name(n) for n in names]
    if model == "tutorial-rnn":
        from ..train.checkpoint import save_checkpoint
        steps = 3000 if quick else (epochs or 1) * 100_000
        t0 = time.perf_counter()
        net, curve = train_tutorial(names, labels, split, len(cats), steps=steps, seed=seed, log=log)
        seconds = time.perf_counter() - t0
        preds = np.array([int(net.logits(encoded[i]).argmax()) for i in split["test"]])
        config = {"task": "names", "model": "tutorial-rnn", "num_classes": len(cats),
                  "hidden_size": net.hidden_size, "seed": seed, "split_seed": seed}
        save_checkpoint(ckpt, net.net, config=config, vocab=list(_alphabet()), labels=list(cats),
                        step=steps)
        curves = {"train (mean of 1% of steps)": tuple(zip(*curve))}
        xlabel = "step"
    else:
        if quick:     # a taste: a small model on every 8th training name, two epochs
            split = dict(split, train=split["train"][::8])
        engine, curves, seconds = train_classifier(
            names, labels, split, cats, cell="rnn_tanh" if model == "rnn" else model, hidden_size=32 if quick else 128,
            epochs=epochs or (2 if quick else 20), seed=seed, backend=backend, device=device,
            ckpt=ckpt, log=log)
        preds = predict_classes(engine, split["test"], encoded, labels)
        xlabel = "epoch"
    y = labels[split["test"]]
    cm = confusion_matrix(y, preds, len(cats))
    metrics = {"model": model, "backend": "numpy" if model == "tutorial-rnn" else backend,
               "test_accuracy": accuracy(y, preds), "macro_accuracy": macro_accuracy(cm),
               "per_class_recall": dict(zip(cats, map(float, per_class_recall(cm)))),
               "train_seconds": seconds, "n_train": int(len(split["train"])),
               "n_val": int(len(split["val"])), "n_test": int(len(split["test"])), "seed": seed}
    write_json(os.path.join(out, "metrics.json"), metrics)
    plot_confusion(cm, cats, os.path.join(out, "confusion.png"))
    plot_curves(os.path.join(out, "loss.png"), curves, xlabel=xlabel, title=f"names: {model}")
    if log:
        log(f"test accuracy {metrics['test_accuracy']:.4f}  macro accuracy "
            f"{metrics['macro_accuracy']:.4f}  train {seconds:.1f} s  -> {out}")
    return metrics


# ---- prediction --------------------------------------------------------------------------
def load_predictor(path, backend="numpy"):
    """A checkpoint written by main() -> predict(names) -> (probs (N, C), labels)."""
    from ..train.checkpoint import load_checkpoint
    from ..nn.losses import log_softmax
    ck = load_checkpoint(path)
    config = ck.config or {}
    if config.get("task") != "names":
        raise ValueError(f"checkpoint: expected a names model (config task 'names'), "
                         f"got task {config.get('task')!r} in {path}")
    labels = list(ck.labels)
    if config["model"] == "tutorial-rnn":
        net = TutorialRNN(config["num_classes"], config["hidden_size"])
        net.net.load_state_dict(ck.state_dict)
        logits = lambda seqs: np.stack([net.logits(s) for s in seqs])       # noqa: E731
    else:
        model = build_classifier(dict(config, backend=backend))
        model.load_state_dict(ck.state_dict)
        model.eval()

        def logits(seqs):
            tokens, lengths = pad_batch(seqs)
            return model.forward(tokens, lengths)

    def predict(batch_names):
        seqs = [encode_name(n) for n in batch_names]        # ValueError for an empty name
        return np.exp(log_softmax(np.asarray(logits(seqs)), axis=-1)), labels
    return predict
