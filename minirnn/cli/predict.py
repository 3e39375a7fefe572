"""`minirnn predict names --checkpoint DIR/model.npz [--top K] [--json] [NAME ...]`."""
from __future__ import annotations

import argparse

HELP = "predict with a trained names model (top-K languages per name)"


class _Intermixed(argparse.ArgumentParser):
    """Names may come after the options (`predict names --checkpoint m.npz --top 2 Smith`):
    plain argparse binds the empty NAME list right after `names` and then rejects `Smith`."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_intermixing", False):          # the inner passes: plain parsing
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def add_arguments(parser):
    from .. import _threads
    if type(parser) is argparse.ArgumentParser:
        parser.__class__ = _Intermixed
    parser.add_argument("task", choices=("names",), help="what the checkpoint predicts")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="surnames; with none, read one a line from stdin (blank lines "
                             "skipped)")
    parser.add_argument("--checkpoint", required=True, help="model.npz from `minirnn train names`")
    parser.add_argument("--top", type=int, default=3, help="how many languages to show")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _threads.add_argument(parser)


def run(args) -> int:
    """A result or an error for every name, in order; exit code 1 if any name failed."""
    import json
    import os
    import sys

    import numpy as np

    from .. import _threads
    from ..tutorials.data import encode_name
    from ..tutorials.names import load_predictor
    if args.top < 1:
        raise ValueError(f"--top: expected an integer >= 1, got {args.top}")
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint: no such file {args.checkpoint}")
    if args.names:
        names = list(args.names)
    else:
        names = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
        if not names:
            raise ValueError("NAME: expected names as arguments or one a line on stdin, got none")
    predict = load_predictor(args.checkpoint)
    results, good = [], []
    for i, name in enumerate(names):
        try:
            encode_name(name)
            good.append(i)
            results.append({"name": name})
        except ValueError as e:
            results.append({"name": name, "error": str(e)})
    if good:
        with _threads.limit(_threads.choose(args.threads, _threads.step_product(len(good), 128))):
            probs, labels = predict([names[i] for i in good])       # (N, C)
        k = min(args.top, len(labels))
        for i, p in zip(good, probs):
            top = np.argsort(-p, kind="stable")[:k]
            results[i]["predictions"] = [{"label": labels[j], "prob": float(p[j])} for j in top]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r["name"] if r["name"].strip() else repr(r["name"]))
            if "error" in r:
                print(f"  error: {r['error']}")
            for pr in r.get("predictions", ()):
                print(f"  {pr['prob']:6.1%}  {pr['label']}")
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"minirnn predict: {len(failed)} of {len(results)} name(s) could not be classified",
              file=sys.stderr)
    return 1 if failed else 0
