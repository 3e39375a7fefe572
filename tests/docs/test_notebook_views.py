"""minirnn.debug.notebook and minirnn.debug.pictures: what a notebook shows is the explorer page
itself and the trace's own numbers; each optional argument present and absent, bad ones refused
by name."""
from __future__ import annotations

import html
import re

import numpy as np
import pytest

import minirnn
from minirnn.debug import notebook as nbv
from minirnn.debug import pictures
from minirnn.debug.explore import read_page

matplotlib = pytest.importorskip("matplotlib", reason="the pictures need matplotlib (plot extra)")


@pytest.fixture(scope="module")
def lstm_case():
    """A 2-layer bidirectional LSTM, two sequences of ragged length, traced with a backward."""
    rng = np.random.default_rng(7)
    model = minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=3)
    x = rng.standard_normal((5, 2, 3))
    d_out = rng.standard_normal((5, 2, 8))
    return model, x, minirnn.trace(model, x, lengths=[5, 3], d_out=d_out)


def _srcdoc(fragment):
    m = re.fullmatch(r'<iframe srcdoc="(.*?)" style="width: 100%; height: (\d+)px;.*</iframe>',
                     fragment, re.S)
    assert m, fragment[:200]
    return html.unescape(m.group(1)), int(m.group(2))


def test_explorer_inline_is_the_page_explore_writes(tmp_path):
    rng = np.random.default_rng(0)
    model = minirnn.GRU(3, 5, seed=1)
    x = rng.standard_normal((6, 3))
    tokens = list("abcdef")
    page = nbv.explorer(model, x, tokens=tokens)                 # height absent: 760
    path = minirnn.explore(model, x, tmp_path / "p.html", tokens=tokens)
    inline, height = _srcdoc(page._repr_html_())
    assert inline == page.page == (tmp_path / "p.html").read_text(encoding="utf-8")
    assert height == 760 and read_page(path)["meta"]["tokens"] == tokens
    # the trace it hands over is the model's own forward, step by step
    own = minirnn.trace(model, x)
    for name in ("r", "z", "n", "h"):
        np.testing.assert_array_equal(page.trace.series(name), own.series(name))
    taller = nbv.explorer(model, x, height=400, tokens=tokens, connect=False)
    assert _srcdoc(taller.html)[1] == 400 and 'sandbox="allow-scripts"' in taller.html


@pytest.mark.parametrize("height", [99, 2.5, True, "700"])
def test_explorer_refuses_a_bad_height(height):
    with pytest.raises(ValueError, match=r"^height: expected an integer .* got"):
        nbv.explorer(minirnn.RNN(2, 3), np.zeros((4, 2)), height=height)


def test_explorer_refuses_an_unknown_option():
    with pytest.raises(TypeError, match="colour"):
        nbv.explorer(minirnn.RNN(2, 3), np.zeros((4, 2)), colour="red")


def test_explorer_page_saves_once_unless_told(tmp_path):
    page = nbv.explorer(minirnn.RNN(2, 3, seed=0), np.ones((4, 2)), connect=False)
    path = tmp_path / "e.html"
    assert page.save(path) == path and path.read_text(encoding="utf-8") == page.page
    with pytest.raises(ValueError, match=r"^path: .*e\.html already exists"):
        page.save(path)
    path.write_text("old")
    page.save(path, overwrite=True)
    assert path.read_text(encoding="utf-8") == page.page


def _png_count(fragment):
    return fragment.count('<img src="data:image/png;base64,')


def test_trace_view_draws_the_series_of_the_chosen_layer_direction_and_batch(lstm_case,
                                                                           monkeypatch):
    _, _, tr = lstm_case
    drawn = {}
    real = pictures.heatmap_figure

    def spy(trace, tokens, layer, direction, batch):
        fig = real(trace, tokens, layer, direction, batch)
        drawn.update({ax.get_ylabel(): ax.images[0].get_array() for ax in fig.axes
                      if ax.images})
        return fig

    monkeypatch.setattr(pictures, "heatmap_figure", spy)
    view = nbv.trace_view(tr, tokens=list("abcde"), layer=1, direction=1, batch=1)
    assert _png_count(view.html) == 1 and "2 layer(s), 2 direction(s)" in view.html
    assert set(drawn) == {"i", "f", "g", "o", "c", "h", "dh", "dc"}
    for name, image in drawn.items():                             # (units, T), batch 1
        np.testing.assert_array_equal(image.filled(np.nan),
                                      tr.series(name, 1, 1)[:, 1, :].T)
    assert _png_count(nbv.trace_view(tr).html) == 1               # every argument absent
    with pytest.raises(ValueError, match="^layer: expected 0 <= layer < 2, got 2"):
        nbv.trace_view(tr, layer=2)


def test_a_trace_shows_itself_as_its_picture(lstm_case):
    _, _, tr = lstm_case
    shown = tr._repr_html_()
    assert _png_count(shown) == 1 and "forward and backward" in shown


def test_a_trace_without_matplotlib_says_what_to_install(lstm_case, monkeypatch):
    from minirnn._io import MissingExtra

    def missing(*args, **kwargs):
        raise MissingExtra("the heatmap (--heatmap) needs matplotlib, which is not installed: "
                           "pip install 'minirnn[plot]'")

    monkeypatch.setattr(pictures, "heatmap_figure", missing)
    shown = lstm_case[2]._repr_html_()
    assert "minirnn[plot]" in shown and _png_count(shown) == 0


def test_step_figure_bars_are_the_steps_values(lstm_case):
    _, _, tr = lstm_case
    fig = nbv.step_figure(tr, 2, tokens=list("abcde"), layer=1, direction=1, batch=0)
    rec = tr.step(2, 1, 1)
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"i", "f", "g", "o", "c", "h", "dh", "dc", "di"}
    for name, ax in panels.items():
        heights = np.array([p.get_height() for p in ax.patches])
        np.testing.assert_array_equal(heights, getattr(rec, name)[0])
    assert panels["f"].get_ylim() == (0.0, 1.05)                  # a sigmoid gate: [0, 1]
    assert "t = 2, token 'c'" in fig.get_suptitle()
    bare = nbv.step_figure(tr, 0)                                 # every option absent
    assert bare.get_suptitle() == "t = 0 (layer 0, direction 0, batch 0)"
    assert _png_count(nbv.step_view(tr, 4, batch=1).html) == 1


@pytest.mark.parametrize("kwargs, match", [({"t": 5}, "^t: expected 0 <= t < 5, got 5"),
                                           ({"t": 0, "batch": 2}, "^batch: expected"),
                                           ({"t": 0, "direction": 2}, "^direction: expected")])
def test_step_figure_refuses_a_step_that_is_not_there(lstm_case, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nbv.step_figure(lstm_case[2], **kwargs)


def test_a_forward_only_trace_draws_no_gradient_panel():
    tr = minirnn.trace(minirnn.RNN(2, 3, seed=0), np.ones((3, 1, 2)))
    fig = nbv.step_figure(tr, 1)
    assert [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()] == ["a", "h"]
