"""GRU tangents in Numba: the twin of forward_jvp / backward_jvp in minirnn/cells/gru.py
(same signatures, same GRUTangentCache; see _tangent.py).

Forward tangent: ġi_t = ẋ W_ih^T + x Ẇ_ih^T + ḃ_ih (all steps, BLAS);
    ġh_t = [h_{t-1} Ẇ_hh^T + ḃ_hh] (all steps) + ḣ_{t-1} W_hh^T (the loop); then ṙ, ż, ṅ, ḣ_t
Tangent of the backward, per step (the loop): the reference's gate rules, then
    R{dh_{t-1}} = R{dh} z + dh ż + R{dgh} W_hh + dgh Ẇ_hh;  the weight gradients after it.
"""
from __future__ import annotations

import numpy as np

from ..cells import gru as _reference
from ..cells.gru import GRUTangentCache
from ._common import (c, carry_back, finish_row, jit, loop_path, matvec_add, upstream_row,
                      valid_or_ones)
from ._tangent import input_side, prev_states, tangent_weight_grads
from ._wcache import transposed


@jit
def _loop_forward_jvp(gid, ghd, gates, hn, hx, hxd, w_hhT, valid, hn_dot, out_dot):
    """gid (T, B, 3H): ġi_t on entry, ṙ, ż, ṅ on exit; ghd (T, B, 3H): ġh_t's non-recurrent
    part on entry, ġh_t on exit. hx (T+1, B, H): h_0, h_1, ...; hxd: ḣ_0 in row 0 on entry,
    ḣ_t in row t+1 on exit. hn_dot (T, B, H) filled."""
    T, B, G = gid.shape
    H = G // 3
    one = gid.dtype.type(1.0)
    for t in range(T):
        matvec_add(ghd, t, hxd, t, w_hhT)                 # += ḣ_{t-1} W_hh^T
        for b in range(B):
            for j in range(H):
                r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                r_d = r * (one - r) * (gid[t, b, j] + ghd[t, b, j])
                z_d = z * (one - z) * (gid[t, b, H + j] + ghd[t, b, H + j])
                hn_d = ghd[t, b, 2 * H + j]
                n_d = (one - n * n) * (gid[t, b, 2 * H + j] + r_d * hn[t, b, j] + r * hn_d)
                gid[t, b, j], gid[t, b, H + j], gid[t, b, 2 * H + j] = r_d, z_d, n_d
                hn_dot[t, b, j] = hn_d
                hxd[t + 1, b, j] = (one - z) * n_d + z * hxd[t, b, j] + z_d * (hx[t, b, j] - n)
            finish_row(hxd, t, b, valid, out_dot)


@jit
def _loop_backward_jvp(d_out, d_out_dot, dhn, dhn_dot, gates, gates_dot, hn, hn_dot, hx, hxd,
                       w_hh, w_hh_dot, valid, dh, dh_dot, dgi, dgi_dot, dgh, dgh_dot, dhp,
                       dhp_dot):
    """dhn, dhn_dot (1, B, H): dL/dh_T and its tangent on entry, those of h_0 on exit.
    dgi, dgh and their _dot (T, B, 3H) filled. Scratch: dh, dh_dot (T, B, H), dhp, dhp_dot."""
    T, B, G = dgi.shape
    H = G // 3
    one, two = dgi.dtype.type(1.0), dgi.dtype.type(2.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)
            upstream_row(dh_dot, t, b, dhn_dot, d_out_dot, valid)
            for j in range(H):
                d, d_d = dh[t, b, j], dh_dot[t, b, j]
                r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                r_d, z_d, n_d = gates_dot[t, b, j], gates_dot[t, b, H + j], \
                    gates_dot[t, b, 2 * H + j]
                hp, hp_d = hx[t, b, j], hxd[t, b, j]
                dn, dn_d = d * (one - z), d_d * (one - z) - d * z_d
                dz, dz_d = d * (hp - n), d_d * (hp - n) + d * (hp_d - n_d)
                da_n = dn * (one - n * n)
                da_n_d = dn_d * (one - n * n) - two * dn * n * n_d
                dr, dr_d = da_n * hn[t, b, j], da_n_d * hn[t, b, j] + da_n * hn_dot[t, b, j]
                da_r = dr * r * (one - r)
                da_r_d = dr_d * r * (one - r) + dr * (one - two * r) * r_d
                da_z = dz * z * (one - z)
                da_z_d = dz_d * z * (one - z) + dz * (one - two * z) * z_d
                dgi[t, b, j] = dgh[t, b, j] = da_r
                dgi[t, b, H + j] = dgh[t, b, H + j] = da_z
                dgi[t, b, 2 * H + j], dgh[t, b, 2 * H + j] = da_n, da_n * r
                dgi_dot[t, b, j] = dgh_dot[t, b, j] = da_r_d
                dgi_dot[t, b, H + j] = dgh_dot[t, b, H + j] = da_z_d
                dgi_dot[t, b, 2 * H + j] = da_n_d
                dgh_dot[t, b, 2 * H + j] = da_n_d * r + da_n * r_d
                dhp[0, b, j], dhp_dot[0, b, j] = d * z, d_d * z + d * z_d
        matvec_add(dhp, 0, dgh, t, w_hh)                  # dh z + dgh W_hh
        matvec_add(dhp_dot, 0, dgh_dot, t, w_hh)          # ... + R{dgh} W_hh + dgh Ẇ_hh
        matvec_add(dhp_dot, 0, dgh, t, w_hh_dot)
        carry_back(dhn, dhp, t, valid)
        carry_back(dhn_dot, dhp_dot, t, valid)


def forward_jvp(cache, x_dot=None, h0_dot=None, w_ih_dot=None, w_hh_dot=None, b_ih_dot=None,
                b_hh_dot=None):
    """As the reference: -> ȯut (T, B, H), ḣ_T (B, H), GRUTangentCache."""
    T, B, _ = cache.x.shape
    H = cache.h0.shape[1]
    if not loop_path(B, 3, H, H):
        return _reference.forward_jvp(cache, x_dot, h0_dot, w_ih_dot, w_hh_dot, b_ih_dot,
                                      b_hh_dot)
    z, dt = _reference._or_zeros, cache.gates.dtype
    x_dot, h0_dot = z(x_dot, cache.x), z(h0_dot, cache.h0)
    w_ih_dot, w_hh_dot = z(w_ih_dot, cache.w_ih), z(w_hh_dot, cache.w_hh)
    like = cache.w_hh[:, 0]                                 # (G*H,): a bias's shape
    b_ih_dot = z(b_ih_dot, like) if cache.has_bias else None
    gid = input_side(cache.x, x_dot, cache.w_ih, w_ih_dot, b_ih_dot)
    ghd = (prev_states(cache.h0, cache.h).reshape(T * B, H) @ w_hh_dot.T).reshape(T, B, 3 * H)
    if cache.has_bias:
        ghd += z(b_hh_dot, like)
    hx = np.concatenate([cache.h0[None], cache.h], axis=0)
    hxd = np.empty((T + 1, B, H), dt)
    hxd[0] = h0_dot
    hn_dot, out_dot = np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    _loop_forward_jvp(gid, ghd, c(cache.gates), c(cache.hn), hx, hxd, transposed(cache.w_hh),
                      valid_or_ones(cache.valid, T, B), hn_dot, out_dot)
    tc = GRUTangentCache(x_dot, h0_dot, gid, hn_dot, hxd[1:], w_ih_dot, w_hh_dot)
    return out_dot, hxd[T].copy(), tc


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_hT_dot=None, input_grad=True):
    """As the reference: -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) and their tangents."""
    T, B, _ = cache.x.shape
    H = cache.h0.shape[1]
    if not loop_path(B, 3, H, H):
        return _reference.backward_jvp(cache, tcache, d_out, d_out_dot, d_hT, d_hT_dot,
                                       input_grad)
    dt, tc = cache.gates.dtype, tcache
    state = lambda v: np.zeros((1, B, H), dt) if v is None else c(v)[None].copy()  # noqa
    dhn, dhn_dot = state(d_hT), state(d_hT_dot)
    d_out_dot = np.zeros_like(d_out) if d_out_dot is None else d_out_dot
    arrays = [np.empty((T, B, n), dt) for n in (H, H, 3 * H, 3 * H, 3 * H, 3 * H)]
    dh, dh_dot, dgi, dgi_dot, dgh, dgh_dot = arrays
    hx = np.concatenate([cache.h0[None], cache.h], axis=0)
    hxd = np.concatenate([tc.h0_dot[None], tc.h_dot], axis=0)
    _loop_backward_jvp(c(d_out), c(d_out_dot), dhn, dhn_dot, c(cache.gates), c(tc.gates_dot),
                       c(cache.hn), c(tc.hn_dot), hx, hxd, c(cache.w_hh), c(tc.w_hh_dot),
                       valid_or_ones(cache.valid, T, B), *arrays, np.empty_like(dhn),
                       np.empty_like(dhn))
    g, g_dot = tangent_weight_grads(dgi, dgi_dot, cache, tc, tc.h_dot, dgh, dgh_dot, input_grad)
    return (g[0], dhn[0]) + g[1:], (g_dot[0], dhn_dot[0]) + g_dot[1:]
