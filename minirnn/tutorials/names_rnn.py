"""names, part 1: the PyTorch char-RNN tutorial's own network ("tutorial-rnn"), one name a step.

    combined_t = [x_t ; hidden_{t-1}]                 (57 + 128,)  x_t one-hot letter
    hidden_t   = i2h(combined_t)                      Linear, no nonlinearity (as the tutorial)
    output     = log_softmax(i2o(combined_{T-1}))     Linear, only the last step is scored
    loss = NLL(output, language);  SGD p -= 0.005 * grad, random language then random name

minirnn.tutorials.names runs it (`minirnn train names --model tutorial-rnn`) beside the
proper classifier; benchmarks/tutorial_rnn.py times it against the same loop on torch.
"""
from __future__ import annotations

import numpy as np

from .data import ALPHABET, N_LETTERS, encode_name, one_hot


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
        """BPTT: d_logits (C,) at the last step, back through every i2h step.

        The recurrence runs step by step: hidden_{t-1} enters hidden_t through the hidden
        columns of i2h's weight, so dL/dhidden_{t-1} = dL/dhidden_t @ W[:, 57:]. The weight
        gradients are sums over the steps (dW = sum_t dh_t^T combined_t), so they come from
        one i2h backward over all steps at once: the same sum as step by step, in one
        product instead of T (measured: 565 -> 230 us a name with the changes beside it;
        benchmarks/tutorial_rnn.py).
        """
        V = N_LETTERS
        self.i2o.forward(combined[-1][None])
        dh = self.i2o.backward(d_logits[None])[0, V:]                # dL/dhidden_{T-2}
        steps = len(combined) - 1                                    # i2h ran at t < T-1
        if steps == 0:
            return
        w_hidden = self.i2h.params["weight"][:, V:]                  # (128, 128)
        dhs = np.empty((steps, self.hidden_size))                    # (T-1, 128) dL/dhidden_t
        for t in range(steps - 1, -1, -1):
            dhs[t] = dh
            if t:
                dh = dh @ w_hidden                                   # -> dL/dhidden_{t-1}
        self.i2h.forward(np.stack(combined[:-1]))                    # (T-1, 57 + 128)
        self.i2h.backward(dhs)

    def logits(self, ids):
        return self.forward(ids)[0]


def tutorial_examples(labels, split, n_categories, rng):
    """The tutorial's stream of training examples: each a random language, then a random name
    of it from the training split -> an endless iterator of (language, name index)."""
    by_class = [split["train"][labels[split["train"]] == c] for c in range(n_categories)]
    while True:
        c = int(rng.integers(n_categories))
        yield c, int(rng.choice(by_class[c]))


def train_tutorial(names, labels, split, cats, steps=100_000, lr=0.005, seed=0,
                   hidden_size=128, log=None, last=None, config=None, resume=None, every=None,
                   show_progress=True, stop=None):
    """SGD one name at a time, as the tutorial. Every `every` steps (default: 5% of the run, 5000
    of 100k as the tutorial) a line `step pct (time) running-loss name / guess ✓`; `last`, if
    given, is saved at each of those lines and on Ctrl-C (`stop`: an _run.Interrupt) with the
    loop state, so `resume` (a Checkpoint of it) continues exactly.
    Returns (model, Meter, training seconds)."""
    from .._progress import progress
    from ..nn.losses import cross_entropy
    from ..train.checkpoint import save_checkpoint
    from ._run import Clock, Interrupted, Meter, check_mark, nice_every, say_through
    model = TutorialRNN(len(cats), hidden_size, seed)
    rng = np.random.default_rng(seed)
    every = every or nice_every(steps)
    meter = Meter(steps, every, curve_every=max(1, steps // 200))
    clock = Clock()
    if resume is not None:
        loop = (resume.extra or {}).get("loop") or {}
        model.net.load_state_dict(resume.state_dict)
        rng.bit_generator.state = loop["rng"]
        meter = Meter(steps, every, max(1, steps // 200), state=loop["meter"])
        clock = Clock(loop["seconds"])
    examples = tutorial_examples(labels, split, len(cats), rng)
    encoded = {}

    def save(path):
        loop = {"rng": rng.bit_generator.state, "meter": meter.state(), "seconds": clock()}
        save_checkpoint(path, model.net, config=config, vocab=list(ALPHABET),
                        labels=list(cats), step=meter.step, extra={"loop": loop})

    bar = progress(range(meter.step + 1, steps + 1), initial=meter.step, total=steps,
                   desc="tutorial-rnn", mininterval=1.0, disable=log is None or not show_progress)
    say = say_through(bar, log)
    for step in bar:
        c, i = next(examples)                                        # language, name
        ids = encoded.get(i)
        if ids is None:                                              # each name encoded once
            ids = encoded[i] = encode_name(names[i])
        z, combined = model.forward(ids)
        loss, dz = cross_entropy(z[None], np.array([c]))             # log_softmax + NLL
        model.net.zero_grad()
        model.backward(dz[0], combined)
        for _, p, g in model.net.named_parameters():                 # plain SGD, as the tutorial
            p -= lr * g
        if meter.add(loss):
            guess = int(np.argmax(z))
            mark = check_mark(True) if guess == c else f"{check_mark(False)} ({cats[c]})"
            say(meter.line(clock(), f"{names[i]} / {cats[guess]} {mark}"))
            if last:
                save(last)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{meter.peek():.3f}", refresh=False)
        if stop is not None and stop.requested and last:
            bar.close()
            save(last)
            raise Interrupted(last, f"at step {step} of {steps}", None)
    bar.close()
    return model, meter, clock()
