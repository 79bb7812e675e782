"""Options shared by the subcommands that take a recipe (the flags: cli/common_flags.py)."""

from __future__ import annotations

import argparse

from recipe_engine.cli.common_flags import (
    add_allow_outside_root,
    add_backend_argument,
    add_format,
    add_no_cache,
    add_set,
)

__all__ = ["add_backend_argument", "add_recipe_arguments"]


def add_recipe_arguments(
    parser: argparse.ArgumentParser,
    *,
    formats: bool = True,
    no_cache: bool = True,
) -> None:
    """RECIPE, --set PATH=VALUE (repeatable), --allow-outside-root, --backend, and optionally
    --format and --no-cache."""
    parser.add_argument("recipe", metavar="RECIPE", help="the recipe file (.yaml)")
    add_set(parser)
    add_allow_outside_root(parser)
    add_backend_argument(parser)
    if formats:
        add_format(parser)
    if no_cache:
        add_no_cache(parser)
