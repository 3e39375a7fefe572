"""script: language models on tiny-Shakespeare, word-level (the TV-script project) or char-level.

    tokens w_1..w_N (words with punctuation tokens, or characters), ids by frequency
    e_t = Embedding(w_t);  LSTM (2 layers, dropout between);  z_t = Linear(h_t) over the vocabulary
    loss = mean cross_entropy(z_t, w_{t+1});  Adam, gradient clipping, truncated BPTT: the
    text is cut into B parallel streams, read seq_len steps at a time, the state carried from
    one chunk to the next (and cut: no gradient flows back across chunks)
    perplexity = exp(validation loss); the last 10% of the tokens are the validation text

Generation: read the prime, then sample one token at a time from softmax(z / temperature),
restricted to the top-k most likely when asked (temperature 0 = always the most likely).
Word level keeps the max_vocab most frequent words; the rest become UNK in the training and
validation text. Unknown tokens in a prime are refused by name -- words (script) exactly like
characters (char) -- rather than silently replaced.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from .data import build_vocab, detokenize_words, encode, load_shakespeare, lm_batches, tokenize_words

KINDS = ("script", "char")
UNK = "||unk||"


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """One id from logits (V,): softmax(logits / temperature) over the top_k largest."""
    logits = np.asarray(logits, dtype=np.float64)
    if not (isinstance(temperature, (int, float)) and temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k: expected an integer >= 1 or None, got {top_k!r}")
    if temperature == 0 or top_k == 1:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < len(z):
        cut = np.partition(z, -top_k)[-top_k]           # the k-th largest
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int((rng or np.random.default_rng()).choice(len(p), p=p))


def tokens_of(kind, text):
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return tokenize_words(text) if kind == "script" else list(text)


def vocabulary(kind, tokens, max_vocab=10_000):
    stoi, itos = build_vocab(tokens)
    if kind == "script" and len(itos) > max_vocab:       # rare words -> UNK
        itos = itos[:max_vocab - 1] + [UNK]
        stoi = {t: i for i, t in enumerate(itos)}
    return stoi, itos


def encode_text(kind, text, stoi):
    toks = tokens_of(kind, text)
    if kind == "script" and UNK in stoi:
        toks = [t if t in stoi else UNK for t in toks]
    return encode(toks, stoi, what="word" if kind == "script" else "character")


def build_model(config):
    from ..nn.models import LanguageModel
    return LanguageModel(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                         cell=config.get("cell", "lstm"), num_layers=config["num_layers"],
                         dropout=config["dropout"], seed=config.get("seed", 0),
                         backend=config.get("backend", "numpy"))


def evaluate(engine, batches):
    """Mean cross-entropy per token over `batches`, state carried across them."""
    from ..nn.losses import cross_entropy
    state, total, n = None, 0.0, 0
    for x, y in batches:
        logits, state = engine.predict_lm(x, state=state)
        logits = np.asarray(logits)
        loss, _ = cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        total, n = total + float(loss) * y.size, n + y.size
    return total / n


def _state_to_json(state):
    """The carried recurrent state (array or tuple of arrays) -> JSON lists (floats round-trip
    exactly through JSON), for last.npz; None stays None."""
    if state is None:
        return None
    parts = state if isinstance(state, tuple) else (state,)
    return {"tuple": isinstance(state, tuple), "arrays": [np.asarray(a).tolist() for a in parts]}


def _state_from_json(obj, dtype):
    if obj is None:
        return None
    arrays = tuple(np.array(a, dtype=dtype) for a in obj["arrays"])
    return arrays if obj["tuple"] else arrays[0]


def _state_rows(state, rows):
    """The batch rows `rows` (axis 1 of each (L*D, B, H) array) of a carried state."""
    if state is None:
        return None
    return tuple(a[:, rows] for a in state) if isinstance(state, tuple) else state[:, rows]


def _state_gather(state, group):
    """Every rank's rows of the carried state, in rank order (a collective)."""
    if state is None or group is None:
        return state
    if isinstance(state, tuple):
        return tuple(group.gather_rows(a) for a in state)
    return group.gather_rows(state)


def _sample(engine, itos, stoi, kind, prime, length, seed):
    """A short sample from the model being trained, through the engine (eval mode, its own
    rng: the training's numbers do not change)."""
    rng = np.random.default_rng(seed)
    ids = encode_text(kind, prime, stoi)
    logits, state = engine.predict_lm(ids[None], state=None)
    out = []
    for _ in range(length):
        nxt = sample_next(np.asarray(logits)[0, -1], 0.8, 10, rng)
        out.append(nxt)
        logits, state = engine.predict_lm(np.array([[nxt]]), state=state)
    toks = [itos[i] for i in ids] + [itos[i] for i in out]
    return detokenize_words(toks) if kind == "script" else "".join(toks)


def _settings(resume, kind, model, seed, quick, epochs):
    if resume is None:
        return model or "lstm", 0 if seed is None else seed, bool(quick), epochs, None
    from ..train.checkpoint import load_checkpoint
    ck = load_checkpoint(resume)
    cfg = ck.config or {}
    if cfg.get("task") != kind or not (ck.extra or {}).get("loop"):
        raise ValueError(f"--resume: {resume} is not a checkpoint of `minirnn train {kind}` "
                         f"(task {cfg.get('task')!r})")
    for flag, given, saved in (("--model", model, cfg.get("cell", "lstm")),
                               ("--seed", seed, cfg.get("seed")),
                               ("--quick", quick or None, cfg.get("quick") or None)):
        if given is not None and given != saved:
            raise ValueError(f"{flag}: the run in {resume} was trained with {flag} {saved}; a "
                             f"resumed run keeps its settings (got {flag} {given})")
    return cfg.get("cell", "lstm"), cfg["seed"], bool(cfg.get("quick")), \
        epochs or cfg.get("epochs"), ck


def main(kind="script", backend="numpy", device="cpu", epochs=None, seed=None, out="runs/script",
         quick=None, log=print, resume=None, overwrite=False, every=None, show_progress=True,
         threads=None, model=None, batch_size=None, group=None):
    """Train; every `every` steps print the running loss (and every other time a sample), each
    epoch the validation perplexity; write model.npz (the best epoch), last.npz (every epoch
    and on Ctrl-C), metrics.json, then loss.png and perplexity.png; print a sample.
    model: the registry cell (default "lstm"); resume: DIR or DIR/last.npz of a run.
    batch_size: the global number of streams (default 32, quick 8). group: data-parallel under
    torchrun (a minirnn.train.distributed.Group): each rank reads its share of the streams,
    rank 0 scores the validation text, logs, writes and returns the metrics; the others None."""
    from .. import _threads
    from .._io import write_json
    from ..cells import BUILTIN, cell_name
    from ..train.distributed import cap_threads, on_main, per_rank_batch, record
    from ..train.engine import Engine
    from ._run import (Interrupt, Interrupted, Meter, elapsed, epoch_bar, nice_every, prepare_out,
                       resume_path, try_plots)
    from .metrics import perplexity, plot_curves, plot_lm_curves
    resume = resume_path(resume)
    cell, seed, quick, epochs, ck = _settings(resume, kind, model, seed, quick, epochs)
    cell = cell_name(cell)
    if cell not in BUILTIN:
        raise ValueError(f"--model: {kind} trains a registry cell, one of {BUILTIN}; "
                         f"got {cell!r}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs}")
    text = load_shakespeare()
    if quick:
        text = text[:6_000 if kind == "script" else 4_000]
    cut = int(len(text) * 0.9)
    stoi, itos = vocabulary(kind, tokens_of(kind, text[:cut]), max_vocab=2_000 if quick else 10_000)
    train_ids = encode_text(kind, text[:cut], stoi)
    val_text = text[cut:]
    if kind == "char":                               # characters unseen in training are dropped
        val_text = "".join(c for c in val_text if c in stoi)
    elif UNK not in stoi:                            # a small vocabulary: add UNK for val words
        itos = itos + [UNK]
        stoi[UNK] = len(itos) - 1
    val_ids = encode_text(kind, val_text, stoi)
    small = dict(embedding_dim=16, hidden_size=32, num_layers=2, dropout=0.0, batch=8, seq=16)
    full = dict(embedding_dim=128 if kind == "script" else 32, hidden_size=256, num_layers=2,
                dropout=0.3, batch=32, seq=32 if kind == "script" else 64)
    size = small if quick else full
    saved_batch = (ck.config or {}).get("batch_size", size["batch"]) if ck is not None else None
    if batch_size is not None and saved_batch not in (None, batch_size):
        raise ValueError(f"--batch-size: the run in {resume} was trained with --batch-size "
                         f"{saved_batch}; a resumed run keeps its settings (got {batch_size})")
    size = dict(size, batch=batch_size if batch_size is not None else
                saved_batch or size["batch"])
    world = 1 if group is None else group.world_size
    per_rank_batch(size["batch"], world)
    main_rank = group is None or group.is_main
    log = log if main_rank else None            # one log: rank 0's
    epochs = epochs or (1 if quick else 10)
    ran = record(group, size["batch"])
    config = {"task": kind, "vocab_size": len(itos), "seed": seed, "cell": cell, "quick": quick,
              "epochs": epochs, "backend": backend, "device": device, **ran,
              **{k: size[k] for k in ("embedding_dim", "hidden_size", "num_layers", "dropout")}}
    if main_rank:
        prepare_out(out, overwrite, resume)
    ckpt, last = os.path.join(out, "model.npz"), os.path.join(out, "last.npz")
    train_b = lm_batches(train_ids, size["batch"], size["seq"])
    val_b = lm_batches(val_ids, min(size["batch"], (len(val_ids) - 1) // 2), size["seq"])
    n_chunks = len(train_b)
    every = every or nice_every(epochs * n_chunks)
    prime = "first citizen" if kind == "script" else "First Citizen"
    rows = slice(None) if group is None else group.shard(size["batch"])   # this rank's streams
    if ck is not None:
        engine = Engine.load(resume, backend=backend, device=device, distributed=group)
        loop = ck.extra["loop"]
    else:
        model_ = build_model(dict(config, backend="numpy" if backend == "torch" else backend))
        engine = Engine(model_, optimizer="adam", lr=2e-3 if kind == "char" else 1e-3, clip=5.0,
                        backend=backend, device=device, seed=seed, distributed=group)
        loop = {"epoch": 1, "chunk": 0, "state": None, "total": 0.0, "best": math.inf,
                "best_epoch": 0, "seconds": 0.0, "train_loss": [], "val_loss": [], "meter": None}
    meter = Meter(epochs * n_chunks, every, max(1, n_chunks // 20), state=loop["meter"])
    dtype = engine.model.dtype

    def save(path):
        if group is not None:                    # every rank's model is the one saved
            group.check_same(engine.sync().state_dict().items(), f"the model saved to {path}")
        if not main_rank:
            return
        loop["meter"] = meter.state()
        engine.save(path, config=config, vocab=list(itos), step=engine.steps, extra={"loop": loop})

    choice = cap_threads(_threads.choose(
        threads, _threads.step_product(size["batch"] // world, size["hidden_size"], cell)), group)
    with _threads.limit(choice, torch=backend == "torch") as actual, \
            Interrupt(distributed=group is not None) as stop:
        if log:
            log(f"{kind}: --model {cell}, --backend {backend}, {_threads.describe(choice, actual)}"
                + (f"; resuming {resume}" if resume else "")
                + (f"\ndata-parallel: {world} ranks ({ran['dist_backend']}), "
                   f"{ran['per_rank_batch']} of the {size['batch']} streams per rank"
                   if group is not None else ""))
        for epoch in range(loop["epoch"], epochs + 1):
            state = _state_rows(_state_from_json(loop["state"], dtype), rows)
            bar, say = epoch_bar(loop["chunk"], n_chunks, epoch, epochs, log, show_progress)
            t0 = time.perf_counter()
            for c in bar:
                x, y = train_b[c]
                loss, state = engine.step_lm(x[rows], y[rows], state=state)
                loss = float(loss)
                loop["total"] += loss
                loop["chunk"] = c + 1
                if meter.add(loss) and log:
                    seconds = loop["seconds"] + time.perf_counter() - t0
                    say(meter.line(seconds))
                    if (meter.step // every) % 2 == 0:
                        try:
                            sample = _sample(engine, itos, stoi, kind, prime,
                                             30 if kind == "script" else 80, seed + meter.step)
                            say("    " + sample.replace("\n", "\n    "))
                        except KeyError:                 # the prime is not in this vocabulary
                            pass
                if c % 5 == 0:
                    bar.set_postfix(loss=f"{meter.peek():.3f}", refresh=False)
                if stop.requested if group is None else group.agree(stop.requested):
                    bar.close()
                    loop["seconds"] += time.perf_counter() - t0
                    loop["state"] = _state_to_json(_state_gather(state, group))
                    save(last)
                    raise Interrupted(last, f"in epoch {epoch}, after chunk {c + 1} of "
                                            f"{n_chunks} (step {engine.steps})",
                                      f"minirnn train {kind} --resume {out}")
            bar.close()
            loop["seconds"] += time.perf_counter() - t0
            val = on_main(group, lambda: evaluate(engine, val_b))
            loop["train_loss"].append(loop["total"] / n_chunks)
            loop["val_loss"].append(val)
            if log:
                log(f"epoch {epoch:2d}  train loss {loop['total'] / n_chunks:.4f}  val loss "
                    f"{val:.4f}  val perplexity {perplexity(val):.2f}  "
                    f"{elapsed(loop['seconds'])}")
            better = val < loop["best"]
            if better:
                loop["best"], loop["best_epoch"] = val, epoch
            loop.update(epoch=epoch + 1, chunk=0, state=None, total=0.0)
            if better:                                   # keep the best epoch
                save(ckpt)
            save(last)
    if not main_rank:                            # rank 0 writes the results
        return None
    ppl = [perplexity(v) for v in loop["val_loss"]]
    seconds = loop["seconds"]
    n_ep = len(ppl)
    metrics = {"task": kind, "model": cell, "backend": backend, "val_perplexity": min(ppl),
               "val_perplexity_per_epoch": ppl, "best_epoch": loop["best_epoch"],
               "train_seconds": seconds, "seconds_per_epoch": seconds / max(n_ep, 1),
               "vocab_size": len(itos), "train_tokens": int(len(train_ids)),
               "val_tokens": int(len(val_ids)), "blas_threads": actual, **ran,
               "steps_per_epoch": n_chunks, "loss_per_step": meter.curve,
               "train_loss_per_epoch": loop["train_loss"], "val_loss_per_epoch": loop["val_loss"]}
    sample = generate(ckpt, prime=prime, length=40 if kind == "script" else 200, seed=seed)
    metrics["sample"] = sample
    write_json(os.path.join(out, "metrics.json"), metrics)         # the results first
    try_plots(log, lambda: plot_lm_curves(os.path.join(out, "loss.png"), metrics, kind),
              lambda: plot_curves(os.path.join(out, "perplexity.png"),
                                  {"validation": (range(1, n_ep + 1), ppl)}, ylabel="perplexity",
                                  title=f"{kind}: validation perplexity", logy=True))
    if log:
        log(f"best validation perplexity {min(ppl):.2f} (epoch {loop['best_epoch']})  train "
            f"{seconds:.1f} s ({seconds / max(n_ep, 1):.1f} s per epoch)  -> {out}")
        log(sample)
    return metrics


def generate(checkpoint, prime, length=100, temperature=1.0, top_k=None, seed=0, backend="numpy"):
    """Text: the prime, then `length` sampled tokens (words or characters). A prime with tokens
    outside the model's vocabulary is refused, words and characters alike, naming them."""
    from ..train.checkpoint import load_checkpoint, load_model_state
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length: expected an integer >= 1, got {length!r}")
    ck = load_checkpoint(checkpoint)
    kind = (ck.config or {}).get("task")
    if kind not in KINDS:
        raise ValueError(f"checkpoint: expected a language model (config task in {KINDS}), "
                         f"got task {kind!r} in {checkpoint}")
    itos = list(ck.vocab)
    stoi = {t: i for i, t in enumerate(itos)}
    model = build_model(dict(ck.config, backend=backend))
    load_model_state(model, ck)                 # a mismatch names the file
    model.eval()
    if not prime:
        raise ValueError("prime: expected some text to start from, got ''")
    toks = tokens_of(kind, prime)
    unknown = sorted({t for t in toks if t not in stoi})
    if unknown:
        what = "words" if kind == "script" else "characters"
        raise ValueError(f"prime: {what} {unknown} are not in the model's vocabulary "
                         f"({len(itos)} {what}); leave them out")
    prime_ids = encode(toks, stoi)
    if len(prime_ids) == 0:
        raise ValueError(f"prime: no {kind} tokens in {prime!r}")
    rng = np.random.default_rng(seed)
    logits, state = model.forward(prime_ids[None], None)         # (1, T, V)
    out = []
    for _ in range(length):
        nxt = sample_next(np.asarray(logits)[0, -1], temperature, top_k, rng)
        out.append(nxt)
        logits, state = model.forward(np.array([[nxt]]), state)
    toks = [itos[i] for i in prime_ids] + [itos[i] for i in out]
    return detokenize_words(toks) if kind == "script" else "".join(toks)
