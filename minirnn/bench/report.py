"""Benchmark output: what `minirnn bench` prints (format_report: the summary first, then the
narrow table of summary.py, or with --wide format_table, the environment header and every
column), JSON (atomic) and a PNG plot (atomic).

A row flagged "order" or "peak" (numbers that cannot be right: forward slower than
forward+backward, any phase above 100% of the GEMM peak, a split phase included), "load" (a
busy machine) or "spread" (rounds that disagree) shows its times but "!" in place of its
ratios, GFLOP/s and % peak, in the tables and the plot alike: it is not reported as a result
(summary.judged). "split" (a derived phase <= 0) does the same to the split table's row only.
"""
from __future__ import annotations

from .._io import savefig, write_json
from .summary import (SHORT_DTYPE, UNJUDGED, align, count_codes, flag_codes, judged,
                      narrow_table, ratio_of, summary_lines, title, why_not, wrap)


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _shape(r):
    return f"{r['T']}x{r['B']}x{r['I']}x{r['H']}"


def _ratio_text(r, ref, phase="fwd_bwd", spread=True):
    d = (r.get("ratio") or {}).get(ref, {}).get(phase)
    if not d:
        return "-"
    if not spread or len(d.get("per_round", ())) < 2:
        return f"{d['median']:.2f}"
    return f"{d['median']:.2f} [{d['min']:.2f}-{d['max']:.2f}]"


def _threadpools(tp):
    out = []
    for d in tp or []:
        if d.get("user_api") == "blas":
            out.append(f"{d.get('internal_api')} {d.get('version') or ''} "
                       f"{d.get('architecture') or ''} x{d.get('num_threads')}".replace("  ", " "))
        elif d.get("user_api") == "openmp":
            out.append(f"{d.get('prefix')} x{d.get('num_threads')}")
    return ", ".join(out) or "-"


def format_header(result):
    meta = result["meta"]
    m = meta["machine"]
    v = meta["versions"]
    caches = ", ".join(f"{k} {s}" for k, s in m.get("caches", {}).items() if k in ("L2", "L3"))
    out = [f"minirnn bench{' --quick' if meta['quick'] else ''}: {len(result['rows'])} rows, "
           f"{meta['rounds']} rounds, wall {meta.get('wall_s', 0):.0f} s",
           f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores "
           f"({m['logical_cpus']} logical), {m.get('best_simd') or '?'}"
           + (f", {caches}" if caches else "") + f"; {m['platform']}",
           "versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
           "engines (threads; inside the worker: BLAS vendor version kernel x threads; GEMM peak):"]
    for e in meta["engines"]:
        extra = ""
        if e["kind"] == "torch":
            extra = (f"torch {e.get('torch_threads')} threads, {e.get('torch_blas') or '?'}, "
                     f"cpu capability {e.get('torch_cpu_capability') or '?'}"
                     + (f", {e['cuda_device']}" if e.get("cuda_device") else "") + "; ")
        elif e["kind"] == "numba":
            extra = (f"numba {e.get('numba_threads')} threads "
                     f"({e.get('numba_threading_layer')}); ")
        elif e["kind"] == "jax":
            extra = (f"jax {e.get('jax')} (jaxlib {e.get('jaxlib')}), device "
                     f"{e.get('jax_device')}, x64 {'on' if e.get('jax_x64') else 'off'}, cores "
                     f"{e.get('jax_affinity')}; ")
        peaks = ", ".join(f"{SHORT_DTYPE.get(k, k)} {g:.0f}" for k, g in
                          (e.get("gemm_peak_gflops") or {}).items())
        if e.get("fma_peak_gflops"):
            peaks += "; 1-thread FMA loop " + ", ".join(
                f"{SHORT_DTYPE.get(k, k)} {g:.0f}" for k, g in e["fma_peak_gflops"].items())
        nat = " [OPENBLAS_CORETYPE/L2_SIZE unset]" if e.get("native_blas") else ""
        out.append(f"  {e['name']:<13} {e['threads']} thr  {extra}{_threadpools(e.get('threadpools'))}"
                   f"; peak {peaks} GFLOP/s (n={e.get('gemm_peak_n')}){nat}")
    first = {k: v for e in meta["engines"] for k, v in (e.get("numba_first_call_s") or {}).items()}
    if first:
        out.append("numba first call (compile, or load from numba's cache): "
                   + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    ov = m.get("overrides") or {}
    out.append("overrides set: " + (", ".join(f"{k}={x}" for k, x in ov.items()) or "none")
               + f"   blas mode: {meta['blas']}")
    ld = meta["load"]
    b, d = ld["before"], ld["during"]
    out.append(f"load (foreign CPU, cores; limit {ld['limit_cores']}): before "
               f"{_fmt(b.get('foreign'), '.2f')}, during mean {_fmt(d.get('mean'), '.2f')} max "
               f"{_fmt(d.get('max'), '.2f')} ({d.get('method')}); load average "
               f"{_fmt(b.get('loadavg'), '.2f')} -> {_fmt(ld['after'].get('loadavg'), '.2f')}")
    ho = ld.get("handovers") or {}
    if ho.get("count"):
        out.append(f"hand-overs: {ho['count']}, waiting {1e3 * ho['waited_s'] / ho['count']:.1f} ms "
                   f"on average for the other workers' threads to stop running"
                   + (f" ({ho['not_quiet']} timed out)" if ho.get("not_quiet") else ""))
    t = meta["timing"]
    out.append(f"each engine in its own process; {meta['rounds']} rounds, engine order rotating; "
               f"a round = {t['warmup']} warm-up + {t['repeats']}-{t['max_repeats']} timed "
               f"repeats (>= {t['min_time']} s); ms = median over rounds of per-round medians")
    return out


def format_table(result):
    """The environment, the main table (one line per problem and engine), the split table
    (numba's phases), the conventions, then warnings and notes."""
    meta = result["meta"]
    refs = meta.get("ratio_references", [])
    jx = next((r for r in refs if r.startswith("jax@")), None)
    same = next((r for r in refs if r != "torch@1" and r != jx), None)
    one = "torch@1" if "torch@1" in refs else None
    head = ["regime", "cell", "dt", "TxBxIxH", "engine", "fwd ms", "f+b ms", "+-%"]
    if same:
        head += [f"x {same} f+b [range]", f"x {same} fwd"]
    if one and one != same:
        head += ["x torch@1 f+b"]
    if jx:
        head += [f"x {jx} f+b [range]"]
    head += ["GFLOP/s", "%peak", "act MB", "x floor", "rel err", "flags"]
    lines, split = [], []
    by_id = {(r["id"], r["engine"]): r for r in result["rows"]}
    for r in result["rows"]:
        s, ok = r["seconds"], judged(r)
        shown = lambda ref, phase="fwd_bwd", spread=True: (                # noqa: E731
            _ratio_text(r, ref, phase, spread) if ratio_of(r, ref, by_id)
            else "!" if (r.get("ratio") or {}).get(ref, {}).get(phase) else "-")
        lo, hi = r["spread"].get("fwd_bwd", [None, None])
        pm = f"{100 * (hi - lo) / s['fwd_bwd']:.0f}" if lo is not None and s.get("fwd_bwd") else "-"
        cols = [r["regime"], r["cell"], SHORT_DTYPE.get(r["dtype"], r["dtype"]), _shape(r),
                r["engine"], _fmt(s.get("fwd") and s["fwd"] * 1e3, ".3f"),
                _fmt(s.get("fwd_bwd") and s["fwd_bwd"] * 1e3, ".3f"), pm]
        if same:
            cols += [shown(same), shown(same, "fwd", False)]
        if one and one != same:
            cols += [shown(one, spread=False)]
        if jx:
            cols += [shown(jx)]
        pf = r["peak_fraction"].get("fwd_bwd")
        act = r.get("activation_bytes")
        fr = (r.get("floor_ratio") or {}).get("fwd_bwd")
        cols += [_fmt(r["gflops"].get("fwd_bwd"), ".2f") if ok else "!",
                 _fmt(pf if pf is None else 100 * pf, ".1f") if ok else "!",
                 _fmt(act if act is None else act / 2 ** 20, ".2f"), _fmt(fr, ".1f"),
                 _fmt(r.get("rel_err"), ".1e"), ",".join(flag_codes(r)) or "-"]
        lines.append(cols)
        if "proj" in s:
            ph, sok = [], ok and r.get("split_valid", True)
            for name in ("proj", "rec", "bwd_data", "bwd_weights"):
                ms, g, f = s.get(name), r["gflops"].get(name), r["peak_fraction"].get(name)
                ph.append(_fmt(ms and ms * 1e3, ".3f"))
                ph.append(f"{g:.1f}/{100 * f:.0f}%" if sok and g is not None and f is not None
                          else ("!" if not sok else "-"))
            fma = r.get("rec_fma_fraction")
            ph.append(_fmt(fma if fma is None else 100 * fma, ".0f") if sok else "!")
            split.append([r["regime"], r["cell"], SHORT_DTYPE.get(r["dtype"], r["dtype"]), _shape(r),
                          r["engine"]] + ph + [",".join(f["code"] for f in r["flags"]) or "-"])
    out = format_header(result) + [""]
    out += align(head, lines, {0, 1, 2, 3, 4, len(head) - 1})
    if split:
        sh = ["regime", "cell", "dt", "TxBxIxH", "engine", "proj ms", "GF/s/%pk", "rec fwd ms",
              "GF/s/%pk", "bwd-data ms", "GF/s/%pk", "bwd-wts ms", "GF/s/%pk", "rec %fma",
              "flags"]
        out += ["", "split time (input projection, recurrent forward, backward-data, "
                    "backward-weights):"]
        out += align(sh, split, {0, 1, 2, 3, 4, len(sh) - 1})
    d = meta["definitions"]
    out += ["",
            f"FLOPs: {meta['flop_convention']}",
            f"x {same or 'torch'}: {d['ratio']}, torch at minirnn's thread count; [range] and "
            f"+-% (f+b ms: (max-min)/median): {d['spread']}",
            f"%peak: {d['peak_fraction']}",
            f"x floor: f+b time / {d['floor']}; bandwidth: {d['bandwidth']}",
            f"act MB: {d['activation']}",
            f"split: {d['proj']}; {d['rec']}; {d['bwd_weights']}; {d['bwd_data']}",
            f"rec %fma: {d.get('rec_fma_fraction', '-')}",
            f"rel err: {d['rel_err']}",
            "flags: peak (>100% of GEMM peak), order (fwd slower than fwd+bwd): impossible; "
            "load (foreign CPU above the limit): may be off, and a row with any of these three "
            "shows '!' for its ratios, GFLOP/s and %peak and is left out of the summary and the "
            "plot; spread (the per-round ratios to one engine disagree): that ratio shows '!' "
            "and is left out; split (a derived phase <= 0): its split shows '!'"]
    out += [f"WARNING: {w}" for w in meta["warnings"]]
    out += [f"note: {n}" for n in meta["notes"]]
    return "\n".join(out)


def plot_warning(result):
    """The plot's warning when rows were left out of it (flagged, or their ratio to the plot's
    reference spread), else None."""
    refs = result["meta"].get("ratio_references", [])
    by_id = {(r["id"], r["engine"]): r for r in result["rows"]}
    rows = [r for r in result["rows"] if not refs or r["engine"] != refs[0]]
    bad = [r for r in rows if not judged(r) or (refs and not ratio_of(r, refs[0], by_id))]
    if not bad:
        return None
    counts = count_codes([why_not(r, refs[0], by_id) if refs else
                          [c for c in UNJUDGED if c in flag_codes(r)] or ["invalid"]
                          for r in bad])
    d = result["meta"]["load"]["during"]
    load = ("" if d.get("mean") is None else
            f"; foreign CPU load during the run: mean {d['mean']:.2f}, max {d['max']:.2f} cores "
            f"(limit {result['meta']['load']['limit_cores']})")
    return (f"WARNING: {len(bad)} of {len(rows)} rows flagged and left out of this plot "
            f"({counts}){load}")


def format_report(result, wide=False):
    """What `minirnn bench` prints: the summary first, then the narrow table (or, wide, the
    environment header, every column and the split time: format_table), then the
    warnings and notes, each line within WIDTH columns (wide: the tables may be wider)."""
    meta = result["meta"]
    out = wrap(title(result), "    ") + summary_lines(result) + [""]
    if wide:
        return "\n".join(out + [format_table(result)])
    out += narrow_table(result)
    out += wrap("! = not reported as a result: the row is flagged (order, peak: numbers that "
                "cannot be right; load: foreign CPU above the limit) or, for one ratio, its "
                "rounds disagree by more than half the median (spread); x = the other engine's "
                "time / this one's; +-% = (max-min)/median of f+b over rounds", "    ")
    for w in meta["warnings"]:
        out += wrap(f"WARNING: {w}")
    for n in meta["notes"]:
        out += wrap(f"note: {n}")
    out.append("--wide: the environment, every column and the split time; --json PATH: all "
               "of it")
    return "\n".join(out)


def save_json(result, path):
    write_json(path, result)


def save_plot(result, path):
    """Speed-up over torch at the same thread count (forward+backward, median of the per-round
    ratios, error bars = min-max over rounds), one panel per regime, one bar per engine."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    meta = result["meta"]
    refs = meta.get("ratio_references", [])
    if not refs:
        raise ValueError("plot: no ratio to torch to plot (run with the torch backend)")
    ref = refs[0]
    by_id = {(r["id"], r["engine"]): r for r in result["rows"]}
    rows = [r for r in result["rows"] if r["engine"] != ref and ratio_of(r, ref, by_id)]
    warning = plot_warning(result)
    if not rows:
        # every row failed a sanity check (flags in the table): an honest empty picture says
        # so, rather than plotting impossible ratios or failing the whole run
        fig, ax = plt.subplots(figsize=(7, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no row passed the sanity checks with a ratio to {ref}:\n"
                "see the flags in the table (order, load, spread, peak)", ha="center",
                va="center")
        if warning:
            fig.text(0.5, 0.02, warning, ha="center", va="bottom", fontsize=7, color="#b00020",
                     wrap=True)
        savefig(fig, path, dpi=120)
        plt.close(fig)
        return path
    engines = list(dict.fromkeys(e["name"] for e in meta["engines"]
                                 if any(r["engine"] == e["name"] for r in rows)))
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    keys = {reg: list(dict.fromkeys((r["cell"], r["dtype"], r["T"], r["B"], r["I"], r["H"])
                                    for r in rows if r["regime"] == reg)) for reg in regimes}
    widths = [max(2, len(keys[reg])) for reg in regimes]
    fig, axes = plt.subplots(1, len(regimes), sharey=True, squeeze=False,
                             gridspec_kw=dict(width_ratios=widths),
                             figsize=(min(18.0, 2.5 + 0.32 * sum(widths) * max(1, len(engines)) ** 0.5
                                          + 0.4 * len(regimes)), 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    w = 0.8 / len(engines)
    for ax, reg in zip(axes[0], regimes):
        ks = keys[reg]
        xs = np.arange(len(ks))
        for n, eng in enumerate(engines):
            val, lo, hi = [], [], []
            for k in ks:
                r = next((q for q in rows if q["engine"] == eng and q["regime"] == reg
                          and (q["cell"], q["dtype"], q["T"], q["B"], q["I"], q["H"]) == k), None)
                d = r["ratio"][ref]["fwd_bwd"] if r else None
                val.append(d["median"] if d else np.nan)
                lo.append(d["median"] - d["min"] if d else 0)
                hi.append(d["max"] - d["median"] if d else 0)
            ax.bar(xs + (n - (len(engines) - 1) / 2) * w, val, w, yerr=[lo, hi], capsize=2,
                   color=colors[n % len(colors)], label=eng if ax is axes[0][0] else None,
                   error_kw=dict(linewidth=0.8))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        batch1 = reg in ("small", "targets")               # T and I vary there: say them
        ax.set_xticklabels([f"{c} {SHORT_DTYPE.get(dt, dt)}\nB{B} H{H}"
                            + (f" T{T} I{I}" if batch1 else "")
                            for c, dt, T, B, I, H in ks], fontsize=7, rotation=60, ha="right")
        ax.set_title(reg, fontsize=9)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[0][0].set_ylabel(f"speed-up over {ref} (fwd+bwd)\nmedian of per-round ratios, bars min-max")
    ov = meta["machine"].get("kernel_overrides") or []
    fig.suptitle(f"minirnn bench{' --quick' if meta['quick'] else ''}: {meta['threads']} threads, "
                 f"{meta['machine']['usable_cores']} cores, blas {meta['blas']}"
                 + (f" ({', '.join(ov)} set)" if ov else ""), fontsize=10, y=0.99)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=len(engines), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06 if warning else 0, 1, 0.9))
    if warning:                                 # the picture goes round without the table
        fig.text(0.5, 0.01, warning, ha="center", va="bottom", fontsize=8, color="#b00020",
                 wrap=True)
    savefig(fig, path, dpi=120)
    plt.close(fig)
