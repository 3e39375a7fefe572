"""Benchmark output: an aligned terminal table, JSON (atomic) and a PNG plot (atomic)."""
from __future__ import annotations

from .._io import savefig, write_json


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def format_table(result):
    """Plain aligned text: one line per (configuration, pass, engine)."""
    meta = result["meta"]
    head = ["cell", "regime", "T", "B", "I", "H", "dtype", "pass", "engine", "ms",
            "GFLOP/s", "x torch", "% peak", "cache/bound", "peak MB", "rel err"]
    lines = []
    for r in result["rows"]:
        bound = (f"{r['cache_values'] / r['cache_bound_values']:.2f}"
                 if r.get("cache_bound_values") else "-")
        lines.append([r["cell"], r["regime"], str(r["T"]), str(r["B"]), str(r["I"]), str(r["H"]),
                      r["dtype"], r["passes"], r["backend"], f"{r['seconds'] * 1e3:.3f}",
                      f"{r['gflops']:.2f}", _fmt(r["speedup_vs_torch"], ".2f"),
                      f"{100 * r['peak_fraction']:.1f}", bound, _fmt(r.get("peak_mb"), ".1f"),
                      _fmt(r.get("rel_err_vs_torch"), ".1e")])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    left = {0, 1, 6, 7, 8}
    fmt = lambda cols: "  ".join(c.ljust(w) if i in left else c.rjust(w)       # noqa: E731
                                 for i, (c, w) in enumerate(zip(cols, widths)))
    out = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    peaks = ", ".join(f"{dt} {g:.1f} GFLOP/s" for dt, g in meta["matmul_peak_gflops"].items())
    first = ", ".join(f"{k} {v:.2f} s" for k, v in meta["numba_first_call_s"].items())
    out += ["", f"threads: {meta['threads']} (numba and torch)   matmul peak: {peaks}",
            f"numba first call (compile, or load from cache): {first or '-'}",
            f"FLOPs: {meta['flop_formula']}",
            "x torch = torch CPU time / this engine's time (same run); % peak = GFLOP/s / matmul "
            "peak; cache/bound = saved cache values / T*B*(gates + states); rel err = forward "
            "output vs torch CPU"]
    out += [f"note: {n}" for n in meta["notes"]]
    return "\n".join(out)


def save_json(result, path):
    write_json(path, result)


def save_plot(result, path):
    """Speed-up over torch CPU per configuration (log scale), one bar per engine."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in result["rows"] if r["speedup_vs_torch"] is not None and r["backend"] != "torch"]
    if not rows:
        raise RuntimeError("plot: no speed-up over torch to plot (run with the torch backend)")
    engines = sorted({r["backend"] for r in rows}, key=lambda e: ["numpy", "numba", "torch-cuda"].index(e)
                     if e in ("numpy", "numba", "torch-cuda") else 9)
    keys = []
    for r in rows:
        k = (r["cell"], r["regime"], r["T"], r["B"], r["I"], r["H"], r["dtype"], r["passes"])
        if k not in keys:
            keys.append(k)
    fig, ax = plt.subplots(figsize=(min(24.0, max(6.0, 0.3 * len(keys) * len(engines) + 2)), 6))
    width = 0.8 / len(engines)
    xs = np.arange(len(keys))
    for n, eng in enumerate(engines):
        val = {(r["cell"], r["regime"], r["T"], r["B"], r["I"], r["H"], r["dtype"], r["passes"]):
               r["speedup_vs_torch"] for r in rows if r["backend"] == eng}
        ax.bar(xs + (n - (len(engines) - 1) / 2) * width, [val.get(k, np.nan) for k in keys],
               width, label=eng)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{c} {reg} T{T} B{B} I{I} H{H} {dt[-2:]} {ps}"
                        for c, reg, T, B, I, H, dt, ps in keys], rotation=75, ha="right",
                       fontsize=max(4, min(7, int(400 / max(1, len(keys))))))
    ax.set_ylabel("speed-up over torch CPU (same run)")
    ax.set_title(f"minirnn bench ({result['meta']['threads']} threads)")
    ax.legend()
    fig.tight_layout()
    savefig(fig, path, dpi=120)
    plt.close(fig)
