"""Variable-length batches: torch.nn.utils.rnn's pad_sequence / unpad_sequence on NumPy arrays.

minirnn has no PackedSequence: a padded batch plus its lengths is passed straight to the
model, which skips each sequence's padding exactly as torch does for a packed batch::

    # torch                                           # minirnn
    x = pad_sequence(seqs)                            x = utils.pad_sequence(seqs)
    n = torch.tensor([len(s) for s in seqs])          n = utils.lengths(seqs)
    p = pack_padded_sequence(x, n,
                             enforce_sorted=False)
    out, (h_n, c_n) = lstm(p)                         out, (h_n, c_n) = lstm(x, lengths=n)
    out, _ = pad_packed_sequence(out)                 # out is padded already (zeros past each end)
    parts = unpad_sequence(out, n)                    parts = utils.unpad_sequence(out, n)

Note: the model's ``lengths=`` expects *right* padding (each sequence starts at step 0), as
torch's pack_padded_sequence does; a batch from ``pad_sequence(..., padding_side="left")`` must
not be given lengths. The model also needs every length >= 1, while pad_sequence accepts
empty sequences (as torch does). ``out`` keeps all T steps of ``x``; torch's
pad_packed_sequence returns max(n) steps, which is the same thing when ``x`` came from
pad_sequence.

``sequence_lengths`` is also exported as ``lengths``, so that the common call reads as one
line: ``model(utils.pad_sequence(seqs), lengths=utils.lengths(seqs))``.

Items may be numpy arrays or torch tensors (converted without importing torch); results are
numpy arrays.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_bool, check_fits, check_lengths, to_numpy

__all__ = ["pad_sequence", "sequence_lengths", "lengths", "unpad_sequence"]

_SIDES = ("right", "left")


def _check_sequences(sequences):
    """-> list of numpy arrays, each of shape (L_i, *) with one trailing shape."""
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(f"sequences: expected a list or tuple of arrays of shape (L, *), "
                        f"got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError(f"sequences: expected at least one sequence, got an empty "
                         f"{type(sequences).__name__}")
    arrays = []
    for i, item in enumerate(sequences):
        name = f"sequences[{i}]"
        if not (isinstance(item, np.ndarray) or (hasattr(item, "detach") and hasattr(item, "cpu"))):
            raise TypeError(f"{name}: expected an array (numpy.ndarray or torch.Tensor) of shape "
                            f"(L, *), got {type(item).__name__}")
        arr = to_numpy(item)
        if arr.ndim == 0:
            raise ValueError(f"{name}: expected an array of shape (L, *) with at least one "
                             f"dimension, got a 0-d array (shape ())")
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name}: expected a numeric or bool dtype, got dtype {arr.dtype}")
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"{name}: expected trailing shape {arrays[0].shape[1:]} like "
                             f"sequences[0], got {arr.shape[1:]} (shape {arr.shape})")
        arrays.append(arr)
    return arrays


def _fill_value(padding_value, dtype):
    """padding_value cast to dtype as torch casts it: truncated toward zero for integers,
    nonzero -> True for bools; refused when the dtype cannot hold it."""
    if isinstance(padding_value, (str, bytes)) or not isinstance(padding_value,
                                                                  (numbers.Number, np.bool_)):
        raise TypeError(f"padding_value: expected a number, got {padding_value!r} "
                        f"({type(padding_value).__name__})")
    if isinstance(padding_value, (complex, np.complexfloating)) and dtype.kind != "c":
        raise TypeError(f"padding_value: expected a real number for result dtype {dtype}, "
                        f"got {padding_value!r}")
    if dtype.kind in "iu":
        integral = isinstance(padding_value, numbers.Integral)
        v = padding_value if integral else float(padding_value)
        info = np.iinfo(dtype)
        if isinstance(v, float):
            if not np.isfinite(v):
                raise ValueError(f"padding_value: expected a finite value for result dtype "
                                 f"{dtype}, got {padding_value!r}")
            v = int(v)                                  # truncates toward zero, as torch
        if not info.min <= int(v) <= info.max:
            raise ValueError(f"padding_value: expected a value in {info.min}..{info.max} for "
                             f"result dtype {dtype}, got {padding_value!r}")
        return np.array(int(v), dtype=dtype)
    return np.array(padding_value).astype(dtype)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shape (L_i, *) into one padded array.

    -> (T, B, *), or (B, T, *) with batch_first, where B = len(sequences) and T = max L_i;
    steps past a sequence's end hold padding_value. padding_side="left" puts the padding
    before each sequence instead (then do not pass lengths to a model, see the module note).

    The result dtype is ``numpy.result_type`` of the inputs (torch instead requires one dtype;
    for inputs that share a dtype the two agree). padding_value does not take part in it: it
    is cast to the result dtype (truncated toward zero for integer dtypes, as torch does), and
    refused if that dtype cannot hold it. The result is a new array; the inputs are copied.
    """
    arrays = _check_sequences(sequences)
    batch_first = check_bool("batch_first", batch_first)
    if not isinstance(padding_side, str) or padding_side not in _SIDES:
        raise ValueError(f"padding_side: expected one of {_SIDES}, got {padding_side!r}")
    dtype = np.result_type(*arrays)
    fill = _fill_value(padding_value, dtype)
    T, B = max(a.shape[0] for a in arrays), len(arrays)
    out = np.full((T, B) + arrays[0].shape[1:], fill, dtype=dtype)
    for b, a in enumerate(arrays):
        L = a.shape[0]
        if padding_side == "right":
            out[:L, b] = a
        else:
            out[T - L:, b] = a
    return np.ascontiguousarray(out.swapaxes(0, 1)) if batch_first else out


def sequence_lengths(sequences):
    """-> np.int64 array (B,): each sequence's length L_i, in order (no sorting needed), for
    ``model(pad_sequence(sequences), lengths=sequence_lengths(sequences))``.

    The sequences are checked as pad_sequence checks them. Exported also as ``lengths``.
    """
    return np.array([a.shape[0] for a in _check_sequences(sequences)], dtype=np.int64)


lengths = sequence_lengths


def unpad_sequence(padded, lengths, batch_first=False):
    """Undo a right-padded pad_sequence: (T, B, *) (or (B, T, *) with batch_first) and
    lengths (B,) -> list of B arrays, the b-th of shape (lengths[b], *).

    Each is a copy (changing it leaves ``padded`` alone). Left padding is not undone by this:
    as in torch, each sequence is read from step 0.
    """
    batch_first = check_bool("batch_first", batch_first)
    x = to_numpy(padded)
    if x.ndim < 2:
        layout = "(B, T, *)" if batch_first else "(T, B, *)"
        raise ValueError(f"padded: expected an array of shape {layout} with at least 2 "
                         f"dimensions, got shape {tuple(x.shape)}")
    if batch_first:
        x = x.swapaxes(0, 1)
    T, B = x.shape[:2]
    n = check_lengths(lengths, B, T, low=0, steps_name="the padded length")
    row = int(np.prod(x.shape[2:], dtype=object)) * x.itemsize      # one step's bytes
    check_fits("padded", int(n.sum()) * row, f"copies of {int(n.sum())} steps")
    return [np.array(x[:L, b], order="C") for b, L in enumerate(n)]
