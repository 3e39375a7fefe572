"""float32 against float64 as a sequence grows: how much single precision loses in the
outputs and the gradients of a recurrent layer, for minirnn's numpy and numba backends and
for torch on CPU.

For each length T: one float32 model (torch's init, W_hh times `weight_scale`), an input x, a
non-zero initial state and an upstream gradient d_out, all drawn in float32. The reference is
minirnn's numpy reference in float64 with exactly the same numbers (float32 values are exact
in float64), so the only difference is the arithmetic. Each backend runs forward and BPTT in
float32 and is compared with it:

    relative error = ‖a32 - a64‖ / ‖a64‖    (Frobenius, over every element)

for out (T, B, H), dx = dL/dx and the parameter gradients (all of them as one vector), with
L = Σ d_out · out. A float32 rounding is 6e-8; a contracting network keeps the error near
that for any T, a chaotic one (gain > 1) amplifies it until the two runs part entirely.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells import BACKENDS as KERNEL_BACKENDS
from ..cells import get_cell
from ..nn import make_recurrent

BACKENDS = KERNEL_BACKENDS + ("torch",)
QUANTITIES = ("out", "dx", "params")


@dataclass
class PrecisionRow:
    cell: str
    backend: str
    T: int
    quantity: str             # "out", "dx" or "params"
    rel_error: float


def relative_error(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def _problem(cell, T, batch, input_size, hidden, weight_scale, seed):
    """float32 weights and data (drawn once per T) -> (state_dict, x, state0, d_out)."""
    model = make_recurrent(cell, input_size, hidden, dtype="float32", seed=seed)
    model.params["weight_hh_l0"][...] *= np.float32(weight_scale)
    rng = np.random.default_rng([seed, T])
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x = f32(T, batch, input_size)
    state0 = tuple(0.5 * f32(1, batch, hidden) for _ in get_cell(cell).state_names)
    d_out = f32(T, batch, hidden)
    return model.state_dict(), x, state0, d_out


def _minirnn(cell, sd, x, state0, d_out, dtype, backend):
    """out, dx, the parameter gradients (one flat vector) of one layer on a minirnn backend."""
    T, B, I = x.shape
    H = d_out.shape[-1]
    m = make_recurrent(cell, I, H, dtype=dtype, backend=backend)
    m.load_state_dict(sd)
    out, _ = m.forward_state(x.astype(dtype), tuple(s.astype(dtype) for s in state0))
    dx, _ = m.backward_state(d_out.astype(dtype))
    grads = np.concatenate([m.grads[k].ravel() for k in sd])
    return out, dx, grads


def _torch(cell, sd, x, state0, d_out):
    """The same on torch (CPU, float32, autograd), through minirnn's torch twin."""
    import torch

    from ..interop.torch import torch_recurrent
    T, B, I = x.shape
    H = d_out.shape[-1]
    net = torch_recurrent(cell, I, H)
    with torch.no_grad():
        for k, v in net.state_dict().items():
            v.copy_(torch.from_numpy(sd[k]))
    xt = torch.from_numpy(x).requires_grad_(True)
    hx = tuple(torch.from_numpy(s) for s in state0)
    out, _ = net(xt, hx if len(hx) > 1 else hx[0])
    out.backward(torch.from_numpy(d_out))
    params = dict(net.named_parameters())
    grads = np.concatenate([params[k].grad.numpy().ravel() for k in sd])
    return out.detach().numpy(), xt.grad.numpy(), grads


def torch_available():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def float32_error_growth(cell, steps=(1, 10, 100, 1000), backends=None, hidden=32,
                         input_size=8, batch=4, weight_scale=1.0, seed=0, progress=False):
    """Relative errors of float32 out, dx and parameter gradients against float64, per
    backend and length T -> [PrecisionRow]. cell: a registry name; steps: the lengths T;
    backends: some of "numpy", "numba", "torch" (torch must be installed: torch_available());
    None: numpy, numba and torch where it is installed;
    weight_scale multiplies W_hh after torch's init. progress: a tqdm bar over the runs."""
    from .._checks import check_int
    from .._progress import progress as bar
    spec = get_cell(cell)
    steps = [check_int("steps", T) for T in steps]
    if backends is None:
        backends = BACKENDS if torch_available() else BACKENDS[:2]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        raise ValueError(f"backends: expected some of {BACKENDS}, got {tuple(backends)}")
    for name, v in (("hidden", hidden), ("input_size", input_size), ("batch", batch)):
        check_int(name, v)
    if not float(weight_scale) > 0:
        raise ValueError(f"weight_scale: expected a positive number, got {weight_scale!r}")
    rows = []
    pbar = bar(total=len(steps) * (1 + len(backends)), desc=f"float32 {spec.name}",
               unit="run", disable=not progress, leave=False)
    for T in steps:
        sd, x, state0, d_out = _problem(spec.name, T, batch, input_size, hidden, weight_scale,
                                        seed)
        ref = _minirnn(spec.name, {k: v.astype(np.float64) for k, v in sd.items()}, x, state0,
                       d_out, "float64", "numpy")
        pbar.update(1)
        for backend in backends:
            got = (_torch(spec.name, sd, x, state0, d_out) if backend == "torch" else
                   _minirnn(spec.name, sd, x, state0, d_out, "float32", backend))
            rows += [PrecisionRow(spec.name, backend, T, q, relative_error(a, r))
                     for q, a, r in zip(QUANTITIES, got, ref)]
            pbar.update(1)
    pbar.close()
    return rows
