"""Cells: the public contract (CellSpec), the registry, and the built-in cells' NumPy reference.

    import minirnn
    class MyCell(minirnn.CellSpec): ...          # see minirnn/cells/spec.py for the contract
    minirnn.register_cell(MyCell())
    minirnn.cells.get_cell("lstm").gate_names    # ('i', 'f', 'g', 'o')

rnn.py, lstm.py and gru.py are the spec tier: each writes one family's step and sequence,
forward and backward, its tangents and step Jacobians, in NumPy, and registers its cells
here exactly as a user's cell is registered.
"""
from . import gru, lstm, rnn
from .family import FamilySpec, Tier, linear_step_grads
from .registry import (BACKENDS, BUILTIN, CELL_ALIASES, CELLS, cell_name, cell_names, get_cell,
                       register_cell, register_tier, unregister_cell)
from .spec import CORE_PARAMS, CellSpec, StepsCache, StepsGrad, StepsTangentCache

for _spec in (rnn.ElmanSpec("tanh"), rnn.ElmanSpec("relu"), lstm.LSTMSpec(), gru.GRUSpec()):
    register_cell(_spec)

__all__ = ["CellSpec", "FamilySpec", "Tier", "CORE_PARAMS", "StepsCache", "StepsGrad",
           "StepsTangentCache", "linear_step_grads", "CELLS", "CELL_ALIASES", "BACKENDS",
           "BUILTIN", "register_cell", "unregister_cell", "register_tier", "cell_names", "cell_name", "get_cell", "rnn", "lstm", "gru"]
