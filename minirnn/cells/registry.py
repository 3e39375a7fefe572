"""The one place that knows each cell. Everything else asks here.

    from minirnn.cells import get_cell, register_cell, cell_names
    spec = get_cell("lstm")
    spec.gates, spec.gate_names, spec.state_names     # 4, ('i', 'f', 'g', 'o'), ('h', 'c')
    register_cell(MyCell())                           # a cell of your own (minirnn.CellSpec)
    register_tier("mycell", "numba", my_twin)         # and, if you wrote one, its fast twin

The built-in cells are registered by minirnn.cells on import, through register_cell as yours
are; their Numba twins through register_tier by minirnn.functional.backends (which sits above
the kernels, so nothing here imports them). A cell keeps its twins (CellSpec.twin).
"""
from __future__ import annotations

from .._checks import lookup
from .spec import CellSpec

CELLS: dict = {}                 # name -> CellSpec, in registration order
# other names a user may give a cell: `--model rnn` is the Elman RNN with tanh (torch's nn.RNN
# default)
CELL_ALIASES = {"rnn": "rnn_tanh"}
BACKENDS = ("numpy", "numba")    # the kernel tiers every built-in cell has (numpy: the steps)


def register_cell(spec, replace=False):
    """Make a cell known by spec.name to every tool -> spec. replace=True swaps a cell of the
    same name (never a built-in one)."""
    if not isinstance(spec, CellSpec):
        raise TypeError(f"spec: expected an instance of minirnn.CellSpec, got "
                        f"{type(spec).__name__}")
    name = spec.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"spec.name: expected a word (letters, digits, _), got {name!r}")
    for field in ("gate_names", "state_names", "param_names"):
        value = getattr(spec, field)
        if not (isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)):
            raise TypeError(f"spec.{field}: expected a non-empty tuple of names, got {value!r}")
    if spec.state_names[0] != "h":
        raise ValueError(f"spec.state_names: the first state is the output and must be 'h', "
                         f"got {spec.state_names}")
    for part in ("step_forward", "step_backward"):
        if getattr(type(spec), part) is getattr(CellSpec, part):
            raise TypeError(f"spec: cell {name!r} must define {part} (see minirnn.CellSpec)")
    old = CELLS.get(name)
    if old is not None and not replace:
        raise ValueError(f"spec.name: a cell {name!r} is registered already; pass replace=True "
                         f"to swap it")
    if old is not None and name in BUILTIN:
        raise ValueError(f"spec.name: {name!r} is a built-in cell and cannot be replaced")
    if name in CELL_ALIASES:
        raise ValueError(f"spec.name: {name!r} is an alias of {CELL_ALIASES[name]!r}")
    CELLS[name] = spec
    return spec


def unregister_cell(name):
    """Forget a cell registered with register_cell (a built-in one cannot be)."""
    if name in BUILTIN:
        raise ValueError(f"name: {name!r} is a built-in cell and cannot be unregistered")
    lookup("cell", CELLS, name)
    del CELLS[name]


def register_tier(name, backend, twin):
    """Run cell `name` on `backend` with `twin`: an object with the sequence methods
    (forward, backward[, forward_jvp, backward_jvp]) in the form the cell calls them (for a
    FamilySpec: a Tier), or a function of no arguments returning one (called on first use,
    so that a twin which compiles on import loads only when asked)."""
    lookup("cell", CELLS, name).add_twin(backend, twin)


def cell_names():
    """The registered cells' names, in registration order (the built-in ones first)."""
    return tuple(CELLS)


def cell_name(name):
    """A cell's name or alias -> the registry's name ("rnn" -> "rnn_tanh"); anything else as
    given (get_cell says what is unknown)."""
    return CELL_ALIASES.get(name, name)


def get_cell(name) -> CellSpec:
    """A cell name (or a CellSpec) -> its CellSpec; an unknown name says which exist
    (an alias is resolved by cell_name first, where a user may type one)."""
    return name if isinstance(name, CellSpec) else lookup("cell", CELLS, name)


BUILTIN = ("rnn_tanh", "rnn_relu", "lstm", "gru")

__all__ = ["CELLS", "CELL_ALIASES", "BACKENDS", "BUILTIN", "register_cell", "unregister_cell",
           "register_tier", "cell_names", "cell_name", "get_cell"]
