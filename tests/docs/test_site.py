"""The documentation site: README as a front door, the strict mkdocs build, and the built site
in a real browser (headless Chromium driven by Selenium, as tests/test_explore_browser.py does).

The build needs the `docs` extra (mkdocs, mkdocs-material, mkdocstrings); the browser needs
Debian's `chromium` and `chromium-driver` (.ci/run installs them when apt-get is there; the
chromium_driver fixture of conftest.py). Without them those tests SKIP, with the reason in
pytest's summary (-ra).

Screenshot of the front page, for a person to look at:
    MINIRNN_SITE_SCREENSHOT=site-front.png python -m pytest tests/docs/test_site.py -k front
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = sorted((ROOT / "docs").rglob("*.md"))
MKDOCS = importlib.util.find_spec("mkdocs") is not None
needs_mkdocs = pytest.mark.skipif(not MKDOCS, reason="the site needs mkdocs: "
                                  "pip install -e '.[docs]'")


# ---- README: a front door ----------------------------------------------------------------------
def test_readme_fits_on_a_few_screens():
    lines = README.count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail to a page under docs/"


def test_readme_states_the_two_defaults():
    flat = " ".join(README.split())
    assert '`dtype="float64"`' in flat and '`backend="numpy"`' in flat
    assert '`backend="numba"`' in flat


def _slug(heading):
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s-]+", "-", text).strip("-")


def _anchors(path):
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(encoding="utf-8"),
                                                   re.M)}


def test_readme_links_reach_files_and_headings():
    """README is not part of the site, so the strict build does not see its links: every
    relative link names a file that exists (and a heading of it, for an #anchor)."""
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [u for u in links if not re.match(r"[a-z]+:", u)]
    assert len(local) >= 10, local
    for url in local:
        path, _, anchor = url.partition("#")
        target = ROOT / path
        assert target.exists(), f"README links to {url}: no such file"
        if anchor:
            assert anchor in _anchors(target), f"README links to {url}: no such heading"


def test_no_document_names_an_issue_number():
    """A reader cannot see the issue tracker: README and the pages never say 'issue 23'."""
    for path in [ROOT / "README.md", *PAGES]:
        hits = re.findall(r"\bissues? #?\d+", path.read_text(encoding="utf-8"), re.I)
        assert not hits, f"{path.relative_to(ROOT)} names {hits}"


# ---- the strict build --------------------------------------------------------------------------
def _build(config, site_dir):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")          # no upgrade banner in the log
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(config), "--site-dir", str(site_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not MKDOCS:
        pytest.skip("the site needs mkdocs: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    res = _build(ROOT / "mkdocs.yml", out)
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stdout}\n{res.stderr}"
    return out


def _nav_pages():
    """The pages mkdocs.yml's nav lists, in order (file names relative to docs/)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    return re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.M)


@needs_mkdocs
def test_every_page_is_built_and_in_the_nav(site):
    pages = _nav_pages()
    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in PAGES)
    assert sorted(pages) == on_disk, "every page under docs/ is in mkdocs.yml's nav, once"
    for page in pages:
        html = page[:-3] + "/index.html" if page != "index.md" else "index.html"
        assert (site / html).stat().st_size > 0, html
    api = (site / "reference" / "grad" / "index.html").read_text(encoding="utf-8")
    assert "rtrl_gradient" in api and "per_sample_gradients" in api   # from the docstrings


@needs_mkdocs
def test_a_broken_link_or_a_page_left_out_fails_the_build(tmp_path):
    """The strict build judges something: a planted broken link, a missing anchor and a page
    missing from the nav each fail it, by name."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    page = docs / "parity.md"
    page.write_text(page.read_text(encoding="utf-8")
                    + "\n[gone](no-such-page.md) and [there](studies.md#no-such-heading)\n",
                    encoding="utf-8")
    (docs / "orphan.md").write_text("# Not in the nav\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8")
                      .replace("docs_dir: docs", f"docs_dir: {docs}"), encoding="utf-8")
    res = _build(config, tmp_path / "site")
    log = res.stdout + res.stderr
    assert res.returncode != 0, log
    assert "no-such-page.md" in log and "no-such-heading" in log and "orphan.md" in log, log


# ---- the built site in a browser (the chromium_driver fixture skips without one) -------------
needs_browser = needs_mkdocs


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The built site on 127.0.0.1, a free port -> its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def driver(chromium_driver):
    d = chromium_driver(1400, 1000)                # conftest.py: headless Chromium
    d.set_page_load_timeout(30)
    return d


def _wait(check, what, timeout=20.0):
    t0 = time.perf_counter()
    while True:
        value = check()
        if value:
            return value
        assert time.perf_counter() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)


def _images(d):
    """[(src, loaded)] for every image of the page, once each has finished loading."""
    _wait(lambda: d.execute_script("return [...document.images].every(i => i.complete)"),
          "the images to finish loading")
    return d.execute_script("return [...document.images].map(i => [i.src, i.naturalWidth > 0])")


def _severe(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


@needs_browser
def test_front_page_next_links_walk_every_page_and_every_image_loads(driver, served):
    """From the front page, the footer's "next" link, clicked page after page, visits every
    page of the nav in order; on each, the title is the page's and every image has loaded."""
    from selenium.webdriver.common.by import By
    driver.get(served)
    shot = os.environ.get("MINIRNN_SITE_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)
    visited, images = [], []
    while True:
        h1 = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "article h1"), "a heading")
        assert h1[0].text.strip(), driver.current_url
        visited.append(driver.current_url[len(served):])
        images += [(driver.current_url, src, ok) for src, ok in _images(driver)]
        nxt = driver.find_elements(By.CSS_SELECTOR, "a.md-footer__link--next")
        if not nxt:
            break
        before = driver.current_url
        nxt[0].click()
        _wait(lambda: driver.current_url != before, "the next page")
    want = ["" if p == "index.md" else p[:-3] + "/" for p in _nav_pages()]
    assert visited == want
    broken = [(page, src) for page, src, ok in images if not ok]
    assert not broken, broken
    assert len(images) >= 10, f"only {len(images)} images judged"
    assert not _severe(driver)


@needs_browser
def test_sidebar_links_open_their_pages(driver, served):
    """Every page link of the navigation sidebar, clicked, opens its page (with its heading)."""
    from selenium.webdriver.common.by import By
    start = served + "getting-started/"
    script = ("return [...document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]')]"
              ".map(a => a.href.split('#')[0])")
    driver.get(start)
    pages = list(dict.fromkeys(_wait(lambda: driver.execute_script(script), "the sidebar")))
    assert len(pages) == len(_nav_pages()), pages
    for url in pages:
        driver.get(start)
        link = _wait(lambda: [a for a in driver.find_elements(
            By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link[href]")
            if a.get_property("href") == url], f"the sidebar's link to {url}")[0]
        driver.execute_script("arguments[0].click()", link)   # a folded section's link too
        _wait(lambda: driver.current_url.split("#")[0] == url, f"{url} to open")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "article h1"), f"{url}'s heading")
        assert "404" not in driver.title, url
    assert not _severe(driver)


@needs_browser
def test_search_finds_rtrl(driver, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver.get(served)
    box = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "input.md-search__input"),
                "the search box")[0]
    if not box.is_displayed():                     # a narrow window: the header's search button
        driver.find_element(By.CSS_SELECTOR, "label.md-header__button[for='__search']").click()
    box.click()
    box.send_keys("RTRL")
    hits = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "li.md-search-result__item a"),
                 "search results", timeout=30)
    targets = [a.get_attribute("href") for a in hits]
    assert any("exact-derivatives/" in t for t in targets), targets
    hits[0].send_keys(Keys.ENTER)
    _wait(lambda: "RTRL" in driver.find_element(By.TAG_NAME, "article").text, "the RTRL page")
    assert not _severe(driver)
