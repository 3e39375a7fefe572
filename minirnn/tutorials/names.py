"""names: surname -> language (18 languages), the PyTorch char-RNN tutorial, two ways.

1. The tutorial's from-scratch RNN ("tutorial-rnn", in names_rnn.py), one name at a time:
       combined_t = [x_t ; hidden_{t-1}]                 (57 + 128,)  x_t one-hot letter
       hidden_t   = i2h(combined_t)                      Linear, no nonlinearity (as the tutorial)
       output     = log_softmax(i2o(combined_{T-1}))     Linear, only the last step is scored
       loss = NLL(output, language);  SGD p -= 0.005 * grad, random language then random name
   Backward is our own BPTT loop over minirnn's Linear layers: dL/dhidden step by step,
   then each layer's backward once over all steps (its weight gradient is a sum over them).
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

from .data import N_LETTERS, encode_name, load_names, pad_batch, split_names
from .metrics import accuracy, confusion_matrix, macro_accuracy, per_class_recall
from .names_rnn import TutorialRNN, train_tutorial

MODELS = ("lstm", "rnn", "tutorial-rnn")      # and every other registry cell ("gru", ...)


# ---- 2. the LSTM / RNN classifier --------------------------------------------------------
def class_weights(labels, n_categories, power=0.25):
    """(N / (C * n_c)) ** power: 1 = fully balanced, 0 = none. 0.25 lifts the small languages
    (macro accuracy) at little cost in accuracy; 0.5 cost ~3 points of accuracy in our runs."""
    counts = np.bincount(labels, minlength=n_categories).astype(np.float64)
    return (len(labels) / (n_categories * np.maximum(counts, 1))) ** power


def build_classifier(config):
    from ..nn.models import SequenceClassifier
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


def classifier_config(cats, cell="lstm", hidden_size=128, bidirectional=False,
                      embedding_dim=None, dropout=0.0, seed=0, model=None):
    return {"task": "names", "model": model or ("rnn" if cell == "rnn_tanh" else cell),
            "cell": cell, "num_classes": len(cats), "hidden_size": hidden_size,
            "bidirectional": bidirectional, "embedding_dim": embedding_dim, "dropout": dropout,
            "seed": seed, "split_seed": seed}


def train_classifier(names, labels, split, cats, cell="lstm", hidden_size=128, epochs=20,
                     batch_size=64, lr=2e-3, patience=4, weight_power=0.25, bidirectional=False,
                     embedding_dim=None, dropout=0.0, seed=0, backend="numpy", device="cpu",
                     ckpt=None, log=None, last=None, config=None, resume=None, every=None,
                     show_progress=True, stop=None, group=None):
    """Minibatches of `batch_size` names (a fresh permutation each epoch), Adam, early stopping
    on the validation accuracy. Writes `ckpt` at each better epoch and `last` after every epoch
    and on Ctrl-C (`stop`: an _run.Interrupt), both with the loop state, so that `resume` (a
    path to one of them) continues exactly. Every `every` steps a line
    `step pct (time) running-loss name / guess ✓` for the first name of the batch.
    group: a minirnn.train.distributed.Group (under torchrun): each rank steps on its shard of
    every batch, rank 0 scores the validation split and writes the checkpoints.
    Returns (engine of the best epoch -- on the other ranks the last one --, history, seconds
    spent training)."""
    from ..train.checkpoint import load_checkpoint
    from ..train.engine import Engine
    from ..train.distributed import on_main
    from ._run import Interrupted, Meter, check_mark, epoch_bar, nice_every
    config = config or classifier_config(cats, cell, hidden_size, bidirectional, embedding_dim,
                                         dropout, seed)
    rng = np.random.default_rng(seed)
    n_batches = -(-len(split["train"]) // batch_size)
    every = every or nice_every(epochs * n_batches)
    tail = len(split["train"]) % batch_size
    if group is not None and 0 < tail < group.world_size:
        raise ValueError(f"--batch-size: the last batch of an epoch holds {tail} names, too few "
                         f"for {group.world_size} ranks; use another --batch-size or fewer "
                         f"processes")
    main_rank = group is None or group.is_main
    if resume is not None:
        engine = Engine.load(resume, backend=backend, device=device, distributed=group)
        loop = (load_checkpoint(resume).extra or {}).get("loop")
        if not loop:
            raise ValueError(f"--resume: {resume} holds no training-loop state (not written by "
                             f"`minirnn train names`)")
    else:
        model = build_classifier(dict(config, backend="numpy" if backend == "torch" else backend))
        w = class_weights(labels[split["train"]], len(cats), weight_power) if weight_power else None
        engine = Engine(model, optimizer="adam", lr=lr, class_weight=w, backend=backend,
                        device=device, seed=seed, distributed=group)
        loop = {"epoch": 1, "batch": 0, "rng_epoch": rng.bit_generator.state, "total": 0.0,
                "best": -1.0, "best_epoch": 0, "bad": 0, "stopped": False, "seconds": 0.0,
                "train_loss": [], "val_accuracy": [], "meter": None}
    meter = Meter(epochs * n_batches, every, max(1, n_batches // 10), state=loop["meter"])
    encoded = [encode_name(n) for n in names]
    cfg = dict(config, epochs=epochs, backend=backend, device=device)

    def save(path):
        if group is not None:                    # every rank's model is the one saved
            group.check_same(engine.sync().state_dict().items(), f"the model saved to {path}")
        if not main_rank:
            return
        loop["meter"] = meter.state()
        engine.save(path, config=cfg, vocab=list(_alphabet()), labels=list(cats),
                    step=engine.steps, extra={"loop": loop})

    for epoch in range(loop["epoch"], epochs + 1):
        if loop["stopped"]:
            break
        rng.bit_generator.state = loop["rng_epoch"]
        order = rng.permutation(split["train"])                     # this epoch's batches
        bar, say = epoch_bar(loop["batch"], n_batches, epoch, epochs, log, show_progress)
        t0 = time.perf_counter()
        for b in bar:
            idx = order[b * batch_size:(b + 1) * batch_size]
            if group is not None:                                   # this rank's shard
                idx = idx[group.shard(len(idx))]
            tokens, lengths = pad_batch([encoded[i] for i in idx])  # (B, T), (B,)
            loss = float(engine.step(tokens, labels[idx], lengths=lengths))
            loop["total"] += loss
            loop["batch"] = b + 1
            if meter.add(loss) and log:
                n = int(lengths[0])
                guess = int(np.argmax(engine.predict(tokens[:1, :n], lengths=lengths[:1])))
                y = int(labels[idx[0]])
                mark = check_mark(True) if guess == y else f"{check_mark(False)} ({cats[y]})"
                say(meter.line(loop["seconds"] + time.perf_counter() - t0,
                               f"{names[idx[0]]} / {cats[guess]} {mark}"))
            if b % 10 == 0:
                bar.set_postfix(loss=f"{meter.peek():.3f}", refresh=False)
            requested = stop is not None and stop.requested
            if last and (requested if group is None else group.agree(requested)):
                bar.close()
                loop["seconds"] += time.perf_counter() - t0
                save(last)
                raise Interrupted(last, f"in epoch {epoch}, after batch {b + 1} of {n_batches} "
                                        f"(step {engine.steps})", None)
        bar.close()
        loop["seconds"] += time.perf_counter() - t0                 # training time only
        val = on_main(group, lambda: accuracy(labels[split["val"]], predict_classes(
            engine, split["val"], encoded, labels)))
        loop["train_loss"].append(loop["total"] / n_batches)
        loop["val_accuracy"].append(val)
        if log:
            log(f"epoch {epoch:2d}  train loss {loop['total'] / n_batches:.4f}  "
                f"val accuracy {val:.4f}")
        better = val > loop["best"]
        if better:
            loop["best"], loop["best_epoch"], loop["bad"] = val, epoch, 0
        else:
            loop["bad"] += 1
            loop["stopped"] = loop["bad"] >= patience
        loop.update(epoch=epoch + 1, batch=0, rng_epoch=rng.bit_generator.state, total=0.0)
        if better and ckpt:
            save(ckpt)
        if last:
            save(last)
        if loop["stopped"]:
            if log:
                log(f"early stop: no better validation accuracy for {patience} epochs "
                    f"(best: epoch {loop['best_epoch']})")
            break
    history = {"loss_per_step": meter.curve, "steps_per_epoch": n_batches,
               "train_loss_per_epoch": loop["train_loss"],
               "val_accuracy_per_epoch": loop["val_accuracy"], "best_epoch": loop["best_epoch"]}
    if not main_rank:                      # rank 0 alone has the files and scores the test split
        return engine, history, loop["seconds"]
    return Engine.load(ckpt, backend=backend, device=device), history, loop["seconds"]


def _alphabet():
    from .data import ALPHABET
    return ALPHABET


# ---- the whole example -------------------------------------------------------------------
def _settings(resume, model, seed, quick, epochs):
    """The run's settings: given ones, else the defaults -- or, resuming, the checkpoint's
    (a given setting that differs from the checkpoint's is refused, never ignored)."""
    if resume is None:
        return (model or "lstm", 0 if seed is None else seed, bool(quick), epochs, None)
    from ..train.checkpoint import load_checkpoint
    ck = load_checkpoint(resume)
    cfg = ck.config or {}
    if cfg.get("task") != "names" or not (ck.extra or {}).get("loop"):
        raise ValueError(f"--resume: {resume} is not a checkpoint of `minirnn train names` "
                         f"(task {cfg.get('task')!r})")
    for flag, given, saved in (("--model", model, cfg.get("model")), ("--seed", seed, cfg.get("seed")),
                               ("--quick", quick or None, cfg.get("quick") or None)):
        if given is not None and given != saved:
            raise ValueError(f"{flag}: the run in {resume} was trained with {flag} {saved}; a "
                             f"resumed run keeps its settings (got {flag} {given})")
    return cfg["model"], cfg["seed"], bool(cfg.get("quick")), epochs or cfg.get("epochs"), ck


def main(model=None, backend="numpy", device="cpu", epochs=None, seed=None, out="runs/names",
         quick=None, log=print, resume=None, overwrite=False, every=None, show_progress=True,
         threads=None, batch_size=None, group=None):
    """Train, evaluate on the test split; write model.npz, last.npz, metrics.json, then the
    plots confusion.png and loss.png (skipped with a note when matplotlib is missing).
    batch_size: the global batch (default 64); group: data-parallel under torchrun (a
    minirnn.train.distributed.Group): rank 0 logs, writes and returns the metrics, the other
    ranks train and return None.

    model: "tutorial-rnn", or a registry cell ("lstm", "gru", "rnn_tanh", "rnn_relu"; "rnn" =
    rnn_tanh). resume: a checkpoint written by a run (DIR or DIR/last.npz) to continue from;
    `out` is refused when it already holds another run, unless overwrite=True.
    threads: BLAS threads (minirnn._threads: default by the size rule)."""
    from .. import _threads
    from .._io import write_json
    from ..cells import BUILTIN, cell_name
    from ..train.distributed import cap_threads, per_rank_batch, record
    from ._run import Interrupt, Interrupted, prepare_out, resume_path, try_plots
    from .metrics import plot_confusion, plot_names_curves
    resume = resume_path(resume)
    model, seed, quick, epochs, ck = _settings(resume, model, seed, quick, epochs)
    saved_batch = (ck.config or {}).get("batch_size", 64) if ck is not None else None
    if batch_size is not None and saved_batch not in (None, batch_size):
        raise ValueError(f"--batch-size: the run in {resume} was trained with --batch-size "
                         f"{saved_batch}; a resumed run keeps its settings (got {batch_size})")
    batch = batch_size if batch_size is not None else saved_batch or 64
    if model == "tutorial-rnn" and (batch_size is not None or group is not None):
        raise ValueError("--model tutorial-rnn: trains one name at a time (the tutorial's "
                         "SGD), so it takes no --batch-size and no data-parallel launch")
    per_rank_batch(batch, 1 if group is None else group.world_size)
    main_rank = group is None or group.is_main
    log = log if main_rank else None            # one log: rank 0's
    choices = MODELS + tuple(c for c in BUILTIN if c not in MODELS)
    if model not in choices:
        raise ValueError(f"model: expected one of {choices}, got {model!r}")
    if model == "tutorial-rnn" and backend == "torch":
        raise ValueError("--model tutorial-rnn: runs on numpy only (its own BPTT over Linear "
                         "layers), got --backend torch")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs}")
    names, labels, cats = load_names()
    split = split_names(labels, seed=seed)
    if main_rank:
        prepare_out(out, overwrite, resume)
    ckpt, last = os.path.join(out, "model.npz"), os.path.join(out, "last.npz")
    encoded = [encode_name(n) for n in names]
    cell = None if model == "tutorial-rnn" else cell_name(model)
    hidden = 32 if quick else 128
    if model == "tutorial-rnn":
        product = 1 * (N_LETTERS + 128) * 128           # i2h: (1, 57 + 128) x (185, 128)
    else:
        product = _threads.step_product(64, hidden, cell)
    choice = cap_threads(_threads.choose(threads, product), group)
    resume_cmd = f"minirnn train names --resume {out}"
    ran = record(group, 1 if model == "tutorial-rnn" else batch)
    try:
        with _threads.limit(choice, torch=backend == "torch") as actual, \
                Interrupt(distributed=group is not None) as stop:
            if log:
                log(f"names: --model {model}, --backend {backend}, {_threads.describe(choice, actual)}"
                    + (f"; resuming {resume}" if resume else "")
                    + (f"\ndata-parallel: {ran['world_size']} ranks ({ran['dist_backend']}), "
                       f"{ran['per_rank_batch']} of every batch of {batch} per rank"
                       if group is not None else ""))
            if model == "tutorial-rnn":
                steps = 3000 if quick else (epochs or 1) * 100_000
                config = {"task": "names", "model": "tutorial-rnn", "num_classes": len(cats),
                          "hidden_size": 128, "seed": seed, "split_seed": seed,
                          "quick": quick, "epochs": epochs or 1, "backend": "numpy"}
                net, meter, seconds = train_tutorial(
                    names, labels, split, cats, steps=steps, seed=seed, log=log, last=last,
                    config=config, resume=ck, every=every, show_progress=show_progress, stop=stop)
                from ..train.checkpoint import save_checkpoint
                save_checkpoint(ckpt, net.net, config=config, vocab=list(_alphabet()),
                                labels=list(cats), step=steps)
                preds = np.array([int(net.logits(encoded[i]).argmax()) for i in split["test"]])
                history = {"loss_per_step": meter.curve}
            else:
                if quick:     # a taste: a small model on every 8th training name, two epochs
                    split = dict(split, train=split["train"][::8])
                config = dict(classifier_config(cats, cell, hidden, seed=seed, model=model),
                              quick=quick, **ran)
                engine, history, seconds = train_classifier(
                    names, labels, split, cats, cell=cell, hidden_size=hidden,
                    epochs=epochs or (2 if quick else 20), batch_size=batch, seed=seed,
                    backend=backend, device=device, ckpt=ckpt, log=log, last=last, config=config,
                    resume=resume, every=every, show_progress=show_progress, stop=stop,
                    group=group)
                if not main_rank:
                    return None
                preds = predict_classes(engine, split["test"], encoded, labels)
    except Interrupted as e:
        raise Interrupted(e.checkpoint, e.where, resume_cmd) from None
    y = labels[split["test"]]
    cm = confusion_matrix(y, preds, len(cats))
    metrics = {"model": model, "backend": "numpy" if model == "tutorial-rnn" else backend,
               "test_accuracy": accuracy(y, preds), "macro_accuracy": macro_accuracy(cm),
               "per_class_recall": dict(zip(cats, map(float, per_class_recall(cm)))),
               "train_seconds": seconds, "n_train": int(len(split["train"])),
               "n_val": int(len(split["val"])), "n_test": int(len(split["test"])), "seed": seed,
               "blas_threads": actual, **ran, **history}
    write_json(os.path.join(out, "metrics.json"), metrics)           # the results first,
    try_plots(log,                                                    # then the pictures
              lambda: plot_confusion(cm, cats, os.path.join(out, "confusion.png")),
              lambda: plot_names_curves(os.path.join(out, "loss.png"), history, model))
    if log:
        log(f"test accuracy {metrics['test_accuracy']:.4f}  macro accuracy "
            f"{metrics['macro_accuracy']:.4f}  train {seconds:.1f} s  -> {out}")
    return metrics


# ---- prediction --------------------------------------------------------------------------
def load_predictor(path, backend="numpy"):
    """A checkpoint written by main() -> predict(names) -> (probs (N, C), labels)."""
    from ..train.checkpoint import load_checkpoint, load_model_state
    from ..nn.losses import log_softmax
    ck = load_checkpoint(path)
    config = ck.config or {}
    if config.get("task") != "names":
        raise ValueError(f"checkpoint: expected a names model (config task 'names'), "
                         f"got task {config.get('task')!r} in {path}")
    labels = list(ck.labels)
    if config["model"] == "tutorial-rnn":
        net = TutorialRNN(config["num_classes"], config["hidden_size"])
        load_model_state(net.net, ck)          # a mismatch names the file
        logits = lambda seqs: np.stack([net.logits(s) for s in seqs])       # noqa: E731
    else:
        model = build_classifier(dict(config, backend=backend))
        load_model_state(model, ck)
        model.eval()

        def logits(seqs):
            tokens, lengths = pad_batch(seqs)
            return model.forward(tokens, lengths)

    def predict(batch_names):
        seqs = [encode_name(n) for n in batch_names]        # ValueError for an empty name
        return np.exp(log_softmax(np.asarray(logits(seqs)), axis=-1)), labels
    return predict
