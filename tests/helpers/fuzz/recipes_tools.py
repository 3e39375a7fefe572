"""Baselines of the tools: the derivative tools (minirnn.grad), the studies, training
(optimisers, checkpoints, the Engine) and the debugger's trace and explorer."""
from __future__ import annotations

import os

import numpy as np

import minirnn
from minirnn import grad, studies

from tests.helpers.fuzz.recipes import _record
from tests.helpers.fuzz.world import B, CELLS, H, I, T, call, getter, recipe

G = "minirnn.grad."
FILES = (OSError,)          # a path the system refuses: its OSError names the path


def _single(w, **kw):
    """A one-layer, one-direction model, the derivative tools' usual subject."""
    return w.model(layers=(1,), bidir=(False,), **kw)


def _eval(m):
    m.eval()
    return m


# ---- forward mode, second order, per-sample, RTRL ------------------------------------------------

@recipe(G + "forward_mode.jvp")
def _jvp(w, _):
    m = _eval(w.model())
    return call(grad.jvp, model=m, x=w.x(m), state=w.pick(None, w.state(m)),
                tangents={"x": w.x(m)}, lengths=w.lengths())


@recipe(G + "second_order.hvp", G + "second_order.gnvp")
def _second_order(w, which):
    # the HVP needs the cell's own step_backward_jvp, which the user's cell here leaves out
    m = _eval(w.model(cells=CELLS if which == "hvp" else CELLS + ("custom",)))
    loss = w.pick(grad.MSELoss(w.out(m)), grad.LinearLoss(w.out(m)))
    v = {n: w.normal(*p.shape, dtype=m.dtype) for n, p in m.params.items()}
    return call(getattr(grad, which), model=m, x=w.x(m), loss=loss, v=v,
                state=w.pick(None, w.state(m)), lengths=w.lengths())


@recipe(*(G + f"output_losses.{c}{m}" for c in ("MSELoss", "LinearLoss")
          for m in ("", ".value", ".grad", ".hvp")))
def _losses(w, which):
    out = w.normal(T, B, H)
    loss = w.pick(grad.MSELoss, grad.LinearLoss)(w.normal(T, B, H))
    if which in ("MSELoss", "LinearLoss"):
        return call(getattr(grad, which), **{"target" if which == "MSELoss" else "u": out})
    if which == "hvp":
        return call(loss.hvp, out=out, v=w.normal(T, B, H))
    return call(getattr(loss, which), out=out)


@recipe(G + "per_sample.per_sample_gradients")
def _per_sample(w, _):
    m = w.model()
    return call(grad.per_sample_gradients, model=m, x=w.x(m), d_out=w.out(m),
                state=w.pick(None, w.state(m)), lengths=w.lengths())


@recipe(G + "rtrl.rtrl_gradient", G + "rtrl.rtrl_online")
def _rtrl(w, which):
    m = _single(w, batch_first=(False,))
    numba = ("numba",) if m.spec.name in CELLS else ()       # a user's cell has no twin
    kw = dict(model=m, x=w.x(m), target=w.out(m), loss=w.pick("squared_error", "projection"),
              state=w.pick(None, w.state(m)), lengths=w.lengths(),
              backend=w.pick(None, "numpy", *numba))
    if which == "rtrl_online":
        kw["lr"] = 0.01
    return call(getattr(grad, which), **kw)


@recipe(G + "rtrl.RTRLOnline", G + "rtrl.RTRLOnline.step", G + "rtrl.RTRLOnline.influence",
        G + "rtrl.RTRLOnline.state")
def _rtrl_online(w, which):
    m = _single(w, cells=CELLS)
    kw = dict(model=m, lr=0.01, batch_size=B, backend=w.pick(None, "numpy"))
    if which == "RTRLOnline":
        return call(grad.RTRLOnline, **kw)
    run = grad.RTRLOnline(**kw)
    if which == "step":
        return call(run.step, x_t=w.normal(B, I, dtype=m.dtype),
                    target_t=w.normal(B, m.out_size, dtype=m.dtype),
                    valid=w.pick(None, np.array([True, False])))
    return (getter(run, "state"), {}) if which == "state" else call(run.influence)


# ---- truncation, lags, UORO, Lyapunov ------------------------------------------------------------

@recipe(G + "truncated.truncated_gradient", G + "truncated.full_gradient",
        G + "truncated.truncation_bias")
def _truncated(w, which):
    m = w.model(bidir=(False,))
    kw = dict(model=m, x=w.x(m), d_out=w.out(m), state=w.pick(None, w.state(m)))
    if which == "truncated_gradient":
        kw.update(k1=2, k2=w.pick(None, 2, 3))
    elif which == "truncation_bias":
        kw.update(lengths=[1, 2], k1=w.pick(None, 1))
    return call(getattr(grad, which), **kw)


recipe(G + "truncated.TruncationBias")(_record(grad.TruncationBias))
recipe(G + "truncated.tbptt_windows")(
    lambda w, m=None: call(grad.tbptt_windows, T=7, k1=2, k2=w.pick(None, 2, 3)))


@recipe(G + "truncated.gradient_agreement")
def _agreement(w, _):
    ref = {"a": w.normal(2, 3), "b": w.normal(3)}
    return call(grad.gradient_agreement, grads={k: v + 0.1 for k, v in ref.items()},
                reference=ref)


@recipe(G + "lags.gradient_by_lag", G + "lags.language_model_lags")
def _lags(w, which):
    if which == "language_model_lags":
        m = w.language_model()
        return call(grad.language_model_lags, model=m, tokens=w.tokens(), targets=w.tokens(),
                    max_lag=w.pick(None, 1))
    m = w.model(bidir=(False,))
    return call(grad.gradient_by_lag, model=m, x=w.x(m), d_out=w.out(m),
                state=w.pick(None, w.state(m)), max_lag=w.pick(None, 1))


def _lag_gradient(w):
    m = w.model(bidir=(False,), numba=False)
    return grad.gradient_by_lag(m, w.x(m), w.out(m))


@recipe(*(G + f"lags.LagGradient{m}" for m in ("", ".cumulative", ".lags", ".norms",
                                                ".param_norms", ".total")))
def _lag_methods(w, which):
    lg = _lag_gradient(w)
    if which == "LagGradient":
        return call(grad.LagGradient, parts=lg.parts, complete=lg.complete)
    if which == "norms":
        return call(lg.norms, names=w.pick(None, sorted(lg.param_norms())[:1]))
    return (getter(lg, which), {}) if isinstance(getattr(type(lg), which), property) \
        else call(getattr(lg, which))


@recipe(G + "uoro.uoro_gradients")
def _uoro(w, _):
    m = _single(w, numba=False)
    return call(grad.uoro_gradients, model=m, x=w.x(m), d_out=w.out(m), n_samples=2,
                state=w.pick(None, w.state(m)))


@recipe(G + "uoro.uoro_update")
def _uoro_update(w, _):
    N, S, P = 2, 3, 4
    return call(grad.uoro_update, a=w.normal(N, S), b=w.normal(N, P), p=w.normal(N, S),
                nu=np.sign(w.normal(N, S)), q=w.normal(N, P))


@recipe(*(G + f"uoro.UOROEstimates{m}" for m in (
    "", ".as_dict", ".cosines", ".hotelling", ".mean", ".n_samples", ".relative_error",
    ".relative_variance", ".rms_error", ".stderr", ".z_along_exact", ".z_scores")))
def _uoro_methods(w, which):
    m = _single(w, cells=CELLS, numba=False, dtypes=("float64",))
    est = grad.uoro_gradients(m, w.x(m), w.out(m), n_samples=3)
    if which == "UOROEstimates":
        return call(grad.UOROEstimates, layout=est.layout, estimates=est.estimates,
                    exact=est.exact, rtrl=est.rtrl)
    if which == "as_dict":
        return call(est.as_dict, vec=est.exact)
    if isinstance(getattr(type(est), which), property):
        return getter(est, which), {}
    method = getattr(est, which)
    return call(method, n=2) if "n" in method.__code__.co_varnames else call(method)


@recipe(G + "lyapunov.lyapunov_spectrum", G + "lyapunov.perturbation_growth",
        G + "lyapunov.LyapunovReadout")
def _lyapunov(w, which):
    # perturbation_growth needs float64 (its eps is below float32's resolution)
    m = w.model(bidir=(False,), dtypes=("float64",) if which == "perturbation_growth" else
                ("float64", "float32"))
    x = w.x(m, T=4)
    if which == "LyapunovReadout":
        return call(grad.LyapunovReadout, inputs=w.pick(x, w.tokens()), k=1, warmup=1)
    if which == "perturbation_growth":
        return call(grad.perturbation_growth, model=m, x=x, state=w.pick(None, w.state(m)),
                    warmup=1)
    return call(grad.lyapunov_spectrum, model=m, x=x, k=w.pick(None, 2),
                state=w.pick(None, w.state(m)), warmup=1)


# ---- gradcheck and its report --------------------------------------------------------------------

def _gradcheck_kwargs(w):
    m = w.model(dtypes=("float64",), numba=False)
    return dict(model=m, x=w.x(m, T=2), max_entries=3, mode=w.pick("rev", "fwd", "fast"))


@recipe("minirnn.grad.gradcheck.gradcheck", accept=(AssertionError,))
def _gradcheck(w, _):
    return call(minirnn.gradcheck, **_gradcheck_kwargs(w))


@recipe(*(f"minirnn.grad.gradcheck.GradcheckReport{m}" for m in (
    "", ".passed", ".failed", ".judged", ".verdict", ".table", ".to_dict", ".raise_if_failed")),
    accept=(AssertionError,))
def _report(w, which):
    rep = minirnn.gradcheck(**_gradcheck_kwargs(w))
    if which == "GradcheckReport":
        return call(grad.GradcheckReport, rows=rep.rows, eps=rep.eps, rtol=rep.rtol,
                    atol=rep.atol, seed=rep.seed, loss=rep.loss, model=rep.model)
    attr = getattr(type(rep), which)
    return (getter(rep, which), {}) if isinstance(attr, property) else call(getattr(rep, which))


# ---- the studies ---------------------------------------------------------------------------------

S = "minirnn.studies."
recipe(S + "flow.gradient_flow")(lambda w, m=None: (lambda m: call(
    studies.gradient_flow, model=m, x=w.x(m), hx=None, lengths=w.lengths(),
    loss=w.pick("last", "all"), jacobians=w.pick(True, False)))(w.model(numba=False)))
recipe(S + "seqtask.two_dependency_data")(
    lambda w, m=None: call(studies.two_dependency_data, batch=B, T=12, seed=0))
recipe(S + "seqtask.dependency_floors")(lambda w, m=None: call(studies.dependency_floors))
recipe(S + "seqtask.monte_carlo_floors")(
    lambda w, m=None: call(studies.monte_carlo_floors, n=50, seed=0))
recipe(S + "seqtask.memory_probe")(
    lambda w, m=None: call(studies.memory_probe, batch=4, steps=20, model=minirnn.LanguageModel(
        2, 2, H, cell="gru", num_layers=1, seed=0)))
recipe(S + "seqtask.train_two_dependency")(
    lambda w, m=None: call(studies.train_two_dependency, k2=3, hidden=2, steps=12, batch=2,
                           stretch=6, eval_batch=4, eval_steps=12))
recipe(S + "precision.float32_error_growth")(
    lambda w, m=None: call(studies.float32_error_growth, cell=w.pick(*CELLS), steps=(1, 3),
                           backends=("numpy",), hidden=2, input_size=2, batch=2))


# ---- training ------------------------------------------------------------------------------------

O = "minirnn.train.optim."


@recipe(O + "SGD", O + "Adam", O + "SGD.step", O + "Adam.step", O + "Optimizer.load_state_dict",
        O + "Optimizer.state_dict", O + "Optimizer.zero_grad", O + "clip_grad_norm")
def _optim(w, which):
    m = w.pick(lambda: w.model(), lambda: w.classifier())()
    if which == "clip_grad_norm":
        return call(minirnn.clip_grad_norm, module=m, max_norm=1.0)
    if which in ("SGD", "Adam"):
        return call(getattr(minirnn, which), module=m, lr=0.1)
    opt = w.pick(minirnn.SGD(m, lr=0.1, momentum=0.9), minirnn.Adam(m))
    opt.step()
    if which == "load_state_dict":
        return call(opt.load_state_dict, sd=opt.state_dict())
    return call(getattr(opt, which))


def _checkpoint_path(w):
    return os.path.join(w.tmp, "model.npz")


@recipe("minirnn.train.checkpoint.save_checkpoint", "minirnn.train.checkpoint.load_checkpoint",
        "minirnn.train.checkpoint.load_model_state", "minirnn.train.checkpoint.CheckpointError",
        accept=FILES)
def _checkpoint(w, which):
    m = w.classifier()
    path = _checkpoint_path(w)
    if which == "save_checkpoint":
        return call(minirnn.save_checkpoint, path=path, model=m, optimizer=minirnn.Adam(m),
                    config={"a": 1}, vocab=["a", "b"], labels=["x", "y"], step=1)
    if which == "CheckpointError":
        return call(lambda message: minirnn.CheckpointError(message), message="no such entry")
    minirnn.save_checkpoint(path, m)
    if which == "load_checkpoint":
        return call(minirnn.load_checkpoint, path=path)
    return call(minirnn.load_model_state, model=m, ckpt=minirnn.load_checkpoint(path))


E = "minirnn.train.engine.Engine"


@recipe(E, *(f"{E}.{m}" for m in ("add_hook", "load", "predict", "predict_lm", "save", "step",
                                   "step_lm", "step_truncated", "sync", "trainer")),
        accept=FILES)
def _engine(w, which):
    lm = which in ("predict_lm", "step_lm", "step_truncated") or \
        (which not in ("predict", "step") and w.pick(True, False))
    m = w.language_model() if lm else w.classifier()
    kw = dict(backend="numpy", optimizer=w.pick("adam", "sgd"), lr=0.01)
    if which == "Engine":
        return call(minirnn.Engine, model=m, **kw)
    eng = minirnn.Engine(m, **kw)
    tokens, path = w.tokens(), _checkpoint_path(w)
    targets = w.tokens() if lm else np.array([0, 1])
    if which == "load":
        eng.save(path)
        return call(minirnn.Engine.load, path=path, backend="numpy")
    return {"add_hook": lambda: call(eng.add_hook, fn=lambda engine: None, every=2),
            "predict": lambda: call(eng.predict, inputs=tokens, lengths=w.lengths()),
            "predict_lm": lambda: call(eng.predict_lm, inputs=tokens, state=None),
            "save": lambda: call(eng.save, path=path, config={"a": 1}, step=1),
            "step": lambda: call(eng.step, inputs=tokens, targets=targets, lengths=w.lengths()),
            "step_lm": lambda: call(eng.step_lm, inputs=tokens, targets=targets),
            "step_truncated": lambda: call(eng.step_truncated, inputs=tokens, targets=targets,
                                           k1=2, k2=w.pick(None, 2)),
            "sync": lambda: call(eng.sync),
            "trainer": lambda: (getter(eng, "trainer"), {})}[which]()


# ---- the debugger --------------------------------------------------------------------------------

D = "minirnn.debug.tracing."


@recipe(D + "trace", *(f"{D}Trace.{m}" for m in (
    "first_nonfinite", "series", "step", "to_frame", "variables")),
    accept=(ImportError,))              # to_frame(pandas=True) without pandas installed
def _trace(w, which):
    m = w.model(numba=False)
    kw = dict(model=m, x=w.x(m), lengths=w.lengths())
    if which == "trace":
        return call(minirnn.trace, d_out=w.pick(None, w.out(m)), **kw)
    tr = minirnn.trace(**kw)
    return {"first_nonfinite": lambda: call(tr.first_nonfinite),
            "series": lambda: call(tr.series, name="h", layer=0, direction=0),
            "step": lambda: call(tr.step, t=1, layer=0, direction=0),
            "to_frame": lambda: call(tr.to_frame),
            "variables": lambda: call(tr.variables, phase=w.pick("forward", "backward"))}[which]()


@recipe("minirnn.debug.explore.explore", accept=FILES)
def _explore(w, _):
    m = w.model(layers=(1,), numba=False, batch_first=(False,))
    return call(minirnn.explore, model=m, x=w.normal(T, I, dtype=m.dtype),
                path=os.path.join(w.tmp, "page.html"), connect=w.pick(True, False))
