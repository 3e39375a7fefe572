"""The crash sites of the fuzz round that first covered the online-learning tools, the thread
count and the notebook views, each as a call that must now be refused with a ValueError or
TypeError naming the argument (tests/test_fuzz_regressions.py has the earlier rounds')."""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn import studies
from minirnn.debug import notebook
from minirnn.grad import online
from minirnn.studies import online as study
from minirnn.studies.online_tasks import two_dependency_stream

from tests.test_fuzz_regressions import case, refused


def _trace():
    return minirnn.trace(minirnn.GRU(3, 4, seed=0), np.ones((3, 2, 3)))


def _run():
    return study.train_online(two_dependency_stream(2, 12, seed=0), "gru", "snap-1", hidden=2)


def _page():
    return notebook.explorer(minirnn.GRU(3, 4, seed=0), np.ones((3, 3)))


ROUND_FIVE = [
    # the notebook views
    case(lambda: notebook.trace_view(_trace(), tokens=0), TypeError,
         r"tokens: expected None or a list", "trace-view-tokens-int"),
    case(lambda: notebook.step_view(_trace(), 1, tokens=0), TypeError,
         r"tokens: expected None or a list", "step-view-tokens-int"),
    case(lambda: notebook.step_figure(_trace(), 1, tokens=["a"]), ValueError,
         r"tokens: expected 3 tokens .*got 1", "step-figure-tokens-short"),
    case(lambda: notebook.ExplorerPage(None, 400), TypeError,
         r"page: expected the page's HTML \(a str\), got NoneType", "explorer-page-none"),
    case(lambda: _page().save(None), TypeError,
         r"path: expected a file path .*got NoneType None", "explorer-page-save-none"),
    # the online study's run and its views
    case(lambda: _run().binned(0), ValueError, r"bins: expected an int >= 1, got 0",
         "online-run-binned-zero"),
    case(lambda: _run().final_loss(float("nan")), ValueError,
         r"fraction: expected a finite number in \(0, 1\].*got nan", "online-run-fraction-nan"),
    case(lambda: study.train_online(tuple(two_dependency_stream(2, 12))[:-1], "gru", "rtrl"),
         TypeError, r"stream: expected a Stream .*got tuple", "train-online-stream-tuple"),
    case(lambda: _train(seed=None), TypeError, r"seed: expected an int", "train-online-seed"),
    case(lambda: _train(shadow="no"), TypeError, r"shadow: expected True or False",
         "train-online-shadow-str"),
    case(lambda: _train(watch={"a": "snap-1"}), TypeError, r"watch: expected None or "
         r"\{label: \(method, options\)\}, got dict", "train-online-watch"),
    case(lambda: _train(progress=1), TypeError, r"progress: expected None or a function",
         "train-online-progress"),
    case(lambda: _train(mask=np.ones(3, dtype=bool)), ValueError, r"mask: expected shape",
         "train-online-mask-shape"),
    case(lambda: _train(options=1), TypeError, r"options: expected None or a dict",
         "train-online-options-int"),
]


def _train(**kw):
    return study.train_online(two_dependency_stream(2, 12, seed=0), "gru", "rtrl", hidden=2,
                              **kw)


@pytest.mark.parametrize("fn, exc, match", ROUND_FIVE)
def test_round_five_refuses_bad_arguments_by_name(fn, exc, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(fn, exc, match)


def _gru_with_backward(cell="gru"):
    m = minirnn.nn.make_recurrent(cell, 3, 4, seed=0)
    return m, minirnn.trace(m, np.ones((3, 2, 3)), d_out=np.ones((3, 2, 4)))


# the long run of this round (30,099 calls) and a run of the online tools alone (2,400 calls)
LONG_RUN = [
    case(lambda: online.OnlineTrainer(minirnn.GRU(3, 4), 0.1, backend=np.zeros(2)),
         ValueError, r"backend: expected None or 'numpy'", "online-trainer-backend-array"),
    case(lambda: online.OnlineTrainer(minirnn.GRU(3, 4), 0.1, batch_size=10**30), ValueError,
         r"batch_size: .*would need", "online-trainer-batch-huge"),
    case(lambda: _run().binned("3"), TypeError, r"bins: expected an int", "binned-str"),
    case(lambda: _run().final_loss(-np.inf), ValueError, r"fraction: expected a finite",
         "final-loss-inf"),
    case(lambda: notebook.step_figure(1, 0), TypeError, r"trace: expected a Trace",
         "step-figure-trace-int"),
    case(lambda: notebook.trace_view(1), TypeError, r"trace: expected a Trace",
         "trace-view-trace-int"),
    case(lambda: notebook.trace_view(_trace(), tokens="a"), TypeError,
         r"tokens: expected None or a list", "trace-view-tokens-str"),
    case(lambda: notebook.trace_view(_trace(), batch=2**40), ValueError,
         r"batch: expected an int, 0 <= batch < 2", "trace-view-batch-huge"),
    case(lambda: notebook.explorer(minirnn.GRU(3, 4), "x"), ValueError,
         r"x: expected an array of real numbers", "explorer-x-str"),
    case(lambda: _page().save(b"page.html"), TypeError, r"path: expected a file path",
         "explorer-page-save-bytes"),
]


@pytest.mark.parametrize("fn, exc, match", LONG_RUN)
def test_the_long_runs_sites_refuse_bad_arguments_by_name(fn, exc, match, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(fn, exc, match)


def test_more_bins_than_steps_are_the_steps_themselves():
    """A bins beyond the steps gives one bin per step (the empty ones were always dropped),
    without allocating the empty ones first (2**62 of them was a MemoryError)."""
    run = _run()
    assert run.binned(2**62) == run.binned(len(run.steps)) == run.binned(10**30)


def test_trace_view_of_a_cell_without_gate_gradients():
    """The heatmap draws the backward variables the trace has: a registered cell whose step
    keeps no gate gradients has no 'da' (the baseline crashed with UnknownKey)."""
    from tests.helpers.fuzz.world import FuzzCell
    from minirnn.cells import register_cell
    from minirnn.cells.registry import CELLS
    name = register_cell(FuzzCell()).name
    try:
        _, tr = _gru_with_backward(name)
        assert "<img" in notebook.trace_view(tr).html
    finally:
        CELLS.pop(name, None)


def test_gradient_flow_of_a_nonfinite_input_answers_nan():
    """A Jacobian with a non-finite entry has no singular values: NaN there, as memory_probe
    answers for a diverged model (numpy's SVD raised LinAlgError)."""
    x = np.ones((3, 2, 3))
    x[1, 0, 0] = np.nan
    flow = studies.gradient_flow(minirnn.GRU(3, 4, seed=0), x, jacobians=True)
    sigma = flow.jac_sigma[0]
    assert np.isnan(sigma[1, 0]) and np.isfinite(sigma[:, 1]).all()     # batch 1 is clean
