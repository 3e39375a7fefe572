"""Data for the tutorials: the shipped files, a fixed stratified split, vocabularies, tokenizers.

Names (surname -> language, the PyTorch char-RNN tutorial's data):
    load_names() reads minirnn/data/names/<Language>.txt, one surname a line, languages sorted
    by name (label i = CATEGORIES order). Each name is transliterated to ASCII exactly as the
    tutorial does: Unicode NFD decomposition, combining marks dropped, then only the 57
    characters of ALPHABET kept ("Ślusàrski" -> "Slusarski").

The split (split_names): for every language separately, the indices of its names are shuffled
with numpy's default_rng(seed) and cut into 80% train / 10% validation / 10% test (rounded
down, with at least one validation and one test name when a language has >= 3). So each
language keeps its share in every part (stratified), the three parts are disjoint and cover
every name, and the same seed always gives the same split. Duplicate names (Arabic has many)
are kept as in the tutorial; they are separate samples and may fall in different parts.

Words (the TV-script project's design, minirnn/text.py): punctuation becomes its own token, words
are split on whitespace, and the vocabulary is sorted by frequency (most frequent word = id 0,
ties alphabetical).
"""
from __future__ import annotations

import os
import string
import unicodedata
from collections import Counter

import numpy as np

from ..text import TOKEN_LOOKUP, detokenize_words, tokenize_words  # noqa: F401 (re-exported)

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")

# the tutorial's alphabet: 52 letters and 5 punctuation characters
ALPHABET = string.ascii_letters + " .,;'"
N_LETTERS = len(ALPHABET)                       # 57
CHAR_TO_ID = {c: i for i, c in enumerate(ALPHABET)}


# ---- names ------------------------------------------------------------------------------
def unicode_to_ascii(s):
    """'Ślusàrski' -> 'Slusarski': NFD splits accented letters into base + combining mark
    (category 'Mn'), we drop the marks and every character outside ALPHABET."""
    if not isinstance(s, str):
        raise TypeError(f"name: expected a str, got {type(s).__name__}")
    return "".join(c for c in unicodedata.normalize("NFD", s)
                   if unicodedata.category(c) != "Mn" and c in CHAR_TO_ID)


def categories(data_dir=None):
    """The 18 languages, sorted: the label order used everywhere."""
    d = os.path.join(data_dir or DATA_DIR, "names")
    if not os.path.isdir(d):
        raise FileNotFoundError(f"data_dir: no names/ folder at {d}")
    return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".txt"))


def load_names(data_dir=None):
    """(names, labels, categories): names transliterated, labels int64 indices into categories.
    Empty lines are skipped; a name that transliterates to nothing is skipped too."""
    cats = categories(data_dir)
    names, labels = [], []
    for label, cat in enumerate(cats):
        with open(os.path.join(data_dir or DATA_DIR, "names", cat + ".txt"), encoding="utf-8") as f:
            for line in f.read().splitlines():
                name = unicode_to_ascii(line.strip())
                if name:
                    names.append(name)
                    labels.append(label)
    return names, np.asarray(labels, dtype=np.int64), cats


def split_names(labels, seed=0, fractions=(0.8, 0.1, 0.1)):
    """Stratified, seeded split -> {"train", "val", "test"}: sorted int64 index arrays."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected a 1-D integer array, got {labels.dtype} shape {labels.shape}")
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions: expected three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):                    # classes in order: the rng stream is fixed
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = len(idx)
        n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
        if n >= 3:                                 # every language is seen in val and test
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def encode_name(name):
    """A name -> int64 ids into ALPHABET (transliterated, outer spaces stripped, as load_names).
    Refuses a name with no letter left."""
    ascii_name = unicode_to_ascii(name).strip()
    if not ascii_name:
        raise ValueError(f"name: expected at least one letter of the alphabet "
                         f"(after transliteration), got {name!r}")
    return np.array([CHAR_TO_ID[c] for c in ascii_name], dtype=np.int64)


def one_hot(ids, n=N_LETTERS, dtype="float64"):
    """ids (...,) -> (..., n) one-hot."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (n,), dtype=dtype)
    flat = ids.reshape(-1)          # fancy indexing on the flat view (put_along_axis: ~10x slower)
    out.reshape(-1, n)[np.arange(flat.size), flat] = 1.0
    return out


def pad_batch(seqs, pad=0):
    """list of 1-D int arrays -> tokens (B, T) right-padded with `pad`, lengths (B,)."""
    if not seqs:
        raise ValueError("seqs: expected at least one sequence, got none")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.min() < 1:
        raise ValueError("seqs: every sequence needs at least one token, got an empty one")
    tokens = np.full((len(seqs), int(lengths.max())), pad, dtype=np.int64)   # (B, T)
    for b, s in enumerate(seqs):
        tokens[b, :len(s)] = s
    return tokens, lengths


# ---- text -------------------------------------------------------------------------------
def load_shakespeare(data_dir=None):
    with open(os.path.join(data_dir or DATA_DIR, "tinyshakespeare.txt"), encoding="utf-8") as f:
        return f.read()


def build_vocab(tokens):
    """(stoi, itos) sorted by frequency, most frequent first, ties in alphabetical order."""
    counts = Counter(tokens)
    if not counts:
        raise ValueError("tokens: expected at least one token to build a vocabulary, got none")
    itos = sorted(counts, key=lambda t: (-counts[t], t))
    return {t: i for i, t in enumerate(itos)}, itos


def encode(tokens, stoi, what="token"):
    """tokens -> int64 ids; an unknown token is a KeyError naming it."""
    try:
        return np.array([stoi[t] for t in tokens], dtype=np.int64)
    except KeyError as e:
        raise KeyError(f"{what} {e.args[0]!r} is not in the vocabulary "
                       f"({len(stoi)} entries)") from None


def char_vocab(text):
    """(stoi, itos) over the characters of `text`, sorted by frequency like the word vocabulary."""
    return build_vocab(list(text))


def lm_batches(ids, batch_size, seq_len):
    """Truncated-BPTT batches: `ids` cut into batch_size parallel streams (B, N) and walked
    seq_len steps at a time, so the state at the end of one batch is the right start for the
    next -> list of (inputs (B, t), targets (B, t)) with targets shifted one token ahead."""
    ids = np.asarray(ids, dtype=np.int64)
    n = (len(ids) - 1) // batch_size
    if n < 2:
        raise ValueError(f"ids: expected at least {2 * batch_size + 1} tokens for batch_size="
                         f"{batch_size}, got {len(ids)}")
    x = ids[: n * batch_size].reshape(batch_size, n)                 # (B, N)
    y = ids[1: n * batch_size + 1].reshape(batch_size, n)            # (B, N)
    return [(x[:, s:s + seq_len], y[:, s:s + seq_len]) for s in range(0, n, seq_len)]
