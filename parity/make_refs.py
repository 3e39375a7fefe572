"""Write the frozen torch references: minirnn/parity/refs/<cell>.npz (package data) for the
fixed matrix, both dtypes.

    python parity/make_refs.py            # needs torch (CPU); a few seconds

The dumps let the test suite (parity/test_parity_frozen.py) and `minirnn parity --frozen`
check minirnn against torch where torch is not installed. Regenerate them when the matrix
in minirnn/parity/configs.py or the dump format (minirnn/parity/frozen.py) changes.
"""
from __future__ import annotations

import argparse
import sys

from minirnn.parity.configs import CELLS, DTYPES, matrix
from minirnn.parity.frozen import default_refs_dir, refs_path, write_refs
from minirnn.parity.harness import make_case


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(default_refs_dir()),
                   help="directory to write <cell>.npz into")
    p.add_argument("--cell", default=None, help="only this cell (default: every cell)")
    args = p.parse_args(argv)
    import torch

    from minirnn.parity.torch_ref import run_torch
    torch.manual_seed(0)
    for cell in ([args.cell] if args.cell else CELLS):
        entries = []
        for config in matrix(cell):
            for dtype in DTYPES:
                case = make_case(config, dtype)
                entries.append((config, dtype, case, run_torch(config, case, "cpu")))
        path = refs_path(cell, args.out)
        write_refs(path, entries, torch_version=torch.__version__, device="cpu")
        print(f"wrote {path} ({len(entries)} cases, {path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
