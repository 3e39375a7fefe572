"""The benchmark's rows: one engine on one problem, from its per-round timings.

A row holds the medians over rounds, their spread, the per-round ratios to the reference
engines, GFLOP/s and the share of the measured GEMM peak, the bandwidth floor at small batch,
and flags for numbers that cannot be right ("peak", "order", "split": not reported as
results) or may be off ("load", "spread"). DEFINITIONS says what every field means; it goes
into the JSON and the table's footnotes.
"""
from __future__ import annotations

import statistics

from ..cells import get_cell
from .problems import SMALL_BATCH, flops, problem_id

LOAD_LIMIT = 0.25          # foreign CPU load (cores) above which a result is not trustworthy
SPREAD_LIMIT = 0.5         # (max - min) / median of a row's per-round ratios: flagged as noisy
PHASES = ("fwd", "fwd_bwd", "bwd", "proj", "rec", "bwd_data", "bwd_weights")

DEFINITIONS = {
    "fwd": "the layer forward (input projection included), autograd on for torch",
    "fwd_bwd": "forward then backward (dx, dh0, every weight gradient)",
    "bwd": "numba: the backward alone, on one fixed cache",
    "proj": "numba: the input projection alone: x (T*B, I) @ W_ih^T + biases, one NumPy GEMM "
            "(what the kernels run before their time loop)",
    "rec": "numba: recurrent forward = fwd - proj (per round)",
    "bwd_weights": "numba: the weight gradients alone: dZ^T x and dZ^T h_prev, one NumPy GEMM "
                   "each, and the bias sums (what the kernels run after their time loop)",
    "bwd_data": "numba: backward-data (dx and dh through time) = bwd - bwd_weights (per round)",
    "seconds": "median over rounds of each round's median over its timed repeats",
    "spread": "min and max over rounds of the per-round medians",
    "ratio": "per round: reference engine's seconds / this engine's seconds (> 1: this engine "
             "is faster); reported as the median over rounds and the min-max",
    "gflops": "FLOPs of the phase (flop_convention) / seconds / 1e9",
    "peak_fraction": "GFLOP/s / the GEMM peak of the engine's own BLAS at its thread count and "
                     "dtype: an n x n matmul (numpy: OpenBLAS via NumPy; torch: the faster of "
                     "torch.mm and oneDNN's linear), measured in the worker alone, before and "
                     "after the grid; the higher of the two",
    "bandwidth": "bytes of W_hh / median seconds of one W_hh @ v (NumPy gemv in the numba "
                 "worker, its thread count): the streaming rate at W_hh's size, so L2/L3 "
                 "bandwidth when W_hh fits there",
    "floor": f"rows with B <= {SMALL_BATCH}: the memory-bandwidth floor, the time to stream "
             "W_hh once per step: fwd T*bytes(W_hh)/bandwidth, fwd_bwd twice that (backward "
             "reads W_hh again per step)",
    "activation": "bytes forward saves for backward: minirnn the cache's arrays except inputs, "
                  "initial states and weights; torch the storages autograd saves, weights and "
                  "input excluded. per_TBH = values / (T*B*H)",
    "peak_mb": "minirnn: peak traced NumPy memory of one forward+backward (tracemalloc)",
    "rel_err": "||out - out_ref|| / ||out_ref|| of the forward output, reference torch@N",
    "rec_fma_fraction": "numba: the recurrent forward's GFLOP/s (rec: its product and the gate "
                        "math, counted as the product's FLOPs) / (the single-thread FMA peak of "
                        "Numba's code, a small FMA loop, x the engine's threads)",
    "check_rel_err": "jax: ||a - b|| / ||b|| of its forward output, dL/dx and each weight "
                     "gradient against minirnn's NumPy reference, checked in its worker before "
                     "it was timed (float32 within 2e-4, float64 within 1e-10, or it stops)",
    "load": "foreign CPU load in cores: machine busy time (steal included) minus the CPU time "
            "of this benchmark's processes, per wall second",
}


def row_flags(row, load_limit=None, spread_limit=SPREAD_LIMIT):
    """-> [(code, message)] for one result row. Codes "peak", "order" and "split" mark
    numbers that cannot be right; "load" and "spread" mark numbers that may be off (noisy
    machine, rounds that disagree). A row with peak, order or load is not reported as a
    result (summary.judged); "spread" concerns one ratio (one flag per reference whose
    per-round ratios disagree) and keeps that ratio out (summary.ratio_of). load_limit:
    default LOAD_LIMIT."""
    load_limit = LOAD_LIMIT if load_limit is None else load_limit
    out = []
    sec, frac = row.get("seconds", {}), row.get("peak_fraction", {})
    over = {ph: f for ph, f in frac.items() if f is not None and f > 1.0}
    if over:
        out.append(("peak", "above 100% of the measured GEMM peak ("
                    + ", ".join(f"{ph} {100 * f:.0f}%" for ph, f in over.items())
                    + "): the peak or the timing is wrong"))
    if sec.get("fwd") is not None and sec.get("fwd_bwd") is not None and sec["fwd"] > sec["fwd_bwd"]:
        out.append(("order", f"forward ({sec['fwd'] * 1e3:.3g} ms) slower than forward+backward "
                    f"({sec['fwd_bwd'] * 1e3:.3g} ms)"))
    neg = [ph for ph in ("rec", "bwd_data") if sec.get(ph) is not None and sec[ph] <= 0]
    if neg:
        out.append(("split", f"derived phase(s) {', '.join(neg)} <= 0: the standalone GEMMs took "
                    f"longer than the whole phase"))
    load = row.get("load") or {}
    if load.get("mean") is not None and load["mean"] > load_limit:
        out.append(("load", f"foreign CPU load {load['mean']:.2f} cores (limit {load_limit})"))
    for ref, passes in (row.get("ratio") or {}).items():
        r = passes.get("fwd_bwd")
        if r and spreads(r, spread_limit):      # one flag per ratio: it keeps that ratio out
            width = (r["max"] - r["min"]) / r["median"]
            out.append(("spread", f"per-round ratio to {ref} spans {r['min']:.2f}-{r['max']:.2f} "
                        f"({100 * width:.0f}% of its median)"))
    return out


def spreads(d, limit=SPREAD_LIMIT):
    """Do the per-round values of one ratio {median, min, max, per_round} disagree?"""
    if not d.get("median") or len(d.get("per_round", ())) < 2:
        return False
    return (d["max"] - d["min"]) / d["median"] > limit


VALIDITY = ("peak", "order", "split")        # the flags that mark impossible numbers


def load_warnings(before, during, cores, load_limit=LOAD_LIMIT):
    """-> warnings about the machine's load. before: dict(foreign=cores or None,
    loadavg=1-min load average); during: LoadMonitor.summary()-like dict(mean, max)."""
    out = []
    if before.get("foreign") is not None and before["foreign"] > load_limit:
        out.append(f"machine busy before the run: foreign CPU load {before['foreign']:.2f} cores "
                   f"(limit {load_limit}); results are not trustworthy")
    elif before.get("foreign") is None and before.get("loadavg") is not None \
            and before["loadavg"] > 0.5 * cores:
        out.append(f"machine busy before the run: load average {before['loadavg']:.2f} on {cores} "
                   f"cores; results are not trustworthy")
    if during.get("mean") is not None and during["mean"] > load_limit:
        out.append(f"machine busy during the run: foreign CPU load mean {during['mean']:.2f}, max "
                   f"{during['max']:.2f} cores (limit {load_limit}); results are not trustworthy")
    return out


def itemsize(dtype):
    import numpy as np
    return np.dtype(dtype).itemsize


def _median_spread(vals):
    return statistics.median(vals), min(vals), max(vals)


def _ratio(ref_rounds, rounds, phase):
    per = [r[phase] / e[phase] for r, e in zip(ref_rounds, rounds)
           if r.get(phase) and e.get(phase)]
    if not per:
        return None
    med, lo, hi = _median_spread(per)
    return dict(median=med, min=lo, max=hi, per_round=per)


def _derive(rnd):
    """Add the derived phases of one round: rec = fwd - proj, bwd_data = bwd - bwd_weights."""
    out = dict(rnd)
    if "wgrad" in out:
        out["bwd_weights"] = out.pop("wgrad")
    if "proj" in out:
        out["rec"] = out["fwd"] - out["proj"]
    if "bwd" in out and "bwd_weights" in out:
        out["bwd_data"] = out["bwd"] - out["bwd_weights"]
    return out


def build_row(job, eng, rounds, peak, ref_names, ref_rounds, extras, bandwidth, load):
    """One result row from the per-round medians of one engine on one problem."""
    reg, (T, B, I, H), cell, dt = job
    rounds = [_derive(r) for r in rounds]
    for r in rounds:
        r.pop("gemv", None)                 # the bandwidth probe: summarised by the caller
    seconds, spread, per_round = {}, {}, {}
    for ph in PHASES:
        vals = [r[ph] for r in rounds if ph in r]
        if vals:
            med, lo, hi = _median_spread(vals)
            seconds[ph], spread[ph], per_round[ph] = med, [lo, hi], vals
    gflops = {ph: flops(cell, T, B, I, H, ph) / s / 1e9 for ph, s in seconds.items() if s > 0}
    frac = {ph: (g / peak if peak else None) for ph, g in gflops.items()}
    ratio = {}
    for ref in ref_names:
        if ref != eng.name and ref in ref_rounds:
            ref_r = [_derive(x) for x in ref_rounds[ref]]
            ratio[ref] = {ph: _ratio(ref_r, rounds, ph) for ph in ("fwd", "fwd_bwd")}
    row = dict(id=problem_id(reg, (T, B, I, H), cell, dt), regime=reg, cell=cell, T=T, B=B, I=I,
               H=H, dtype=dt, engine=eng.name, kind=eng.kind, threads=eng.threads,
               device=eng.device, native_blas=eng.native_blas, rounds=len(rounds),
               seconds=seconds, spread=spread, per_round=per_round, gflops=gflops,
               gemm_peak_gflops=peak, peak_fraction=frac, ratio=ratio, load=load)
    row.update({k: extras.get(k) for k in ("activation_bytes", "activation_per_TBH", "peak_bytes")})
    if bandwidth and B <= SMALL_BATCH:
        w_bytes = get_cell(cell).gates * H * H * itemsize(dt)
        fl = T * w_bytes / (bandwidth * 1e9)
        row.update(bandwidth_gbs=bandwidth, floor_s=dict(fwd=fl, fwd_bwd=2 * fl),
                   floor_ratio={ph: seconds[ph] / f for ph, f in (("fwd", fl), ("fwd_bwd", 2 * fl))
                                if ph in seconds})
    row["flags"] = [dict(code=c, message=m) for c, m in row_flags(row)]
    row["valid"], row["split_valid"] = validity(row)
    return row


MAIN_PHASES = ("fwd", "fwd_bwd", "bwd")
SPLIT_PHASES = ("proj", "rec", "bwd_data", "bwd_weights")


def validity(row):
    """-> (valid, split_valid). valid: the row's main numbers (fwd, fwd+bwd, bwd) can be
    reported: no "order" flag and none of them above 100% of peak. split_valid: the split
    phases can too: valid, no "split" flag, none of them above 100% of peak."""
    codes = {f["code"] for f in row.get("flags", [])}
    frac = row.get("peak_fraction", {})
    over = lambda phases: any((frac.get(ph) or 0) > 1.0 for ph in phases)     # noqa: E731
    valid = "order" not in codes and not over(MAIN_PHASES)
    return valid, valid and "split" not in codes and not over(SPLIT_PHASES)
