"""`steer eval RECIPE`: the evaluation table, methods side by side next to the baseline,
prompting and random controls (recipe_engine/evaluate/table.py documents the rule and the
aggregate)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recipe_engine.atomic import write_bytes_atomic
from recipe_engine.cli.common import add_recipe_arguments

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer eval recipes/sentiment-eval.yaml --strengths 1 2 3 4 --tune data/neutral-tune.txt
  steer eval recipes/real/sentiment-eval.yaml --methods sentiment judge_probe \\
      --strengths 1 1.5 2 3 --tune data/tuning-openings.txt --controls 8 \\
      --markdown docs/eval/real.md --plot docs/eval/real.png

The recipe's `eval:` block (methods, strengths, tune, controls, fluency_budget, prompting)
gives each setting a flag leaves out, so `steer eval RECIPE` alone reproduces its table.
Each method (a vector of the recipe, default: the first intervention's) replaces the vector of
the recipe's first intervention. With --strengths, each method's strength is chosen on the
--tune prompts (a prompt file, relative to the recipe; refused when it shares a prompt with
run.prompts): the highest first concept score among the strengths whose fluency (perplexity)
is within --fluency-budget times the unsteered model's; then everything is measured on the
test prompts (run.prompts). Prompting: report.prompt_baseline's instruction (or --prompt), as
a system message and/or as a prefix (--prompting, else eval.prompting; by default both for
chat prompts and the prefix alone for plain text, which has no conversation to add a system
message to). The aggregate: harmonic mean of normalized concept, instruction and fluency
(README). Prints the table (text; --format json: the JSON document) and writes the files
asked for.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="the evaluation table: methods vs prompting vs random controls",
        description="Evaluate steering methods side by side on held-out prompts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--methods", nargs="+", metavar="NAME", help="vectors of the recipe (default: eval.methods)"
    )
    parser.add_argument(
        "--strengths", nargs="+", type=float, help="the grid tuned over (default: eval.strengths)"
    )
    parser.add_argument(
        "--tune", metavar="FILE", help="tuning prompt file, relative to the recipe (eval.tune)"
    )
    parser.add_argument(
        "--fluency-budget",
        type=float,
        default=None,
        help="x baseline perplexity (default: eval.fluency_budget, else 1.5)",
    )
    parser.add_argument(
        "--controls",
        type=int,
        default=None,
        metavar="N",
        help="random controls (default: eval.controls, else 8)",
    )
    parser.add_argument(
        "--prompting",
        nargs="*",
        choices=("system", "prefix"),
        default=None,
        help="how the instruction is given (default: eval.prompting, else system and prefix "
        "for chat prompts, prefix for plain text; the flag alone: no prompting rows)",
    )
    parser.add_argument("--prompt", help="the prompting instruction (default: the recipe's)")
    for flag in ("json", "csv", "markdown"):
        parser.add_argument(f"--{flag}", metavar="FILE", help=f"write the table as {flag}")
    parser.add_argument("--plot", metavar="PNG", help="concept vs fluency, control bands shaded")
    parser.set_defaults(handler=run)


def _log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import evaluate_recipe, render_eval_table
    from recipe_engine.cli.progress import Progress

    bars = Progress()
    try:
        table = evaluate_recipe(
            args.recipe,
            methods=args.methods,
            strengths=args.strengths,
            tune=args.tune,
            fluency_budget=args.fluency_budget,
            controls=args.controls,
            prompting=args.prompting,
            instruction=args.prompt,
            overrides=args.overrides,
            allow_outside_root=args.allow_outside_root,
            progress=bars,
            log=_log,
        )
    finally:
        bars.close()
    for fmt in ("json", "csv", "markdown", "plot"):
        target = getattr(args, fmt)
        if target:
            write_bytes_atomic(Path(target), render_eval_table(table, fmt))
            _log(f"wrote {target}")
    text = render_eval_table(table, "json" if args.format == "json" else "text")
    sys.stdout.write(text.decode("utf-8"))
    return 0
