"""pytest configuration shared by tests/, parity/ and the documents (README.md, docs/*.md).

Hypothesis: under CI (CI=true) examples are derandomized, so a red CI is reproducible and
never a coin flip; locally every run explores fresh examples. HYPOTHESIS_PROFILE overrides.
"""
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# ---- documentation is executed ------------------------------------------------------------------
# Every ```python block of README.md and of every page under docs/ (subfolders too) runs as a
# test (sybil): one namespace per document, top to bottom, as a reader following it would type it. Each document runs in its
# own temporary directory, so the files its blocks write (model.npz, ...) land there. A block
# that cannot run on its own carries a visible reason in the markdown:
#     <!-- skip: next "why" -->    or    <!-- skip: next if(torch_missing, "why") -->
# (torch_missing is set below). Nested READMEs (examples/, minirnn/data/) are not documents
# of this kind. `python -m pytest` collects them through testpaths in setup.cfg.
ROOT = Path(__file__).resolve().parent


def _is_doc(path):
    """README.md at the top, and every .md under docs/ (not examples/README.md)."""
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return False
    return rel == Path("README.md") or (rel.parts[0] == "docs" and rel.suffix == ".md")


def _doc_setup(namespace):
    namespace["_cwd"] = os.getcwd()
    namespace["_tmp"] = tempfile.TemporaryDirectory(prefix="minirnn-doc-")
    os.chdir(namespace["_tmp"].name)
    namespace["torch_missing"] = importlib.util.find_spec("torch") is None
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib
        matplotlib.use("Agg")                      # a block that plots never opens a window


def _doc_teardown(namespace):
    os.chdir(namespace.pop("_cwd"))
    namespace.pop("_tmp").cleanup()


try:
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
except ImportError:                                # loud, never a silent pass: one skipped item
    class _NoSybil(pytest.Item):
        def runtest(self):
            pytest.skip("sybil is not installed (pip install -e '.[test]'): the python blocks "
                        "of this document were not run")

    class _NoSybilFile(pytest.File):
        def collect(self):
            yield _NoSybil.from_parent(self, name="python blocks (sybil missing)")

    def pytest_collect_file(file_path, parent):
        return _NoSybilFile.from_parent(parent, path=file_path) if _is_doc(file_path) else None
else:
    # one Sybil per tree: the top (README.md alone; "*/*" keeps nested READMEs out) and docs/
    # with its subfolders ("**/*.md": a page at any depth)
    pytest_collect_file = (
        Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], patterns=["README.md"],
              excludes=["*/*"], setup=_doc_setup, teardown=_doc_teardown, name="readme")
        + Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], path="docs",
                patterns=["*.md", "**/*.md"], setup=_doc_setup, teardown=_doc_teardown,
                name="docs")
    ).pytest()


# ---- a real browser ------------------------------------------------------------------------------
# The browser tests (the explorer page, the documentation site, the notebooks' screenshot) drive
# Debian's Chromium through Selenium: .ci/run installs `chromium` and `chromium-driver` when
# apt-get is there; elsewhere the fixture skips, naming what is missing.
def _which(*names):
    import shutil
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def chromium_driver():
    """make(width, height) -> a headless Chromium driver that keeps the page's console log;
    every driver made quits when the module's tests are done."""
    chromium, chromedriver = _which("chromium", "chromium-browser", "google-chrome"), \
        _which("chromedriver")
    missing = [what for what, ok in (
        ("chromium (apt-get install chromium)", chromium),
        ("chromedriver (apt-get install chromium-driver)", chromedriver),
        ("selenium (pip install -e '.[test]')", importlib.util.find_spec("selenium"))) if not ok]
    if missing:
        pytest.skip("browser tests need " + ", ".join(missing))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    drivers = []

    def make(width=1400, height=1000):
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", "--force-device-scale-factor=1"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        drivers.append(webdriver.Chrome(options=opts, service=Service(chromedriver)))
        return drivers[-1]

    yield make
    for d in drivers:
        d.quit()
