"""The one place that knows each cell. Everything else asks here.

    from minirnn.registry import CELLS, get_cell, make_recurrent
    spec = get_cell("lstm")
    spec.gates, spec.gate_names, spec.state_names        # 4, ('i', 'f', 'g', 'o'), ('h', 'c')
    spec.reference()                                      # minirnn.functional.lstm (the spec)
    spec.kernel()                                         # minirnn.kernels._lstm (its Numba twin)
    model = make_recurrent("gru", 8, 16, num_layers=2)    # minirnn.GRU(8, 16, num_layers=2)

A cell is its reference file `functional/<family>.py`, its kernel file `kernels/_<family>.py`
(both with `forward`/`backward` of the same signature) and one entry in CELLS below. The
layer-level calls (`layer_forward`, `layer_backward`) map a uniform
(x, state tuple, parameter dict) onto each family's natural signature, so the modules,
the parity harness, the benchmark and the tools never branch on the cell's name.

Families and their functional signatures (state = the tuple named by `state_names`):
    rnn   forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, valid) -> out, h_T, cache
          backward(cache, d_out, d_hT, return_steps) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh
    lstm  forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, valid) -> out, h_T, c_T, cache
          backward(cache, d_out, d_hT, d_cT, return_steps) -> dx, dh0, dc0, dw_ih, ..., dw_hr
    gru   forward(x, h0, w_ih, w_hh, b_ih, b_hh, valid) -> out, h_T, cache
          backward(cache, d_out, d_hT, return_steps) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh
(return_steps=True appends the per-step gradient record.) Each family also has
    step_jacobians(x_t, *state_{t-1}, w_ih, w_hh, b_ih, b_hh[, extra]) -> J_state, J_<param>...
(RTRL: the step's dense partial Jacobians; CellSpec.step_jacobians is its uniform form.)
and the derivatives of forward and backward (layer_jvp, layer_backward_jvp map onto them;
twins in kernels/_<family>_tangent.py):
    forward_jvp(cache, x_dot, *state0_dot, w_ih_dot, w_hh_dot, b_ih_dot, b_hh_dot[, w_hr_dot])
          -> out_dot, *state_T_dot, tangent cache
    backward_jvp(cache, tcache, d_out, d_out_dot, *d_state_T, *d_state_T_dot, input_grad)
          -> the backward's tuple, and the same tuple of its tangents (the R-operator)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Optional

from ._checks import lookup

CORE_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_MODULES: dict = {}


def _import(name):
    """importlib.import_module, remembered: every layer call asks, and the import machinery's
    lookup costs microseconds that a batch-1 step cannot spare."""
    module = _MODULES.get(name)
    if module is None:
        module = _MODULES[name] = importlib.import_module(name)
    return module


@dataclass(frozen=True)
class CellSpec:
    name: str                      # what users, the CLI and checkpoints call it: "lstm"
    family: str                    # reference functional/<family>.py, kernel kernels/_<family>.py
    gates: int                     # G: weight_ih is (G*H, I), stacked in gate_names order
    gate_names: tuple              # torch's order of the G blocks
    gates_field: str               # the cache field holding them: (T, B, G*H)
    dgates_field: str              # the per-step gradient record's field for them
    state_names: tuple             # ("h",) or ("h", "c"): what forward carries and returns
    module: str                    # class name in minirnn.nn and in torch.nn
    cell_module: str               # the one-step class in minirnn.nn and torch.nn
    nonlinearity: Optional[str] = None     # Elman only: passed to the functional forward
    extra_params: tuple = ()       # optional parameters after the biases ("weight_hr": proj)
    sigmoid_gates: tuple = ()      # the gates that live in [0, 1] (saturation plots, colour maps)
    summary: str = ""              # one line for --help and tables

    # ---- what the tools ask ---------------------------------------------------------------
    @property
    def has_cell_state(self):
        return "c" in self.state_names

    @property
    def param_names(self):
        """The per-layer parameter names in the order the functional backward returns them."""
        return CORE_PARAMS + self.extra_params

    def module_kwargs(self):
        """Constructor keywords that pick this cell within its module class."""
        return {} if self.nonlinearity is None else {"nonlinearity": self.nonlinearity}

    def hidden_dgates(self, dgates, gates):
        """dL/d(hidden-side pre-activations h W_hh^T + b_hh) from dL/d(gate pre-activations):
        the same array for RNN and LSTM; the GRU's n block differs (its reference says how)."""
        fn = getattr(self.reference(), "hidden_side_grad", None)
        return dgates if fn is None else fn(dgates, gates)

    def split_gates(self, gates):
        """(..., G*H) -> {gate name: (..., H)} as views, in torch's order."""
        H = gates.shape[-1] // self.gates
        return {n: gates[..., k * H:(k + 1) * H] for k, n in enumerate(self.gate_names)}

    # ---- where the code lives -----------------------------------------------------------------
    def reference(self):
        """The NumPy reference module (the spec)."""
        return _import(f"minirnn.functional.{self.family}")

    def kernel(self):
        """The Numba twin (compiled on first import)."""
        return _import(f"minirnn.kernels._{self.family}")

    # minirnn.nn imports this registry when it is imported; the registry only names the classes
    # (module, cell_module) and looks them up when asked, so the import graph has no cycle
    # (tests/test_layout.py loads this file alone and checks that minirnn.nn stays unloaded)
    def module_class(self):
        """The sequence module class, minirnn.nn.<module> (minirnn.LSTM for "lstm")."""
        return getattr(_import("minirnn.nn"), self.module)

    def cell_class(self):
        """The one-step class, minirnn.nn.<cell_module> (minirnn.LSTMCell for "lstm")."""
        return getattr(_import("minirnn.nn"), self.cell_module)

    # ---- one layer, one direction, uniform -----------------------------------------------------
    def layer_forward(self, fns, x, state, params, valid=None):
        """fns: a reference or kernel module. state: tuple per state_names, each (B, size);
        params: name -> array (missing optional ones as None) -> out, state_T tuple, cache."""
        extra = [params.get(n) for n in self.extra_params]
        if self.nonlinearity:
            extra.insert(0, self.nonlinearity)
        res = fns.forward(x, *state, params["weight_ih"], params["weight_hh"],
                          params.get("bias_ih"), params.get("bias_hh"), *extra, valid)
        return res[0], tuple(res[1:-1]), res[-1]

    def layer_backward(self, fns, cache, d_out, d_state, return_steps=False, input_grad=True):
        """d_state: tuple per state_names (None entries = zeros)
        -> dx (None without input_grad), d_state0 tuple, {param name: grad or None},
        per-step record or None."""
        res = fns.backward(cache, d_out, *d_state, return_steps=return_steps,
                           input_grad=input_grad)
        S, n = len(self.state_names), len(self.param_names)
        grads = dict(zip(self.param_names, res[1 + S:1 + S + n]))
        return res[0], tuple(res[1:1 + S]), grads, (res[-1] if return_steps else None)

    def layer_jvp(self, fns, cache, x_dot, state_dot, params_dot):
        """The tangent of layer_forward (forward mode) from its cache. fns: a module with the
        family's `forward_jvp`; x_dot (T, B, I), state_dot (tuple per state_names) and
        params_dot (name -> tangent): None or missing = zero -> out_dot, state_T_dot tuple,
        tangent cache (for layer_backward_jvp)."""
        res = fns.forward_jvp(cache, x_dot, *state_dot,
                              *[params_dot.get(n) for n in self.param_names])
        return res[0], tuple(res[1:-1]), res[-1]

    def layer_backward_jvp(self, fns, cache, tcache, d_out, d_out_dot, d_state, d_state_dot,
                           input_grad=True):
        """layer_backward and its tangent (the R-operator) along layer_jvp's tangents
        -> (dx, d_state0 tuple, {param: grad}) and the same triple of tangents."""
        res, res_dot = fns.backward_jvp(cache, tcache, d_out, d_out_dot, *d_state, *d_state_dot,
                                        input_grad=input_grad)
        S, n = len(self.state_names), len(self.param_names)
        unpack = lambda r: (r[0], tuple(r[1:1 + S]),                        # noqa: E731
                            dict(zip(self.param_names, r[1 + S:1 + S + n])))
        return unpack(res), unpack(res_dot)

    def step_jacobians(self, fns, x_t, state, params):
        """One step's dense partial Jacobians (RTRL, UORO, Lyapunov spectra), uniform.

        fns: a module with the family's `step_jacobians` (None: the reference). x_t (B, I);
        state: tuple per state_names, each (B, size); params: name -> array (missing optional
        ones as None). The state s = the state_names side by side, S wide (H; P + H for the
        LSTM: h then c) -> J_state (B, S, S) = ∂s_t/∂s_{t-1}, and {param name: ∂s_t/∂param
        of shape (B, S, *param.shape), or None where the parameter is absent}, in
        param_names order."""
        fns = self.reference() if fns is None else fns
        extra = [params.get(n) for n in self.extra_params]
        if self.nonlinearity:
            extra.append(self.nonlinearity)
        res = fns.step_jacobians(x_t, *state, params["weight_ih"], params["weight_hh"],
                                 params.get("bias_ih"), params.get("bias_hh"), *extra)
        return res[0], dict(zip(self.param_names, res[1:]))


_ELMAN = dict(family="rnn", gates=1, gate_names=("a",), gates_field="a", dgates_field="da",
              state_names=("h",), module="RNN", cell_module="RNNCell")

CELLS = {
    "rnn_tanh": CellSpec("rnn_tanh", nonlinearity="tanh",
                         summary="Elman RNN, h_t = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)",
                         **_ELMAN),
    "rnn_relu": CellSpec("rnn_relu", nonlinearity="relu",
                         summary="Elman RNN, h_t = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)",
                         **_ELMAN),
    "lstm": CellSpec("lstm", family="lstm", gates=4, gate_names=("i", "f", "g", "o"),
                     gates_field="gates", dgates_field="dz", state_names=("h", "c"),
                     module="LSTM", cell_module="LSTMCell", extra_params=("weight_hr",),
                     sigmoid_gates=("i", "f", "o"),
                     summary="LSTM, gates i, f, g, o; optional projection proj_size"),
    "gru": CellSpec("gru", family="gru", gates=3, gate_names=("r", "z", "n"),
                    gates_field="gates", dgates_field="dg", state_names=("h",),
                    module="GRU", cell_module="GRUCell", sigmoid_gates=("r", "z"),
                    summary="GRU, gates r, z, n; r applied after the hidden product"),
}
CELL_NAMES = tuple(CELLS)
# other names a user may give a cell: `--model rnn` is the Elman RNN with tanh (torch's nn.RNN
# default)
CELL_ALIASES = {"rnn": "rnn_tanh"}


def cell_name(name):
    """A cell's name or alias -> the registry's name ("rnn" -> "rnn_tanh"); anything else as
    given (get_cell says what is unknown)."""
    return CELL_ALIASES.get(name, name)


def get_cell(name) -> CellSpec:
    """A cell name (or a CellSpec) -> its CellSpec; an unknown name says which exist."""
    return name if isinstance(name, CellSpec) else lookup("cell", CELLS, name)


def make_recurrent(cell, input_size, hidden_size, **kwargs):
    """The multi-layer module for `cell` (minirnn.RNN / LSTM / GRU), torch's keywords."""
    spec = get_cell(cell)
    return spec.module_class()(input_size, hidden_size, **spec.module_kwargs(), **kwargs)


def make_cell(cell, input_size, hidden_size, **kwargs):
    """The one-step module for `cell` (minirnn.RNNCell / LSTMCell / GRUCell)."""
    spec = get_cell(cell)
    return spec.cell_class()(input_size, hidden_size, **spec.module_kwargs(), **kwargs)


__all__ = ["CellSpec", "CELLS", "CELL_NAMES", "CELL_ALIASES", "CORE_PARAMS", "cell_name",
           "get_cell", "make_recurrent", "make_cell"]
