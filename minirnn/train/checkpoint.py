"""Checkpoints: one ``.npz`` with weights, optimiser state, config, vocabulary, labels and step.

Layout (every entry a plain array; no pickles, so loading never runs code):

    format_version       0-d int                  FORMAT_VERSION
    model/<key>          the model's state_dict   (torch's keys: "rnn.weight_ih_l0", "fc.bias")
    optim/meta           0-d str, JSON            {"type", "steps", "hyper"} or absent
    optim/state/<param>/<slot>                    e.g. optim/state/fc.weight/exp_avg
    meta/<field>         0-d str, JSON            config, vocab, labels, step, extra

Written atomically (temp file + rename, ``minirnn._io.savez``): a crash mid-write leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import Any, NamedTuple, Optional

import numpy as np

from .._checks import check_path, to_numpy
from .._io import savez

FORMAT_VERSION = 1
_META = ("config", "vocab", "labels", "step", "extra")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit: the message names the file and why."""


class Checkpoint(NamedTuple):
    state_dict: dict                  # key -> np.ndarray, the model's (torch) keys
    optimizer_state: Optional[dict]   # Optimizer.state_dict() or None
    config: Any
    vocab: Any
    labels: Any
    step: int
    extra: Any
    format_version: int
    path: Optional[str] = None


def _plain(obj):
    """NumPy scalars and arrays (a loss, a class count, class weights) become plain JSON."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _json(name, value):
    try:
        return np.array(json.dumps(value, default=_plain))
    except TypeError as e:
        raise TypeError(f"{name}: expected JSON-serialisable data (dicts, lists, str, numbers), "
                        f"got {type(value).__name__}: {e}") from None


def save_checkpoint(path, model, optimizer=None, config=None, vocab=None, labels=None, step=0,
                    extra=None):
    """Write model (+ optimiser) state and metadata to `path` as one .npz, atomically."""
    check_path("path", path)
    if not hasattr(model, "state_dict"):
        raise TypeError(f"model: expected a minirnn Module (or a torch module with the same keys), "
                        f"got {type(model).__name__}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step!r}")
    if optimizer is not None and not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(f"optimizer: expected None or a minirnn optimizer (SGD, Adam), got "
                        f"{type(optimizer).__name__}")
    arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64)}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = to_numpy(value)          # torch tensors too (any device)
    if optimizer is not None:
        sd = optimizer.state_dict()
        arrays["optim/meta"] = _json("optimizer", {k: sd[k] for k in ("type", "steps", "hyper")})
        for pname, slots in sd["state"].items():
            for slot, value in slots.items():
                arrays[f"optim/state/{pname}/{slot}"] = np.asarray(value)
    for field, value in zip(_META, (config, vocab, labels, int(step), extra)):
        arrays[f"meta/{field}"] = _json(field, value)
    savez(path, **arrays)
    return os.fspath(path)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; CheckpointError names the file and problem."""
    path = os.fspath(check_path("path", path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r}: is a directory, expected a .npz file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"checkpoint {path!r}: a single .npy array, not an .npz checkpoint "
                              f"(expected a file written by `minirnn train` or Engine.save)")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = "empty" if not magic else "not a zip archive"
        raise CheckpointError(f"checkpoint {path!r}: not an .npz archive ({kind}); expected a "
                              f"file written by `minirnn train` or Engine.save")
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise CheckpointError(f"checkpoint {path!r}: not an .npz archive "
                                  f"(holds a single array)")
        with z:
            data = {k: z[k] for k in z.files}          # read everything now: CRC errors surface
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path!r}: not a readable .npz archive (corrupt, "
                              f"truncated or another format): {e}") from None
    if "format_version" not in data:
        raise CheckpointError(f"checkpoint {path!r}: missing 'format_version' (not a minirnn "
                              f"checkpoint?)")
    version = data["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path!r}: expected format_version {FORMAT_VERSION}, "
                              f"got {version!r}")
    meta = {}
    for field in _META:
        key = f"meta/{field}"
        if key not in data:
            raise CheckpointError(f"checkpoint {path!r}: missing entry {key!r}")
        try:
            meta[field] = json.loads(str(data[key]))
        except ValueError as e:
            raise CheckpointError(f"checkpoint {path!r}: entry {key!r} is not valid JSON: {e}") from None
    state = {k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}
    if not state:
        raise CheckpointError(f"checkpoint {path!r}: no model weights (no 'model/...' entries)")
    for key, value in state.items():        # a diverged run's weights would predict nan%
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = ~np.isfinite(value)
            where = [int(i) for i in np.argwhere(bad)[0]]
            raise CheckpointError(
                f"checkpoint {path!r}: tensor {key!r} holds {int(bad.sum())} non-finite "
                f"value(s) of {value.size} (first {value[tuple(where)]} at {where}); the run "
                f"that wrote it diverged: train again from an earlier checkpoint, with a lower "
                f"learning rate or gradient clipping")
    optim = None
    if "optim/meta" in data:
        try:
            optim = json.loads(str(data["optim/meta"]))
        except ValueError as e:
            raise CheckpointError(f"checkpoint {path!r}: entry 'optim/meta' is not valid JSON: {e}") from None
        optim["state"] = {}
        for k, v in data.items():
            if k.startswith("optim/state/"):
                pname, _, slot = k[len("optim/state/"):].rpartition("/")
                optim["state"].setdefault(pname, {})[slot] = v
    return Checkpoint(state, optim, meta["config"], meta["vocab"], meta["labels"],
                      int(meta["step"]), meta["extra"], int(version), path)


def load_model_state(model, ckpt):
    """Copy a checkpoint's weights (a Checkpoint or a path) into `model`: a minirnn Module, or a
    torch module with the same keys (see minirnn.interop.torch). Any mismatch of keys or shapes
    raises CheckpointError naming the file, the model and the difference; nothing is changed."""
    from ..nn.module import Module
    if not isinstance(model, Module) and not callable(getattr(model, "load_state_dict", None)):
        raise TypeError(f"model: expected a minirnn Module or a torch module, got "
                        f"{type(model).__name__}")
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(check_path("ckpt", ckpt))
    where = f"checkpoint {ckpt.path!r}" if ckpt.path else "checkpoint"
    if not isinstance(model, Module):                  # a torch module: convert there
        from ..interop.torch import load_state_into_torch
        try:
            return load_state_into_torch(model, ckpt.state_dict)
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where} does not fit {type(model).__name__}: {e}") from None
    try:
        return model.load_state_dict(ckpt.state_dict)
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise CheckpointError(f"{where} does not fit {type(model).__name__}: {msg}") from None


__all__ = ["save_checkpoint", "load_checkpoint", "load_model_state", "Checkpoint",
           "CheckpointError", "FORMAT_VERSION"]
