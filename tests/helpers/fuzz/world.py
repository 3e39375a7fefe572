"""The fuzzer's world: small valid objects, the Call a recipe returns, the recipe registry.

A recipe takes the World (small valid objects, drawn: a cell, layers, directions, layout,
dtype, backend) and returns a Call: the callable (a method bound to a fresh object) and its
arguments by name, which the fuzzer then spoils one or two at a time (tests/helpers/fuzz/engine.py).
`accept` names exceptions other than ValueError/TypeError that are the callable's answer
(assert_close's AssertionError; RuntimeError for a backward with no forward, as torch's).

EXCLUDED lists the public callables that are not fuzzed, each with its reason.
"""
from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

import minirnn
from minirnn.cells import CellSpec, register_cell

T, B, I, H = 3, 2, 3, 4             # small: the baselines run in milliseconds
VOCAB = 5
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")

# The spec tier trusts its arguments by design (minirnn/functional/__init__.py: "unchecked: it
# trusts its arguments, as a spec should read"): the modules and the functional API validate,
# then call it. Fuzzing it would test numpy, not minirnn's checks.
_TIER = "the cells' compute tier (trusts its arguments; the validating layers call it)"
EXCLUDED = {
    **{f"minirnn.cells.{m}.": _TIER for m in ("rnn", "lstm", "gru")},
    **{f"minirnn.cells.{c}.{m}": _TIER for c in ("spec.CellSpec", "family.FamilySpec",
                                                   "rnn.ElmanSpec", "lstm.LSTMSpec",
                                                   "gru.GRUSpec")
       for m in ("forward", "backward", "forward_jvp", "backward_jvp", "step_forward",
                 "step_backward", "step_jacobians", "states_of", "args", "extra_grads",
                 "hidden_dgates", "per_sample_grads", "step_grads_per_sample")},
    "minirnn.cells.family.linear_step_grads": _TIER,
    "minirnn.functional.backends.Backend.forward": _TIER + ": CellSpec.forward by name",
    "minirnn.functional.backends.Backend.backward": _TIER + ": CellSpec.backward by name",
    # built by minirnn.trace from a forward's record, whose internals are its arguments;
    # trace() itself and every Trace method are fuzzed
    "minirnn.debug.tracing.Trace": "the record minirnn.trace builds (trace() is fuzzed)",
}


def excluded(name):
    """The reason `name` is not fuzzed, or None. A key ending in "." covers a module's
    functions and classes but not the classes' own entries named elsewhere."""
    if name in EXCLUDED:
        return EXCLUDED[name]
    for key, why in EXCLUDED.items():
        rest = name[len(key):]
        if key.endswith(".") and name.startswith(key) and "." not in rest and rest[:1].islower():
            return why
    return None


class Call(NamedTuple):
    fn: object
    kwargs: dict
    accept: tuple = ()


class FuzzStep(NamedTuple):
    x_t: np.ndarray               # (B, I)
    h_prev: np.ndarray            # (B, H)
    gates: np.ndarray             # (B, H) the one gate, a = h_t: what the tracer shows


class FuzzCell(CellSpec):
    """A cell of the user's own (the contract's two required steps): Elman with tanh."""
    name = "fuzz_cell"

    def step_forward(self, x_t, state, params):
        z = x_t @ params["weight_ih"].T + state[0] @ params["weight_hh"].T
        if params.get("bias_ih") is not None:
            z = z + params["bias_ih"] + params["bias_hh"]
        h = np.tanh(z)
        return (h,), FuzzStep(x_t, state[0], h)

    def step_backward(self, cache_t, d_state, params):
        x_t, h_prev, h = cache_t
        da = d_state[0] * (1.0 - h * h)
        bias = None if params.get("bias_ih") is None else da.sum(axis=0)
        return (da @ params["weight_ih"], (da @ params["weight_hh"],),
                {"weight_ih": da.T @ x_t, "weight_hh": da.T @ h_prev, "bias_ih": bias,
                 "bias_hh": bias})


class World:
    """Small valid objects for the baselines, drawn with hypothesis."""

    def __init__(self, data, tmp):
        self.data, self.tmp, self.cleanups = data, tmp, []
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))

    def pick(self, *options):
        return self.data.draw(st.sampled_from(options))

    def normal(self, *shape, dtype=np.float64):
        return self.rng.standard_normal(shape).astype(dtype)

    def custom_cell(self):
        from minirnn.cells.registry import CELLS
        spec = register_cell(FuzzCell())
        self.cleanups.append(lambda: CELLS.pop(spec.name, None))   # the call may have done it
        return spec.name

    def model(self, layers=(1, 2), bidir=(False, True), cells=CELLS + ("custom",), numba=True,
              dtypes=("float64", "float32"), batch_first=(False, True)):
        """A recurrent module of I inputs and H units (an LSTM may project to 2)."""
        cell = self.pick(*cells)
        kw = dict(num_layers=self.pick(*layers), bidirectional=self.pick(*bidir),
                  batch_first=self.pick(*batch_first), dtype=self.pick(*dtypes), seed=0)
        if cell == "custom":
            cell = self.custom_cell()
        elif numba:
            kw["backend"] = self.pick("numpy", "numba")
        if cell == "lstm" and self.pick(False, True):
            kw["proj_size"] = 2
        return minirnn.nn.make_recurrent(cell, I, H, **kw)

    def x(self, model, T=T, B=B):
        shape = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
        return self.normal(*shape, dtype=model.dtype)

    def out(self, model, T=T, B=B):
        """An array of the model's output shape (dL/d(out), a target)."""
        F = model.num_directions * model.out_size
        return self.normal(*((B, T, F) if model.batch_first else (T, B, F)), dtype=model.dtype)

    def state(self, model, B=B):
        LD = model.num_layers * model.num_directions
        return tuple(self.normal(LD, B, s, dtype=model.dtype) for s in model.state_sizes)

    def lengths(self, T=T, B=B):
        return self.pick(None, np.array([T, 1] + [T] * (B - 2))[:B])

    def tokens(self, B=B, T=T):
        return self.rng.integers(0, VOCAB, size=(B, T))

    def classifier(self, **kw):
        return minirnn.SequenceClassifier(VOCAB, 2, H, cell=self.pick(*CELLS), seed=0,
                                          embedding_dim=self.pick(None, 3), **kw)

    def language_model(self, **kw):
        return minirnn.LanguageModel(VOCAB, 3, H, cell=self.pick(*CELLS), num_layers=1, seed=0,
                                     **kw)

    def other_models(self):
        """Models a tool may not take: another kind, a cell, two layers, float32."""
        return [minirnn.Linear(I, 2), minirnn.RNNCell(I, H), minirnn.LSTM(I, H, num_layers=2,
                bidirectional=True), minirnn.GRU(I, H, dtype="float32"),
                minirnn.LanguageModel(VOCAB, 3, H, num_layers=1), minirnn.Module()]


RECIPES = {}


def recipe(*names, accept=()):
    def register(build):
        for name in names:
            RECIPES[name] = (build, accept)
        return build
    return register


def build(name, world):
    """The baseline Call of `name`. A recipe is make(world, method) where method is the last
    part of the name (one recipe may serve several methods of a class)."""
    make, accept = RECIPES[name]
    fn, kwargs = make(world, name.rpartition(".")[2])
    return Call(fn, kwargs, accept)


def args_of(fn, given):
    """Every parameter of fn by name: `given`, else its default (a name fn does not take is
    left out, so that one table of sizes serves every constructor)."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in given:
            out[p.name] = given[p.name]
        elif p.default is not p.empty:
            out[p.name] = p.default
        else:
            raise KeyError(f"recipe for {fn}: no value for {p.name!r}")
    return out


def call(fn, /, **given):
    return fn, args_of(fn, given)


def getter(obj, prop):
    """A property's getter bound to obj: a call of no arguments."""
    return functools.partial(getattr(type(obj), prop).fget, obj)


RECORD_ORDER_ERROR = (RuntimeError,)   # backward before forward: torch's RuntimeError too
