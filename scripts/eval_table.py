"""The evaluation table, as `steer eval` makes it (kept for the commands that call this script;
prefer `steer eval RECIPE ...`, README "Evaluating steering on generated text").

    python scripts/eval_table.py recipes/sentiment-eval.yaml --strengths 1 2 3 4
    python scripts/eval_table.py recipes/real/sentiment-eval.yaml --strengths 1 1.5 2 3 \\
        --tune data/tuning-openings-chat.jsonl --plot docs/eval/smollm2.png

A thin wrapper over recipe_engine.api.evaluate_recipe: --model and --layer become --set
overrides (model.id; the vector's layer and intervention 0's layers), --vector is the method,
--tune defaults to data/neutral-tune.txt next to the recipe. Prints the markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recipe_engine.api import evaluate_recipe, render_eval_table  # noqa: E402
from recipe_engine.atomic import write_bytes_atomic  # noqa: E402


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def overrides(args: argparse.Namespace) -> list[str]:
    sets = list(args.set or [])
    if args.model:
        sets.append(f"model.id={args.model}")
    if args.layer is not None:
        sets += [
            f"vectors.{args.vector}.layer={args.layer}",
            f"interventions.0.layers={args.layer}",
        ]
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--model", help="model.id to run (e.g. a local folder)")
    parser.add_argument("--layer", type=int, help="the layer of the vector and intervention 0")
    parser.add_argument("--vector", help="the method: a vector of the recipe")
    parser.add_argument("--strengths", type=float, nargs="+", help="tune among these")
    parser.add_argument("--tune", default="data/neutral-tune.txt", help="tuning prompt file")
    parser.add_argument("--fluency-budget", type=float, default=1.5)
    parser.add_argument("--prompt", help="the prompting instruction (default: the recipe's)")
    parser.add_argument("--controls", type=int, default=8)
    parser.add_argument("--set", action="append", metavar="PATH=VALUE")
    parser.add_argument("--plot", metavar="PNG", help="also draw the table")
    parser.add_argument("--allow-outside-root", action="store_true")
    args = parser.parse_args()
    table = evaluate_recipe(
        args.recipe,
        methods=[args.vector] if args.vector else None,
        strengths=args.strengths,
        tune=args.tune if args.strengths else None,
        fluency_budget=args.fluency_budget,
        controls=args.controls,
        instruction=args.prompt,
        overrides=overrides(args),
        allow_outside_root=args.allow_outside_root,
        log=log,
    )
    if args.plot:
        write_bytes_atomic(Path(args.plot), render_eval_table(table, "plot"))
    sys.stdout.write(render_eval_table(table, "markdown").decode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
