"""The explorer page in a real browser: headless Chromium driven by Selenium.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them when apt-get is there);
without them every test here SKIPS, with the reason in pytest's summary (-ra).

The displayed numbers are read from the page's data-value attributes (JavaScript's shortest
string of the float32 value) and compared EXACTLY with np.float32 of the trace's numbers.

The docs' screenshot (docs/debugger.md): MINIRNN_EXPLORE_SCREENSHOT=docs/explore.png python -m pytest
tests/test_explore_browser.py -k screenshot   (also copies the checked PNG there).
"""
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

f32 = np.float32


def _which(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _which("chromium", "chromium-browser", "google-chrome")
DRIVER = _which("chromedriver")
try:
    import selenium  # noqa: F401
    SELENIUM = True
except ImportError:
    SELENIUM = False
MISSING = [what for what, ok in (("chromium (apt-get install chromium)", CHROMIUM),
                                 ("chromedriver (apt-get install chromium-driver)", DRIVER),
                                 ("selenium (pip install -e '.[test]')", SELENIUM)) if not ok]
pytestmark = pytest.mark.skipif(bool(MISSING), reason="browser tests need " + ", ".join(MISSING))


@pytest.fixture(scope="module")
def driver(chromium_driver):
    return chromium_driver(1400, 1150)             # conftest.py: headless Chromium


@pytest.fixture(scope="module")
def char_page(tmp_path_factory):
    """The `--example char` model (trained as the CLI does) over the CLI's default text."""
    from minirnn.cli.explore import CHAR_TEXT, _tokens, char_example
    from minirnn.debug.explore import build, page_html
    from minirnn.debug.explore_data import unpack
    from minirnn.tutorials.data import load_shakespeare
    model, itos = char_example(150, seed=0)
    toks, ids, level = _tokens("char", load_shakespeare()[:CHAR_TEXT], itos)
    payload, tr = build(model, np.array(ids), tokens=toks, vocab=itos, token_level=level)
    path = tmp_path_factory.mktemp("explore") / "char.html"
    path.write_text(page_html(payload), encoding="utf-8")
    return path, tr, unpack(payload)


def open_page(d, path, timeout=30):
    t0 = time.perf_counter()
    d.get(path.as_uri())
    while not d.execute_script("return !!(window.explorer && window.explorer.ready)"):
        assert time.perf_counter() - t0 < timeout, "the page never became ready"
        time.sleep(0.05)
    assert_no_console_errors(d)
    return time.perf_counter() - t0


def assert_no_console_errors(d):
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def by_id(d, i):
    from selenium.webdriver.common.by import By
    return d.find_element(By.ID, i)


def shown(d, name):
    """The picked unit's value of `name` as displayed: (exact data-value, the text)."""
    el = by_id(d, f"val-{name}")
    return float(el.get_attribute("data-value")), el.text


def expect_step(d, tr, t, unit, names=("i", "f", "g", "o", "c", "h"), layer=0):
    assert by_id(d, "step-label").get_attribute("data-t") == str(t)
    assert by_id(d, "slider").get_attribute("value") == str(t)
    cursor = d.execute_script("return [...document.querySelectorAll('#text .tok.cursor')].map(e => +e.dataset.t)")
    assert cursor == [t]
    for name in names:
        value, text = shown(d, name)
        assert value == float(f32(tr.series(name, layer, 0)[t, 0, unit])), (name, t)
        assert float(text) == pytest.approx(value, rel=1e-5)


def keys(d, *ks):
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(d).send_keys(*ks).perform()


def test_slider_and_keys_move_the_cursor_to_the_traces_numbers(driver, char_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    path, tr, _ = char_page
    open_page(driver, path)
    expect_step(driver, tr, 0, 0)
    slider = by_id(driver, "slider")
    ActionChains(driver).move_to_element_with_offset(slider, slider.size["width"] // 4, 0).click().perform()
    t = int(by_id(driver, "step-label").get_attribute("data-t"))
    assert 0.6 * tr.T < t < 0.9 * tr.T                   # three quarters along the slider
    expect_step(driver, tr, t, 0)
    keys(driver, Keys.ARROW_RIGHT)                       # focus on the slider: still ONE step
    expect_step(driver, tr, t + 1, 0)
    keys(driver, Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    expect_step(driver, tr, t - 1, 0)
    keys(driver, Keys.END)
    expect_step(driver, tr, tr.T - 1, 0)
    keys(driver, Keys.HOME)
    expect_step(driver, tr, 0, 0)
    assert f"/ {tr.T - 1}" in by_id(driver, "step-label").text
    assert_no_console_errors(driver)


def test_backward_mode_plays_back_through_time_showing_the_gradients(driver, char_page):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    path, tr, _ = char_page
    open_page(driver, path)
    Select(by_id(driver, "mode")).select_by_value("backward")
    by_id(driver, "title").click()                       # the menu would keep the keys
    keys(driver, Keys.END)
    assert "dim" not in by_id(driver, "group-bwd").get_attribute("class")
    assert "dim" in by_id(driver, "group-fwd").get_attribute("class")
    by_id(driver, "play").click()
    time.sleep(1.0)                                      # 8 steps a second
    by_id(driver, "play").click()
    t = int(by_id(driver, "step-label").get_attribute("data-t"))
    assert t < tr.T - 1                                   # it went back in time
    expect_step(driver, tr, t, 0, names=("dh", "dc", "di", "df", "dg", "do", "h"))
    for layer in range(tr.num_layers):
        for name in ("dh", "dc"):
            g = float(by_id(driver, f"gnorm-{layer}-{name}").get_attribute("data-value"))
            assert g == float(f32(np.linalg.norm(tr.series(name, layer, 0)[t, 0])))
    assert_no_console_errors(driver)


def test_picking_a_unit_recolours_the_text_with_its_activation(driver, char_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select
    path, tr, _ = char_page
    open_page(driver, path)
    h = tr.series("h", 0, 0)[:, 0]                        # (T, H)
    canvas = by_id(driver, "row-h").find_element("tag name", "canvas")
    j = 37
    w = canvas.size["width"] / h.shape[1]
    ActionChains(driver).move_to_element_with_offset(canvas, int((j + 0.5) * w - canvas.size["width"] / 2), 0).click().perform()
    assert by_id(driver, "unit").get_attribute("value") == str(j)
    values = driver.execute_script("return [...document.querySelectorAll('#text .tok')].map(e => +e.dataset.value)")
    assert values == [float(v) for v in h[:, j].astype(f32)]
    expect_step(driver, tr, 0, j)
    Select(by_id(driver, "layer")).select_by_value("1")
    expect_step(driver, tr, 0, j, layer=1)
    by_id(driver, "rank").click()                         # the most varying unit of layer 1's h
    a = tr.series("h", 1, 0)[:, 0].astype(f32).astype(np.float64)
    sd = np.sqrt(np.maximum(0, (a * a).mean(0) - a.mean(0) ** 2))
    assert by_id(driver, "unit").get_attribute("value") == str(int(np.argmax(sd)))
    assert_no_console_errors(driver)


def test_connectivity_strip_is_the_cursors_row(driver, char_page):
    from selenium.webdriver.common.keys import Keys
    path, tr, arrays = char_page
    open_page(driver, path)
    keys(driver, Keys.END)
    for _ in range(5):
        keys(driver, Keys.ARROW_LEFT)
    t = tr.T - 6
    strip = driver.execute_script("return [...document.querySelectorAll('#connect .tok')].map(e => +e.dataset.value)")
    assert strip == [float(v) for v in arrays["connect"][t]]
    future = driver.execute_script("return [...document.querySelectorAll('#connect .tok.future')].map(e => +e.dataset.t)")
    assert future == list(range(t + 1, tr.T))
    assert "how" in by_id(driver, "connect-help").text or "darker" in by_id(driver, "connect-help").text


def test_screenshot_is_not_blank(driver, char_page, tmp_path):
    import matplotlib.image as mpimg
    path, tr, _ = char_page
    driver.set_window_size(1400, 1500)                    # the whole page, for the docs
    try:
        open_page(driver, path)
        driver.execute_script("explorer.go(113); explorer.rank();")
        shot = tmp_path / "explore.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.set_window_size(1400, 1150)
    img = mpimg.imread(shot)[..., :3]                     # (H, W, 3) in [0, 1]
    colours = np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert img.shape[0] > 500 and img.std() > 0.05 and len(colours) > 200
    target = os.environ.get("MINIRNN_EXPLORE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_cli_pages_work_for_every_source(driver, tmp_path):
    """`--checkpoint` names classifier ("Nguyen"), `--example hihell` and a random bidirectional
    GRU: each opens without console errors and the keys move its cursor."""
    from selenium.webdriver.common.keys import Keys

    from minirnn.cli import main
    from minirnn.train.engine import Engine
    from minirnn.tutorials.data import ALPHABET, categories
    from minirnn.tutorials.names import build_classifier
    cats = categories()                                   # a names checkpoint as the tutorial's
    model = build_classifier({"num_classes": len(cats), "hidden_size": 8, "cell": "lstm"})
    Engine(model, backend="numpy").save(tmp_path / "model.npz", config={"task": "names"},
                                        vocab=list(ALPHABET), labels=cats)
    runs = {"names": ["--checkpoint", str(tmp_path / "model.npz"), "--text", "Nguyen"],
            "hihell": ["--example", "hihell"],
            "gru": ["--cell", "gru", "--layers", "2", "--bidirectional", "--T", "9"]}
    for name, args in runs.items():
        out = tmp_path / f"{name}.html"
        assert main(["explore", *args, "-o", str(out)]) == 0
        open_page(driver, out)
        by_id(driver, "title").click()
        keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        assert by_id(driver, "step-label").get_attribute("data-t") == "2", name
        if name == "names":
            assert "Final prediction" in by_id(driver, "final").text
        assert_no_console_errors(driver)
    import minirnn                                        # a diverged model: NaN / Inf shown
    model = minirnn.LSTM(3, 5, num_layers=2, proj_size=2, seed=9)
    for p in model.params.values():
        p *= 1e200
    x = np.random.default_rng(9).normal(size=(6, 3))
    open_page(driver, Path(minirnn.explore(model, x, tmp_path / "nan.html")))
    assert "non-finite" in by_id(driver, "alert").text


def test_a_two_layer_lstm128_over_300_characters_scrubs_smoothly(driver, tmp_path):
    import minirnn
    from minirnn.nn.models import LanguageModel
    from minirnn.tutorials.data import char_vocab, load_shakespeare
    text = load_shakespeare()[:300]
    stoi, itos = char_vocab(text)
    model = LanguageModel(len(itos), 32, 128, num_layers=2, seed=0)
    path = minirnn.explore(model, np.array([stoi[c] for c in text]), tmp_path / "big.html", vocab=itos)
    assert os.path.getsize(path) <= 5_000_000
    load_s = open_page(driver, Path(path))
    ms = driver.execute_script("const t0 = performance.now(); for (let i = 0; i < 100; i++) explorer.go((i * 7) % 300);"
                               "return (performance.now() - t0) / 100;")
    print(f"2-layer LSTM(128), 300 chars: {os.path.getsize(path) / 1e6:.2f} MB, ready in "
          f"{load_s:.2f} s, {ms:.1f} ms per step")
    assert load_s < 15 and ms < 50                        # a step well under a frame budget of 60 ms


WINDOWS = ((1400, 900), (1000, 800), (600, 900))


def _decade_range(arrays, names):
    """log10 of the smallest and largest positive finite value among the arrays."""
    v = np.concatenate([arrays[n].ravel() for n in names]).astype(np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return np.log10(v.min()), np.log10(v.max())


@pytest.fixture(scope="module")
def step_page(tmp_path_factory):
    """A random 2-layer GRU over 120 steps: no tokens, so the strip labels step numbers, and
    its gradient norms span less than one decade."""
    import minirnn
    model = minirnn.GRU(4, 16, num_layers=2, seed=0)
    x = np.random.default_rng(0).normal(size=(120, 4))
    path = Path(minirnn.explore(model, x, tmp_path_factory.mktemp("steps") / "gru.html"))
    from minirnn.debug.explore import read_page
    return path, read_page(path)["arrays"]


def test_the_gradient_chart_has_readable_log_ticks_and_t_ticks(driver, char_page, step_page):
    import re
    pages = [(char_page[0], char_page[2], [f"norm:{k}:{n}" for k in (0, 1) for n in ("dh", "dc")]),
             (step_page[0], step_page[1], ["norm:0:dh", "norm:1:dh"])]
    try:
        for path, arrays, names in pages:
            lo, hi = _decade_range(arrays, names)
            for w, h in WINDOWS:
                driver.set_window_size(w, h)
                open_page(driver, path)
                chart = by_id(driver, "gradchart")
                labels = json_attr(chart, "data-yticks")
                assert len(labels) >= 2, labels
                parsed = [re.fullmatch(r"([125])e(-?\d+)", s) for s in labels]
                assert all(parsed), labels                        # 1e-3, 2e-3: never 1e0.8
                values = [np.log10(int(m[1])) + int(m[2]) for m in parsed]
                assert values == sorted(values) and values[0] <= lo + 1e-6 and values[-1] >= hi - 1e-6
                if hi - lo >= 1:                                  # whole decades, evenly spaced
                    assert all(m[1] == "1" for m in parsed), labels
                    assert len(set(np.diff([int(m[2]) for m in parsed]))) == 1, labels
                else:                                             # inside one decade: 1-2-5
                    assert any(m[1] != "1" for m in parsed), labels
                ticks = json_attr(chart, "data-xticks")
                ts = [tk["t"] for tk in ticks]
                assert len(ts) >= 3 and ts[0] == 0 and len(set(np.diff(ts))) == 1, ts
                for a, b in zip(ticks, ticks[1:]):
                    assert a["x"] + a["w"] + 4 <= b["x"], (w, a, b)  # t labels never touch
                width = driver.execute_script("return document.getElementById('grad-sec').getBoundingClientRect().width")
                assert width >= (0.85 * w - 60 if w <= 1100 else 500), (w, width)  # narrow: one column
                assert_no_console_errors(driver)
    finally:
        driver.set_window_size(1400, 1150)


def json_attr(el, name):
    import json
    return json.loads(el.get_attribute(name))


def test_strip_step_labels_never_overlap(driver, step_page):
    path, _ = step_page
    try:
        for w, h in WINDOWS:
            driver.set_window_size(w, h)
            open_page(driver, path)
            labels = driver.execute_script(
                "return [...document.querySelectorAll('#connect .tok')].map(s => { const n = s.querySelector('.num');"
                " const r = n.getBoundingClientRect(); return {t: +s.dataset.t, text: n.textContent,"
                " l: r.left, r: r.right, top: r.top, b: r.bottom}; })")
            assert len(labels) == 120
            shown = [a for a in labels if a["text"]]
            assert shown[0]["text"] == "0" and len(shown) >= 10
            assert all(a["text"] == str(a["t"]) for a in shown)           # each at its own step
            for i, a in enumerate(shown):
                for b in shown[i + 1:]:
                    apart = a["r"] <= b["l"] or b["r"] <= a["l"] or a["b"] <= b["top"] or b["b"] <= a["top"]
                    assert apart, (w, a, b)
            box = driver.execute_script("const r = document.getElementById('connect').getBoundingClientRect(); return [r.left, r.right];")
            assert all(box[0] <= a["l"] and a["r"] <= box[1] for a in shown), w   # none cut off
            assert_no_console_errors(driver)
    finally:
        driver.set_window_size(1400, 1150)
