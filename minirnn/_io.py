"""Atomic writes: a crash never leaves a half-written checkpoint, report or plot. And the one
way to import an optional dependency.

Each writer writes to a temporary file in the target's directory, flushes it to disk and
renames it over the target (os.replace is atomic on POSIX and Windows). The file gets the
permissions a plain open() would give it (0666 minus the umask, usually 0644), or keeps those
of the file it replaces -- not the 0600 of a temporary file.

Output paths. Every CLI flag that names an output (explore -o, step --render/--heatmap, bench
--json/--plot, gradcheck --json, study --out) is checked by check_output_path before any work:
a missing directory is created (by the writer) only when it lies under the working directory
or --mkdir is given; anywhere else a typo such as /nonexistent/dir would silently become a new
directory tree, so it is refused, naming the flag, the directory and the fix. A page or a
picture that exists is replaced only when asked (check_overwrite: --overwrite on the command
line, overwrite=True in Python: minirnn.explore and the step renderers).

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


# What the argument checks raise, ValueError above all: bad input, which the command line
# reports in one line with exit code 2. Any other exception that ends a command is a bug in
# minirnn, shown as one, with exit code 70 (EX_SOFTWARE; not 1, which a failed check returns).
USER_ERRORS = (ValueError, OSError, MissingExtra)
EXIT_USER_ERROR, EXIT_BUG = 2, 70


def exit_code(e):
    """The command line's exit code for the exception `e` that ended a command (the CLI and
    every rank of a distributed run use this one rule)."""
    if isinstance(e, KeyboardInterrupt):
        return 130
    if isinstance(e, BrokenPipeError):          # `minirnn ... | head`: the reader went away
        return 141
    return EXIT_USER_ERROR if isinstance(e, USER_ERRORS) else EXIT_BUG


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


def _under(path, root):
    """True when `path` lies inside `root` (both made absolute, links resolved)."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([path, root]) == root


def check_output_path(flag, path, *, mkdir=False, overwrite=True, directory=False):
    """Check an output flag's path before the work that fills it -> the path as a str.

    The directory a file goes in may be missing only when it lies under the working directory
    or mkdir is True; the writer (atomic_path, os.makedirs) then creates it. directory=True:
    `path` is an output directory (a DIR flag), created by the command: the rule applies to
    the directory that holds it. overwrite=False refuses an existing file.
    Every refusal is a ValueError naming the flag, the path and the fix.
    """
    path = os.fspath(path)
    if directory:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{flag}: {path} exists and is not a directory")
        if os.path.isdir(path):
            return path
        parent = os.path.dirname(os.path.abspath(path))
    else:
        if os.path.isdir(path):
            raise ValueError(f"{flag}: {path} is a directory; expected a file name in it")
        check_overwrite(flag, path, overwrite)
        parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(parent):
        return path
    existing = parent                       # the nearest part of it that exists
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{flag}: {existing} is not a directory, so {path} cannot be written")
    if not (mkdir or _under(parent, os.getcwd())):
        raise ValueError(f"{flag}: directory {parent} does not exist (outside the working "
                         f"directory, nothing is created unasked); create it, or pass --mkdir "
                         f"to have it created")
    return path


def check_overwrite(name, path, overwrite):
    """The one overwrite rule: an existing file is replaced only when asked (overwrite=True;
    on the command line --overwrite), else a ValueError naming the argument (`name`: a flag
    such as "-o/--out", or a Python argument such as "path") and the fix."""
    if overwrite or not os.path.exists(path):
        return
    fix = (f"Pass --overwrite to replace it, or {name.split('/')[0]} PATH for another file"
           if name.startswith("-") else "Pass overwrite=True to replace it, or another path")
    raise ValueError(f"{name}: {os.fspath(path)} already exists; nothing was written. {fix}")


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
