"""Input validation shared by the public API: every message names the argument, what was
expected and what came, so that a caller can fix the call without reading our source."""
from __future__ import annotations

import numpy as np

DTYPES = ("float32", "float64")


def as_dtype(dtype) -> np.dtype:
    """'float32' | 'float64' (or the numpy dtype) -> np.dtype; anything else is refused."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise TypeError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    return dt


def to_numpy(value):
    """A numpy array from an array, a nested list or a torch tensor (without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):      # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_float_array(name, value, dtype) -> np.ndarray:
    """Cast a real-valued input to the model's dtype; refuse integers, bools, complex, objects.

    Floats of another precision are cast (explicitly, here) so that one computation never
    mixes precisions silently.
    """
    arr = to_numpy(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array (it is cast to {np.dtype(dtype).name}), "
                        f"got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_shape(name, arr, expected, hint=""):
    """expected: a tuple of ints (None = any size)."""
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name}: expected shape {want}{hint}, got {tuple(arr.shape)}")


def check_lengths(lengths, batch, steps) -> np.ndarray:
    """lengths: one int per batch element, each in 1..steps, any order (as torch's
    pack_padded_sequence(..., enforce_sorted=False))."""
    arr = to_numpy(lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"lengths: expected one length per batch element, shape ({batch},), "
                         f"got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(f"lengths: expected every length in 1..{steps} (the sequence length), "
                         f"got min {arr.min()}, max {arr.max()}")
    return arr


def valid_mask(lengths, steps):
    """lengths (B,) -> (T, B) bool, True where step t lies inside sequence b; None if all do."""
    if lengths is None or np.all(lengths == steps):
        return None
    return np.arange(steps)[:, None] < lengths[None, :]


def reverse_padded(x, lengths):
    """Reverse each sequence within its own length; padding stays where it is.
    x (T, B, ...) -> same shape. Its own inverse, so it also maps gradients back."""
    if lengths is None:
        return x[::-1].copy()
    T = x.shape[0]
    t = np.arange(T)[:, None]                                   # (T, 1)
    src = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)   # (T, B)
    return x[src, np.arange(x.shape[1])[None, :]]
