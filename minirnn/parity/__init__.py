"""Parity with torch: the same configuration, weights, input and upstream gradients in
torch.nn.RNN / nn.LSTM and in minirnn; every tensor compared, disagreements located.

    from minirnn.parity import matrix, run_parity
    reports = run_parity(matrix("lstm"), dtypes=("float64",))      # live torch (CPU)
    reports = run_parity(matrix("lstm"), frozen=True)              # the shipped dumps

torch is imported only by minirnn.parity.torch_ref, and only when a live run asks for it.
"""
from __future__ import annotations

from .configs import CELLS, DTYPES, MATRIX, TOLERANCES, Config, matrix, tolerance
from .harness import (CaseReport, TensorError, build_model, check_case, compare, locate,
                      make_case, run_minirnn)


def run_parity(configs, dtypes=DTYPES, device="cpu", backend="numpy", frozen=False,
               refs_dir=None, progress=None):
    """-> [CaseReport], one per (config, dtype).

    Live: torch computes the reference now. Frozen: the references come from the dumps
    (minirnn/parity/refs/<cell>.npz) and only the configs found there (by name) are run.
    `progress`, if given, wraps the work list (e.g. minirnn._progress.progress).
    """
    wrap = progress or (lambda it, **kw: it)
    reports = []
    if frozen:
        from .frozen import read_refs, refs_path
        if device != "cpu":
            raise ValueError(f"device: the frozen references are CPU results, got {device!r}")
        wanted = {c.name for c in configs}
        work = []
        for cell in dict.fromkeys(c.cell for c in configs):
            _, entries = read_refs(refs_path(cell, refs_dir))
            work += [e for e in entries if e[0].name in wanted and e[1] in dtypes]
        for config, dtype, case, ref in wrap(work, desc="parity (frozen)"):
            reports.append(check_case(config, case, ref, "cpu", backend))
        return reports
    from .torch_ref import run_torch
    work = [(c, dt) for c in configs for dt in dtypes]
    for config, dtype in wrap(work, desc=f"parity ({device})"):
        case = make_case(config, dtype)
        reports.append(check_case(config, case, run_torch(config, case, device), device, backend))
    return reports


__all__ = ["CELLS", "DTYPES", "MATRIX", "TOLERANCES", "Config", "matrix", "tolerance",
           "CaseReport", "TensorError", "build_model", "make_case", "run_minirnn", "compare",
           "locate", "check_case", "run_parity"]
