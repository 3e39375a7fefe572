"""The public API, enumerated (not listed by hand), for the tests that must cover all of it:
tests/test_api_optional.py (every optional argument has a test) and tests/test_fuzz.py
(every callable refuses bad input cleanly).

A root is a subpackage of minirnn; its ``__all__`` names functions, classes and modules (a
module's own public functions and classes count). For each class: the constructor, and the
public methods and properties defined by minirnn classes in its MRO.
"""
from __future__ import annotations

import importlib
import inspect

import minirnn


def ours(obj):
    """Defined in minirnn (not numpy's, not a builtin inherited by a minirnn class)."""
    return (getattr(obj, "__module__", None) or "").startswith("minirnn")


def _members(obj):
    """A name in __all__ -> the callables it stands for (a module: its public ones)."""
    if not inspect.ismodule(obj):
        return [obj]
    return [m for m in vars(obj).values()
            if getattr(m, "__module__", None) == obj.__name__ and not m.__name__.startswith("_")
            and (inspect.isfunction(m) or inspect.isclass(m))]


def public_callables(subpackages):
    """-> {dotted name where it is defined: callable} for minirnn.__all__ and the __all__ of
    each of `subpackages` ("functional", "nn", ...). A property is given as its getter."""
    roots = [(minirnn, minirnn.__all__)]
    for sub in subpackages:
        mod = importlib.import_module("minirnn." + sub)
        roots.append((mod, mod.__all__))
    found = {}

    def add(obj):
        found[f"{obj.__module__}.{obj.__qualname__}"] = obj
        if not inspect.isclass(obj):
            return
        for klass in obj.__mro__:
            if not ours(klass):
                continue
            for name, member in vars(klass).items():
                member = getattr(member, "fget", None) or getattr(member, "__func__", member)
                if not name.startswith("_") and inspect.isfunction(member) and ours(member):
                    found[f"{member.__module__}.{member.__qualname__}"] = member

    for module, names in roots:
        for name in names:
            for m in _members(getattr(module, name)):
                if (inspect.isfunction(m) or inspect.isclass(m)) and ours(m):
                    add(m)
    return found
