"""Options shared by the subcommands that take a recipe."""

from __future__ import annotations

import argparse

__all__ = ["add_recipe_arguments"]


def add_recipe_arguments(parser: argparse.ArgumentParser, *, formats: bool = True) -> None:
    """RECIPE, --set PATH=VALUE (repeatable), --allow-outside-root and, optionally, --format."""
    parser.add_argument("recipe", metavar="RECIPE")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field before validation (VALUE is read as YAML); repeatable",
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="let the recipe reference files outside its repository",
    )
    if formats:
        parser.add_argument("--format", choices=("text", "json"), default="text")
