"""The debugger's expressions (`watch EXPR`, `break WHEN`), evaluated safely: a whitelisted
syntax tree (arithmetic, comparisons, calls of a few numpy functions, indexing) over the step's
own variables; no attributes, no builtins, only numbers as constants.

    code = compile_expr("max(abs(h)) > 0.99", names=("h", "c"))   # refuses anything else
    safe_eval(code, {"h": h, "c": c})
"""
from __future__ import annotations

import ast

import numpy as np

FUNCS = {"abs": np.abs, "max": np.max, "min": np.min, "mean": np.mean, "sum": np.sum,
         "norm": np.linalg.norm, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "tanh": np.tanh,
         "any": np.any, "all": np.all, "argmax": np.argmax, "argmin": np.argmin,
         "isnan": np.isnan, "isfinite": np.isfinite, "std": np.std}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult,
            ast.Div, ast.Pow, ast.Mod, ast.FloorDiv, ast.UnaryOp, ast.USub, ast.UAdd, ast.Not,
            ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Call, ast.Name,
            ast.Load, ast.Constant, ast.Subscript, ast.Slice, ast.Tuple)


def compile_expr(text, names):
    """Parse EXPR and refuse anything outside the whitelist -> a code object for safe_eval."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"expression {text.strip()!r}: syntax error ({e.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"expression {text.strip()!r}: {type(node).__name__} is not allowed "
                             f"(only arithmetic, comparisons, indexing and {sorted(FUNCS)})")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
            raise ValueError(f"expression {text.strip()!r}: only numbers are allowed as constants")
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCS) or node.keywords:
                raise ValueError(f"expression {text.strip()!r}: only calls of {sorted(FUNCS)} "
                                 "without keywords are allowed")
        if isinstance(node, ast.Name) and node.id not in FUNCS and node.id not in names:
            raise ValueError(f"expression {text.strip()!r}: unknown name {node.id!r}; "
                             f"expected one of {sorted(names)}")
    return compile(tree, "<expr>", "eval")


def safe_eval(code, namespace):
    with np.errstate(all="ignore"):
        return eval(code, {"__builtins__": {}}, {**FUNCS, **namespace})   # noqa: S307 (whitelisted)
