"""The package's layout: the old import paths are gone, and the registry does not import nn.

The modules moved into subpackages (minirnn.train, minirnn.grad, minirnn.debug,
minirnn.interop); the aliases that kept the old flat names importable were removed, since
nothing uses them. Each old name must now fail to import, so that no code or document can
come to depend on it again.
"""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import minirnn

ROOT = Path(__file__).resolve().parents[1]

# old name -> where the code lives now
MOVED = {
    "minirnn.training": "minirnn.train.engine",
    "minirnn.optim": "minirnn.train.optim",
    "minirnn.checkpoint": "minirnn.train.checkpoint",
    "minirnn.models": "minirnn.train.models",
    "minirnn.torch_backend": "minirnn.interop.torch",
    "minirnn._gradcheck": "minirnn.grad.gradcheck",
    "minirnn.study": "minirnn.grad.flow",
    "minirnn.tracing": "minirnn.debug.tracing",
    "minirnn.stepper": "minirnn.debug.stepper",
    "minirnn.stepper_render": "minirnn.debug.render",
    "minirnn._compat": None,
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_are_gone(old):
    with pytest.raises(ImportError):
        importlib.import_module(old)
    with pytest.raises(AttributeError):
        getattr(minirnn, old.split(".", 1)[1])


def test_the_engine_alias_is_gone():
    """Training backends have one name, TRAIN_BACKENDS (the kernel tiers are another set:
    minirnn.functional.backends.KERNEL_BACKENDS)."""
    from minirnn.train import engine
    assert not hasattr(engine, "BACKENDS") and "BACKENDS" not in engine.__all__


@pytest.mark.parametrize("old, new", sorted((o, n) for o, n in MOVED.items() if n))
def test_new_homes_import(old, new):
    assert importlib.import_module(new).__name__ == new


def test_lazy_top_level_names_resolve():
    """README uses minirnn.Engine and friends: each lazy name is its module's object."""
    for name, module in minirnn._LAZY.items():
        assert getattr(minirnn, name) is getattr(importlib.import_module(module, "minirnn"), name)


def test_no_file_names_an_old_path():
    """Code, tests, examples and documents name modules by their real homes."""
    roots = [ROOT / d for d in ("minirnn", "tests", "parity", "benchmarks", "examples", "docs")]
    files = [ROOT / "README.md", *(p for r in roots if r.exists() for p in r.rglob("*")
                                   if p.suffix in (".py", ".md", ".html"))]
    here = Path(__file__).resolve()
    offenders = []
    for path in files:
        if path.resolve() == here:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for old in MOVED:
            # a word boundary after the name: minirnn.optim must not match minirnn.optimizer
            for line_no, line in enumerate(text.splitlines(), 1):
                i = line.find(old)
                while i >= 0:
                    end = i + len(old)
                    if end == len(line) or not (line[end].isalnum() or line[end] == "_"):
                        offenders.append(f"{path.relative_to(ROOT)}:{line_no}: {old}")
                    i = line.find(old, end)
    assert not offenders, "old import paths still named:\n" + "\n".join(offenders)


# ---- the registry does not import minirnn.nn ---------------------------------------------------
# minirnn.nn imports the registry; were the registry to import nn at import time, the two would
# form a circle that works only by the order of imports. `import minirnn.registry` cannot show
# it (the package's __init__ imports nn first), so the registry file is loaded here alone, in a
# fresh interpreter, under a bare package object that runs no __init__: what it pulls in is
# exactly its own import graph.
_LOAD_ALONE = """
import sys, types
pkg = types.ModuleType("minirnn")
pkg.__path__ = [sys.argv[1]]
sys.modules["minirnn"] = pkg
import minirnn.registry
print(sorted(m for m in sys.modules if m.startswith("minirnn")))
"""


def test_registry_alone_does_not_import_nn():
    res = subprocess.run([sys.executable, "-c", _LOAD_ALONE, str(ROOT / "minirnn")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    loaded = ast.literal_eval(res.stdout.strip().splitlines()[-1])
    assert "minirnn.nn" not in loaded and not any(m.startswith("minirnn.nn.") for m in loaded)
    assert "minirnn.registry" in loaded


def test_registry_source_has_no_module_level_import_of_nn():
    """The same, read off the source: no top-level import of nn (relative or absolute)."""
    tree = ast.parse((ROOT / "minirnn" / "registry.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            target = "." * node.level + (node.module or "")
            names = [a.name for a in node.names]
            assert target not in (".nn", "minirnn.nn") and not target.startswith((".nn.",
                                                                                  "minirnn.nn."))
            assert not (target in (".", "minirnn") and "nn" in names), ast.dump(node)
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("minirnn.nn") for a in node.names), ast.dump(node)


def test_registry_still_finds_the_classes():
    """The registry names each module class; asking for it gives minirnn.nn's class."""
    from minirnn.registry import CELLS
    for spec in CELLS.values():
        assert spec.module_class() is getattr(minirnn, spec.module)
        assert spec.cell_class() is getattr(minirnn, spec.cell_module)
