"""benchmarks/phases.py --quick (the smallest size, one round): the JSON has every phase with
minirnn's time and its floor, torch's numbers, each worker's environment and the load."""
from __future__ import annotations

import json
import subprocess
import sys
import pytest

from tests.helpers import ROOT

pytest.importorskip("torch")

PHASES = ["input GEMM", "recurrent GEMM fwd", "gate work fwd", "recurrent GEMM bwd",
          "gate work bwd", "weight GEMMs", "memory traffic"]


@pytest.mark.slow
def test_quick_run_writes_every_phase_with_ours_and_its_floor(tmp_path):
    out = tmp_path / "phases.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "phases.py"), "--quick",
                          "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE" in run.stdout      # what it did with them
    rec = json.loads(out.read_text())
    assert rec["kind"] == "phases" and rec["rounds"] == 1 and rec["threads"] >= 1
    assert rec["machine"]["cpu_model"] and "load" in rec and len(rec["loadavg_before"]) == 3
    (prob,) = rec["problems"]
    assert prob["cell"] == "lstm" and prob["dtype"] == "float32"
    rows = {r["phase"]: r for r in prob["rows"]}
    totals = ["rest fwd", "forward", "rest bwd", "backward", "forward+backward"]
    assert PHASES + totals == list(rows)
    for ph in PHASES:
        r = rows[ph]
        assert r["ours_s"]["median"] > 0 and r["floor_s"]["median"] > 0, ph
        assert r["ratio"] == pytest.approx(r["ours_s"]["median"] / r["floor_s"]["median"])
        assert r["ours_s"]["min"] <= r["ours_s"]["median"] <= r["ours_s"]["max"]
        assert r["torch_aten_s"]["median"] >= 0, ph
    assert rows["forward+backward"]["torch_onednn_s"]["median"] > 0
    (ours,), (torch,) = prob["rounds"]["ours"], prob["rounds"]["torch"]
    assert ours["floors"]["detail"]["bandwidth_gb_s"] > 0
    for worker, lib in ((ours, "numba"), (torch, "torch")):
        env = worker["environment"]
        assert env["versions"][lib] and env["versions"]["numpy"], worker
        assert all("architecture" in b and "num_threads" in b for b in env["blas"])
        assert worker["load_mean"] is not None and worker["loadavg_1min"] >= 0
