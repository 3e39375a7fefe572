"""Baselines of the online-learning tools (minirnn.grad.online, minirnn.studies.online), the
thread count (minirnn.set_num_threads) and the notebook views (minirnn.debug.notebook)."""
from __future__ import annotations

import os

import numpy as np

import minirnn
from minirnn import _blas, _config
from minirnn.debug import notebook
from minirnn.grad import online
from minirnn.studies import online as study
from minirnn.studies.online_tasks import two_dependency_stream

from tests.helpers.fuzz.recipes_tools import FILES, _single
from tests.helpers.fuzz.world import B, CELLS, I, T, args_of, call, getter, recipe

G = "minirnn.grad.online."
S = "minirnn.studies.online."


# ---- the thread count ----------------------------------------------------------------------------

def _keep_threads(w):
    """The count is process-wide: put back what was set before the call."""
    before = _blas.explicit()

    def undo():
        _blas.set_explicit(*before)
        _config.ask_threads(before[0])
    w.cleanups.append(undo)


@recipe("minirnn._blas.set_num_threads")
def _set_threads(w, _):
    _keep_threads(w)
    m = w.model(layers=(1,), bidir=(False,))
    x = w.x(m)

    # A count the call accepted must also work in the next layer call, which hands it to
    # BLAS (and Numba): a value refused only there would be a crash far from its cause.
    def set_then_compute(n):
        minirnn.set_num_threads(n)
        m(x)
    return call(set_then_compute, n=w.pick(None, 1, 2))


@recipe("minirnn._blas.get_num_threads")
def _get_threads(w, _):
    return call(minirnn.get_num_threads)


# ---- online gradients ----------------------------------------------------------------------------

def _options(w, m, method):
    """The keyword options `method` takes (online_gradient's **options), drawn."""
    opts = {}
    if w.pick(False, True):
        mask = online.recurrent_mask(m, 0.5, seed=0)
        m.params["weight_hh_l0"][~mask] = 0.0        # masked-out weights must be 0
        opts["mask"] = mask
    if method in ("uoro", "kf-rtrl"):
        opts.update(seed=1, eps=1e-7)
    if method == "rflo" and w.pick(False, True):
        opts["decay"] = 0.5
    return opts


def _online_model(w):
    # e-prop and RFLO refuse the user's cell by name (the check is the point), so it is drawn
    return _single(w, numba=False)


@recipe(G + "online_gradient")
def _online_gradient(w, _):
    m = _online_model(w)
    method = w.pick(*online.METHODS)
    fn, kw = call(online.online_gradient, model=m, x=w.x(m), target=w.out(m), method=method,
                  loss=w.pick("squared_error", "projection"), state=w.pick(None, w.state(m)),
                  lengths=w.lengths(), backend=w.pick(None, "numpy"))
    return fn, {**kw, **_options(w, m, method)}


@recipe(G + "OnlineTrainer", G + "OnlineTrainer.step", G + "OnlineTrainer.state")
def _online_trainer(w, which):
    m = _online_model(w)
    method = w.pick(*online.METHODS)
    kw = {**args_of(online.OnlineTrainer, dict(model=m, lr=0.01, method=method,
                                                 batch_size=B, backend=w.pick(None, "numpy"))),
          **_options(w, m, method)}
    if which == "OnlineTrainer":
        return online.OnlineTrainer, kw
    trainer = online.OnlineTrainer(**kw)
    if which == "state":
        return getter(trainer, "state"), {}
    return call(trainer.step, x_t=w.normal(B, I, dtype=m.dtype),
                target_t=w.normal(B, m.out_size, dtype=m.dtype),
                valid=w.pick(None, np.array([True, False])))


@recipe(G + "recurrent_mask")
def _mask(w, _):
    m = _online_model(w)
    return call(online.recurrent_mask, model=m, sparsity=w.pick(0.0, 0.5), seed=0)


@recipe(G + "OnlineResult")
def _result(w, _):
    res = online.online_gradient(*(lambda m: (m, w.x(m), w.out(m)))(_online_model(w)))
    return call(online.OnlineResult, **res._asdict())


# ---- the online study ----------------------------------------------------------------------------

def _stream():
    return two_dependency_stream(2, 12, seed=0)


@recipe(S + "train_online")
def _train_online(w, _):
    method = w.pick("rtrl", "snap-1", "uoro", "e-prop")
    steps = []
    return call(study.train_online, stream=_stream(), cell=w.pick(*CELLS), method=method,
                hidden=2, lr=0.01, seed=0, shadow=w.pick(True, False),
                options={"seed": 1} if method == "uoro" else None,
                watch=w.pick(None, {"snap-1": ("snap-1", None)}), progress=steps.append)


@recipe(S + "OnlineRun", S + "OnlineRun.final_loss", S + "OnlineRun.alignment",
        S + "OnlineRun.binned")
def _online_run(w, which):
    run = study.train_online(_stream(), w.pick(*CELLS), w.pick("rtrl", "snap-1"), hidden=2,
                             shadow=w.pick(True, False))
    if which == "OnlineRun":
        return call(study.OnlineRun, **run._asdict())
    if which == "final_loss":
        return call(run.final_loss, fraction=w.pick(0.25, 1.0))
    if which == "binned":
        return call(run.binned, bins=w.pick(1, 3, 10))
    return call(run.alignment)


# ---- the notebook views --------------------------------------------------------------------------

N = "minirnn.debug."


def _trace(w):
    m = w.model(numba=False)
    return minirnn.trace(m, w.x(m), d_out=w.pick(None, w.out(m)))


@recipe(N + "pictures.trace_view", N + "pictures.step_view", N + "pictures.step_figure",
        accept=(ImportError,))          # without matplotlib: the extra it needs, named
def _pictures(w, which):
    tr = _trace(w)
    kw = dict(trace=tr, tokens=w.pick(None, list("abc")), layer=0, direction=0, batch=1)
    if which != "trace_view":
        kw["t"] = w.pick(0, T - 1)
    return call(getattr(notebook, which), **kw)


@recipe(N + "pictures.HTML")
def _html(w, _):
    return call(notebook.HTML, text="<p>minirnn</p>")


@recipe(N + "notebook.explorer", N + "notebook.ExplorerPage", N + "notebook.ExplorerPage.save",
        accept=FILES)
def _explorer(w, which):
    m = w.model(layers=(1,), numba=False, batch_first=(False,))
    x = w.normal(T, I, dtype=m.dtype)
    if which == "explorer":
        return call(notebook.explorer, model=m, x=x, height=w.pick(100, 760))
    page = notebook.explorer(m, x)
    if which == "ExplorerPage":
        return call(notebook.ExplorerPage, page=page.page, height=400, trace=page.trace)
    return call(page.save, path=os.path.join(w.tmp, "page.html"), overwrite=w.pick(False, True))
