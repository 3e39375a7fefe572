"""The package's layout: layers only point down, no module imports in a circle, the old import
paths are gone, and the cells load without the layers above them.

LAYERS lists minirnn's packages and top-level modules from the bottom up. A module may import
from its own layer's package and from any layer below, never from one above: every import
counts, at module level or inside a function (a lazy import is still a dependency). Modules
do not import each other in a circle, inside a package or across. Read off the source with
ast, so a new edge fails here before anyone draws a picture.
"""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import minirnn

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "minirnn"

# bottom to top; one entry a layer (a package, or a top-level module of minirnn)
LAYERS = [
    ("_version", "_config", "_blas", "_checks", "_io", "_progress", "_table", "testing", "utils",
     "text"),
    ("cells",),          # the contract, the registry, the NumPy reference (the spec)
    ("kernels",),        # the Numba twins
    ("functional",),     # the validating API; registers the twins as the numba tier
    ("nn",),             # modules, the stack walker, the task models
    ("_threads",),       # the BLAS thread policy of commands
    ("interop",),        # torch twins
    ("grad",),           # derivative tools
    ("train",),          # optimisers, checkpoints, the Engine, the torch trainer
    ("studies",),        # gradient studies (train and grad together)
    ("debug",),          # stepper, tracer, explorer
    ("tutorials",),
    ("parity",),
    ("bench",),
    ("cli",),
    ("__init__", "__main__"),
]
LEVEL = {name: k for k, layer in enumerate(LAYERS) for name in layer}


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module):
    """'minirnn.nn.stack' -> 'nn'; 'minirnn' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(module, node, is_package):
    """The absolute module an ImportFrom names (its names may be submodules)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _exists(module):
    p = ROOT / Path(*module.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def import_graph():
    """{module: {modules of minirnn it imports}} from every file's source."""
    graph = {}
    for path in sorted(PKG.rglob("*.py")):
        name = _module_name(path)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, path.name == "__init__.py")
                if not target.startswith("minirnn"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if _exists(sub) else target)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("minirnn"))
        graph[name] = edges - {name}
    return graph


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in import_graph()}
    assert units - set(LEVEL) == set(), "add each new package or module to LAYERS"


def test_layers_only_point_down():
    up = []
    for module, targets in import_graph().items():
        for target in targets:
            a, b = _unit(module), _unit(target)
            if b == "__init__" and target == "minirnn":
                up.append(f"{module} -> minirnn (the root package: import what it names "
                          f"from its own module)")
            elif LEVEL[b] > LEVEL[a]:
                up.append(f"{module} ({a}) -> {target} ({b})")
    assert not up, "imports that run back up:\n" + "\n".join(sorted(up))


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    graph = import_graph()
    # a package's __init__ importing its own modules is not a circle with them: drop those
    # edges back to the package from its members
    pruned = {m: {t for t in ts if not (graph.get(t) is not None and m.startswith(t + "."))}
              for m, ts in graph.items()}
    assert _cycles(pruned) == []


def test_the_checker_sees_a_circle_and_an_upward_edge():
    """The two checks fail on what they are for (a verdict that cannot fail judges nothing)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert LEVEL["grad"] > LEVEL["nn"]                       # nn -> grad would be upward


# ---- the cells load alone -----------------------------------------------------------------------
# minirnn.cells is the bottom of the model stack: loading it must not pull in nn, the kernels
# (numba) or anything above. `import minirnn.cells` cannot show it (the package's __init__
# imports more first), so the package is loaded here alone, in a fresh interpreter, under a
# bare package object that runs no __init__: what it pulls in is exactly its own import graph.
_LOAD_ALONE = """
import sys, types
pkg = types.ModuleType("minirnn")
pkg.__path__ = [sys.argv[1]]
sys.modules["minirnn"] = pkg
import minirnn.cells
print(sorted(m for m in sys.modules if m.startswith(("minirnn", "numba"))))
"""


def test_cells_alone_load_nothing_above_them():
    res = subprocess.run([sys.executable, "-c", _LOAD_ALONE, str(PKG)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    loaded = ast.literal_eval(res.stdout.strip().splitlines()[-1])
    assert "minirnn.cells.lstm" in loaded
    assert not [m for m in loaded if m.startswith(("minirnn.nn", "minirnn.kernels", "numba",
                                                   "minirnn.functional"))]


def test_the_factories_find_the_classes():
    """A built-in cell's module and one-step module are minirnn's classes of those names."""
    from minirnn.cells import BUILTIN, get_cell
    from minirnn.nn import make_cell, make_recurrent
    for name in BUILTIN:
        spec = get_cell(name)
        assert type(make_recurrent(name, 2, 3)) is getattr(minirnn, spec.module)
        assert type(make_cell(name, 2, 3)) is getattr(minirnn, spec.cell_module)


# ---- old import paths are gone ------------------------------------------------------------------
# old name -> where the code lives now
MOVED = {
    "minirnn.training": "minirnn.train.engine",
    "minirnn.optim": "minirnn.train.optim",
    "minirnn.checkpoint": "minirnn.train.checkpoint",
    "minirnn.models": "minirnn.nn.models",
    "minirnn.train.models": "minirnn.nn.models",
    "minirnn.torch_backend": "minirnn.interop.torch",
    "minirnn._gradcheck": "minirnn.grad.gradcheck",
    "minirnn.study": "minirnn.studies.flow",
    "minirnn.grad.flow": "minirnn.studies.flow",
    "minirnn.grad.seqtask": "minirnn.studies.seqtask",
    "minirnn.grad.precision": "minirnn.studies.precision",
    "minirnn.tracing": "minirnn.debug.tracing",
    "minirnn.stepper": "minirnn.debug.stepper",
    "minirnn.stepper_render": "minirnn.debug.render",
    "minirnn.registry": "minirnn.cells.registry",
    "minirnn.functional.rnn": "minirnn.cells.rnn",
    "minirnn.functional.lstm": "minirnn.cells.lstm",
    "minirnn.functional.gru": "minirnn.cells.gru",
    "minirnn._compat": None,
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_are_gone(old):
    with pytest.raises(ImportError):
        importlib.import_module(old)


@pytest.mark.parametrize("old, new", sorted((o, n) for o, n in MOVED.items() if n))
def test_new_homes_import(old, new):
    assert importlib.import_module(new).__name__ == new


def test_the_engine_alias_is_gone():
    """Training backends have one name, TRAIN_BACKENDS (the kernel tiers are another set:
    minirnn.cells.BACKENDS)."""
    from minirnn.train import engine
    assert not hasattr(engine, "BACKENDS") and "BACKENDS" not in engine.__all__


def test_lazy_top_level_names_resolve():
    """README uses minirnn.Engine and friends: each lazy name is its module's object."""
    for name, module in minirnn._LAZY.items():
        assert getattr(minirnn, name) is getattr(importlib.import_module(module, "minirnn"), name)


def test_no_file_names_an_old_path():
    """Code, tests, examples and documents name modules by their real homes."""
    roots = [ROOT / d for d in ("minirnn", "tests", "parity", "benchmarks", "examples", "docs")]
    files = [ROOT / "README.md", *(p for r in roots if r.exists() for p in r.rglob("*")
                                   if p.suffix in (".py", ".md", ".html", ".ipynb"))]
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
