"""Classification metrics and the tutorials' plots.

accuracy = correct / all; per-class recall_c = correct in class c / examples of class c;
macro accuracy = mean over classes of recall_c (every language counts the same, so a model that
only learns Russian and English scores high accuracy but low macro accuracy).
Perplexity = exp(mean cross-entropy per token).
"""
from __future__ import annotations

import math

import numpy as np


def _labels(name, y):
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    return y


def confusion_matrix(y_true, y_pred, num_classes):
    """(C, C) int64 counts; row = true class, column = predicted class."""
    y_true, y_pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_pred: expected shape {y_true.shape} like y_true, got {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name}: expected labels in [0, {num_classes}), got {y.min()}..{y.max()}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def accuracy(y_true, y_pred):
    y_true, y_pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_pred: expected a non-empty shape {y_true.shape}, got {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def per_class_recall(cm):
    """(C,) recall per class; NaN for a class with no examples (it has no recall)."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def macro_accuracy(cm):
    """Mean per-class recall over the classes that have examples."""
    return float(np.nanmean(per_class_recall(cm)))


def perplexity(mean_nll):
    return float(math.exp(min(float(mean_nll), 700.0)))      # exp overflows past ~709


# ---- plots ----------------------------------------------------------------------------
def plot_confusion(cm, labels, path, title="Confusion matrix (rows: true, normalised)"):
    """Row-normalised confusion matrix as a PNG (written atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import savefig
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_curves(path, curves, xlabel="epoch", ylabel="loss", title=None, logy=False):
    """curves: {label: (xs, ys)} -> one line per curve, a PNG written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import savefig
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, marker="." if len(xs) < 50 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    savefig(fig, path, dpi=100)
    plt.close(fig)


def format_table(rows, headers):
    """Plain aligned text: a header row, a rule, one line per row."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
