"""Dense step Jacobians of a recurrent model (shared by the UORO and Lyapunov studies).

One step of a unidirectional model is a map s_t = F(x_t, s_{t-1}; θ) on its flat state
s = [h (every layer), c (every layer, LSTM)] (S numbers per sequence). The state Jacobian
J_t = ∂s_t/∂s_{t-1} of a whole model (any cell, any layers) is read off the engine's exact
reverse mode: one step's backward with d_state = e_k (the k-th unit vector) and d_out = 0
returns row k of J_t as d_state0; B*S such rows run as one batch. Exact, and cheap for the
small H a study uses.

    probe = StateProbe(model)              # checks the model; eval mode, record and grads kept
    J = probe.jacobian(x_t, flat)          # (B, S, S) at flat state (B, S), every sequence
    flat_next = probe.step(x_t, flat)

One layer, with the parameter Jacobian too (UORO), comes from the cell's analytic
`step_jacobians` (CellSpec.step_jacobians, written for RTRL):

    J, M, state_next = layer_jacobians(spec, x_t, state, params, layout)   # + M̄ (B, S, P)

The two routes are independent derivations of the same J (tests/test_study_lyapunov.py
compares them).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..cells import get_cell


def check_unidirectional(model, what="model", single_layer=False):
    """A minirnn RNN/LSTM/GRU that runs forward in time (a dynamical system); the one layer
    that layer-level tools need when single_layer."""
    from ..nn.recurrent import RNNBase
    if not isinstance(model, RNNBase):
        raise TypeError(f"{what}: expected minirnn.RNN, LSTM or GRU (any registry cell), "
                        f"got {type(model).__name__}")
    if model.bidirectional:
        raise ValueError(f"{what}: expected a unidirectional model (a map forward in time), "
                         f"got bidirectional=True")
    if single_layer and model.num_layers != 1:
        raise ValueError(f"{what}: expected num_layers=1, got {model.num_layers}")
    return model


def layer_params(model, layer=0):
    """{functional name: array or None} of one layer (direction 0), in spec.param_names order."""
    return {n: model.params.get(f"{n}_l{layer}") for n in model.spec.param_names}


def flatten_state(state):
    """A state tuple, each (L, B, size) -> (B, S): per sequence [h_l0, h_l1, ..., c_l0, ...]."""
    return np.concatenate([np.concatenate(list(s), axis=-1) for s in state], axis=-1)


def unflatten_state(flat, sizes, layers):
    """(B, S) -> a state tuple, each (L, B, size): the inverse of flatten_state."""
    out, k = [], 0
    for size in sizes:
        parts = []
        for _ in range(layers):
            parts.append(flat[:, k:k + size])
            k += size
        out.append(np.ascontiguousarray(np.stack(parts)))
    return tuple(out)


@contextlib.contextmanager
def probing(model):
    """Run probe passes on `model` without changing it: eval mode (no dropout), and its
    training flag, last-forward record and accumulated gradients restored afterwards."""
    saved_grads = {k: g.copy() for k, g in model.grads.items()}
    training = model.training
    model.eval()
    try:
        with model.preserve_record():
            yield model
    finally:
        model.train(training)
        for k, g in saved_grads.items():
            model.grads[k][...] = g


class StateProbe:
    """One step of a unidirectional model at a time, and its state Jacobian, through the
    model's public forward_state/backward_state (any layers, any cell). Use inside probing()."""

    def __init__(self, model):
        self.model = check_unidirectional(model)
        self.sizes = model.state_sizes                 # per state name: P (h) or H (c)
        self.L = model.num_layers
        self.S = self.L * sum(self.sizes)

    def initial(self, state, B):
        """None (zeros) or a tuple per state name -> flat (B, S) float array."""
        m = self.model
        if state is None:
            return np.zeros((B, self.S), dtype=m.dtype)
        names = m.spec.state_names
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise TypeError(f"state: expected None or a tuple of {len(names)} array(s) {names}, "
                            f"got {type(state).__name__}")
        full = m.initial_state(tuple(state), B)
        return flatten_state(full)

    def _run(self, x_t, flat):
        """x_t (B, I) time-major step, flat (B, S) -> flat next state (B, S)."""
        m = self.model
        x = m.from_time_major(x_t[None])
        _, st = m.forward_state(x, unflatten_state(flat, self.sizes, self.L))
        return flatten_state(st)

    def step(self, x_t, flat):
        """The next flat state (B, S) of every sequence."""
        return self._run(x_t, flat)

    def jacobian(self, x_t, flat):
        """x_t (B, I), flat (B, S) -> J (B, S, S) with J[b, i, j] = ∂s_t[i]/∂s_{t-1}[j]. One
        forward and one backward of B*S copies: copy (b, k) carries d_state = e_k, so its
        d_state0 is row k of sequence b's Jacobian. (The next state comes from step(): a
        product's last bits may depend on the batch it runs in, and a chaotic trajectory
        amplifies them, so every trajectory runs in batches of B alone.)"""
        m, S = self.model, self.S
        B = flat.shape[0]
        self._run(np.repeat(x_t, S, axis=0), np.repeat(flat, S, axis=0))
        eye = np.tile(np.eye(S, dtype=m.dtype), (B, 1))                     # (B*S, S)
        d_out = np.zeros((1, B * S, m.out_size), dtype=m.dtype)
        _, d0 = m.backward_state(m.from_time_major(d_out),
                                 unflatten_state(eye, self.sizes, self.L), input_grad=False)
        return flatten_state(d0).reshape(B, S, S)


def param_layout(spec, params):
    """The parameters present (no-bias layers skip the biases) -> [(name, shape)], in
    spec.param_names order: the layout of a flat parameter vector."""
    return [(n, params[n].shape) for n in spec.param_names if params.get(n) is not None]


def flatten_params(grads, layout):
    return np.concatenate([np.asarray(grads[n]).ravel() for n, _ in layout])


def unflatten_params(vec, layout, prefix_layer=0):
    """A flat vector -> {torch-style name (weight_ih_l0, ...): array}."""
    out, k = {}, 0
    for n, shape in layout:
        size = int(np.prod(shape))
        out[f"{n}_l{prefix_layer}"] = vec[..., k:k + size].reshape(vec.shape[:-1] + shape)
        k += size
    return out


def layer_jacobians(spec, x_t, state, params, layout):
    """One step of one layer, every sequence: x_t (B, I), state a tuple of (B, size)
    -> J (B, S, S), M̄ (B, S, P) (the immediate parameter Jacobian, s_{t-1} held fixed, in
    `layout` order), the next state tuple. Analytic: the cell's own step_jacobians
    (CellSpec.step_jacobians, the RTRL work); the next state from its reference forward."""
    spec = get_cell(spec)
    J, per_param = spec.step_jacobians(x_t, state, params)
    B, S = J.shape[:2]
    M = np.concatenate([per_param[n].reshape(B, S, int(np.prod(shape))) for n, shape in layout],
                       axis=-1)
    _, nxt, _ = spec.forward(x_t[None], state, params)
    return J, M, nxt
