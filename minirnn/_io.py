"""Atomic writes: a crash never leaves a half-written checkpoint, report or plot. And the one
way to import an optional dependency.

Each writer writes to a temporary file in the target's directory, flushes it to disk and
renames it over the target (os.replace is atomic on POSIX and Windows). The file gets the
permissions a plain open() would give it (0666 minus the umask, usually 0644), or keeps those
of the file it replaces -- not the 0600 of a temporary file.

Optional dependencies (the extras in setup.cfg) are imported where they are needed, through
require(): a missing one raises MissingExtra, whose message names the extra to install.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import stat
import tempfile

# module -> the extra of setup.cfg that installs it
EXTRAS = {"matplotlib": "plot", "tqdm": "plot", "torch": "torch", "selenium": "test",
          "hypothesis": "test", "pytest": "test"}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


def require(module, what):
    """import_module(module), or MissingExtra naming `what` needs it and the extra to install."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if getattr(e, "name", None) not in (None, top, module):     # broken inside: a real bug
            raise
        extra = EXTRAS.get(top, "all")
        raise MissingExtra(f"{what} needs {top}, which is not installed: "
                           f"pip install 'minirnn[{extra}]' (or pip install {top})") from None


def _file_mode(path):
    """The mode a new file at `path` gets from open(): 0666 & ~umask; an existing file's own."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix,
                               dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent=2):
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def savez(path, **arrays):
    """np.savez to `path` atomically (the name is kept as given; no '.npz' is appended)."""
    import numpy as np
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def savefig(fig, path, **kwargs):
    """matplotlib Figure.savefig, atomically; the format comes from `path`'s extension."""
    ext = os.path.splitext(os.fspath(path))[1]
    with atomic_path(path, suffix=ext) as tmp:
        fig.savefig(tmp, format=ext.lstrip(".") or "png", **kwargs)


def pyplot(what="the plots"):
    """matplotlib.pyplot on the Agg backend (files only), or MissingExtra naming the extra."""
    matplotlib = require("matplotlib", what)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", what)
