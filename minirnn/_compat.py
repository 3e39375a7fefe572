"""Old import paths, kept working after the move into subpackages.

    import minirnn.training          # is minirnn.train.engine
    from minirnn.study import gradient_flow

Each old name is an alias of the module that now holds the code: the very same module object,
so monkeypatching and private helpers behave exactly as before. The finder is tried after
the normal ones, only for the names below; nothing is imported until an alias is used.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

ALIASES = {
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
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def exec_module(self, module):
        # the import system re-reads sys.modules after exec_module, so the alias resolves to
        # the real module (a module may replace itself there: importlib documents this)
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in ALIASES:
            return importlib.util.spec_from_loader(fullname, _AliasLoader(ALIASES[fullname]))
        return None


def install():
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
