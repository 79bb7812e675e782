"""`steer sweep RECIPE --layers ... --strengths ...`: a layer x strength grid with a plot."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from recipe_engine.cli.common import add_backend_argument
from recipe_engine.errors import UsageError

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer sweep recipes/activation-addition.yaml --layers 1 2 3 --strengths 0 2 4 6 8
  steer sweep recipes/activation-addition.yaml --layers 0:4 --strengths -8 -4 0 4 8 --kl-budget 1
  steer sweep R.yaml --layers 2 --strengths 1 2 3 --effect token_prob:negative --out results/

Varies intervention --intervention (default 0): its layer (the vector is re-extracted at each
layer unless --fixed-vector) and its strength. Writes sweep.csv, sweep.json and sweep.png to
--out (default steer-out/sweep-<recipe>/) and prints the table and the recommended setting:
the largest effect whose KL to the baseline stays within --kl-budget (ties: smaller strength).
The three files are replaced together, once the sweep is done: an interrupted sweep (Ctrl-C,
exit 130) leaves earlier ones as they were; a rerun reuses the vectors already cached.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a layer x strength grid, plot effect and side effect, recommend a setting",
        description="Sweep one intervention over layers and strengths.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", metavar="RECIPE")
    parser.add_argument("--layers", nargs="+", required=True, help="indices or a range a:b")
    parser.add_argument("--strengths", nargs="+", type=float, required=True)
    parser.add_argument("--intervention", type=int, default=0)
    parser.add_argument("--effect", help="metric name, e.g. token_prob:positive (default: first)")
    parser.add_argument("--kl-budget", type=float, default=0.5)
    parser.add_argument(
        "--fixed-vector",
        action="store_true",
        help="keep the vector's own layer instead of re-extracting per layer",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE"
    )
    add_backend_argument(parser)
    parser.add_argument("--out", metavar="DIR")
    parser.set_defaults(handler=run)


def _layers(values: list[str]) -> list[int]:
    layers: list[int] = []
    for value in values:
        if ":" in value:
            start, stop = value.split(":", 1)
            try:
                layers.extend(range(int(start or 0), int(stop)))
            except ValueError:
                raise UsageError(f"--layers {value!r}: expected a:b with integers") from None
        else:
            try:
                layers.append(int(value))
            except ValueError:
                raise UsageError(f"--layers {value!r}: expected an integer or a:b") from None
    return list(dict.fromkeys(layers))


def run(args: argparse.Namespace) -> int:
    from recipe_engine.cli.progress import Progress
    from recipe_engine.report.text import fixed
    from recipe_engine.sweep import run_sweep, write_sweep

    bars = Progress()
    try:
        result = run_sweep(
            args.recipe,
            _layers(args.layers),
            args.strengths,
            intervention=args.intervention,
            effect=args.effect,
            kl_budget=args.kl_budget,
            follow_layer=not args.fixed_vector,
            overrides=args.overrides,
            progress=lambda done, total: bars("sweep", done, total),
        )
    finally:
        bars.close()
    out = Path(args.out) if args.out else Path("steer-out") / f"sweep-{result.recipe}"
    paths = write_sweep(result, out)
    print(
        f"sweep of {result.recipe}: effect = change of {result.effect_metric} "
        f"(baseline {fixed(result.baseline)}), side effect = {result.cost_metric}"
    )
    print(f"{'layer':>5} {'strength':>9} {'effect':>9} {'KL':>9}")
    for p in result.points:
        mark = "  <- recommended" if p is result.recommended else ""
        if math.isfinite(p.effect) and math.isfinite(p.kl):
            effect, kl = fixed(p.effect, signed=True), fixed(p.kl)
            print(f"{p.layer:>5} {p.strength:>9g} {effect:>9} {kl:>9}{mark}")
        else:  # a NaN is a failure to report, not a number to print
            print(f"{p.layer:>5} {p.strength:>9g} {'NaN/Inf':>9} {'NaN/Inf':>9}  (failed)")
    for failure in result.failures:
        print(f"steer: warning: {failure}", file=sys.stderr)
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    best = result.recommended
    if best is None:
        print(
            f"no setting keeps KL within {result.kl_budget}; raise --kl-budget or lower strengths"
        )
    else:
        print(
            f"recommended: layer {best.layer}, strength {best.strength:g} "
            f"(effect {fixed(best.effect, signed=True)}, KL {fixed(best.kl)} <= {result.kl_budget})"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
