"""The README's evaluation table for a steering recipe, on any model: concept, fluency and
repetition of the continuations for the baseline, the steered model, the negated vector,
prompting (report.prompt_baseline) and the band of random controls (report.controls).

    python scripts/eval_table.py recipes/sentiment-eval.yaml
    python scripts/eval_table.py recipes/sentiment-eval.yaml --model /path/to/smollm2 \\
        --layer 12 --strengths 2 4 6 8 --prompt "Write in a positive tone." --allow-outside-root

Hygiene: with --strengths, the strength is chosen on the tuning prompts (--tune, default
data/neutral-tune.txt next to the recipe) by one rule, and the table is measured on the recipe's
own prompts (the test set, disjoint from the tuning set: tests/test_data_splits.py). The rule:
the largest first concept score whose fluency (perplexity) stays within --fluency-budget times
the baseline's. Without --strengths the recipe's strength is used as written. Prints progress
on stderr and the table (markdown) on stdout.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recipe_engine.api import load_recipe, run_recipe  # noqa: E402

COLUMNS = ("concept", "above", "fluency", "distinct", "longest")


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, sets: list[str]) -> Any:
    loaded = load_recipe(args.recipe, overrides=sets, allow_outside_root=args.allow_outside_root)
    return run_recipe(loaded)


def _names(report: Any) -> dict[str, str]:
    """The metric names of the table's columns, found in the report."""
    names = [m.name for m in report.metrics]
    concept = next(n for n in names if n.startswith("concept:") and not n.endswith(":above"))
    return {
        "concept": concept,
        "above": concept + ":above",
        "fluency": "fluency",
        "distinct": next(n for n in names if n.startswith("repetition:distinct")),
        "longest": "repetition:longest",
    }


def _base_sets(args: argparse.Namespace) -> list[str]:
    sets = list(args.set or [])
    if args.model:
        sets.append(f"model.id={args.model}")
    if args.layer is not None:
        sets += [
            f"vectors.{args.vector}.layer={args.layer}",
            f"interventions.0.layers={args.layer}",
        ]
    if args.prompt:
        sets.append(f"report.prompt_baseline={args.prompt}")
    return sets


def tune(args: argparse.Namespace, sets: list[str]) -> float:
    """The strength the rule picks on the tuning prompts."""
    tune_file = args.tune or "data/neutral-tune.txt"
    tuning = [*sets, f"run.prompts={{file: {tune_file}}}", "report.controls=null"]
    tuning.append("report.prompt_baseline=null")
    best: tuple[float, float] | None = None
    for strength in args.strengths:
        report = _run(args, [*tuning, f"interventions.0.strength={strength}"])
        names = _names(report)
        concept = report.metric(names["concept"]).steered
        fluency = report.metric("fluency")
        budget = args.fluency_budget * (fluency.baseline or math.inf)
        ok = fluency.steered <= budget
        log(
            f"tune strength {strength:g}: {names['concept']} {concept:.4f}, fluency "
            f"{fluency.steered:.3f} (budget {budget:.3f}){'' if ok else ' over budget'}"
        )
        if ok and (best is None or concept > best[1]):
            best = (strength, concept)
    if best is None:
        raise SystemExit("no strength keeps fluency within the budget on the tuning prompts")
    log(f"chosen on the tuning prompts: strength {best[0]:g}")
    return best[0]


def _row(label: str, report: Any, names: dict[str, str], side: str) -> list[str]:
    cells = []
    for column in COLUMNS:
        value = report.metric(names[column])
        number = getattr(value, side)
        cells.append("-" if number is None else f"{number:.3f}")
    return [label, *cells]


def _band(report: Any, names: dict[str, str]) -> list[str]:
    n = len(report.metric(names["concept"]).controls)
    cells = []
    for column in COLUMNS:
        value = report.metric(names[column])
        cells.append(f"{value.control_mean:.3f} ± {value.control_sd:.3f}")
    return [f"random controls (n={n}, mean ± sd)", *cells]


def table(args: argparse.Namespace) -> str:
    sets = _base_sets(args)
    loaded = load_recipe(args.recipe, overrides=sets, allow_outside_root=args.allow_outside_root)
    prompt = loaded.recipe.report.prompt_baseline
    strength = tune(args, sets) if args.strengths else None
    if strength is not None:
        sets.append(f"interventions.0.strength={strength}")
    log(f"test prompts: steered, baseline, prompting and {args.controls} random controls")
    main = _run(args, [*sets, f"report.controls={{random: {args.controls}}}"])
    written = strength if strength is not None else main.plan[0]["strength"]
    log("test prompts: the negated vector")
    negated = _run(
        args,
        [
            *sets,
            f"interventions.0.strength={-written}",
            "report.controls=null",
            "report.prompt_baseline=null",
        ],
    )
    names = _names(main)
    rows = [
        _row("baseline", main, names, "baseline"),
        _row(f"steered (strength {written:g})", main, names, "steered"),
        _row(f"negated (strength {-written:g})", negated, names, "steered"),
        _row(f"prompting ({prompt!r})", main, names, "prompting"),
        _band(main, names),
    ]
    z = [f"{main.metric(names[c]).control_z:+.1f}" for c in COLUMNS]
    rows.append(["steered, in control sds", *z])
    header = [
        "",
        names["concept"],
        names["above"],
        "fluency (ppl)",
        names["distinct"],
        "longest repeat",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    model = main.model
    lines.append("")
    lines.append(
        f"{main.recipe_name} on {model['id']} ({model['family']}, {model['layers']} layers), "
        f"{len(main.prompts)} test prompts, layer {main.plan[0]['layer']}"
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--model", help="model.id to run (e.g. a local folder)")
    parser.add_argument("--layer", type=int, help="the layer of the vector and intervention 0")
    parser.add_argument("--vector", default="sentiment", help="the vector --layer moves")
    parser.add_argument("--strengths", type=float, nargs="+", help="tune among these")
    parser.add_argument("--tune", help="tuning prompt file, relative to the recipe")
    parser.add_argument("--fluency-budget", type=float, default=1.5)
    parser.add_argument("--prompt", help="report.prompt_baseline (prompting as a baseline)")
    parser.add_argument("--controls", type=int, default=8)
    parser.add_argument("--set", action="append", metavar="PATH=VALUE")
    parser.add_argument("--allow-outside-root", action="store_true")
    args = parser.parse_args()
    sys.stdout.write(table(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
