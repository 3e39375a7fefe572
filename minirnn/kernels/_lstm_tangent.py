"""LSTM tangents in Numba: the twin of forward_jvp / backward_jvp in
minirnn/cells/lstm.py (same signatures, same LSTMTangentCache; see _tangent.py).

Forward tangent: ż_t = [ẋ W_ih^T + x Ẇ_ih^T + h_{t-1} Ẇ_hh^T + ḃ] (all steps, BLAS)
                      + ḣ_{t-1} W_hh^T (the loop), then the gates', ċ_t's and ṙ_t's rules,
                 ḣ_t = [r_t Ẇ_hr^T] (all steps) + ṙ_t W_hr^T (the loop)   (proj; else ṙ_t)
Tangent of the backward, per step (the loop): R{dr} from R{dh}, the gate rules of the
reference's docstring, R{dh_{t-1}} = R{dz} W_hh + dz Ẇ_hh; the weight gradients after it.
"""
from __future__ import annotations

import numpy as np

from ..cells import lstm as _reference
from ..cells.lstm import LSTMTangentCache, split_gates
from ._common import (c, carry_back, finish_row, jit, loop_path, matvec_add, upstream_row,
                      valid_or_ones, zero_rows)
from ._tangent import input_side, prev_states, tangent_weight_grads
from ._wcache import transposed


@jit
def _loop_forward_jvp(zd, gates, cx, cxd, tanh_c, hxd, r_dot, rwd, w_hhT, w_hrT, proj, valid,
                      out_dot):
    """zd (T, B, 4H): ż's non-recurrent part on entry, i̇, ḟ, ġ, ȯ on exit. cx (T+1, B, H):
    c_0, c_1, ...; cxd, hxd (T+1, ., .): ċ_0, ḣ_0 in row 0 on entry, ċ_t, ḣ_t in row t+1 on
    exit. r_dot (T, B, H) filled; rwd (T, B, P): r_t Ẇ_hr^T (proj only)."""
    T, B, G = zd.shape
    H = G // 4
    one = zd.dtype.type(1.0)
    for t in range(T):
        matvec_add(zd, t, hxd, t, w_hhT)                  # += ḣ_{t-1} W_hh^T
        for b in range(B):
            for j in range(H):
                i, f = gates[t, b, j], gates[t, b, H + j]
                g, o = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                i_d = i * (one - i) * zd[t, b, j]
                f_d = f * (one - f) * zd[t, b, H + j]
                g_d = (one - g * g) * zd[t, b, 2 * H + j]
                o_d = o * (one - o) * zd[t, b, 3 * H + j]
                zd[t, b, j], zd[t, b, H + j], zd[t, b, 2 * H + j], zd[t, b, 3 * H + j] = \
                    i_d, f_d, g_d, o_d
                c_d = f_d * cx[t, b, j] + f * cxd[t, b, j] + i_d * g + i * g_d
                cxd[t + 1, b, j] = c_d
                tc = tanh_c[t, b, j]
                r_dot[t, b, j] = o_d * tc + o * (one - tc * tc) * c_d
        if proj:
            for b in range(B):
                for p in range(hxd.shape[2]):
                    hxd[t + 1, b, p] = rwd[t, b, p]
            matvec_add(hxd, t + 1, r_dot, t, w_hrT)       # += ṙ_t W_hr^T
        else:
            for b in range(B):
                for j in range(H):
                    hxd[t + 1, b, j] = r_dot[t, b, j]
        for b in range(B):
            if not valid[t, b]:                           # finished: ċ carried too
                for j in range(H):
                    cxd[t + 1, b, j] = cxd[t, b, j]
            finish_row(hxd, t, b, valid, out_dot)


@jit
def _loop_backward_jvp(d_out, d_out_dot, dhn, dhn_dot, dcn, dcn_dot, gates, gates_dot, cx, cxd,
                       tanh_c, w_hh, w_hh_dot, w_hr, w_hr_dot, proj, valid, dh, dh_dot, dz,
                       dz_dot, dr, dr_dot, dhp, dhp_dot, dcp, dcp_dot):
    """dhn, dcn (1, B, .) and their _dot: dL/dh_T, dL/dc_T and tangents on entry, those of
    h_0, c_0 on exit. dh, dh_dot (T, B, P), dz, dz_dot (T, B, 4H) filled. Scratch: dr, dr_dot,
    dcp, dcp_dot (1, B, H), dhp, dhp_dot (1, B, P)."""
    T, B, G = dz.shape
    H = G // 4
    zero, one, two = dz.dtype.type(0.0), dz.dtype.type(1.0), dz.dtype.type(2.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            upstream_row(dh, t, b, dhn, d_out, valid)
            upstream_row(dh_dot, t, b, dhn_dot, d_out_dot, valid)
        if proj:                                          # dr = dh W_hr, and its tangent
            zero_rows(dr, 0)
            matvec_add(dr, 0, dh, t, w_hr)
            zero_rows(dr_dot, 0)
            matvec_add(dr_dot, 0, dh_dot, t, w_hr)
            matvec_add(dr_dot, 0, dh, t, w_hr_dot)
        else:
            for b in range(B):
                for j in range(H):
                    dr[0, b, j], dr_dot[0, b, j] = dh[t, b, j], dh_dot[t, b, j]
        for b in range(B):
            v = valid[t, b]
            for j in range(H):
                dc_t = dcn[0, b, j] if v else zero
                dc_t_d = dcn_dot[0, b, j] if v else zero
                i, f = gates[t, b, j], gates[t, b, H + j]
                g, o = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                i_d, f_d = gates_dot[t, b, j], gates_dot[t, b, H + j]
                g_d, o_d = gates_dot[t, b, 2 * H + j], gates_dot[t, b, 3 * H + j]
                tc = tanh_c[t, b, j]
                dtanh = one - tc * tc
                tc_d = dtanh * cxd[t + 1, b, j]
                d, d_d = dr[0, b, j], dr_dot[0, b, j]
                do, do_d = d * tc, d_d * tc + d * tc_d
                dc = dc_t + d * o * dtanh
                dc_d = dc_t_d + d_d * o * dtanh + d * o_d * dtanh - two * d * o * tc * tc_d
                cp, cp_d = cx[t, b, j], cxd[t, b, j]
                di, df, dg = dc * g, dc * cp, dc * i
                di_d, df_d, dg_d = dc_d * g + dc * g_d, dc_d * cp + dc * cp_d, dc_d * i + dc * i_d
                dz[t, b, j] = di * i * (one - i)
                dz[t, b, H + j] = df * f * (one - f)
                dz[t, b, 2 * H + j] = dg * (one - g * g)
                dz[t, b, 3 * H + j] = do * o * (one - o)
                dz_dot[t, b, j] = di_d * i * (one - i) + di * (one - two * i) * i_d
                dz_dot[t, b, H + j] = df_d * f * (one - f) + df * (one - two * f) * f_d
                dz_dot[t, b, 2 * H + j] = dg_d * (one - g * g) - two * dg * g * g_d
                dz_dot[t, b, 3 * H + j] = do_d * o * (one - o) + do * (one - two * o) * o_d
                dcp[0, b, j], dcp_dot[0, b, j] = dc * f, dc_d * f + dc * f_d
        zero_rows(dhp, 0)
        matvec_add(dhp, 0, dz, t, w_hh)                   # dz W_hh
        zero_rows(dhp_dot, 0)
        matvec_add(dhp_dot, 0, dz_dot, t, w_hh)           # R{dz} W_hh + dz Ẇ_hh
        matvec_add(dhp_dot, 0, dz, t, w_hh_dot)
        carry_back(dhn, dhp, t, valid)
        carry_back(dhn_dot, dhp_dot, t, valid)
        carry_back(dcn, dcp, t, valid)
        carry_back(dcn_dot, dcp_dot, t, valid)


def _r(cache, gates_dot=None, c_dot=None):
    """r_t = o tanh(c_t) (T, B, H), or its tangent ṙ_t from the gate and cell tangents."""
    _, _, _, o = split_gates(cache.gates)
    tanh_c = np.tanh(cache.c)
    if gates_dot is None:
        return o * tanh_c
    return split_gates(gates_dot)[3] * tanh_c + o * (1.0 - tanh_c * tanh_c) * c_dot


def forward_jvp(cache, x_dot=None, h0_dot=None, c0_dot=None, w_ih_dot=None, w_hh_dot=None,
                b_ih_dot=None, b_hh_dot=None, w_hr_dot=None):
    """As the reference: -> ȯut (T, B, P), ḣ_T (B, P), ċ_T (B, H), LSTMTangentCache."""
    T, B, _ = cache.x.shape
    H, P = cache.c0.shape[1], cache.h0.shape[1]
    if not loop_path(B, 4, H, P):
        return _reference.forward_jvp(cache, x_dot, h0_dot, c0_dot, w_ih_dot, w_hh_dot,
                                      b_ih_dot, b_hh_dot, w_hr_dot)
    z, dt, proj = _reference._or_zeros, cache.gates.dtype, cache.w_hr is not None
    x_dot, h0_dot, c0_dot = z(x_dot, cache.x), z(h0_dot, cache.h0), z(c0_dot, cache.c0)
    w_ih_dot, w_hh_dot = z(w_ih_dot, cache.w_ih), z(w_hh_dot, cache.w_hh)
    w_hr_dot = z(w_hr_dot, cache.w_hr) if proj else None
    b_dot = None
    if cache.has_bias:
        b_dot = z(b_ih_dot, cache.w_hh[:, 0]) + z(b_hh_dot, cache.w_hh[:, 0])
    zd = input_side(cache.x, x_dot, cache.w_ih, w_ih_dot, b_dot)
    zd += (prev_states(cache.h0, cache.h).reshape(T * B, P) @ w_hh_dot.T).reshape(T, B, 4 * H)
    cx = np.concatenate([cache.c0[None], cache.c], axis=0)
    cxd, hxd = np.empty((T + 1, B, H), dt), np.empty((T + 1, B, P), dt)
    cxd[0], hxd[0] = c0_dot, h0_dot
    r_dot, out_dot = np.empty((T, B, H), dt), np.empty((T, B, P), dt)
    if proj:
        rwd = (_r(cache).reshape(T * B, H) @ w_hr_dot.T).reshape(T, B, P)
        w_hrT = transposed(cache.w_hr)
    else:
        rwd, w_hrT = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt)
    _loop_forward_jvp(zd, c(cache.gates), cx, cxd, c(np.tanh(cache.c)), hxd, r_dot, rwd,
                      transposed(cache.w_hh), w_hrT, proj, valid_or_ones(cache.valid, T, B),
                      out_dot)
    tc = LSTMTangentCache(x_dot, h0_dot, c0_dot, zd, cxd[1:], hxd[1:], w_ih_dot, w_hh_dot,
                          w_hr_dot)
    return out_dot, hxd[T].copy(), cxd[T].copy(), tc


def backward_jvp(cache, tcache, d_out, d_out_dot, d_hT=None, d_cT=None, d_hT_dot=None,
                 d_cT_dot=None, input_grad=True):
    """As the reference: -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr), tangents."""
    T, B, _ = cache.x.shape
    H, P = cache.c0.shape[1], cache.h0.shape[1]
    if not loop_path(B, 4, H, P):
        return _reference.backward_jvp(cache, tcache, d_out, d_out_dot, d_hT, d_cT, d_hT_dot,
                                       d_cT_dot, input_grad)
    dt, proj, tc = cache.gates.dtype, cache.w_hr is not None, tcache
    state = lambda n, v: np.zeros((1, B, n), dt) if v is None else c(v)[None].copy()  # noqa
    dhn, dhn_dot, dcn, dcn_dot = state(P, d_hT), state(P, d_hT_dot), state(H, d_cT), \
        state(H, d_cT_dot)
    d_out_dot = np.zeros_like(d_out) if d_out_dot is None else d_out_dot
    dh, dh_dot = np.empty((T, B, P), dt), np.empty((T, B, P), dt)
    dz, dz_dot = np.empty((T, B, 4 * H), dt), np.empty((T, B, 4 * H), dt)
    cx = np.concatenate([cache.c0[None], cache.c], axis=0)
    cxd = np.concatenate([tc.c0_dot[None], tc.c_dot], axis=0)
    w_hr = c(cache.w_hr) if proj else np.zeros((1, 1), dt)
    w_hr_dot = c(tc.w_hr_dot) if proj else w_hr
    scratch = [np.empty((1, B, n), dt) for n in (H, H, P, P, H, H)]
    _loop_backward_jvp(c(d_out), c(d_out_dot), dhn, dhn_dot, dcn, dcn_dot, c(cache.gates),
                       c(tc.gates_dot), cx, cxd, c(np.tanh(cache.c)), c(cache.w_hh),
                       c(tc.w_hh_dot), w_hr, w_hr_dot, proj, valid_or_ones(cache.valid, T, B),
                       dh, dh_dot, dz, dz_dot, *scratch)
    g, g_dot = tangent_weight_grads(dz, dz_dot, cache, tc, tc.h_dot, input_grad=input_grad)
    dw_hr = dw_hr_dot = None
    if proj:
        r, r_dot = _r(cache).reshape(T * B, H), _r(cache, tc.gates_dot, tc.c_dot).reshape(T * B, H)
        dh2, dh2_dot = dh.reshape(T * B, P), dh_dot.reshape(T * B, P)
        dw_hr, dw_hr_dot = dh2.T @ r, dh2_dot.T @ r + dh2.T @ r_dot
    return ((g[0], dhn[0], dcn[0]) + g[1:] + (dw_hr,),
            (g_dot[0], dhn_dot[0], dcn_dot[0]) + g_dot[1:] + (dw_hr_dot,))
