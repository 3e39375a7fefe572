"""benchmarks/per_sample.py at the smallest size: a row per cell with its timings, its memory
(B × |θ| and the largest batch the default limit admits) and the environment recorded."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_per_sample_benchmark_reports_rows_memory_and_environment(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "per_sample.py"
    spec = importlib.util.spec_from_file_location("per_sample_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "ps.json"
    bench.main(["--cells", "gru", "--B", "3", "--T", "4", "--I", "2", "--H", "5", "--rounds", "1",
                "--repeats", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert "load before" in text and "memory: B × |θ| = 3 × " in text
    rec = json.loads(out.read_text())
    (row,) = rec["rows"]
    n = 3 * 5 * (2 + 5) + 2 * 3 * 5                       # GRU: W_ih, W_hh, two biases
    assert row["cell"] == "gru" and row["params"] == n and row["per_sample_numbers"] == 3 * n
    assert row["per_sample_bytes"] == 8 * 3 * n and row["max_batch_default_limit"] == 2**30 // (8 * n)
    assert row["minirnn_ms"] > 0 and row["torch_ms"] > 0 and row["speedup"] > 0
    env = rec["environment"]
    assert env["threads_per_engine"] == 1 and env["torch"] and env["machine"]["usable_cores"] >= 1
    assert "--cells gru" in env["command"] and rec["load_before"]["loadavg"]
