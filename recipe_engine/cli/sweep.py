"""`steer sweep RECIPE --layers ... --strengths ...`: a layer x strength grid with a plot."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_engine.cli.common import add_recipe_arguments
from recipe_engine.cli.common_flags import add_out

if TYPE_CHECKING:
    from recipe_engine.api import SweepResult

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer sweep recipes/activation-addition.yaml --layers 0:4 --strengths 0 1 2 3 4 --kl-budget 0.1
  steer sweep recipes/activation-addition.yaml --layers 0,1 --strengths 0 2 4 6 8
  steer sweep recipes/activation-addition.yaml --layers 0 --strengths -1 -2 -3 \\
      --effect token_prob:negative
  steer sweep recipes/activation-addition.yaml --layers all --strengths 1 3 \\
      --effect token_prob:negative --direction down --out results/

Varies intervention --intervention (default 0): its layer (the vector is re-extracted at each
layer unless --fixed-vector) and its strength. --layers takes what a recipe's `layers:` takes:
indices (negative from the end), ranges a:b, a: and :b, or all; several, separated by spaces or
commas (a word starting with "-" and a colon needs --layers=-2:). Writes sweep.csv, sweep.json
and sweep.png into the directory --out (default steer-out/sweep-<recipe>/) and prints the table
(--format json: the sweep.json document) and the recommended setting.

Recommendation: the effect of a setting is the change of the --effect metric (steered minus
baseline) in the --direction asked (up: the metric should grow; down: shrink), whatever the
sign of the strengths. Among the settings whose side effect (KL to the baseline on neutral text
when the recipe has a kl_baseline metric with `text:`, else on the prompts) is within
--kl-budget and whose effect is positive, the largest wins; ties go to the smaller |strength|,
then the lower layer. The three files are replaced together, once the sweep is done: an
interrupted sweep (Ctrl-C, exit 130) leaves earlier ones as they were; a rerun reuses the
vectors already cached.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a layer x strength grid, plot effect and side effect, recommend a setting",
        description="Sweep one intervention over layers and strengths.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--layers",
        nargs="+",
        required=True,
        help="layers as in a recipe: 0 2 / 0,2 / 1:3 / 2: / all / -1",
    )
    parser.add_argument("--strengths", nargs="+", type=float, required=True, help="strengths")
    parser.add_argument(
        "--intervention", type=int, default=0, help="index of the intervention to vary"
    )
    parser.add_argument(
        "--effect", help="metric name, e.g. token_prob:positive (default: the first reported)"
    )
    parser.add_argument(
        "--direction",
        choices=("up", "down"),  # recipe_engine.sweep.DIRECTIONS, without importing it here
        default="up",
        help="whether the effect metric should grow (up) or shrink (down)",
    )
    parser.add_argument(
        "--kl-budget", type=float, default=0.5, help="largest side-effect KL recommended, nats"
    )
    parser.add_argument(
        "--fluency-budget",
        type=float,
        default=None,
        help="largest steered fluency (perplexity of the continuations) recommended; needs a "
        "fluency metric",
    )
    parser.add_argument(
        "--controls",
        type=int,
        default=0,
        metavar="N",
        help="N random vectors of the steering vector's norm per cell; recommend only effects "
        "that clear the control band by --min-z control sds",
    )
    parser.add_argument(
        "--min-z", type=float, default=2.0, help="control sds the effect must clear (--controls)"
    )
    parser.add_argument(
        "--fixed-vector",
        action="store_true",
        help="keep the vector's own layer instead of re-extracting per layer",
    )
    add_out(parser, "dir", metavar="DIR", help="where sweep.csv, sweep.json and sweep.png go")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import SweepRanking, run_sweep, write_sweep
    from recipe_engine.cli.progress import Progress
    from recipe_engine.terminal import fixed

    bars = Progress()
    try:
        result = run_sweep(
            args.recipe,
            args.layers,
            args.strengths,
            intervention=args.intervention,
            effect=args.effect,
            kl_budget=args.kl_budget,
            direction=args.direction,
            follow_layer=not args.fixed_vector,
            overrides=args.overrides,
            progress=lambda done, total: bars("sweep", done, total),
            allow_outside_root=args.allow_outside_root,
            ranking=SweepRanking(args.fluency_budget, args.controls, args.min_z),
        )
    finally:
        bars.close()
    out = Path(args.out) if args.out else Path("steer-out") / f"sweep-{result.recipe}"
    paths = write_sweep(result, out)
    for failure in result.failures:
        print(f"steer: warning: {failure}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
        return 0
    print(
        f"sweep of {result.recipe}: effect = change of {result.effect_metric} "
        f"(baseline {fixed(result.baseline)}), side effect = {result.cost_metric}"
    )
    fluency = any(p.fluency is not None for p in result.points)
    band = result.ranking.controls > 0
    head = f"{'layer':>5} {'strength':>9} {'effect':>9} {'KL':>9}"
    head += f" {'fluency':>9}" if fluency else ""
    head += f" {'controls':>17} {'z':>6}" if band else ""
    print(head)
    for p in result.points:
        mark = "  <- recommended" if p is result.recommended else ""
        if math.isfinite(p.effect) and math.isfinite(p.kl):
            effect, kl = fixed(p.effect, signed=True), fixed(p.kl)
            line = f"{p.layer:>5} {p.strength:>9g} {effect:>9} {kl:>9}"
            if fluency:
                line += f" {fixed(p.fluency) if p.fluency is not None else '-':>9}"
            if band:
                ctrl = "-"
                if p.control_mean is not None and p.control_sd is not None:
                    ctrl = f"{fixed(p.control_mean, signed=True)} +- {fixed(p.control_sd)}"
                line += f" {ctrl:>17} {(f'{p.z:+.1f}' if p.z is not None else '-'):>6}"
            print(line + mark)
        else:  # a NaN is a failure to report, not a number to print
            print(f"{p.layer:>5} {p.strength:>9g} {'NaN/Inf':>9} {'NaN/Inf':>9}  (failed)")
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    best = result.recommended
    if best is None:
        print(_nothing_recommended(result))
    else:
        print(
            f"recommended: layer {best.layer}, strength {best.strength:g} "
            f"(effect {fixed(best.effect, signed=True)}, KL {fixed(best.kl)} <= {result.kl_budget})"
        )
        print(f"reproduce it: steer run {args.recipe} {best.set_flags()}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _nothing_recommended(result: SweepResult) -> str:
    within = [p for p in result.points if math.isfinite(p.effect) and p.kl <= result.kl_budget]
    if not within:
        return (
            f"no setting keeps KL within {result.kl_budget}; raise --kl-budget or lower strengths"
        )
    way, other = ("increases", "down") if result.direction == "up" else ("decreases", "up")
    rank = result.ranking
    if rank.fluency_budget is not None or rank.controls:
        return (
            f"no setting within the KL budget {way} {result.effect_metric} with fluency <= "
            f"{rank.fluency_budget} and an effect {rank.min_z:g} control sds past the random "
            "controls (see the table); loosen --fluency-budget or --min-z, or try other strengths"
        )
    return (
        f"no setting within the KL budget {way} {result.effect_metric}; try strengths of the "
        f"other sign, another --effect, or --direction {other}"
    )
