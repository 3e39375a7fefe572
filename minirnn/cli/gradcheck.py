"""`minirnn gradcheck`: a random model's BPTT against central finite differences; the table,
and exit code 1 when any tensor disagrees."""
from __future__ import annotations

from ..cells import BACKENDS

from . import cell_kinds
from ..cells import BUILTIN as CELLS

HELP = f"check a random {cell_kinds('or')}'s BPTT against finite differences (exit 1 on failure)"


def add_arguments(p):
    p.add_argument("--cell", choices=CELLS, default="lstm", help="the cell to check")
    p.add_argument("--layers", type=int, default=2, help="number of stacked layers")
    p.add_argument("--bidirectional", action="store_true", help="a bidirectional model")
    p.add_argument("--proj-size", type=int, default=0, help="LSTM projection size (0: none)")
    p.add_argument("--T", type=int, default=20, help="time steps")
    p.add_argument("--B", type=int, default=3, help="batch size")
    p.add_argument("--input-size", type=int, default=5, help="input features")
    p.add_argument("--hidden", type=int, default=8, help="hidden size")
    p.add_argument("--lengths", action="store_true",
                   help="random sequence lengths in 1..T (the first sequence keeps T)")
    p.add_argument("--max-entries", type=int, default=40,
                   help="check at most this many entries per tensor (0: all)")
    p.add_argument("--eps", type=float, default=1e-6, help="central-difference step")
    p.add_argument("--mode", choices=("rev", "fwd", "fast"), default="rev",
                   help="rev: BPTT against differences, entry by entry; fwd: forward mode (the "
                        "JVP) against differences, column by column, plus the dot-product test; "
                        "fast: one u^T J v per input/output pair")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="2: the Hessian-vector product against differences of the gradient")
    p.add_argument("--dot", action="store_true",
                   help="add the dot-product test <Ju, w> = <u, J^T w> (on with --mode fwd)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and sampling")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    p.add_argument("--mkdir", action="store_true",
                   help="create the directory of --json where it is missing")
    from .. import _threads
    _threads.add_argument(p)


def run(args):
    from .. import _threads
    product = _threads.step_product(args.B, args.hidden, args.cell, args.proj_size)
    with _threads.limit(_threads.choose(args.threads, product)):
        return _run(args)


def _run(args):
    import numpy as np

    from ..grad.gradcheck import gradcheck
    from .._io import check_output_path, write_json
    from ..cells import CELLS as CELL_SPECS, get_cell
    from ..nn import make_recurrent

    for name in ("layers", "T", "B", "input_size", "hidden"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1, "
                             f"got {getattr(args, name)}")
    if args.max_entries < 0:
        raise ValueError(f"--max-entries: expected >= 0 (0: all), got {args.max_entries}")
    if args.proj_size and "weight_hr" not in get_cell(args.cell).extra_params:
        # the registry knows which cells project (their weight_hr); never the cell's name
        owners = " or ".join(s.module for s in CELL_SPECS.values() if "weight_hr" in s.extra_params)
        raise ValueError(f"--proj-size: {owners} only (--cell {args.cell} has no projection)")
    if args.json:
        check_output_path("--json", args.json, mkdir=args.mkdir)
    extra = {"proj_size": args.proj_size} if args.proj_size else {}
    model = make_recurrent(args.cell, args.input_size, args.hidden, num_layers=args.layers,
                           bidirectional=args.bidirectional, dtype="float64", seed=args.seed,
                           backend=args.backend, **extra)
    # fresh non-zero data and states: zeros would hide terms of the gradient
    rng = np.random.default_rng(args.seed)
    LD, P = model.num_layers * model.num_directions, model.out_size
    x = rng.standard_normal((args.T, args.B, args.input_size))
    hx = model.state_value(tuple(rng.standard_normal((LD, args.B, P if n == "h" else args.hidden))
                                 for n in model.spec.state_names))
    lengths = None
    if args.lengths:
        lengths = rng.integers(1, args.T + 1, size=args.B)
        lengths[0] = args.T
    report = gradcheck(model, x, hx, lengths=lengths, eps=args.eps,
                       max_entries=args.max_entries or None, seed=args.seed, mode=args.mode,
                       order=args.order, dot=args.dot or None)
    print(f"{model!r}  T={args.T} B={args.B}"
          + ("" if lengths is None else f" lengths={lengths.tolist()}"))
    print(report.table())
    if args.json:
        write_json(args.json, report.to_dict())
        print(f"wrote {args.json}")
    return 0 if report.passed else 1
