"""script: language models on tiny-Shakespeare, word-level (the TV-script project) or char-level.

    tokens w_1..w_N (words with punctuation tokens, or characters), ids by frequency
    e_t = Embedding(w_t);  LSTM (2 layers, dropout between);  z_t = Linear(h_t) over the vocabulary
    loss = mean cross_entropy(z_t, w_{t+1});  Adam, gradient clipping, truncated BPTT: the
    text is cut into B parallel streams, read seq_len steps at a time, the state carried from
    one chunk to the next (and cut: no gradient flows back across chunks)
    perplexity = exp(validation loss); the last 10% of the tokens are the validation text

Generation: read the prime, then sample one token at a time from softmax(z / temperature),
restricted to the top-k most likely when asked (temperature 0 = always the most likely).
Word level keeps the max_vocab most frequent words; the rest become UNK.
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
    from ..train.models import LanguageModel
    return LanguageModel(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                         cell="lstm", num_layers=config["num_layers"], dropout=config["dropout"],
                         seed=config.get("seed", 0), backend=config.get("backend", "numpy"))


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


def main(kind="script", backend="numpy", device="cpu", epochs=None, seed=0, out="runs/script",
         quick=False, log=print):
    """Train, report validation perplexity per epoch, write model.npz, metrics.json,
    loss.png and perplexity.png, and print a sample."""
    from .._io import write_json
    from .._progress import progress
    from ..train.engine import Engine
    from .metrics import perplexity, plot_curves
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
    config = {"task": kind, "vocab_size": len(itos), "seed": seed,
              **{k: size[k] for k in ("embedding_dim", "hidden_size", "num_layers", "dropout")}}
    model = build_model(dict(config, backend="numpy" if backend == "torch" else backend))
    engine = Engine(model, optimizer="adam", lr=2e-3 if kind == "char" else 1e-3, clip=5.0,
                    backend=backend, device=device, seed=seed)
    train_b = lm_batches(train_ids, size["batch"], size["seq"])
    val_b = lm_batches(val_ids, min(size["batch"], (len(val_ids) - 1) // 2), size["seq"])
    epochs = epochs or (1 if quick else 10)
    curves = {"train": ([], []), "validation": ([], [])}
    ppl, seconds, best = [], 0.0, math.inf
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "model.npz")
    for epoch in range(1, epochs + 1):
        t0, state, total = time.perf_counter(), None, 0.0
        for x, y in progress(train_b, desc=f"epoch {epoch}/{epochs}", leave=False, disable=log is None):
            loss, state = engine.step_lm(x, y, state=state)
            total += float(loss)
        seconds += time.perf_counter() - t0
        val = evaluate(engine, val_b)
        curves["train"][0].append(epoch)
        curves["train"][1].append(total / len(train_b))
        curves["validation"][0].append(epoch)
        curves["validation"][1].append(val)
        ppl.append(perplexity(val))
        if log:
            log(f"epoch {epoch:2d}  train loss {total / len(train_b):.4f}  "
                f"val loss {val:.4f}  val perplexity {ppl[-1]:.2f}")
        if val < best:                               # keep the best epoch
            best = val
            engine.save(ckpt, config=config, vocab=list(itos), step=epoch)
    metrics = {"task": kind, "backend": backend, "val_perplexity": min(ppl),
               "val_perplexity_per_epoch": ppl, "train_seconds": seconds,
               "vocab_size": len(itos), "train_tokens": int(len(train_ids)),
               "val_tokens": int(len(val_ids))}
    write_json(os.path.join(out, "metrics.json"), metrics)
    plot_curves(os.path.join(out, "loss.png"), curves, ylabel="cross-entropy", title=f"{kind}: loss")
    plot_curves(os.path.join(out, "perplexity.png"), {"validation": (curves["validation"][0], ppl)},
                ylabel="perplexity", title=f"{kind}: validation perplexity", logy=True)
    if log:
        log(f"best validation perplexity {min(ppl):.2f}  train {seconds:.1f} s  -> {out}")
        prime = "first citizen" if kind == "script" else "First Citizen"
        log(generate(ckpt, prime=prime, length=40, seed=seed))
    return metrics


def generate(checkpoint, prime, length=100, temperature=1.0, top_k=None, seed=0, backend="numpy"):
    """Text: the prime, then `length` sampled tokens (words or characters)."""
    from ..train.checkpoint import load_checkpoint
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
    model.load_state_dict(ck.state_dict)
    model.eval()
    if not prime:
        raise ValueError("prime: expected some text to start from, got ''")
    prime_ids = encode_text(kind, prime, stoi)
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
