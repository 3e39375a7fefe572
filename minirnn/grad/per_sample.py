"""Per-sample gradients: dL_b/dθ for every sequence b of a batch, from one forward and one
backward (no loop over the examples).

    g = minirnn.grad.per_sample_gradients(model, x, d_out, lengths=n)   # {name: (B, *shape)}
    sum(g[name]) == the backward's gradient, to round-off

The hand-written backward already forms, for every step, the gradient of the gate
pre-activations dz_t (B, G*H) of every sequence; a weight's gradient is the batch sum of
their products with the step's inputs, dW_ih = Σ_t Σ_b dz_t[b] ⊗ x_t[b]. Stopping before the
sum over b gives each sequence's own gradient, e.g. dW_ih[b] = Σ_t dz_t[b] ⊗ x_t[b], at the
cost of the same products (each cell's backward(per_sample=True): minirnn/cells/). Layers,
directions, lengths, proj_size, batch_first and dropout masks are walked as the backward
walks them (minirnn.nn.passes.per_sample_pass).

What torch cannot do here: torch.func.vmap does not batch nn.LSTM / nn.GRU (pytorch#105982,
#134606), so per-example gradients there mean one backward per example, or a re-written cell.

Memory: B × |θ| numbers (|θ| = the model's parameter count) beside the backward's own
record; sizes above memory_limit (default 1 GiB) are refused with the bytes they need.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_int, check_shape
from ..nn.passes import per_sample_pass, record_forward
from .forward_mode import check_model

MEMORY_LIMIT = 1 << 30           # bytes: the largest per-sample gradient set allocated


def per_sample_gradients(model, x, d_out, state=None, lengths=None, memory_limit=None):
    """dL_b/dθ for each sequence b, where L = Σ_b L_b and d_out = dL/d(out)
    -> {parameter name: (B, *shape)}, keyed like model.grads.

    model: a minirnn RNN, LSTM, GRU or registered cell's RNNBase (any layers, directions,
    proj_size, batch_first; in training mode its dropout masks are drawn as in forward).
    x, state, lengths: as model.forward_state takes them (unbatched x counts as B = 1);
    d_out: the gradient of the loss with respect to forward's output, its shape.
    model.grads and the record of the model's last forward are left untouched.
    """
    check_model(model, "per-sample gradients", deterministic=False)   # dropout: as trained
    out, _, rec = record_forward(model, x, state, lengths)           # checks x, state, lengths
    B = rec.caches[0].x.shape[1]
    need = B * sum(p.size for p in model.params.values()) * model.dtype.itemsize
    limit = MEMORY_LIMIT if memory_limit is None else check_int("memory_limit", memory_limit)
    if need > limit:
        raise ValueError(f"x: per-sample gradients of {B} sequences would need {need} bytes "
                         f"({need / 2**20:.1f} MiB: batch {B} × "
                         f"{need // max(B, 1) // model.dtype.itemsize} parameters × "
                         f"{model.dtype.itemsize} bytes), above memory_limit={limit} bytes; "
                         f"split the batch, or pass a larger memory_limit= if the memory is "
                         f"there")
    d_out = as_float_array("d_out", d_out, model.dtype)
    check_shape("d_out", d_out, out.shape, " (the shape of forward's output)")
    grads = per_sample_pass(model, rec, np.ascontiguousarray(
        model.to_time_major(d_out, rec.unbatched)))
    return {name: grads[name] for name in model.params}


__all__ = ["per_sample_gradients", "MEMORY_LIMIT"]
