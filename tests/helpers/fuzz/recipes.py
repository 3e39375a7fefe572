"""Baselines of the core API: the functional layer, the modules and cells, the cell contract
and registry, utils and assert_close (the tools' are in tests/helpers/fuzz/recipes_tools.py)."""
from __future__ import annotations

import numpy as np

import minirnn
import minirnn.functional as F
from minirnn.cells import get_cell
from minirnn.nn import cells as nn_cells, layers, models, module, recurrent

from tests.helpers.fuzz.world import (B, CELLS, FuzzCell, H, I, RECORD_ORDER_ERROR, T, VOCAB, call,
                               getter, recipe)

REC, CELLC, SPEC = "minirnn.nn.recurrent.RNNBase.", "minirnn.nn.cells.", "minirnn.cells.spec."


# ---- the functional API --------------------------------------------------------------------------

def _layer(w, G, P=None):
    P = P or H
    dt = w.pick(np.float64, np.float32)
    return dict(x=w.normal(T, B, I, dtype=dt), w_ih=w.normal(G * H, I, dtype=dt),
                w_hh=w.normal(G * H, P, dtype=dt), b_ih=w.normal(G * H, dtype=dt),
                b_hh=w.normal(G * H, dtype=dt), lengths=w.lengths(),
                backend=w.pick("numpy", "numba")), dt


@recipe("minirnn.functional.rnn_forward")
def _rnn_forward(w, m=None):
    kw, dt = _layer(w, 1)
    return call(F.rnn_forward, h0=w.normal(B, H, dtype=dt), nonlinearity=w.pick("tanh", "relu"),
                **kw)


@recipe("minirnn.functional.lstm_forward")
def _lstm_forward(w, m=None):
    P = w.pick(H, 2)
    kw, dt = _layer(w, 4, P)
    return call(F.lstm_forward, h0=w.normal(B, P, dtype=dt), c0=w.normal(B, H, dtype=dt),
                w_hr=None if P == H else w.normal(P, H, dtype=dt), **kw)


@recipe("minirnn.functional.gru_forward")
def _gru_forward(w, m=None):
    kw, dt = _layer(w, 3)
    return call(F.gru_forward, h0=w.normal(B, H, dtype=dt), **kw)


def _backward(w, forward, backward, n_states):
    fn, kw = forward(w)
    res = fn(**kw)
    cache, states = res[-1], res[1:-1]
    d = {f"d_{'hc'[k]}T": w.normal(*s.shape, dtype=s.dtype) for k, s in enumerate(states)}
    return call(backward, cache=cache, d_out=w.normal(*res[0].shape, dtype=res[0].dtype),
                backend=kw["backend"], return_steps=w.pick(False, True), **d)


recipe("minirnn.functional.rnn_backward")(
    lambda w, m=None: _backward(w, _rnn_forward, F.rnn_backward, 1))
recipe("minirnn.functional.lstm_backward")(
    lambda w, m=None: _backward(w, _lstm_forward, F.lstm_backward, 2))
recipe("minirnn.functional.gru_backward")(
    lambda w, m=None: _backward(w, _gru_forward, F.gru_backward, 1))
recipe("minirnn.functional.backends.get_backend")(
    lambda w, m=None: call(F.get_backend, name=w.pick("numpy", "numba")))
recipe("minirnn.functional.backends.Backend")(
    lambda w, m=None: call(F.Backend, name="numpy", summary="the reference"))


# ---- the modules ---------------------------------------------------------------------------------

_SIZES = dict(input_size=I, hidden_size=H, in_features=I, out_features=2, num_embeddings=VOCAB,
              embedding_dim=3, vocab_size=VOCAB, num_classes=2, seed=0)


def _constructor(cls, **extra):
    return lambda w, m=None: call(cls, **{**_SIZES, **extra})


for _cls in (minirnn.RNN, minirnn.LSTM, minirnn.GRU, minirnn.RNNCell, minirnn.LSTMCell,
             minirnn.GRUCell, layers.Linear, layers.Embedding, layers.Dropout,
             models.SequenceClassifier, models.LanguageModel):
    recipe(f"{_cls.__module__}.{_cls.__qualname__}")(_constructor(_cls))
recipe("minirnn.nn.recurrent.RNNBase")(lambda w, m=None: call(minirnn.RNNBase, mode=w.pick(*CELLS),
                                                      **_SIZES))
recipe("minirnn.nn.module.Module")(lambda w, m=None: call(module.Module))
recipe("minirnn.nn.recurrent.make_recurrent")(
    lambda w, m=None: call(recurrent.make_recurrent, cell=w.pick(*CELLS), input_size=I,
                           hidden_size=H))
recipe("minirnn.nn.cells.make_cell")(
    lambda w, m=None: call(nn_cells.make_cell, cell=w.pick(*CELLS), input_size=I, hidden_size=H))


@recipe(REC + "forward", REC + "forward_state", REC + "jvp")
def _module_forward(w, which):
    m = w.model()
    state = w.pick(None, w.state(m))
    kw = dict(x=w.x(m), lengths=w.lengths())
    if which == "forward":
        return call(m.forward, hx=None if state is None else m.state_value(state), **kw)
    if which == "jvp":
        m.eval()
        name, p = next(iter(m.params.items()))
        tangents = {"x": w.x(m), name: w.normal(*p.shape, dtype=m.dtype)}
        return call(m.jvp, state=state, tangents=w.pick(None, tangents), **kw)
    return call(m.forward_state, state=state, **kw)


@recipe(REC + "backward", REC + "backward_state", accept=RECORD_ORDER_ERROR)
def _module_backward(w, which):
    m = w.model()
    out, state = m.forward_state(w.x(m), lengths=w.lengths())
    d_state = w.pick(None, tuple(np.ones_like(s) for s in state))
    kw = dict(d_out=np.ones_like(out), return_steps=w.pick(False, True))
    if which == "backward_state":
        return call(m.backward_state, d_state=d_state, **kw)
    return call(m.backward, d_state=None if d_state is None else m.state_value(d_state), **kw)


@recipe(REC + "to_time_major", REC + "from_time_major", REC + "state_tuple", REC + "state_value",
        REC + "param_keys", REC + "initial_state", REC + "stack")
def _module_accessors(w, which):
    m = w.model()
    state = w.state(m)
    return {"to_time_major": lambda: call(m.to_time_major, arr=w.x(m)),
            "from_time_major": lambda: call(m.from_time_major, arr=w.normal(T, B, I)),
            "state_tuple": lambda: call(m.state_tuple, hx=m.state_value(state)),
            "state_value": lambda: call(m.state_value, state=state),
            "param_keys": lambda: call(m.param_keys, layer=m.num_layers - 1,
                                       direction=m.num_directions - 1),
            "initial_state": lambda: call(m.initial_state, state=state, batch=B),
            "stack": lambda: call(m.stack, lengths=w.lengths(), masks=[None] * m.num_layers),
            }[which]()


@recipe(REC + "state_sizes", REC + "last_forward", REC + "last_caches", REC + "preserve_record")
def _module_views(w, which):
    m = w.model()
    if w.pick(True, False):
        m.forward(w.x(m))
    return call(m.preserve_record) if which == "preserve_record" else (getter(m, which), {})


def _cell(w, lstm=None):
    """A one-step cell: the LSTMCell (lstm=True), one of the single-state ones (False), any."""
    cls = w.pick(*{True: (minirnn.LSTMCell,), False: (minirnn.RNNCell, minirnn.GRUCell)}.get(
        lstm, (minirnn.RNNCell, minirnn.LSTMCell, minirnn.GRUCell)))
    return cls(I, H, seed=0, dtype=w.pick("float64", "float32"), backend=w.pick("numpy", "numba"))


def _cell_input(w, c):
    return w.pick(w.normal(B, I, dtype=c.dtype), w.normal(I, dtype=c.dtype))


@recipe(CELLC + "LSTMCell.forward", CELLC + "_SingleStateCell.forward",
        CELLC + "_CellBase.forward_state", CELLC + "_CellBase.preserve_record")
def _cell_forward(w, which):
    c = _cell(w, lstm=which.startswith("LSTM") or None)
    x = _cell_input(w, c)
    state = tuple(w.normal(*x.shape[:-1], H, dtype=c.dtype) for _ in c.spec.state_names)
    if which == "forward_state":
        return call(c.forward_state, x=x, state=w.pick(None, state))
    if which == "preserve_record":
        return call(c.preserve_record)
    return call(c.forward, x=x, hx=w.pick(None, state if len(state) > 1 else state[0]))


@recipe(CELLC + "LSTMCell.backward", CELLC + "_SingleStateCell.backward",
        CELLC + "_CellBase.backward_state", accept=RECORD_ORDER_ERROR)
def _cell_backward(w, which):
    c = _cell(w, lstm=True if which == "LSTMCell.backward" else (
        False if which == "_SingleStateCell.backward" else None))
    new = c.forward_state(_cell_input(w, c))
    d = tuple(np.ones_like(s) for s in new)
    if which == "backward_state":
        return call(c.backward_state, d_state=d)
    if len(d) == 2:
        return call(c.backward, d_h=d[0], d_c=w.pick(None, d[1]))
    return call(c.backward, d_h=d[0])


_MOD = "minirnn.nn.module.Module."


@recipe(*(_MOD + m for m in ("add_module", "add_param", "eval", "grad_dict", "load_state_dict",
                             "modules", "named_parameters", "parameters", "state_dict", "train",
                             "using_backend", "zero_grad")))
def _module_methods(w, which):
    m = w.pick(lambda: w.model(), lambda: w.classifier(), lambda: minirnn.Linear(I, 2))()
    kw = {"add_module": dict(name="extra", module=minirnn.Linear(I, 2)),
          "add_param": dict(name="extra", shape=(2, 3), bound=0.5),
          "load_state_dict": dict(state_dict=m.state_dict(), strict=w.pick(True, False)),
          "modules": dict(prefix="top."), "named_parameters": dict(prefix="p."),
          "train": dict(mode=w.pick(True, False)),
          "using_backend": dict(backend=w.pick("numpy", "numba"))}.get(which, {})
    return call(getattr(m, which), **kw)


@recipe(*(f"minirnn.nn.layers.{c}.{m}" for c in ("Linear", "Embedding", "Dropout")
          for m in ("forward", "backward")), "minirnn.nn.layers.Embedding.check_ids",
        accept=RECORD_ORDER_ERROR)
def _layer_methods(w, which):
    dt = w.pick("float64", "float32")
    kind = w.pick("Linear", "Dropout") if which != "check_ids" else "Embedding"
    kind = w.pick(kind, "Embedding")
    if kind == "Embedding":
        e = minirnn.Embedding(VOCAB, 3, padding_idx=w.pick(None, 0), dtype=dt, seed=0)
        ids = w.tokens()
        if which == "backward":
            return call(e.backward, dy=w.normal(*e.forward(ids).shape, dtype=dt))
        return call(e.forward, idx=ids) if which == "forward" else \
            call(e.check_ids, idx=ids, name="tokens")
    lay = minirnn.Linear(I, 2, dtype=dt, seed=0) if kind == "Linear" else \
        minirnn.Dropout(0.5, dtype=dt, seed=0)
    x = w.normal(B, T, I, dtype=dt)
    if which == "backward":
        return call(lay.backward, dy=w.normal(*lay.forward(x).shape, dtype=dt))
    return call(lay.forward, x=x)


_MODELS = "minirnn.nn.models."


@recipe(_MODELS + "SequenceClassifier.forward", _MODELS + "SequenceClassifier.backward",
        _MODELS + "LanguageModel.forward", _MODELS + "LanguageModel.backward",
        _MODELS + "LanguageModel.init_state", _MODELS + "_Composed.backend",
        _MODELS + "_Composed.embed", accept=RECORD_ORDER_ERROR)
def _model_methods(w, which):
    lm = which == "init_state" or w.pick(True, False)
    m = w.language_model() if lm else w.classifier()
    tokens = w.tokens()
    if which == "forward":
        if lm:
            return call(m.forward, tokens=tokens, state=w.pick(None, m.init_state(B)))
        return call(m.forward, tokens=tokens, lengths=w.lengths())
    if which == "backward":
        logits = m.forward(tokens)[0] if lm else m.forward(tokens)
        return call(m.backward, d_logits=np.ones_like(logits))
    if which == "init_state":
        return call(m.init_state, batch=B)
    return (getter(m, "backend"), {}) if which == "backend" else call(m.embed, tokens=tokens)


# ---- the cell contract and the registry ----------------------------------------------------------

@recipe(*("minirnn.cells.registry." + f for f in ("register_cell", "unregister_cell",
                                                  "register_tier", "get_cell", "cell_name",
                                                  "cell_names")))
def _registry(w, which):
    from minirnn.cells import registry as r
    if which == "register_cell":
        w.cleanups.append(lambda: r.CELLS.pop(FuzzCell.name, None))
        return call(r.register_cell, spec=FuzzCell(), replace=w.pick(False, True))
    if which == "unregister_cell":
        return call(r.unregister_cell, name=w.custom_cell())
    if which == "register_tier":
        return call(r.register_tier, name=w.custom_cell(), backend="fast", twin=lambda: None)
    if which == "cell_names":
        return call(r.cell_names)
    # cell_name resolves an alias ("rnn"); get_cell takes the registry's names
    return call(getattr(r, which), name=w.pick(*CELLS, *(("rnn",) if which == "cell_name" else ())))


@recipe(*(SPEC + "CellSpec." + m for m in ("add_twin", "backends", "gates", "has", "has_cell_state",
                                           "module_kwargs", "param_shapes", "require",
                                           "split_gates", "state_sizes", "supports_proj", "twin")),
        "minirnn.cells.family.FamilySpec.has", "minirnn.cells.family.FamilySpec.tier")
def _spec_methods(w, which):
    # a FuzzCell of its own for add_twin: a built-in cell's twins are everyone's
    spec = FuzzCell() if which == "add_twin" else w.pick(*(get_cell(c) for c in CELLS))
    if which in ("gates", "has_cell_state", "supports_proj"):
        return getter(spec, which), {}
    kw = {"add_twin": dict(backend="fast", twin=lambda: None), "has": dict(part="step_jvp"),
          "param_shapes": dict(input_size=I, hidden_size=H, proj_size=0),
          "require": dict(part="step_forward", what="the forward"),
          "split_gates": dict(gates=w.normal(B, spec.gates * H)),
          "state_sizes": dict(hidden_size=H, proj_size=0),
          "twin": dict(backend=w.pick("numpy", "numba")),
          "tier": dict(backend=w.pick("numpy", "numba"))}.get(which, {})
    if which == "twin":
        kw["backend"] = "numba"
    return call(getattr(spec, which), **kw)


@recipe(*(SPEC + f"StepsCache.{p}" for p in ("gates", "h", "h0")))
def _steps_cache(w, which):
    spec = get_cell(w.custom_cell())
    p = {"weight_ih": w.normal(H, I), "weight_hh": w.normal(H, H)}
    cache = spec.forward(w.normal(T, B, I), (w.normal(B, H),), p)[-1]
    return getter(cache, which), {}


# ---- records: NamedTuples and dataclasses take what they are given -------------------------------

def _record(cls):
    fields = getattr(cls, "_fields", None) or list(cls.__dataclass_fields__)
    return lambda w, m=None: call(cls, **{f: w.normal(2, 2) for f in fields})


def _records():
    from minirnn.cells import family, gru, lstm, rnn, spec
    from minirnn.nn import passes
    classes = [gru.GRUCache, gru.GRUGradSteps, gru.GRUStepCache, gru.GRUTangentCache,
               lstm.LSTMCache, lstm.LSTMGradSteps, lstm.LSTMStepCache, lstm.LSTMTangentCache,
               rnn.RNNCache, rnn.RNNGradSteps, rnn.RNNStepCache, rnn.RNNTangentCache,
               spec.StepsCache, spec.StepsGrad, spec.StepsTangentCache, family.Tier,
               recurrent.ForwardRecord, passes.JVPResult]
    for cls in classes:
        recipe(f"{cls.__module__}.{cls.__qualname__}")(_record(cls))
    for cls in (minirnn.CellSpec, family.FamilySpec, lstm.LSTMSpec, gru.GRUSpec):
        recipe(f"{cls.__module__}.{cls.__qualname__}")(lambda w, m=None, c=cls: call(c))
    recipe("minirnn.cells.rnn.ElmanSpec")(
        lambda w, m=None: call(rnn.ElmanSpec, nonlinearity=w.pick("tanh", "relu")))


_records()


# ---- utils and the comparison helper -------------------------------------------------------------

@recipe("minirnn.utils.pad_sequence", "minirnn.utils.sequence_lengths",
        "minirnn.utils.unpad_sequence")
def _utils(w, which):
    seqs = [w.normal(n, I) for n in (3, 1, 2)]
    if which == "pad_sequence":
        return call(minirnn.utils.pad_sequence, sequences=seqs, batch_first=w.pick(False, True),
                    padding_value=0.0, padding_side=w.pick("right", "left"))
    if which == "sequence_lengths":
        return call(minirnn.utils.sequence_lengths, sequences=seqs)
    return call(minirnn.utils.unpad_sequence, padded=minirnn.utils.pad_sequence(seqs),
                lengths=np.array([3, 1, 2]))


@recipe("minirnn.testing.assert_close", accept=(AssertionError,))
def _assert_close(w, which):
    a = w.normal(2, 3)
    return call(minirnn.assert_close, actual=a, expected=a.copy(), rtol=1e-12, atol=0.0,
                name="out")
