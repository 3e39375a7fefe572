"""Gradient-correctness tools: finite-difference gradcheck and exact derivatives beyond reverse
mode (forward mode, Hessian- and Gauss-Newton-vector products, RTRL, UORO, truncated BPTT,
the gradient by lag, Lyapunov spectra). The studies built on them are minirnn.studies.

Each public name below lives in its own module and is imported on first use (torch, plots
and kernels stay unloaded until a tool needs them): ``minirnn.grad.NAME`` or
``from minirnn.grad import NAME``.
"""
from importlib import import_module as _import_module

# public name -> the module under minirnn.grad that defines it (one line per name). A public
# name must not be a submodule's name: importing the submodule would shadow it.
_EXPORTS = {
    "GradcheckReport": "gradcheck",           # the function is minirnn.gradcheck
    "jvp": "forward_mode",                    # forward mode: tangents of out and state_n
    "JVPResult": "forward_mode",
    "hvp": "second_order",                    # Hessian-vector product (R-operator on BPTT)
    "gnvp": "second_order",                   # Gauss-Newton-vector product
    "MSELoss": "output_losses",               # losses on the outputs, for hvp and gnvp
    "LinearLoss": "output_losses",
    "rtrl_gradient": "rtrl",                  # RTRL: the exact gradient, forward in time
    "rtrl_online": "rtrl",                    # RTRL's online form: an update after every step
    "RTRLOnline": "rtrl",
    "per_sample_gradients": "per_sample",     # dL_b/dθ for every sequence, one backward
    "tbptt_windows": "truncated",             # truncated BPTT (k1, k2): the schedule
    "truncated_gradient": "truncated",        # the gradient it uses
    "full_gradient": "truncated",
    "gradient_agreement": "truncated",        # cosine and relative error of two gradients
    "truncation_bias": "truncated",
    "TruncationBias": "truncated",
    "gradient_by_lag": "lags",                # dL/dtheta split by lag t - tau
    "language_model_lags": "lags",
    "LagGradient": "lags",
    "uoro_gradients": "uoro",                 # UORO: N unbiased rank-one online estimates
    "uoro_update": "uoro",                    # its one-step update
    "UOROEstimates": "uoro",
    "online_gradient": "online",              # RTRL, SnAp-n, UORO, KF-RTRL, RFLO, e-prop
    "OnlineTrainer": "online",                # any of them online: an update after every step
    "OnlineResult": "online",
    "recurrent_mask": "online",               # a fixed sparsity pattern for W_hh (SnAp-2)
    "lyapunov_spectrum": "lyapunov",          # Benettin's QR method on the step Jacobians
    "perturbation_growth": "lyapunov",        # λ_1 by direct simulation
    "LyapunovReadout": "lyapunov",            # λ_1 every N training steps (Engine.add_hook)
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(_import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'minirnn.grad' has no attribute {name!r}")


def __dir__():
    """The public names, the module's attributes and its loaded submodules; no private helper
    (the import machinery is _import_module)."""
    return sorted({n for n in globals() if not n.startswith("_") or n.startswith("__")}
                  | set(_EXPORTS))


__all__ = list(_EXPORTS)
