"""JAX as a second peer: a plain JAX layer, `jit` over `lax.scan`, on the benchmark's problems.

    p = make_problem("lstm", 50, 1, 64, 128, "float64")
    e = jax_engine(p)          # .fwd() .fwd_bwd() .output() .memory() .check()

What a JAX user writes for one layer: the input projection as one matmul over all T*B rows
before the scan (XLA would not hoist it out of the loop by itself), one step per scan
iteration, `jax.jit(jax.grad(...))` for forward+backward. The weights are the problem's, in
torch's layout and gate order (minirnn's too), so no re-ordering is needed; the cell's step is
picked by the registry's module name (RNN, LSTM, GRU), as torch picks its nn class.

check() compares the forward output and the gradients with minirnn's NumPy reference before
anything is timed: a wrong peer is no peer. jax is imported only here, and only in the
benchmark's jax worker and tests (the extra `jax`: pip install minirnn[jax]).
"""
from __future__ import annotations

import numpy as np

from ..cells import get_cell

# float32 through 100 steps of a recurrence: XLA's own transcendentals and summation order
# differ from NumPy's, so agreement is to a few ulps per step, not bitwise
CHECK_RTOL = {"float32": 2e-4, "float64": 1e-10}


def _elman(jnp, act):
    def step(w_hh, b_hh, state, xw_t):
        (h,) = state
        h = act(xw_t + h @ w_hh.T + b_hh)
        return (h,), h
    return step


def _lstm(jnp, jax):
    def step(w_hh, b_hh, state, xw_t):
        h, c = state
        z = xw_t + h @ w_hh.T + b_hh
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    return step


def _gru(jnp, jax):
    def step(w_hh, b_hh, state, xw_t):
        (h,) = state
        gh = h @ w_hh.T + b_hh                       # torch's GRU: r multiplies W_hn h + b_hn
        xr, xz, xn = jnp.split(xw_t, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return (h,), h
    return step


def make_step(spec, jax, jnp):
    """The one-step function for a registry cell: step(w_hh, b_hh, state, xw_t) ->
    (state, h_t), xw_t = x_t W_ih^T + b_ih."""
    if spec.module == "LSTM":
        return _lstm(jnp, jax)
    if spec.module == "GRU":
        return _gru(jnp, jax)
    acts = {"tanh": jnp.tanh, "relu": jax.nn.relu}
    return _elman(jnp, acts[spec.nonlinearity or "tanh"])


class JaxEngine:
    """One layer, one direction, in JAX on problem p (jit over lax.scan; the CPU device unless
    `device` names another platform)."""

    def __init__(self, p, device="cpu"):
        import jax
        import jax.numpy as jnp
        if p["x"].dtype == np.float64 and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)      # float64 rows stay float64
        self.jax, self.p = jax, p
        self.spec = get_cell(p["cell"])
        self.device = jax.devices(device)[0]
        put = lambda a: jax.device_put(jnp.asarray(a), self.device)          # noqa: E731
        self.params = {k: put(v) for k, v in p["params"].items()}
        self.x, self.d_out = put(p["x"]), put(p["d_out"])
        self.state = tuple(put(s) for s in p["state"])
        step = make_step(self.spec, jax, jnp)

        def forward(params, x, state):
            T, B, I = x.shape
            xw = (x.reshape(T * B, I) @ params["weight_ih"].T + params["bias_ih"]
                  ).reshape(T, B, -1)
            def body(s, xw_t):
                return step(params["weight_hh"], params["bias_hh"], s, xw_t)
            _, out = jax.lax.scan(body, state, xw)
            return out

        def loss(params, x, state, d_out):
            return jnp.sum(forward(params, x, state) * d_out)

        self._fwd = jax.jit(forward)
        self._grad = jax.jit(jax.grad(loss, argnums=(0, 1)))

    def fwd(self):
        return self._fwd(self.params, self.x, self.state).block_until_ready()

    def grads(self):
        """-> ({param name: dL/dparam}, dL/dx) with L = sum(out * d_out), NumPy arrays."""
        g = self._grad(self.params, self.x, self.state, self.d_out)
        self.jax.block_until_ready(g)
        return {k: np.asarray(v) for k, v in g[0].items()}, np.asarray(g[1])

    def fwd_bwd(self):
        self.jax.block_until_ready(self._grad(self.params, self.x, self.state, self.d_out))

    def output(self):
        return np.asarray(self.fwd())

    def check(self, rtol=None):
        """Raise AssertionError (naming the tensor) unless the forward output, dL/dx and every
        weight gradient equal minirnn's NumPy reference within rtol (CHECK_RTOL by dtype).
        -> {name: relative error}."""
        from ..functional.backends import get_backend
        from ..testing import assert_close
        dt = self.p["x"].dtype.name
        rtol = CHECK_RTOL[dt] if rtol is None else rtol
        be = get_backend("numpy")
        p = self.p
        out, _, cache = be.forward(self.spec, p["x"], p["state"], p["params"])
        dx, _, dparams, _ = be.backward(self.spec, cache, p["d_out"],
                                        (None,) * len(self.spec.state_names))
        gp, gx = self.grads()
        errs = {"out": assert_close(self.output(), out, rtol=rtol, name=f"jax {dt} output")[1],
                "dx": assert_close(gx, dx, rtol=rtol, name=f"jax {dt} dL/dx")[1]}
        for k, v in gp.items():
            errs[k] = assert_close(v, dparams[k], rtol=rtol, name=f"jax {dt} dL/d{k}")[1]
        return errs

    def memory(self):
        """JAX's saved residuals are XLA's business: not measured (None), like torch's peak."""
        return dict(activation_bytes=None, activation_per_TBH=None, peak_bytes=None)


def jax_engine(p, device="cpu"):
    return JaxEngine(p, device)


def jax_gemm_peak(dtype, n, timing, device="cpu"):
    """GFLOP/s of a jitted (n, n) @ (n, n) in JAX on `device` (XLA's CPU GEMM: Eigen or
    oneDNN, its own thread pool)."""
    import jax
    import jax.numpy as jnp

    from .engines import time_call
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    dev = jax.devices(device)[0]
    a = jax.device_put(jnp.asarray(rng.standard_normal((n, n)).astype(dtype)), dev)
    b = jax.device_put(jnp.asarray(rng.standard_normal((n, n)).astype(dtype)), dev)
    mm = jax.jit(lambda u, v: u @ v)
    t, _ = time_call(lambda: mm(a, b).block_until_ready(), timing)
    return 2 * n ** 3 / t / 1e9
