"""Input validation shared by the public API: every message names the argument, what was
expected and what came, so that a caller can fix the call without reading our source."""
from __future__ import annotations

import numbers
import warnings

import numpy as np

DTYPES = ("float32", "float64")


# ---- constructor arguments (torch's rules, and stricter where torch lets a typo through) ----
def check_int(name, value, low=1, why=""):
    """An integer >= low (Python or NumPy int; not a bool, float or str) -> int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name}: expected an int >= {low}{why}, got {value!r}")
    return int(value)


def check_bool(name, value):
    """A real boolean (Python or NumPy): a string such as "False" is truthy, so it is refused
    rather than silently read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_probability(name, value):
    """A number in [0, 1] (not a bool or a string) -> float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1] (the probability of zeroing an "
                         f"element), got {type(value).__name__} {value!r}")
    return float(value)


def lookup(name, table, key):
    """table[key], or a ValueError naming the argument and the valid keys."""
    try:
        return table[key]
    except (KeyError, TypeError):
        raise ValueError(f"{name}: expected one of {tuple(table)}, got {key!r}") from None


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def warn_dropout_single_layer(dropout, num_layers):
    """torch's warning: dropout acts between layers, so with one layer it does nothing."""
    if dropout > 0 and num_layers == 1:
        warnings.warn(f"dropout={dropout} has no effect with num_layers=1: dropout is applied "
                      f"between recurrent layers, after all but the last", UserWarning,
                      stacklevel=4)     # past RNNBase.__init__ and RNN/LSTM/GRU.__init__: the caller


def as_dtype(dtype) -> np.dtype:
    """'float32' | 'float64' (or the numpy dtype) -> np.dtype; anything else is refused."""
    try:
        dt = np.dtype(dtype)
    except Exception:                     # numpy raises TypeError, ValueError, ... for junk
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
    """A real-valued input in the model's dtype, cast only where the cast loses nothing.

    The rule: float32 or integer arrays go into a float64 model (exact); a float64 array
    into a float32 model would round every value, so it is refused with the fix to apply.
    Bools, complex and object arrays are refused (numpy's "safe" casting decides the rest:
    int8/int16 into float32 are cast, int32/int64 into float32 are refused), and so are
    int64 values beyond 2**53, the one "safe" cast that rounds. torch refuses every dtype
    mismatch; here the exact casts are made for you. A 0-d value stays 0-d.
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value                     # the common case, nothing to convert (a hot path)
    try:
        arr = to_numpy(value)
    except (TypeError, ValueError) as e:   # a ragged list, a bfloat16 tensor, ...
        raise type(e)(f"{name}: expected an array of real numbers, got {type(value).__name__} "
                      f"that numpy cannot read as one ({e})") from None
    dtype = np.dtype(dtype)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a floating-point array (model dtype {dtype.name}), "
                        f"got dtype {arr.dtype}")
    if not np.can_cast(arr.dtype, dtype, casting="safe"):
        # the fix is a cast to the model's dtype; a model in the input's dtype only where
        # one can be built (float64), never dtype='int64', which the model refuses
        other = (f" or build the model with dtype='{arr.dtype.name}'"
                 if arr.dtype.name in DTYPES else "")
        raise TypeError(f"{name}: got dtype {arr.dtype}, the model computes in {dtype.name} and "
                        f"casting would round it; pass {name}.astype(np.{dtype.name}) (the "
                        f"model's dtype){other}")
    # asarray keeps a 0-d array 0-d (ascontiguousarray would make it 1-d, and a scalar would
    # then pass for a one-feature vector)
    out = np.asarray(arr, dtype=dtype, order="C")
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        with np.errstate(invalid="ignore", over="ignore"):
            exact = np.array_equal(out.astype(arr.dtype), arr)
    else:
        exact = True
    if not exact:                       # numpy calls int64 -> float64 "safe"; past 2**53 it rounds
        raise TypeError(f"{name}: got {arr.dtype} values beyond 2**53, which {dtype.name} cannot "
                        f"hold exactly; pass {name}.astype(np.{dtype.name}) if the rounding "
                        f"is meant")
    return out


def check_keys(name, expected, given):
    """A state dict's keys must be exactly the module's: KeyError listing what is missing,
    what is unexpected and what was expected (torch's strict load_state_dict)."""
    expected, given = list(expected), list(given)
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        raise KeyError(f"{name}: missing keys {missing}, unexpected keys {unexpected}; "
                       f"expected exactly {expected}")


def check_token_ids(name, tokens, vocab_size) -> np.ndarray:
    """Integer token ids in [0, vocab_size) -> int64 array."""
    t = to_numpy(tokens)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer token ids, got dtype {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= vocab_size):
        where = tuple(int(i) for i in np.argwhere((t < 0) | (t >= vocab_size))[0])
        raise ValueError(f"{name}: expected ids in [0, {vocab_size}) (a vocabulary of "
                         f"{vocab_size}), got {int(t[where])} at index {where}")
    return t.astype(np.int64)


def check_shape(name, arr, expected, hint=""):
    """expected: a tuple of ints (None = any size)."""
    if arr.shape == expected:             # the common case, decided at once (a hot path)
        return
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) \
            + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{name}: expected shape {want}{hint}, got {tuple(arr.shape)}")


def check_lengths(lengths, batch, steps, low=1, steps_name="the sequence length") -> np.ndarray:
    """lengths: one int per batch element, each in low..steps, any order (as torch's
    pack_padded_sequence(..., enforce_sorted=False)); whole-number floats are accepted."""
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
    if arr.size and (arr.min() < low or arr.max() > steps):
        raise ValueError(f"lengths: expected every length in {low}..{steps} ({steps_name}), "
                         f"got min {arr.min()}, max {arr.max()}")
    return arr


def check_steps(name, steps):
    """A sequence needs at least one step (torch: "Expected sequence length to be larger
    than 0"): the one message for every tool that runs a sequence."""
    if steps == 0:
        raise ValueError(f"{name}: expected at least one time step, got T=0")
    return steps


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
