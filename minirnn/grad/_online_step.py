"""The one place the online methods meet a cell (minirnn.grad.online): a step, its partial
Jacobians, and what a step hands every method. A port to another cell interface changes
this file only."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class StepJacobians(NamedTuple):
    """What one step hands every method (B sequences, state S wide, N tracked parameters)."""
    J: np.ndarray                 # (B, S, S) ∂s_t/∂s_{t-1}
    Mbar: np.ndarray              # (B, S, N) ∂s_t/∂θ at fixed s_{t-1}, the tracked columns
    per_param: dict               # name -> (B, S, *shape): every parameter, biases included
    h_prev: np.ndarray            # (B, P) the h that W_hh multiplied
    w_hh: np.ndarray              # (G·H, P) W_hh as used (zero outside the mask)


# ---- the one place that meets a cell ---------------------------------------------------------

def cell_step(spec, x_t, state, params):
    """One step of a cell and its partial Jacobians -> new state tuple, J_state (B, S, S),
    {param name: (B, S, *shape) or None}. x_t (B, I); state a tuple per spec.state_names of
    (B, size); params name -> array (missing optional ones as None). The cell contract's
    step_forward and step_jacobians (minirnn.CellSpec: a cell's own, or derived exactly from
    its step_backward where it has none)."""
    new, _ = spec.step_forward(x_t, state, params)
    J, per = spec.step_jacobians(x_t, state, params)
    return tuple(new), J, per
