"""The crash sites of the fuzz round that first covered the online-learning tools, the thread
count and the notebook views, each as a call that must now be refused with a ValueError or
TypeError naming the argument (tests/test_fuzz_regressions.py has the earlier rounds')."""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn.debug import notebook
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
