"""The random model that `minirnn step` and `minirnn explore` build when asked for a cell
(--cell): its arguments, and the model with its random input, in one place."""
from __future__ import annotations

from ..cells import BUILTIN


def add_random_model_arguments(group, hidden, T, seed_help):
    """--cell, --hidden, --input-size, --layers, --bidirectional, --T, --seed into `group`,
    with this command's defaults for the hidden size and the number of steps."""
    group.add_argument("--cell", choices=BUILTIN, default=None, help="a random model of this cell")
    group.add_argument("--hidden", type=int, default=hidden, help="hidden size of the random model")
    group.add_argument("--input-size", type=int, default=4, help="input size of the random model")
    group.add_argument("--layers", type=int, default=1, help="layers of the random model")
    group.add_argument("--bidirectional", action="store_true", help="a bidirectional random model")
    group.add_argument("--T", type=int, default=T, help="time steps of the random input")
    group.add_argument("--seed", type=int, default=0, help=seed_help)


def random_model(args, cell, batch=(), **kwargs):
    """-> (model, x): `cell`'s module with the sizes and seed of `args` (kwargs go to its
    constructor), and a normal random input (T, *batch, input_size) from the same seed."""
    import numpy as np

    from ..nn import make_recurrent
    if args.T < 1:
        raise ValueError(f"--T: expected at least 1 time step, got {args.T}")
    model = make_recurrent(cell, args.input_size, args.hidden, num_layers=args.layers,
                           bidirectional=args.bidirectional, seed=args.seed, **kwargs)
    x = np.random.default_rng(args.seed).normal(size=(args.T, *batch, args.input_size))
    return model, x
