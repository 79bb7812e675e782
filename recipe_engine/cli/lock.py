"""`steer lock RECIPE`: write RECIPE.lock, the exact inputs the recipe ran on."""

from __future__ import annotations

import argparse
import sys

from recipe_engine.cli.common_flags import add_allow_outside_root, add_set

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer lock recipes/activation-addition.yaml     writes recipes/activation-addition.yaml.lock
  steer lock recipes/a.yaml --check               say what differs from the lock (exit 1 if any)

The lock pins the inputs exactly (model weights, tokenizer, chat template, data and vector files,
vector values, engine/torch/transformers/nnsight versions); results then agree within float
noise (~1e-6 across CPUs), not bit for bit. `steer run` and `steer test` check a recipe's lock
before running; --update-lock rewrites it.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lock",
        help="write RECIPE.lock: hashes of the model, data, vectors and library versions",
        description="Write RECIPE.lock next to the recipe (torch-free).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", metavar="RECIPE", help="the recipe file (.yaml)")
    add_set(parser)
    add_allow_outside_root(parser)
    parser.add_argument(
        "--check", action="store_true", help="compare with the existing lock instead of writing"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import check_lock, load_recipe, write_lock

    loaded = load_recipe(
        args.recipe, overrides=args.overrides, allow_outside_root=args.allow_outside_root
    )
    if args.check:
        differences = check_lock(loaded.recipe, loaded.document)
        if differences is None:
            print(
                f"steer: error: {args.recipe} has no lock (steer lock {args.recipe})",
                file=sys.stderr,
            )
            return 1
        for line in differences:
            print(line)
        print(f"{len(differences)} difference(s) from the lock", file=sys.stderr)
        return 1 if differences else 0
    target = write_lock(loaded.recipe, loaded.document)
    print(f"wrote {target}", file=sys.stderr)
    return 0
