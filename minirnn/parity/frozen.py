"""Frozen references: torch's results for the fixed matrix, stored as versioned .npz dumps,
so that parity is checked even where torch is not installed.

One compressed file per cell, minirnn/parity/refs/<cell>.npz, holding for every (config, dtype):
    case<k>__in        the case (inputs, weights, upstream gradients), flattened
    case<k>__lengths   the sequence lengths (int64), when the config has them
    case<k>__ref       torch's result (out, h_n, ..., grad.<key>), flattened
plus `meta`, a JSON string: format version, torch version, device, and the list of cases
with their config and the (name, shape) layout of each flat array, so a dump is
self-describing and survives a change to configs.py.
Only plain numeric and string arrays are stored: loading never needs pickle.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .. import _io
from .configs import Config

FORMAT_VERSION = 1
_SEP = "__"


def default_refs_dir():
    """minirnn/parity/refs: shipped inside the package (package data), so `minirnn parity
    --frozen` works from any install, editable or not."""
    return Path(__file__).resolve().parent / "refs"


def refs_path(cell, directory=None):
    return Path(directory or default_refs_dir()) / f"{cell}.npz"


def _pack(d):
    """name -> array  ->  one flat float array + [(name, shape)] (lengths kept apart: ints)."""
    names = [n for n in d if n != "lengths"]
    flat = np.concatenate([np.asarray(d[n]).ravel() for n in names]) if names else np.zeros(0)
    return flat, [[n, list(np.shape(d[n]))] for n in names]


def _unpack(flat, layout):
    out, offset = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = flat[offset:offset + size].reshape(shape).copy()
        offset += size
    if offset != flat.size:
        raise ValueError(f"frozen references: layout covers {offset} values, the array has {flat.size}")
    return out


def write_refs(path, entries, torch_version="", device="cpu"):
    """entries: iterable of (config, dtype, case, ref) -> one compressed .npz at `path` (atomic).

    Each case's inputs and torch's results are stored as one flat array each (a few entries
    per case, not dozens: the zip headers would outweigh the numbers).
    """
    arrays, cases = {}, []
    for k, (config, dtype, case, ref) in enumerate(entries):
        (flat_in, lay_in), (flat_ref, lay_ref) = _pack(case), _pack(ref)
        arrays[f"case{k}{_SEP}in"] = flat_in.astype(dtype)
        arrays[f"case{k}{_SEP}ref"] = flat_ref.astype(dtype)
        if "lengths" in case:
            arrays[f"case{k}{_SEP}lengths"] = np.asarray(case["lengths"], dtype=np.int64)
        cases.append({"config": config.to_dict(), "dtype": dtype,
                      "inputs": lay_in, "outputs": lay_ref})
    meta = {"format_version": FORMAT_VERSION, "torch_version": torch_version,
            "device": device, "cases": cases}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)), **arrays)
    _io.write_bytes(path, buf.getvalue())
    return path


def read_refs(path):
    """-> (meta dict, [(config, dtype, case, ref)]). ValueError for another format version,
    FileNotFoundError when the dump is missing (with the command that writes it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frozen references: {os.fspath(path)} does not exist; "
                                "write them with `python parity/make_refs.py` (needs torch)")
    with np.load(path, allow_pickle=False) as z:
        if "meta" not in z.files:
            raise ValueError(f"frozen references: {os.fspath(path)} has no 'meta' entry; "
                             "not a minirnn parity dump")
        meta = json.loads(str(z["meta"]))
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"frozen references: {os.fspath(path)} has format version "
                             f"{version!r}, expected {FORMAT_VERSION}; regenerate with "
                             "`python parity/make_refs.py`")
        entries = []
        for k, c in enumerate(meta["cases"]):
            case = _unpack(z[f"case{k}{_SEP}in"], c["inputs"])
            if f"case{k}{_SEP}lengths" in z.files:
                case["lengths"] = z[f"case{k}{_SEP}lengths"]
            ref = _unpack(z[f"case{k}{_SEP}ref"], c["outputs"])
            entries.append((Config.from_dict(c["config"]), c["dtype"], case, ref))
    return meta, entries


__all__ = ["FORMAT_VERSION", "default_refs_dir", "refs_path", "write_refs", "read_refs"]
