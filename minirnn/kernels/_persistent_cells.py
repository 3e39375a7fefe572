"""The cells of the persistent kernel (_persistent.py: the panels, products, threads, barrier):
each cell adds its gate math per panel of units and its time loop, one part per thread.

    LSTM (no projection)   z_t += h_{t-1} W_hh^T; i, f, g, o; c_t, h_t        (lstm.py)
    GRU                    gh = b_hh + h_{t-1} W_hh^T (a scratch row: r multiplies its n block
                           hn AFTER it is formed); r, z, n; h_t = (1-z) n + z h_{t-1}   (gru.py)
    Elman RNN              a_t += h_{t-1} W_hh^T; h_t = tanh(a_t) or relu(a_t)          (rnn.py)

Backward, per step and panel: dL/dh_t = dz_{t+1} W_hh (+ dh_{t+1} z_{t+1}, the GRU's direct
path) carried past a sequence's end, then the gate derivatives of the panel's units. States
are kept as (T+1, B, H) with h0 (c0) in row 0, as the loop path; the gate math is the loop
path's, in the reference's order of operations, so caches equal the loop path's to round-off.
"""
from __future__ import annotations

import numpy as np

from ._barrier import barrier
from ._common import jit
from ._persistent import (backward_panels, carry_units, finish_units, forward_panels,
                          gate_product, run_parts, unit_product, upstream_units)
from ._vmath import vsigmoid, vtanh


# ----------------------------------------------------------------------------
# LSTM

@jit
def _lstm_forward_units(gates, t, hx, cx, valid, out, j0, Up):
    """The gate math and state update of units j0 .. j0+Up-1 at step t (gates holds z_t)."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 4)
    j0 = max(0, j0)
    for b in range(B):                    # one short loop per stage: LLVM vectorises each
        for u in range(Up):
            gates[t, b, j0 + u] = vsigmoid(gates[t, b, j0 + u])                    # i
        for u in range(Up):
            gates[t, b, H + j0 + u] = vsigmoid(gates[t, b, H + j0 + u])            # f
        for u in range(Up):
            gates[t, b, 2 * H + j0 + u] = vtanh(gates[t, b, 2 * H + j0 + u])      # g
        for u in range(Up):
            gates[t, b, 3 * H + j0 + u] = vsigmoid(gates[t, b, 3 * H + j0 + u])   # o
        for u in range(Up):
            cx[t + 1, b, j0 + u] = (gates[t, b, H + j0 + u] * cx[t, b, j0 + u]
                                    + gates[t, b, j0 + u] * gates[t, b, 2 * H + j0 + u])
        for u in range(Up):
            hx[t + 1, b, j0 + u] = gates[t, b, 3 * H + j0 + u] * vtanh(cx[t + 1, b, j0 + u])
        if not valid[t, b]:                               # finished: carry c (h below)
            for u in range(Up):
                cx[t + 1, b, j0 + u] = cx[t, b, j0 + u]
        finish_units(hx, t, b, valid, out, j0, Up)


@jit
def _lstm_backward_units(d_out, dhn, dcn, c0, gates, cs, valid, dh, dc, dz, t, j0, Up):
    """dL/dh_t, the gate derivatives dz_t and dc_t, dc_{t-1} of units j0 .. j0+Up-1."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 4)
    j0 = max(0, j0)
    zero, one = gates.dtype.type(0.0), gates.dtype.type(1.0)
    cp, tp = (c0, 0) if t == 0 else (cs, t - 1)           # c_{t-1}
    for b in range(B):
        upstream_units(dh, dhn, d_out, valid, t, b, j0, Up)
        for u in range(Up):
            tanh_c = vtanh(cs[t, b, j0 + u])
            o = gates[t, b, 3 * H + j0 + u]
            d = dh[t, b, j0 + u]
            dc[t, b, j0 + u] = dcn[b, j0 + u] + d * o * (one - tanh_c * tanh_c)
            dz[t, b, 3 * H + j0 + u] = d * tanh_c * o * (one - o)
        if not valid[t, b]:                               # dL/dc_t from step t+1 is cut here
            for u in range(Up):
                tanh_c = vtanh(cs[t, b, j0 + u])
                o = gates[t, b, 3 * H + j0 + u]
                dc[t, b, j0 + u] = zero + dh[t, b, j0 + u] * o * (one - tanh_c * tanh_c)
        for u in range(Up):
            i, f = gates[t, b, j0 + u], gates[t, b, H + j0 + u]
            g = gates[t, b, 2 * H + j0 + u]
            dcj = dc[t, b, j0 + u]
            dz[t, b, j0 + u] = dcj * g * i * (one - i)
            dz[t, b, H + j0 + u] = dcj * cp[tp, b, j0 + u] * f * (one - f)
            dz[t, b, 2 * H + j0 + u] = dcj * i * (one - g * g)
        if valid[t, b]:
            for u in range(Up):
                dcn[b, j0 + u] = dc[t, b, j0 + u] * gates[t, b, H + j0 + u]
        else:                                             # carried state: its gradient passes
            for u in range(Up):
                dcn[b, j0 + u] = dc[t, b, j0 + u] * gates[t, b, H + j0 + u] + dcn[b, j0 + u]


@jit
def _lstm_forward_part(gates, hx, cx, wp, U, valid, out, me, n, flags):
    """Thread me of n: panels me, me+n, ... of every step, a barrier after each step.
    gates (T, B, 4H): x W_ih^T + b on entry, the activated i, f, g, o on exit. hx, cx
    (T+1, B, H): h0, c0 in row 0 on entry, h_t, c_t in row t+1 after. out (T, B, H)."""
    T, B, G = gates.shape
    H = G // 4
    for t in range(T):
        for p in range(me, wp.shape[0], n):
            gate_product(gates, t, hx, t, wp, p, U, H)
            _lstm_forward_units(gates, t, hx, cx, valid, out, p * U, min(U, H - p * U))
        barrier(flags, me, n, t + 1)                  # step t+1 reads all of h_t


@jit
def _lstm_backward_part(d_out, dhn, dcn, c0, gates, cs, wb, U, valid, dh, dc, dz, dhp, me, n,
                        flags):
    """BPTT, thread me of n (panels as the forward). d_out (T, B, H); dhn, dcn (B, H): dL/dh_T,
    dL/dc_T on entry, dL/dh_0, dL/dc_0 on exit; c0 (1, B, H); gates, cs from the forward; dh,
    dc (T, B, H), dz (T, B, 4H) filled; dhp (B, H) scratch (dz_{t+1} W_hh)."""
    T, B, G = gates.shape
    H = G // 4
    for t in range(T - 1, -1, -1):
        for p in range(me, wb.shape[0], n):
            if t < T - 1:                                 # dL/dh_t through step t+1
                unit_product(dhp, dz, t + 1, wb, p, U)
                carry_units(dhn, dhp, valid, t + 1, p * U, min(U, H - p * U))
            _lstm_backward_units(d_out, dhn, dcn, c0, gates, cs, valid, dh, dc, dz, t, p * U,
                                 min(U, H - p * U))
        barrier(flags, me, n, T - t)                      # step t-1 reads all of dz_t
    for p in range(me, wb.shape[0], n):                   # dL/dh_0 = dz_0 W_hh
        unit_product(dhp, dz, 0, wb, p, U)
        carry_units(dhn, dhp, valid, 0, p * U, min(U, H - p * U))


def lstm_forward(gates, h0, c0, w_hh, valid, threads=None):
    """The persistent forward: gates (T, B, 4H) (x W_ih^T + b, activated in place), h0, c0
    (B, H), w_hh (4H, H), valid (T, B) bool -> hx, cx (T+1, B, H) (row 0 the initial
    states), out (T, B, H). threads: how many threads share the panels (default Numba's
    count, numba.get_num_threads())."""
    T, B, G = gates.shape
    n, U, wp = forward_panels(w_hh, 4, threads)
    hx = np.empty((T + 1, B, G // 4), dtype=gates.dtype)
    cx = np.empty_like(hx)
    hx[0], cx[0] = h0, c0
    out = np.empty((T, B, G // 4), dtype=gates.dtype)
    run_parts(_lstm_forward_part, (gates, hx, cx, wp, U, valid, out), n)
    return hx, cx, out


def lstm_backward(d_out, dh_next, dc_next, c0, gates, cs, w_hh, valid, dh, dc, dz, threads=None):
    """The persistent BPTT (arguments as _lstm_backward_part's; dh_next, dc_next (B, H) updated
    in place to dL/dh_0, dL/dc_0)."""
    n, U, wb = backward_panels(w_hh, threads)
    run_parts(_lstm_backward_part, (d_out, dh_next, dc_next, c0, gates, cs, wb, U, valid, dh,
                                    dc, dz, np.empty_like(dh_next)), n)
    return dh_next, dc_next


# ----------------------------------------------------------------------------
# GRU

@jit
def _gru_forward_units(gates, gh, t, hx, hn, valid, out, j0, Up):
    """Units j0 .. j0+Up-1 at step t: gates holds gi_t, gh (1, B, 3H) b_hh + h_{t-1} W_hh^T.
    -> the activated r, z, n in gates, hn_t, h_t (in hx's row t+1), out_t."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 3)
    j0 = max(0, j0)
    one = gates.dtype.type(1.0)
    for b in range(B):
        for u in range(Up):
            gates[t, b, j0 + u] = vsigmoid(gates[t, b, j0 + u] + gh[0, b, j0 + u])          # r
        for u in range(Up):
            gates[t, b, H + j0 + u] = vsigmoid(gates[t, b, H + j0 + u] + gh[0, b, H + j0 + u])
        for u in range(Up):
            hn[t, b, j0 + u] = gh[0, b, 2 * H + j0 + u]
        for u in range(Up):               # r * hn via out as scratch (see _gru._step_forward)
            out[t, b, j0 + u] = gates[t, b, j0 + u] * hn[t, b, j0 + u]
        for u in range(Up):
            gates[t, b, 2 * H + j0 + u] = vtanh(gates[t, b, 2 * H + j0 + u] + out[t, b, j0 + u])
        for u in range(Up):
            z = gates[t, b, H + j0 + u]
            hx[t + 1, b, j0 + u] = (one - z) * gates[t, b, 2 * H + j0 + u] + z * hx[t, b, j0 + u]
        finish_units(hx, t, b, valid, out, j0, Up)


@jit
def _gru_backward_units(d_out, dhn, h0, h, gates, hn, valid, dh, dgi, dgh, t, j0, Up):
    """dL/dh_t and the gate derivatives dgi_t, dgh_t of units j0 .. j0+Up-1 (the reference's
    order of operations)."""
    B, G = gates.shape[1], gates.shape[2]
    H = max(0, G // 3)
    j0 = max(0, j0)
    one = gates.dtype.type(1.0)
    hp, tp = (h0, 0) if t == 0 else (h, t - 1)            # h_{t-1}
    for b in range(B):
        upstream_units(dh, dhn, d_out, valid, t, b, j0, Up)
        for u in range(Up):
            j = j0 + u
            r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
            d = dh[t, b, j]
            da_n = d * (one - z) * (one - n * n)
            da_r = da_n * hn[t, b, j] * r * (one - r)
            da_z = d * (hp[tp, b, j] - n) * z * (one - z)
            dgi[t, b, j] = da_r
            dgi[t, b, H + j] = da_z
            dgi[t, b, 2 * H + j] = da_n
            dgh[t, b, j] = da_r
            dgh[t, b, H + j] = da_z
            dgh[t, b, 2 * H + j] = da_n * r


@jit
def _gru_carry_units(dhn, dhp, dh, gates, valid, t, j0, Up):
    """dhn <- dL/dh_{t-1} = dh_t z_t + dgh_t W_hh (dhp holds the product), carried."""
    H = gates.shape[2] // 3
    j0 = max(0, j0)
    for b in range(dhp.shape[0]):
        for u in range(Up):
            dhp[b, j0 + u] += dh[t, b, j0 + u] * gates[t, b, H + j0 + u]    # the direct path
    carry_units(dhn, dhp, valid, t, j0, Up)


@jit
def _gru_forward_part(gates, hx, gh, b_hh, wp, U, valid, hn, out, me, n, flags):
    """Thread me of n. gates (T, B, 3H): gi on entry, r, z, n on exit; hx (T+1, B, H) h0 in
    row 0; gh (1, B, 3H) scratch; b_hh (3H,) (zeros without bias); hn, out (T, B, H) filled."""
    T, B, G = gates.shape
    H = G // 3
    for t in range(T):
        for p in range(me, wp.shape[0], n):
            j0, Up = max(0, p * U), min(U, H - p * U)
            for b in range(B):                            # gh's columns of this panel = b_hh
                for g in range(3):
                    for u in range(Up):
                        gh[0, b, g * H + j0 + u] = b_hh[g * H + j0 + u]
            gate_product(gh, 0, hx, t, wp, p, U, H)
            _gru_forward_units(gates, gh, t, hx, hn, valid, out, j0, Up)
        barrier(flags, me, n, t + 1)


@jit
def _gru_backward_part(d_out, dhn, h0, h, gates, hn, wb, U, valid, dh, dgi, dgh, dhp, me, n,
                       flags):
    """BPTT, thread me of n. dhn (B, H): dL/dh_T on entry, dL/dh_0 on exit; h0 (1, B, H);
    dh (T, B, H), dgi, dgh (T, B, 3H) filled; dhp (B, H) scratch."""
    T, B, G = gates.shape
    H = G // 3
    for t in range(T - 1, -1, -1):
        for p in range(me, wb.shape[0], n):
            if t < T - 1:
                unit_product(dhp, dgh, t + 1, wb, p, U)
                _gru_carry_units(dhn, dhp, dh, gates, valid, t + 1, p * U, min(U, H - p * U))
            _gru_backward_units(d_out, dhn, h0, h, gates, hn, valid, dh, dgi, dgh, t, p * U,
                                min(U, H - p * U))
        barrier(flags, me, n, T - t)
    for p in range(me, wb.shape[0], n):
        unit_product(dhp, dgh, 0, wb, p, U)
        _gru_carry_units(dhn, dhp, dh, gates, valid, 0, p * U, min(U, H - p * U))


def gru_forward(gates, h0, w_hh, b_hh, valid, hn, out, threads=None):
    """gates (T, B, 3H) (gi = x W_ih^T + b_ih, activated in place), h0 (B, H), w_hh (3H, H),
    b_hh (3H,) or None, valid (T, B) bool; hn, out (T, B, H) filled -> hx (T+1, B, H)."""
    T, B, G = gates.shape
    n, U, wp = forward_panels(w_hh, 3, threads)
    hx = np.empty((T + 1, B, G // 3), dtype=gates.dtype)
    hx[0] = h0
    b = np.zeros(G, dtype=gates.dtype) if b_hh is None else np.ascontiguousarray(b_hh)
    run_parts(_gru_forward_part, (gates, hx, np.empty((1, B, G), dtype=gates.dtype), b, wp, U,
                                  valid, hn, out), n)
    return hx


def gru_backward(d_out, dh_next, h0, h, gates, hn, w_hh, valid, dh, dgi, dgh, threads=None):
    """The persistent BPTT (arguments as _gru_backward_part's; dh_next (B, H) updated in place
    to dL/dh_0, and returned)."""
    n, U, wb = backward_panels(w_hh, threads)
    run_parts(_gru_backward_part, (d_out, dh_next, h0, h, gates, hn, wb, U, valid, dh, dgi, dgh,
                                   np.empty_like(dh_next)), n)
    return dh_next


# ----------------------------------------------------------------------------
# Elman RNN

@jit
def _rnn_forward_part(a, hx, wp, U, valid, relu, out, me, n, flags):
    """Thread me of n. a (T, B, H): x W_ih^T + b on entry, a_t on exit; hx (T+1, B, H) h0 in
    row 0; out (T, B, H) filled. relu: relu, else tanh."""
    T, B, H = a.shape
    zero = a.dtype.type(0.0)
    for t in range(T):
        for p in range(me, wp.shape[0], n):
            j0, Up = max(0, p * U), min(U, H - p * U)
            gate_product(a, t, hx, t, wp, p, U, H)
            for b in range(B):
                if relu:                                  # np.maximum(a, 0): NaN stays NaN
                    for u in range(Up):
                        z = a[t, b, j0 + u]
                        hx[t + 1, b, j0 + u] = z if (z > zero or z != z) else zero
                else:
                    for u in range(Up):
                        hx[t + 1, b, j0 + u] = vtanh(a[t, b, j0 + u])
                finish_units(hx, t, b, valid, out, j0, Up)
        barrier(flags, me, n, t + 1)


@jit
def _rnn_backward_part(d_out, dhn, a, h, wb, U, valid, relu, dh, da, dhp, me, n, flags):
    """BPTT, thread me of n. dhn (B, H): dL/dh_T on entry, dL/dh_0 on exit; a, h (T, B, H)
    from the forward; dh, da (T, B, H) filled; dhp (B, H) scratch (da_{t+1} W_hh)."""
    T, B, H = a.shape
    zero, one = a.dtype.type(0.0), a.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for p in range(me, wb.shape[0], n):
            j0, Up = max(0, p * U), min(U, H - p * U)
            if t < T - 1:
                unit_product(dhp, da, t + 1, wb, p, U)
                carry_units(dhn, dhp, valid, t + 1, j0, Up)
            for b in range(B):
                upstream_units(dh, dhn, d_out, valid, t, b, j0, Up)
                if relu:
                    for u in range(Up):
                        da[t, b, j0 + u] = dh[t, b, j0 + u] * (one if a[t, b, j0 + u] > zero
                                                               else zero)
                else:
                    for u in range(Up):
                        da[t, b, j0 + u] = dh[t, b, j0 + u] * (one - h[t, b, j0 + u]
                                                               * h[t, b, j0 + u])
        barrier(flags, me, n, T - t)
    for p in range(me, wb.shape[0], n):
        unit_product(dhp, da, 0, wb, p, U)
        carry_units(dhn, dhp, valid, 0, p * U, min(U, H - p * U))


def rnn_forward(a, h0, w_hh, valid, relu, out, threads=None):
    """a (T, B, H) (x W_ih^T + b, the pre-activations a_t after), h0 (B, H), w_hh (H, H),
    valid (T, B) bool, relu (bool); out (T, B, H) filled -> hx (T+1, B, H)."""
    T, B, H = a.shape
    n, U, wp = forward_panels(w_hh, 1, threads)
    hx = np.empty((T + 1, B, H), dtype=a.dtype)
    hx[0] = h0
    run_parts(_rnn_forward_part, (a, hx, wp, U, valid, bool(relu), out), n)
    return hx


def rnn_backward(d_out, dh_next, a, h, w_hh, valid, relu, dh, da, threads=None):
    """The persistent BPTT (arguments as _rnn_backward_part's) -> dh_next = dL/dh_0 (in place)."""
    n, U, wb = backward_panels(w_hh, threads)
    run_parts(_rnn_backward_part, (d_out, dh_next, a, h, wb, U, valid, bool(relu), dh, da,
                                   np.empty_like(dh_next)), n)
    return dh_next


__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward",
           "rnn_backward"]
