"""`steer run RECIPE`: run a recipe and report baseline vs steered."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_engine.cli.common import add_recipe_arguments
from recipe_engine.cli.common_flags import add_out
from recipe_engine.diagnostics import FlagOverride
from recipe_engine.errors import UsageError
from recipe_engine.terminal import use_colour

if TYPE_CHECKING:
    from recipe_engine.api import LoadedRecipe

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer run recipes/activation-addition.yaml
  steer run recipes/activation-addition.yaml --set interventions.0.strength=8
  steer run recipes/generate-every-step.yaml --format json > report.json
  steer run recipes/persistent-edit.yaml --out results/
  steer run recipes/persistent-edit.yaml --out results/edit-report.json
  steer run recipes/sentiment-eval.yaml --controls 8

--set PATH=VALUE overrides any field before validation (VALUE is read as YAML).
--out DIR writes DIR/<recipe name>.json, --out FILE.json that file (atomically), besides
printing the report.
Exit status: 0 ok, 1 invalid recipe, 2 usage error, 3 runtime failure: model missing, or the
steered model produced NaN/Inf (--debug: traceback). A finite but broken output (side-effect KL
or perplexity far out of range) is a one-line warning on stderr and in the JSON report.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a recipe: baseline vs steered, with metrics",
        description="Validate, compile and run a recipe, then report what changed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(parser)
    add_out(parser, "json-or-dir", help="also write the JSON report")
    parser.add_argument(
        "--controls",
        type=int,
        metavar="N",
        default=None,
        help="run N random vectors of each steering vector's norm with the same interventions "
        "(report.controls: {random: N}); every metric gets the control mean +- sd",
    )
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="rewrite RECIPE.lock (when the recipe has one) instead of checking it first",
    )
    parser.set_defaults(handler=run)


def _lock_holds(loaded: LoadedRecipe, *, update: bool) -> bool:
    """A recipe with RECIPE.lock runs only on the inputs it pins: say each difference, one line
    each, before anything runs (--update-lock: rewrite the lock instead)."""
    from recipe_engine.api import check_lock, write_lock

    recipe, doc = loaded.recipe, loaded.document
    differences = check_lock(recipe, doc)
    if differences is None:
        return True
    if update:
        print(f"wrote {write_lock(recipe, doc)}", file=sys.stderr)
        return True
    for line in differences:
        print(f"steer: lock: {line}", file=sys.stderr)
    if differences:
        print(
            f"steer: error: {doc.display} does not match its lock ({len(differences)} "
            "difference(s)); rerun with --update-lock to accept them",
            file=sys.stderr,
        )
    return not differences


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import load_recipe, render_text, run_recipe
    from recipe_engine.atomic import write_text_atomic
    from recipe_engine.cli.progress import Progress

    overrides = list(args.overrides or [])
    if args.controls is not None:
        if args.controls < 0:
            raise UsageError(f"--controls {args.controls}: give a count of 0 or more")
        flag = f"--controls {args.controls}"
        overrides.append(FlagOverride(f"report.controls={{random: {args.controls}}}", flag))
    loaded = load_recipe(
        args.recipe, overrides=overrides, allow_outside_root=args.allow_outside_root
    )
    for diagnostic in loaded.warnings:  # e.g. a value YAML 1.1 tools read differently
        print(diagnostic.format(), file=sys.stderr)
    if not _lock_holds(loaded, update=args.update_lock):
        return 1
    run_spec = loaded.recipe.run
    new_tokens = run_spec.generation.max_new_tokens if run_spec.mode != "trace" else None
    progress = Progress(tokens_per_prompt=new_tokens)
    try:
        report = run_recipe(loaded, progress=progress)
    finally:
        progress.close()
    for warning in report.warnings:
        print(f"steer: warning: {warning}", file=sys.stderr)
    payload = json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.out:
        out = Path(args.out)
        target = out if out.suffix == ".json" else out / f"{report.recipe_name}.json"
        write_text_atomic(target, payload)
        print(f"wrote {target}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(payload)
    else:
        sys.stdout.write(render_text(report, use_colour(sys.stdout)))
    return 0
