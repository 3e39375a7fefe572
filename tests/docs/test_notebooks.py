"""Every notebook of examples/notebooks/ runs from top to bottom, at quick sizes.

Each notebook's first code cell, tagged "parameters", holds `QUICK = False`; here it becomes
`QUICK = True` (smaller data, fewer steps) and nbclient executes the notebook in a fresh
kernel of this interpreter, in a temporary directory, two notebooks at a time (the CI machine
has two cores). Checked: no cell raised (the notebooks assert their own results: torch's
twin equals minirnn to 1e-12, RTRL equals BPTT, ...), each took at most 60 s, the tutorials
show pictures of their steps, and the explorer's output cell (tagged "explorer") holds the
whole explorer page. The notebooks are kept in the repository without outputs.

A screenshot of the names notebook's explorer cell, for a person to look at:
    MINIRNN_NOTEBOOK_SCREENSHOT=nb.png python -m pytest tests/docs/test_notebooks.py -k names
"""
from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "examples" / "notebooks").glob("*.ipynb"))
TUTORIALS = ("char", "hihell", "names", "script", "sentences")    # the seed tutorials
LIMIT_S = 60
MISSING = [m for m in ("nbformat", "nbclient", "ipykernel") if importlib.util.find_spec(m) is None]
needs_jupyter = pytest.mark.skipif(bool(MISSING), reason="running the notebooks needs "
                                   + ", ".join(MISSING) + " (pip install -e '.[test]')")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")                  # the colours of a traceback
_DATA_RE = re.compile(r'<script type="application/json" id="minirnn-data">(.*?)</script>', re.S)


def _read(path):
    import nbformat
    return nbformat.read(str(path), as_version=4)


def _tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def test_the_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted((*TUTORIALS, "gradients"))


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_kept_without_outputs_and_with_one_parameters_cell(path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        f"{path.name}: clear its outputs before committing it"
    params = _tagged(nb, "parameters")
    assert len(params) == 1 and params[0] is code[0], path.name
    assert re.fullmatch(r"QUICK = False\b.*", params[0].source.strip(), re.S), params[0].source
    assert len(_tagged(nb, "explorer")) == (path.stem in TUTORIALS), path.name


def _kernel_manager(tmp):
    """A kernel of this very interpreter (whatever `python3` kernel is installed elsewhere)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    spec_dir = tmp / "kernels" / "minirnn-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "minirnn test", "language": "python"}))
    return KernelManager(kernel_name="minirnn-test",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp / "kernels")]))


def _execute(path, tmp):
    """-> (executed notebook, seconds, error or None)."""
    from nbclient import NotebookClient
    nb = _read(path)
    _tagged(nb, "parameters")[0].source = "QUICK = True"
    work = tmp / "work"
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # the notebook's inline plots
    client = NotebookClient(nb, km=_kernel_manager(tmp), timeout=2 * LIMIT_S,
                            resources={"metadata": {"path": str(work)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
        error = None
    except Exception as e:                      # CellExecutionError, a timeout, a dead kernel
        error = f"{type(e).__name__}: {_ANSI.sub('', str(e))[-4000:]}"
    return nb, time.perf_counter() - t0, error


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook, executed two at a time -> {stem: (notebook, seconds, error)}."""
    if MISSING:
        pytest.skip("running the notebooks needs " + ", ".join(MISSING))
    base = tmp_path_factory.mktemp("notebooks")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p.stem: pool.submit(_execute, p, base / p.stem) for p in NOTEBOOKS}
        return {stem: f.result() for stem, f in futures.items()}


def _outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if kind in o.get("data", {})]


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_quick_sizes(path, executed):
    nb, seconds, error = executed[path.stem]
    assert error is None, f"{path.name} failed after {seconds:.0f} s:\n{error}"
    assert seconds <= LIMIT_S, f"{path.name} took {seconds:.0f} s (limit {LIMIT_S} s)"
    assert _outputs(nb, "image/png"), f"{path.name} drew no picture"


def explorer_page(nb):
    """The page inside the explorer cell's output -> (page HTML, its embedded data)."""
    cell = _tagged(nb, "explorer")[0]
    shown = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert len(shown) == 1, "the explorer cell shows one HTML output"
    m = re.fullmatch(r'<iframe srcdoc="(.*?)" style=.*</iframe>', shown[0], re.S)
    assert m, shown[0][:300]
    page = html.unescape(m.group(1))
    data = _DATA_RE.search(page)
    assert data, "the inline page holds no explorer data"
    return page, json.loads(data.group(1))


@needs_jupyter
@pytest.mark.parametrize("stem", TUTORIALS)
def test_tutorial_shows_its_steps_and_the_explorer_page(stem, executed, request):
    nb, _, error = executed[stem]
    assert error is None, error
    steps = [o for o in _outputs(nb, "text/html") if "data:image/png;base64," in o["data"]["text/html"]]
    assert len(steps) >= 2, "the trace's picture and at least one step's"
    transcript = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                         for o in c.outputs if o.get("output_type") == "stream")
    assert "minirnn step:" in transcript and "backward traced" in transcript
    page, data = explorer_page(nb)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    meta = data["meta"]
    assert meta["T"] >= 5 and len(meta["tokens"]) == meta["T"], sorted(meta)
    assert "largest difference" in transcript                    # the torch twin's check ran
    shot = os.environ.get("MINIRNN_NOTEBOOK_SCREENSHOT")
    if shot and stem == "names":
        _screenshot(nb, Path(shot), request.getfixturevalue("chromium_driver")(1300, 900))


def _screenshot(nb, out, d):
    """The explorer cell as a notebook front end shows it: its source, then its output."""
    cell = _tagged(nb, "explorer")[0]
    shown = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    doc = out.with_suffix(".html")
    doc.write_text(f'<!DOCTYPE html><html><body style="font-family: sans-serif; margin: 16px">'
                   f'<pre style="background:#f5f5f5; padding:8px">In [{cell.execution_count}]: '
                   f'{html.escape(cell.source)}</pre>{shown}</body></html>', encoding="utf-8")
    d.get(doc.as_uri())
    d.switch_to.frame(d.find_element("css selector", "iframe"))
    t0 = time.perf_counter()
    while not d.execute_script("return !!(window.explorer && window.explorer.ready) && "
                               "!!document.getElementById('step-label').textContent"):
        assert time.perf_counter() - t0 < 20, "the inline page never became ready"
        time.sleep(0.05)
    time.sleep(0.5)                              # its first frame painted
    d.switch_to.default_content()
    d.save_screenshot(str(out))
