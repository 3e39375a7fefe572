"""A cell the user registered, carried into the benchmark's worker processes.

Each engine is timed in a process of its own (minirnn.bench.processes), and a fresh process
knows only the built-in cells. So for every other cell the parent names the file and the
class that define it (describe), and the worker loads that file under a private module name
and registers a new instance of the class (load). Loading a file runs its top-level code,
never its `if __name__ == "__main__":` block, the way multiprocessing's spawn start method
loads a script. What this needs of the cell:

    - its class is defined at the top level of a .py file (not inside a function);
    - the class builds with no arguments, `type(spec)()`, as built-in cells do;
    - a twin on another backend comes along only when that file registers it at top level.
"""
from __future__ import annotations

import importlib.util
import sys

from ..cells import BUILTIN, CELLS, get_cell, register_cell


def describe(names):
    """[dict(name, file, qualname)] of the cells in `names` a worker must load (the
    registered, non-built-in ones); a cell that cannot be carried is refused, saying why."""
    out = []
    for name in names:
        if name in BUILTIN:
            continue
        cls = type(get_cell(name))
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if "<locals>" in cls.__qualname__ or not path:
            where = ("inside a function" if "<locals>" in cls.__qualname__
                     else f"in module {cls.__module__!r}, which has no file")
            raise ValueError(
                f"cells: the benchmark times each engine in its own process, which builds cell "
                f"{name!r} as {cls.__qualname__}() from the file that defines its class; that "
                f"class is defined {where}. Define it at the top level of a .py file")
        out.append(dict(name=name, file=path, qualname=cls.__qualname__))
    return out


def load(described):
    """Worker side: import each described file under a private name and register a new
    instance of its class (a name registered already is left as it is)."""
    for k, d in enumerate(described):
        if d["name"] in CELLS:
            continue
        module_name = f"_minirnn_bench_cell_{k}"
        spec = importlib.util.spec_from_file_location(module_name, d["file"])
        if spec is None:
            raise ValueError(f"cells: cannot load {d['file']!r}, the file of cell {d['name']!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module          # so the file's own pickles and dataclasses work
        spec.loader.exec_module(module)
        obj = module
        for part in d["qualname"].split("."):
            obj = getattr(obj, part)
        cell = obj()
        if cell.name != d["name"]:
            raise ValueError(f"cells: {d['qualname']}() in {d['file']!r} is named "
                             f"{cell.name!r}, expected {d['name']!r}")
        if cell.name not in CELLS:              # the file may have registered it itself
            register_cell(cell)
