"""The torch half of the parity harness (the only module here that imports torch).

The same configuration is built as torch.nn.RNN / nn.LSTM, the case's weights are copied in
through load_state_dict (strict: torch's own keys and shapes must match ours), variable
lengths go through pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence, and the
same random projection loss is differentiated by autograd.
"""
from __future__ import annotations

import warnings

import numpy as np

from .harness import case_params, state_names


def require_torch(device="cpu"):
    """Refuse early, saying what to do, when torch (or its CUDA device) is missing: the
    user's setup or arguments, so MissingExtra / ValueError, never a bug's RuntimeError."""
    from .._io import MissingExtra
    try:
        import torch
    except ImportError:
        raise MissingExtra("torch is not installed: install the 'torch' extra "
                           "(pip install -e '.[torch]') or use --frozen") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: CUDA is not available to torch "
                         f"{torch.__version__} on this machine; use --device cpu")


def load_forward_ad():
    """Make torch's forward-mode AD ready, without torch's TorchScript deprecation warnings.

    At its first use in a process, forward-mode AD (torch.func.jvp, torch.autograd.forward_ad)
    imports torch._decomp.decompositions_for_jvp: the decompositions it runs for the ops that
    lack a forward formula, each compiled by torch.jit.script, which warns that TorchScript is
    deprecated (18 DeprecationWarnings with torch 2.13). They are about torch's own internals,
    and nothing a caller of jvp can change. This imports that module (as torch would, at the
    first jvp) with exactly that warning ignored; call it before the first jvp of a process.
    Forward AD itself is untouched: the same decompositions are loaded."""
    import torch  # noqa: F401
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is ",
                                category=DeprecationWarning)
        import torch._decomp.decompositions_for_jvp  # noqa: F401


def cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _device(device):
    import torch
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False "
                             f"(torch {torch.__version__}); use --device cpu")
        # TF32 would round float32 products to 10 mantissa bits: parity needs real float32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(device)


def build_torch(config, dtype, device="cpu"):
    import torch

    from ..interop.torch import torch_recurrent
    m = torch_recurrent(config.cell, config.input_size, config.hidden_size,
                        num_layers=config.num_layers, bias=config.bias,
                        batch_first=config.batch_first, bidirectional=config.bidirectional,
                        proj_size=config.proj_size)
    return m.to(device=_device(device), dtype=getattr(torch, dtype))


def run_torch(config, case, device="cpu"):
    """torch's forward and backward on a case -> result dict of numpy arrays (float in the
    case's dtype), with the same keys as harness.run_minirnn."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    dtype = case["x"].dtype.name
    m = build_torch(config, dtype, device)
    dev = next(m.parameters()).device
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                       for k, v in case_params(case).items()}, strict=True)
    m.train()                          # dropout is 0: train/eval give the same numbers
    t = lambda name, grad=False: torch.tensor(case[name], device=dev,  # noqa: E731
                                              requires_grad=grad)
    names = state_names(config)
    x = t("x", True)
    state0 = [t(f"{n}0", True) for n in names]
    hx = tuple(state0) if len(names) > 1 else state0[0]
    lengths = case.get("lengths")
    with warnings.catch_warnings():
        # "LSTM with projections is not supported with oneDNN": torch's own fallback, fine
        warnings.filterwarnings("ignore", message=".*not supported with oneDNN.*")
        if lengths is None:
            out, state = m(x, hx)
        else:
            packed = pack_padded_sequence(x, torch.as_tensor(lengths, dtype=torch.int64),
                                          batch_first=config.batch_first, enforce_sorted=False)
            out_packed, state = m(packed, hx)
            out, _ = pad_packed_sequence(out_packed, batch_first=config.batch_first,
                                         total_length=config.T)
    state_n = state if isinstance(state, tuple) else (state,)
    loss = (out * t("d_out")).sum()
    for n, s in zip(names, state_n):
        loss = loss + (s * t(f"d_{n}_n")).sum()
    loss.backward()
    np_ = lambda v: v.detach().cpu().numpy().copy()  # noqa: E731
    res = {"out": np_(out), **{f"{n}_n": np_(s) for n, s in zip(names, state_n)},
           "dx": np_(x.grad), **{f"d{n}0": np_(s.grad) for n, s in zip(names, state0)}}
    for name, p in m.named_parameters():
        res["grad." + name] = np_(p.grad) if p.grad is not None else np.zeros(tuple(p.shape), dtype)
    return res


__all__ = ["require_torch", "load_forward_ad", "cuda_available", "build_torch", "run_torch"]
