"""The benchmark's problems: the grid, the reference problem sets, the FLOP convention, the data.

Every cell comes from the registry (minirnn.cells.BUILTIN); its gate count G is the only
thing the FLOP count needs. A shape is (T, B, I, H): time steps, batch, input size, hidden size,
one layer, one direction.
"""
from __future__ import annotations

import numpy as np

from ..cells import BUILTIN, get_cell

DTYPES = ("float32", "float64")

# minirnn's own grid ---------------------------------------------------------------------------
# "small": the tutorials' sizes (batch 1); "medium" and "large": mini-batch training sizes.
REGIMES = {
    "small": [(T, 1, I, H) for T in (10, 50) for I in (57, 64) for H in (32, 128)],
    # the batch-1 speed targets (issue 11), in the shape they are stated: T=20, I=64, H 32..256
    "targets": [(20, 1, 64, H) for H in (32, 64, 128, 256)],
    "medium": [(100, 32, 128, 256)],
    "large": [(100, 64, 256, 512)],
    # reference problem sets, so results can be compared with published ones:
    # torch's benchmarks/fastrnns default (seqLength 100, miniBatch 64, inputSize = hiddenSize
    # = 512, numLayers 1)
    "fastrnns": [(100, 64, 512, 512)],
    # DeepBench's LSTM/GRU training shapes that fit this machine (hidden 512, T 25,
    # batch 16 / 32 / 64; DeepBench uses input size = hidden size)
    "deepbench": [(25, 16, 512, 512), (25, 32, 512, 512), (25, 64, 512, 512)],
}
REFERENCE_SETS = {
    "fastrnns": "torch benchmarks/fastrnns default: T=100, B=64, I=H=512, 1 layer",
    "deepbench": "DeepBench RNN training shapes: H=512, T=25, B=16/32/64, I=H",
}
DEFAULT_REGIMES = ("small", "targets", "medium", "large", "fastrnns", "deepbench")

# the reference sets run in float32, the precision their published numbers use (in the
# dtypes asked for when float32 is not among them)
REFERENCE_DTYPE = "float32"

# --quick: a slice of the regimes; "large" is left out (fastrnns is larger). Only "small"
# runs every dtype; the reference sets run for the cell(s) with the most gates only (LSTM:
# the cell both published sets report).
QUICK = {
    "small": [(50, 1, 64, 32), (50, 1, 64, 128)],
    "medium": [(100, 32, 128, 256)],
    "fastrnns": [(100, 64, 512, 512)],
    "deepbench": [(25, 32, 512, 512)],
}
QUICK_ALL_DTYPES = ("small",)
DEFAULT_QUICK_REGIMES = tuple(QUICK)
SMALL_BATCH = 4                                  # rows with B <= this get a bandwidth floor

FLOP_CONVENTION = (
    "matrix products only, 2 FLOPs per multiply-add, G = the cell's gate count from the "
    "registry (RNN 1, GRU 3, LSTM 4): input projection 2*T*B*G*H*I; recurrent forward "
    "2*T*B*G*H*H; fwd = 2*T*B*G*H*(I+H); backward-data (dx, dh) = fwd; backward-weights "
    "(dW_ih, dW_hh) = fwd; fwd+bwd = 3*fwd. Elementwise work (gates, biases) is not counted.")


def flops(cell, T, B, I, H, phase="fwd"):
    """FLOPs of one layer, one direction, in one phase (see FLOP_CONVENTION).

    phase: "proj" (x W_ih^T), "rec" (the time loop's h W_hh^T), "fwd", "bwd_data" (dx and dh),
    "bwd_weights" (dW_ih and dW_hh), "bwd" (both), "fwd_bwd".
    """
    G = get_cell(cell).gates
    unit = 2 * T * B * G * H
    table = {"proj": unit * I, "rec": unit * H, "fwd": unit * (I + H),
             "bwd_data": unit * (I + H), "bwd_weights": unit * (I + H),
             "bwd": 2 * unit * (I + H), "fwd_bwd": 3 * unit * (I + H)}
    try:
        return table[phase]
    except KeyError:
        raise ValueError(f"phase: expected one of {list(table)}, got {phase!r}") from None


def grid(regimes=None, cells=BUILTIN, dtypes=DTYPES, quick=False, shapes=None):
    """-> ([(regime, (T, B, I, H), cell, dtype)] in run order, {regime: shapes}).

    regimes: None = DEFAULT_QUICK_REGIMES with quick, else DEFAULT_REGIMES. With quick a
    regime takes QUICK's shapes where QUICK has it (REGIMES' otherwise). shapes:
    {regime: [shape, ...]} replaces the built-in sizes (tests use tiny ones) and the rules
    above; it also defines the regimes allowed."""
    table = dict(REGIMES, **QUICK) if quick else dict(REGIMES)
    if shapes is not None:
        table = {k: [tuple(int(n) for n in s) for s in v] for k, v in shapes.items()}
    if regimes is None:
        regimes = tuple(shapes) if shapes is not None else (
            DEFAULT_QUICK_REGIMES if quick else DEFAULT_REGIMES)
    missing = [r for r in regimes if r not in table]
    if missing:
        raise ValueError(f"regimes: expected a list from {list(table)}"
                         f"{' (--quick)' if quick else ''}, got {list(regimes)}")
    builtin = shapes is None
    most_gates = max(get_cell(c).gates for c in cells)
    jobs = []
    for reg in regimes:
        ref = builtin and reg in REFERENCE_SETS
        dts = [REFERENCE_DTYPE] if ref and REFERENCE_DTYPE in dtypes else list(dtypes)
        if quick and builtin and reg not in QUICK_ALL_DTYPES:
            dts = dts[:1] if REFERENCE_DTYPE not in dts else [REFERENCE_DTYPE]
        for s in table[reg]:
            for cell in cells:
                if quick and ref and get_cell(cell).gates < most_gates:
                    continue
                for dt in dts:
                    jobs.append((reg, s, cell, dt))
    return jobs, {r: table[r] for r in regimes}


def make_problem(cell, T, B, I, H, dtype, seed=0):
    """Random non-zero data for one layer: dict(x, state (tuple per state_names), params
    (weight_ih, weight_hh, bias_ih, bias_hh; torch's init range), d_out). The same seed gives
    the same arrays in every process."""
    spec = get_cell(cell)
    G = spec.gates
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, s).astype(dtype)          # noqa: E731
    x = rng.standard_normal((T, B, I)).astype(dtype)
    params = dict(weight_ih=u(G * H, I), weight_hh=u(G * H, H), bias_ih=u(G * H),
                  bias_hh=u(G * H))
    state = tuple(u(B, H) for _ in spec.state_names)
    d_out = rng.standard_normal((T, B, H)).astype(dtype)
    return dict(cell=spec.name, x=x, state=state, params=params, d_out=d_out)


def problem_id(regime, shape, cell, dtype):
    T, B, I, H = shape
    return f"{regime}-{cell}-{dtype}-T{T}-B{B}-I{I}-H{H}"
