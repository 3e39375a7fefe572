"""Atomic writes: a crash never leaves a half-written checkpoint, report or plot.

Each writer writes to a temporary file in the target's directory, flushes it to disk and
renames it over the target (os.replace is atomic on POSIX and Windows).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile


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
