"""The one stack walker: layers × directions × dropout masks × padded reversal × concatenation.

Every pass over a multi-layer, bidirectional model walks the same stack; only what is done
to one layer-direction differs (its forward, backward, tangent, R-operator, per-sample
gradients). The walker carries a tuple of "streams" side by side, e.g. (x,) for the forward,
(ẋ,) for the tangent forward, (dout, R{dout}) for the backward with its tangent:

    up(stack, streams, run)      run(layer, direction, k, seqs) -> outs       (bottom to top)
    down(stack, streams, run)    run(layer, direction, k, grads, need_dx) -> dxs or None
                                                                              (top to bottom)

k = layer * D + direction indexes caches and states. The reverse direction sees its input
reversed within each sequence's own length (reverse_padded) and its output is reversed
back; the directions' outputs are concatenated on the feature axis (forward first), and
layer l > 0 sees its input times the dropout mask drawn for it. A stream may be None (a
zero tangent): it passes through untouched.

Shapes: T = time, B = batch, P = each direction's output size, D = directions.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._checks import reverse_padded


class Stack(NamedTuple):
    """The shape of a walk: what the walker needs to know of a model and its forward."""
    num_layers: int
    directions: int               # D
    out_size: int                 # P, one direction's output width
    lengths: Optional[np.ndarray]  # (B,) or None: every sequence runs T steps
    masks: tuple                  # per layer: the dropout mask on its input (T, B, in) or None


def _flip(a, lengths):
    return None if a is None else reverse_padded(a, lengths)


def _join(outs):
    """Per direction, a tuple of streams -> one tuple, each concatenated over directions."""
    if len(outs) == 1:
        return outs[0]
    return tuple(None if parts[0] is None else np.concatenate(parts, axis=-1)
                 for parts in zip(*outs))


def _masked(streams, mask):
    return streams if mask is None else tuple(None if s is None else s * mask for s in streams)


def up(stack, streams, run):
    """Walk the stack upward from the input streams (T, B, I) -> the top layer's output
    streams (T, B, D*P)."""
    layer_in = tuple(streams)
    for layer in range(stack.num_layers):
        layer_in = _masked(layer_in, stack.masks[layer])
        outs = []
        for d in range(stack.directions):
            seqs = layer_in if d == 0 else tuple(_flip(s, stack.lengths) for s in layer_in)
            res = tuple(run(layer, d, layer * stack.directions + d, seqs))
            outs.append(res if d == 0 else tuple(_flip(r, stack.lengths) for r in res))
        layer_in = _join(outs)
    return layer_in


def down(stack, streams, run, input_grad=True):
    """Walk the stack downward from the output gradient streams (T, B, D*P) -> the input's
    gradient streams (T, B, I), or None when no layer-direction gave one (input_grad=False:
    the bottom layer is told it need not form dx)."""
    P, D = stack.out_size, stack.directions
    g_layer = tuple(streams)
    for layer in reversed(range(stack.num_layers)):
        d_in = None
        for d in range(D):
            gs = tuple(None if g is None else np.ascontiguousarray(g[..., d * P:(d + 1) * P])
                       for g in g_layer)
            if d:
                gs = tuple(_flip(g, stack.lengths) for g in gs)
            dxs = run(layer, d, layer * D + d, gs, input_grad or layer > 0)
            if dxs is None or dxs[0] is None:
                continue
            dxs = tuple(dxs) if d == 0 else tuple(_flip(a, stack.lengths) for a in dxs)
            d_in = dxs if d_in is None else tuple(
                b if a is None else (a if b is None else a + b) for a, b in zip(d_in, dxs))
        if d_in is not None:
            d_in = _masked(d_in, stack.masks[layer])
        g_layer = d_in
    return g_layer


def stack_states(per_k, unbatched=False):
    """Per layer-direction state tuples [k] -> a tuple per state name of (L*D, B, size)
    ((L*D, size) for unbatched input)."""
    return tuple((lambda s: s[:, 0, :] if unbatched else s)(np.stack([st[j] for st in per_k]))
                 for j in range(len(per_k[0])))


__all__ = ["Stack", "up", "down", "stack_states"]
