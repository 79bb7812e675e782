"""`steer condition RECIPE --data labelled.jsonl`: find a `when:` condition's layer, comparator
and threshold on labelled prompts (CAST's condition-point search)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recipe_engine.cli.common import add_recipe_arguments
from recipe_engine.cli.common_flags import add_out

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer condition recipes/conditional-steering.yaml --data recipes/data/topic-labelled.jsonl
  steer condition recipes/conditional-steering.yaml --data labelled.jsonl --layers 0:2 \\
      --holdout 0.5 --out results/

Searches the condition of intervention --intervention (default 0; its first condition when it
combines several): for every layer of --layers (default all) the condition vector is built at
that layer from the recipe's spec, each prompt of --data ({"text": ..., "label": 1 if the
condition should fire, else 0}) is scored as the run would score it, and every threshold
between two scores, with each comparator (above, below), is measured: precision, recall, F1.
A seeded, label-stratified --holdout fraction of the prompts takes no part in the choice; the
best cell is measured again on it. Writes condition.csv, condition.json and condition.png into
--out (default steer-out/condition-<recipe>/) and prints the `when:` to paste.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "condition",
        help="search a when: condition's layer, comparator and threshold on labelled prompts",
        description="Find where and how a condition separates labelled prompts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--data", required=True, help='labelled prompts, JSONL: {"text": ..., "label": 0|1}'
    )
    parser.add_argument(
        "--intervention", type=int, default=0, help="index of the intervention whose `when:`"
    )
    parser.add_argument("--layers", nargs="+", help="candidate layers as in a recipe (all)")
    parser.add_argument(
        "--holdout", type=float, default=0.3, help="fraction of prompts held out of the choice"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the tuning/held-out split")
    add_out(parser, "dir", metavar="DIR", help="where condition.{csv,json,png} go")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import find_condition, write_condition_search
    from recipe_engine.cli.progress import Progress

    bars = Progress()
    try:
        result = find_condition(
            args.recipe,
            args.data,
            intervention=args.intervention,
            layers=args.layers,
            heldout=args.holdout,
            seed=args.seed,
            overrides=args.overrides,
            progress=lambda done, total: bars("score", done, total),
            allow_outside_root=args.allow_outside_root,
        )
    finally:
        bars.close()
    out = Path(args.out) if args.out else Path("steer-out") / f"condition-{result.recipe}"
    paths = write_condition_search(result, out)
    if args.format == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
        return 0
    print(
        f"condition search of {result.recipe}: {result.score} of the {result.aggregate} "
        f"{result.site} with {result.vector!r}; {result.tuning} tuning, {result.heldout} "
        "held-out prompts"
    )
    print(f"{'layer':>5} {'compare':>7} {'threshold':>10} {'precision':>9} {'recall':>7} {'F1':>6}")
    for layer in sorted({c.layer for c in result.cells}):
        row = [c for c in result.cells if c.layer == layer]
        top = result.best if result.best.layer == layer else max(row, key=lambda c: c.f1)
        mark = "  <- best" if top is result.best else "  (best of this layer)"
        print(
            f"{layer:>5} {top.compare:>7} {top.threshold:>10g} {top.precision:>9.3f} "
            f"{top.recall:>7.3f} {top.f1:>6.3f}{mark}"
        )
    held = result.heldout_result
    print(
        f"held-out: precision {held.precision:.3f}, recall {held.recall:.3f}, F1 {held.f1:.3f} "
        f"({result.heldout} prompts)"
    )
    print(result.snippet())
    print(f"reproduce it: steer run {args.recipe} {result.set_flags()}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
