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
# matplotlib is optional (extra "plot"): each plot imports it through _io.pyplot, whose
# MissingExtra names the extra; the tutorials write their results before any plot.
def plot_confusion(cm, labels, path, title="Confusion matrix (rows: true, normalised)"):
    """Row-normalised confusion matrix as a PNG (written atomically) -> path."""
    from .._io import pyplot, savefig
    plt = pyplot("the confusion-matrix plot")
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_panels(path, panels, title=None, width=7.0):
    """panels: [{"curves": {label: (xs, ys)}, "xlabel", "ylabel", "logy": False,
    "integer_x": False, "title": None}] side by side -> one PNG written atomically -> path.
    A curve label starting with "." is drawn with markers only (per-epoch points)."""
    from .._io import pyplot, savefig
    plt = pyplot("the loss plots")
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (xs, ys) in panel["curves"].items():
            xs, ys = list(xs), list(ys)
            if not xs:
                continue
            style = panel.get("styles", {}).get(label, {})
            ax.plot(xs, ys, label=label, **({"marker": "." if len(xs) < 50 else None} | style))
        ax.set_xlabel(panel.get("xlabel", "epoch"))
        ax.set_ylabel(panel.get("ylabel", "loss"))
        if panel.get("logy"):
            ax.set_yscale("log")
        if panel.get("integer_x"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel.get("title"):
            ax.set_title(panel["title"])
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(path, curves, xlabel="epoch", ylabel="loss", title=None, logy=False,
                integer_x=None):
    """curves: {label: (xs, ys)} -> one line per curve, a PNG written atomically -> path.
    integer_x (default: when xlabel is "epoch") puts ticks on whole numbers only."""
    integer_x = xlabel == "epoch" if integer_x is None else integer_x
    return plot_panels(path, [{"curves": curves, "xlabel": xlabel, "ylabel": ylabel,
                               "logy": logy, "integer_x": integer_x}], title=title)


def _training_panel(history, ylabel="cross-entropy"):
    """The training loss against epochs: the smoothed per-step curve, the per-epoch means."""
    n = history.get("steps_per_epoch")
    steps = history.get("loss_per_step") or []
    curves, styles = {}, {}
    if n:
        curves["train, smoothed per step"] = ([s / n for s, _ in steps], [v for _, v in steps])
        epochs = history.get("train_loss_per_epoch") or []
        curves["train, mean of the epoch"] = (range(1, len(epochs) + 1), epochs)
        styles["train, mean of the epoch"] = {"marker": "o", "linestyle": "none"}
        styles["train, smoothed per step"] = {"marker": None, "alpha": 0.7}
        return {"curves": curves, "styles": styles, "xlabel": "epoch", "ylabel": ylabel,
                "integer_x": True, "title": "training loss"}
    curves["train, smoothed per step"] = ([s for s, _ in steps], [v for _, v in steps])
    styles["train, smoothed per step"] = {"marker": None}
    return {"curves": curves, "styles": styles, "xlabel": "step", "ylabel": ylabel,
            "title": "training loss"}


def plot_names_curves(path, history, model):
    """names: the training loss (per step, smoothed, and per epoch) and, for the classifiers,
    the validation error 1 - accuracy per epoch (the checkpoint is the epoch where it is lowest)."""
    panels = [_training_panel(history, "cross-entropy (NLL)")]
    val = history.get("val_accuracy_per_epoch")
    if val:
        err = [1.0 - a for a in val]
        best = history.get("best_epoch")
        curves = {"validation error": (range(1, len(err) + 1), err)}
        if best:
            curves[f"best (epoch {best}: the checkpoint)"] = ([best], [err[best - 1]])
        panels.append({"curves": curves, "xlabel": "epoch", "integer_x": True,
                       "ylabel": "validation error (1 - accuracy)", "title": "validation error",
                       "styles": {k: {"marker": "*", "markersize": 12, "linestyle": "none"}
                                  for k in curves if k.startswith("best")}})
    return plot_panels(path, panels, title=f"names: {model}", width=6.0)


def plot_lm_curves(path, history, kind):
    """script/char: the training loss (per step smoothed, per epoch) with the validation loss."""
    panel = _training_panel(history)
    val = history.get("val_loss_per_epoch") or []
    panel["curves"]["validation"] = (range(1, len(val) + 1), val)
    panel["styles"]["validation"] = {"marker": "s"}
    panel["title"] = None
    return plot_panels(path, [panel], title=f"{kind}: loss")


def format_table(rows, headers):
    """Plain aligned text: a header row, a rule, one line per row."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
