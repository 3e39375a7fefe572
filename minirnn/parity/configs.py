"""The fixed parity matrix and its tolerances.

Each configuration is small (a few steps, a few units) so that the whole matrix, every cell
and both dtypes, runs against torch in seconds on two CPU cores; between them the configs
cover every feature of the module API: layers 1-3, bidirectional, batch_first, variable
lengths, no bias, unbatched input and (LSTM) proj_size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..cells import BUILTIN as CELLS
from ..cells import get_cell
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")

# relative error ||a - b|| / ||b|| allowed per tensor, by (device, dtype)
TOLERANCES = {
    ("cpu", "float64"): 1e-12,
    ("cpu", "float32"): 1e-5,
    ("cuda", "float64"): 1e-10,     # TF32 off; cuDNN sums in another order than we do
    ("cuda", "float32"): 1e-4,
}


def tolerance(device, dtype):
    """(device, dtype) -> the relative-error tolerance; ValueError for an unknown pair."""
    try:
        return TOLERANCES[(device, dtype)]
    except KeyError:
        raise ValueError(f"device, dtype: expected one of {sorted(TOLERANCES)}, "
                         f"got ({device!r}, {dtype!r})") from None


@dataclass(frozen=True)
class Config:
    """One parity case: a module configuration and the sizes of its input."""
    name: str
    cell: str                     # a registry cell name: rnn_tanh | rnn_relu | lstm | gru
    input_size: int = 3           # I
    hidden_size: int = 4          # H
    T: int = 5
    B: int = 3
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    bias: bool = True
    lengths: bool = False         # random per-sequence lengths (packed sequences in torch)
    unbatched: bool = False       # x of shape (T, I)
    proj_size: int = 0            # LSTM only
    seed: int = 0

    def __post_init__(self):
        spec = get_cell(self.cell)
        if self.proj_size and "weight_hr" not in spec.extra_params:
            raise ValueError(f"proj_size: only the LSTM has a projection, got {self.proj_size} "
                             f"for {self.cell}")
        if self.unbatched and (self.lengths or self.batch_first):
            raise ValueError("unbatched: cannot be combined with lengths or batch_first")

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def out_size(self):
        return self.proj_size or self.hidden_size

    def summary(self):
        """A short human description: 'L2 bi bf len nobias proj3 T6 B3 I4 H5'."""
        parts = [f"L{self.num_layers}"]
        parts += [flag for flag, on in (("bi", self.bidirectional), ("bf", self.batch_first),
                                        ("len", self.lengths), ("nobias", not self.bias),
                                        ("unbatched", self.unbatched)) if on]
        if self.proj_size:
            parts.append(f"proj{self.proj_size}")
        parts.append(f"T{self.T} B{1 if self.unbatched else self.B} "
                     f"I{self.input_size} H{self.hidden_size}")
        return " ".join(parts)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; unknown keys are refused (a dump from a newer format)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"config: unexpected keys {unknown}; expected a subset of {sorted(names)}")
        return cls(**d)


def _cell_matrix(cell):
    """The same dozen shapes of problem for every cell kind (LSTM adds projections)."""
    C = lambda name, **kw: Config(f"{cell}/{name}", cell, **kw)  # noqa: E731
    configs = [
        C("base"),
        C("L2", num_layers=2, seed=1),
        C("L3", num_layers=3, T=4, seed=2),
        C("bi", bidirectional=True, seed=3),
        C("L2-bi", num_layers=2, bidirectional=True, seed=4),
        C("bf", batch_first=True, B=2, seed=5),
        C("len", lengths=True, B=4, T=6, seed=6),
        C("L2-bi-len", num_layers=2, bidirectional=True, lengths=True, B=4, seed=7),
        C("L2-bf-len", num_layers=2, batch_first=True, lengths=True, B=3, seed=8),
        C("nobias", bias=False, seed=9),
        C("L2-bi-nobias", num_layers=2, bidirectional=True, bias=False, seed=10),
        C("unbatched", unbatched=True, seed=11),
        C("L3-bi-len-T1", num_layers=3, bidirectional=True, lengths=True, T=1, B=2, seed=12),
    ]
    if "weight_hr" in get_cell(cell).extra_params:             # the LSTM's projection
        configs += [
            C("proj", proj_size=3, seed=13),
            C("L2-bi-len-proj", num_layers=2, bidirectional=True, lengths=True, proj_size=2,
              B=4, seed=14),
        ]
    return configs


MATRIX = {cell: _cell_matrix(cell) for cell in CELLS}


def matrix(cell="all"):
    """'all' or one cell name -> list of Config."""
    if cell == "all":
        return [c for name in CELLS for c in MATRIX[name]]
    if cell not in MATRIX:
        raise ValueError(f"cell: expected 'all' or one of {CELLS}, got {cell!r}")
    return list(MATRIX[cell])


__all__ = ["CELLS", "DTYPES", "DEVICES", "TOLERANCES", "tolerance", "Config", "MATRIX", "matrix"]
