"""A fuzzer of our own: every public callable, fed degenerate but plausible
arguments, succeeds or refuses with a ValueError/TypeError raised by minirnn's own checks;
never an IndexError, a KeyError, a MemoryError, a numba typing error, numpy's or Python's own
message from inside minirnn, or a hang.

The callables are enumerated (tests/helpers/public_api.py, as tests/test_api_optional.py does), each
has a valid baseline call (tests/helpers/fuzz/recipes*.py) or a stated reason not to be fuzzed
(EXCLUDED), and the spoiled values come from tests/helpers/fuzz/engine.py. In CI each callable gets a fixed
(derandomized) set of examples. The long run counts every crash site instead of stopping:

    python -m tests.test_fuzz --calls 100000 [--seed 0]
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import math
import signal
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import tests.helpers.fuzz.recipes                      # noqa: F401 -- registers the core recipes
import tests.helpers.fuzz.recipes_tools                # noqa: F401 -- and the tools'
import tests.helpers.fuzz.recipes_online               # noqa: F401 -- online learning, threads, notebook
from tests.helpers.fuzz.engine import CallTimeout, address_space_cap, attempt, crash_site, draw_degenerate, \
    scratch_dir, working_in
from tests.helpers.fuzz.world import RECIPES, Call, World, build, excluded
from tests.helpers.public_api import public_callables

# debug.notebook: the views a notebook user calls by hand (minirnn.bench is a harness of
# timed runs and subprocesses, not a library call, and is left out)
ROOTS = ("functional", "utils", "nn", "cells", "grad", "studies", "debug.notebook")
NAMES = sorted(RECIPES)
EXAMPLES = 8                     # per callable in CI: about 1,600 calls, within the 60 s budget
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def _short(value):
    text = repr(value) if not isinstance(value, np.ndarray) else \
        f"ndarray(shape={value.shape}, dtype={value.dtype})"
    return text if len(text) <= 60 else text[:57] + "..."


def fuzz_case(data, name):
    """Build `name`'s baseline, spoil 0-2 of its arguments, call it -> (verdict, exception,
    the spoiled arguments {name: value})."""
    with scratch_dir() as tmp, working_in(tmp):   # a spoiled path ("bogus") lands there
        w = World(data, tmp)
        names = []
        try:
            try:
                c = build(name, w)
            except Exception as e:   # noqa: BLE001 -- the library failed on valid input
                return "crash", e, {"(building the baseline)": None}
            kwargs = dict(c.kwargs)
            n = data.draw(st.integers(0, min(2, len(kwargs))), label="spoiled")
            names = data.draw(st.permutations(sorted(kwargs)))[:n] if n else []
            for arg in names:
                kwargs[arg] = draw_degenerate(data.draw, w, kwargs[arg])
            outcome, exc = attempt(c._replace(kwargs=kwargs))
        finally:
            for undo in reversed(w.cleanups):
                undo()
    if not names and outcome != "ok":
        outcome = "crash"            # the baseline itself must run: else the recipe is wrong
    return outcome, exc, {a: kwargs[a] for a in names}


def _report(name, exc, spoiled):
    args = ", ".join(f"{k}={_short(v)}" for k, v in spoiled.items()) or "the baseline"
    return f"{name}({args}): {crash_site(exc)}: {type(exc).__name__}: {exc}"


# ---- CI ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _capped():
    with address_space_cap():
        yield


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=QUIET)
@given(data=st.data())
def test_public_callable_refuses_bad_input_cleanly(name, data):
    outcome, exc, spoiled = fuzz_case(data, name)
    assert outcome != "crash", _report(name, exc, spoiled)


def test_every_public_callable_is_fuzzed_or_excluded_with_a_reason():
    found = set(public_callables(ROOTS))
    assert len(found) > 200                                  # the enumeration itself works
    missing = sorted(n for n in found if n not in RECIPES and not excluded(n))
    assert not missing, f"public callables without a fuzz recipe or a reason: {missing}"
    stale = sorted(set(RECIPES) - found)
    assert not stale, f"recipes for names that are not public callables: {stale}"
    both = sorted(n for n in RECIPES if excluded(n))
    assert not both, f"both fuzzed and excluded: {both}"


def _raises(exc):
    def fn():
        raise exc
    return fn


@pytest.mark.parametrize("fn, want", [
    (lambda: np.zeros(6).reshape(4, 4), "crash"),            # numpy's message, not ours
    (lambda: [][1], "crash"),
    (lambda: None + 1, "crash"),                             # Python's TypeError
    (lambda: np.zeros((2**40, 2**40)), "crash"),             # numpy's refusal of the size
    (lambda: minirnn_check(), "refused"),
    (lambda: minirnn_key(), "crash"),                        # a KeyError is a crash, ours or not
    (lambda: 1, "ok")])
def test_the_verdict_tells_a_refusal_from_a_crash(fn, want):
    """The fuzzer's own judge can fail: numpy's and Python's errors inside a call are crashes."""
    outcome, _ = attempt(Call(fn, {}))
    assert outcome == want


def test_a_hang_is_a_crash():
    outcome, exc = attempt(Call(lambda: time.sleep(5), {}), seconds=0.2)
    assert outcome == "crash" and isinstance(exc, CallTimeout)


def minirnn_check():
    from minirnn._checks import check_int
    check_int("hidden_size", -1)


def minirnn_key():
    from minirnn.nn.module import _Named
    return _Named("params")["nope"]                  # raised by minirnn, but a KeyError


# ---- the long run --------------------------------------------------------------------------------

def long_run(calls, first_seed=0, names=NAMES, out=sys.stdout):
    """About `calls` calls spread over `names` -> {crash site: (count, first report)},
    {verdict: count}."""
    sites, counts = {}, collections.Counter()
    per = max(1, math.ceil(calls / len(names)))
    for k, name in enumerate(names):
        done, s, began = 0, first_seed, time.time()
        while done < per:
            before = sum(counts.values())

            @seed(s)
            @settings(max_examples=per - done, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(data=st.data())
            def run(data):
                outcome, exc, spoiled = fuzz_case(data, name)
                counts[outcome] += 1
                if outcome == "crash":
                    site = f"{name}: {crash_site(exc)}"
                    n, first = sites.get(site, (0, _report(name, exc, spoiled)))
                    sites[site] = (n + 1, first)

            run()
            done += sum(counts.values()) - before
            s += 1
        print(f"[{k + 1}/{len(names)}] {name}: {done} calls in {time.time() - began:.1f} s, "
              f"{sum(counts.values())} in all, {len(sites)} crash sites", file=out, flush=True)
    return sites, counts


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fuzz every public callable of minirnn and list "
                                             "each crash site with its first example.")
    ap.add_argument("--calls", type=int, default=100_000, help="calls in all (default 100000)")
    ap.add_argument("--seed", type=int, default=0, help="the first hypothesis seed")
    ap.add_argument("--only", default="", help="fuzz only the callables whose name has this")
    args = ap.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)          # kill -USR1 <pid>: where is it now?
    start = time.time()
    with address_space_cap():
        sites, counts = long_run(args.calls, args.seed, [n for n in NAMES if args.only in n])
    print(f"\n{sum(counts.values())} calls in {time.time() - start:.0f} s: {dict(counts)}; "
          f"{len(sites)} crash sites")
    for site, (n, first) in sorted(sites.items()):
        print(f"\n{n:6d} x {site}\n         e.g. {first}")
    return 1 if sites else 0


if __name__ == "__main__":
    sys.exit(main())
