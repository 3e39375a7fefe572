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
# Every ```python block of README.md and docs/*.md runs as a test (sybil): one namespace per
# document, top to bottom, as a reader following it would type it. Each document runs in its
# own temporary directory, so the files its blocks write (model.npz, ...) land there. A block
# that cannot run on its own carries a visible reason in the markdown:
#     <!-- skip: next "why" -->    or    <!-- skip: next if(torch_missing, "why") -->
# (torch_missing is set below). Nested READMEs (examples/, minirnn/data/) are not documents
# of this kind. `python -m pytest` collects them through testpaths in setup.cfg.
ROOT = Path(__file__).resolve().parent


def _is_doc(path):
    """README.md at the top, and docs/*.md (not examples/README.md or deeper files)."""
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return False
    return rel == Path("README.md") or (len(rel.parts) == 2 and rel.parts[0] == "docs"
                                         and rel.suffix == ".md")


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
    pytest_collect_file = (
        Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], patterns=["README.md"],
              excludes=["*/*"], setup=_doc_setup, teardown=_doc_teardown, name="readme")
        + Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], path="docs", patterns=["*.md"],
                excludes=["*/*"], setup=_doc_setup, teardown=_doc_teardown, name="docs")
    ).pytest()
