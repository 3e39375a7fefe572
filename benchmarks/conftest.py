"""pytest-benchmark suites (measurements, not tests): run them with

    python -m pytest benchmarks --benchmark-only

The default `pytest` run does not collect this folder (setup.cfg's testpaths). Files are named
bench_*.py, so this conftest collects them explicitly.
"""
import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
