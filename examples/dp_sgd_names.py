"""DP-SGD on the names tutorial (surname -> one of 18 languages), beside the same training
without privacy: same model, same seed, same batches, same epochs.

    python examples/dp_sgd_names.py             # both runs, then test accuracy and ε
    python examples/dp_sgd_names.py --quick     # < 1 min: a small model on every 8th name
    python examples/dp_sgd_names.py --sigma 0.6 --clip 1.0 --epochs 10 --hidden 64

One DP-SGD step (Abadi et al. 2016), as Opacus's DPOptimizer takes it:
  1. a Poisson batch: every training name is in it with probability q = 1 / steps per epoch;
  2. each example's gradient of its own loss in every parameter, g_b (the model: one-hot
     letters -> LSTM -> h_n -> Linear, minirnn.nn.models.SequenceClassifier; the one-hot
     input has no parameters). The recurrent layer's come from one backward,
     minirnn.grad.per_sample_gradients; the linear head's are outer products;
  3. flat clipping: g_b <- g_b * min(1, C / (|g_b| + 1e-6)), |g_b| the norm over all parameters;
  4. the sum over the batch, plus noise N(0, σ²C²) in every coordinate;
  5. divided by the expected batch size q N, then an Adam (or SGD) step.
The non-private run takes the plain mean gradient of the same batches (model.backward).

Privacy: Opacus's RDP accountant (pip install "minirnn[dp]": opacus, which loads torch)
gives ε at --delta for σ, q and the number of steps; without it the noise multiplier σ alone
is reported. The cross-entropy is unweighted in both runs: class weights made from the
training labels' counts would be a statistic of the private data. The noise comes from a
seeded NumPy generator, so that a run repeats; a deployment needs a cryptographically
secure source (Opacus's secure_mode).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import minirnn
from minirnn.nn.losses import log_softmax
from minirnn.nn.models import SequenceClassifier
from minirnn.tutorials.data import N_LETTERS, encode_name, load_names, pad_batch, split_names
from minirnn.tutorials.metrics import accuracy

EPS_NORM = 1e-6           # Opacus's: the clip factor is C / (|g_b| + 1e-6)


# ---- per-example gradients -----------------------------------------------------------------
def linear_per_sample_grads(x, dy):
    """y = x W^T + b, one row per example: dW[b] = dy[b] ⊗ x[b], db[b] = dy[b].
    x (B, in), dy (B, out) -> {"weight": (B, out, in), "bias": (B, out)}."""
    return {"weight": dy[:, :, None] * x[:, None, :], "bias": dy.copy()}


def last_state_to_output_grad(d_feat, lengths, steps, num_directions):
    """The classifier reads h_n of the last layer: for the forward direction it is the output
    at the sequence's last step, for the backward direction the output at step 0. Putting
    d_feat there gives the d_out that per_sample_gradients takes (every other step zero).
    d_feat (B, D*H) -> d_out (B, T, D*H), batch first as the classifier's recurrent layer."""
    B, DH = d_feat.shape
    H = DH // num_directions
    d_out = np.zeros((B, steps, DH), dtype=d_feat.dtype)             # (B, T, D*H)
    rows = np.arange(B)
    d_out[rows, np.asarray(lengths) - 1, :H] = d_feat[:, :H]          # forward: h at n_b - 1
    if num_directions == 2:
        d_out[:, 0, H:] = d_feat[:, H:]                               # backward: h at step 0
    return d_out


def per_example_gradients(model, tokens, lengths, targets):
    """Each example's cross-entropy L_b and its gradient in every parameter of the classifier
    -> ({name as model.named_parameters(): (B, *shape)}, L (B,)). Their sum over b is what
    model.backward gives for the summed loss."""
    x = model.embed(tokens)                                          # (B, T, V) one-hot
    _, state = model.rnn.forward_state(x, None, lengths)
    D = model.rnn.num_directions
    feat = np.concatenate(list(state[0][-D:]), axis=-1)              # (B, D*H) last layer
    logp = log_softmax(model.fc.forward(feat), axis=-1)              # (B, C)
    rows = np.arange(len(targets))
    d_logits = np.exp(logp)                                          # dL_b/dlogits_b
    d_logits[rows, targets] -= 1.0
    d_feat = d_logits @ model.fc.params["weight"]                    # (B, D*H)
    d_out = last_state_to_output_grad(d_feat, lengths, x.shape[1], D)
    grads = {f"rnn.{k}": g for k, g in minirnn.grad.per_sample_gradients(
        model.rnn, x, d_out, lengths=lengths).items()}
    grads.update({f"fc.{k}": g for k, g in linear_per_sample_grads(feat, d_logits).items()})
    return grads, -logp[rows, targets]


def clip_and_sum(grads, clip):
    """Flat clipping: every example's whole gradient scaled to norm <= clip, then summed
    -> ({name: sum over b}, norms (B,) before clipping)."""
    norms = np.sqrt(sum(np.sum(g.reshape(len(g), -1) ** 2, axis=1) for g in grads.values()))
    factor = np.minimum(1.0, clip / (norms + EPS_NORM))             # (B,)
    return {k: np.tensordot(factor, g, axes=1) for k, g in grads.items()}, norms


# ---- privacy accounting --------------------------------------------------------------------
def epsilon(sigma, q, steps, delta):
    """ε of `steps` Poisson-subsampled Gaussian steps at δ by Opacus's RDP accountant, or None
    when opacus is not installed."""
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        return None
    import warnings
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]              # what acc.step() records, all at once
    with warnings.catch_warnings():                # "optimal order is the largest alpha"
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta))


# ---- training ------------------------------------------------------------------------------
class Data:
    """The names, their fixed split and their letter ids."""

    def __init__(self, seed, quick):
        names, labels, self.cats = load_names()
        self.split = split_names(labels, seed=seed)
        if quick:
            self.split = dict(self.split, train=self.split["train"][::8])
        self.encoded = [encode_name(n) for n in names]
        self.labels = labels

    def batch(self, idx):
        tokens, lengths = pad_batch([self.encoded[i] for i in idx])   # (B, T), (B,)
        return tokens, lengths, self.labels[idx]

    def accuracy(self, model, part, size=512):
        idx = self.split[part]
        preds = [model.forward(*self.batch(idx[s:s + size])[:2]).argmax(axis=1)
                 for s in range(0, len(idx), size)]
        return accuracy(self.labels[idx], np.concatenate(preds))


def build(args, data):
    return SequenceClassifier(N_LETTERS, len(data.cats), args.hidden, cell=args.cell,
                              seed=args.seed, backend=args.backend)


def make_optimizer(args, model):
    if args.optimizer == "adam":
        return minirnn.Adam(model, lr=args.lr)
    return minirnn.SGD(model, lr=args.lr, momentum=0.9)


def progress_bar(total, desc, show):
    """tqdm when it is installed (extra 'plot' or 'all') and wanted, else nothing."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        show = False
    return tqdm(total=total, desc=desc, leave=False) if show else None


def private_gradient(model, batch, args, noise, expected):
    """Steps 2-5: per-example gradients, flat clipping, the sum, noise, / the expected batch
    size, written into model's gradients -> (summed loss, norms before clipping (B,))."""
    if batch is None:           # an empty Poisson batch is a step too: noise alone
        summed, losses, norms = {}, np.zeros(0), np.zeros(0)
    else:
        grads, losses = per_example_gradients(model, *batch)
        summed, norms = clip_and_sum(grads, args.clip)
    for name, _, g in model.named_parameters():
        g[...] = (summed.get(name, 0.0)
                  + noise.normal(0.0, args.sigma * args.clip, g.shape)) / expected
    return float(losses.sum()), norms


def plain_gradient(model, batch):
    """The non-private step's gradient: the mean over the batch, by model.backward."""
    if batch is None:
        return 0.0
    tokens, lengths, y = batch
    logp = log_softmax(model.forward(tokens, lengths), axis=-1)      # (B, C)
    rows = np.arange(len(y))
    d_logits = np.exp(logp)
    d_logits[rows, y] -= 1.0
    model.backward(d_logits / len(y))
    return float(-logp[rows, y].sum())


def train(args, data, private):
    """One run -> summary. The batches come from a generator seeded by --seed alone, so both
    runs see the same ones; the noise has its own generator."""
    model = build(args, data)
    opt = make_optimizer(args, model)
    train_idx = data.split["train"]
    n, steps = len(train_idx), args.steps_per_epoch
    sample, noise = np.random.default_rng(args.seed), np.random.default_rng(args.seed + 1)
    tag = "dp-sgd" if private else "non-private"
    clipped = seen = 0
    t0 = time.perf_counter()
    bar = progress_bar(args.epochs * steps, tag, args.progress)
    say = print if bar is None else bar.write
    for epoch in range(1, args.epochs + 1):
        total, count = 0.0, 0
        for _ in range(steps):
            idx = train_idx[sample.random(n) < 1.0 / steps]          # Poisson: q = 1 / steps
            batch = data.batch(idx) if len(idx) else None
            opt.zero_grad()
            if private:
                loss, norms = private_gradient(model, batch, args, noise, n / steps)
                clipped += int(np.sum(norms > args.clip))
            else:
                loss = plain_gradient(model, batch)
            opt.step()
            total, count = total + loss, count + len(idx)
            if bar is not None:
                bar.update()
        seen += count
        extra = f"  clipped {clipped / max(seen, 1):.0%} of {seen} so far" if private else ""
        say(f"[{tag}] epoch {epoch:2d}  train loss {total / max(count, 1):.4f}  "
            f"val accuracy {data.accuracy(model, 'val'):.4f}{extra}")
    if bar is not None:
        bar.close()
    return {"test": data.accuracy(model, "test"), "seconds": time.perf_counter() - t0,
            "clipped": clipped, "seen": seen}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a < 1 min run: hidden 16, every 8th "
                   "training name, 2 epochs (what the tests run)")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (quick: 2)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size (default 64, quick 16)")
    p.add_argument("--cell", default="lstm", help="lstm, gru, rnn_tanh or rnn_relu")
    p.add_argument("--batch-size", type=int, default=64, help="the expected batch size q N")
    p.add_argument("--clip", type=float, default=1.0, help="C: each example's norm bound")
    p.add_argument("--sigma", type=float, default=0.8, help="σ: the noise multiplier")
    p.add_argument("--delta", type=float, default=1e-5, help="δ of the (ε, δ) reported")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="numba (default when built) or numpy")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.hidden = args.hidden or (16 if args.quick else 64)
    if args.backend is None:
        from minirnn.cli.train import default_backend
        args.backend = default_backend()
    for name in ("epochs", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 1, "
                    f"got {getattr(args, name)}")
    if not args.clip > 0 or not args.sigma >= 0 or not 0 < args.delta < 1:
        p.error(f"expected --clip > 0, --sigma >= 0 and 0 < --delta < 1, got --clip "
                f"{args.clip}, --sigma {args.sigma}, --delta {args.delta}")
    return args


def main(argv=None):
    args = parse(argv)
    data = Data(args.seed, args.quick)
    n = len(data.split["train"])
    args.steps_per_epoch = max(1, round(n / args.batch_size))      # q = 1 / steps, as Opacus
    q, steps = 1.0 / args.steps_per_epoch, args.epochs * args.steps_per_epoch
    model = build(args, data)
    size = sum(p.size for _, p, _ in model.named_parameters())
    per_batch = args.batch_size * size
    print(f"names: {n} training names, {len(data.split['val'])} validation, "
          f"{len(data.split['test'])} test, {len(data.cats)} languages; {args.cell} hidden "
          f"{args.hidden} + linear head: {size} parameters ({args.backend})")
    print(f"DP-SGD: Poisson sampling q = {q:.5f} (expected batch {n * q:.1f}), "
          f"{args.steps_per_epoch} steps per epoch, {args.epochs} epochs = {steps} steps; "
          f"clip C = {args.clip}, noise multiplier σ = {args.sigma}")
    print(f"per-sample gradients: batch {args.batch_size} × {size} parameters = {per_batch} "
          f"numbers ({per_batch * 8 / 2**20:.1f} MiB float64) per expected batch")
    results = {}
    for private in (False, True):
        results[private] = train(args, data, private)
    pub, dp = results[False], results[True]
    print(f"test accuracy non-private {pub['test']:.4f}  ({pub['seconds']:.0f} s)")
    print(f"test accuracy DP-SGD      {dp['test']:.4f}  ({dp['seconds']:.0f} s; "
          f"{dp['clipped']} of {dp['seen']} per-example gradients clipped)")
    eps = epsilon(args.sigma, q, steps, args.delta) if args.sigma > 0 else float("inf")
    if eps is None:
        print(f"privacy: noise multiplier σ = {args.sigma}, q = {q:.5f}, {steps} steps "
              f"(no accountant installed: pip install \"minirnn[dp]\" for ε)")
    else:
        print(f"privacy: ε = {eps:.2f} at δ = {args.delta:g} (Opacus RDP accountant; "
              f"σ = {args.sigma}, q = {q:.5f}, {steps} steps)")
    return results, eps


if __name__ == "__main__":
    main()
