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
    if type(parser) is argparse.ArgumentParser:
        parser.__class__ = _Intermixed
    parser.add_argument("task", choices=("names",), help="what the checkpoint predicts")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="surnames; with none, read one a line from stdin")
    parser.add_argument("--checkpoint", required=True, help="model.npz from `minirnn train names`")
    parser.add_argument("--top", type=int, default=3, help="how many languages to show")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import json
    import os
    import sys

    import numpy as np

    from ..tutorials.names import load_predictor
    if args.top < 1:
        raise ValueError(f"--top: expected an integer >= 1, got {args.top}")
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint: no such file {args.checkpoint!r}")
    names = args.names if args.names else [line.strip() for line in sys.stdin.read().splitlines()]
    if not args.names and not names:
        raise ValueError("NAME: expected names as arguments or one a line on stdin, got none")
    for n in names:
        if not n.strip():
            raise ValueError("NAME: an empty name cannot be classified; give at least one letter")
    predict = load_predictor(args.checkpoint)
    probs, labels = predict(names)                         # (N, C)
    k = min(args.top, len(labels))
    results = []
    for name, p in zip(names, probs):
        top = np.argsort(-p, kind="stable")[:k]
        results.append({"name": name,
                         "predictions": [{"label": labels[i], "prob": float(p[i])} for i in top]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r["name"])
            for pr in r["predictions"]:
                print(f"  {pr['prob']:6.1%}  {pr['label']}")
    return 0
