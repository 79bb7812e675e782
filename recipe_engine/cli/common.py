"""Options shared by the subcommands that take a recipe."""

from __future__ import annotations

import argparse

from recipe_engine.api import BACKENDS

__all__ = ["add_backend_argument", "add_recipe_arguments"]


class _BackendAction(argparse.Action):
    """--backend X is `--set run.backend=X`: validated like the field, in one place."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        # A new list: the --set default is shared between parses and must not grow.
        namespace.overrides = [*(namespace.overrides or []), f"run.backend={values}"]


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        action=_BackendAction,
        help="where to run: local, remote (NDIF; key in NDIF_API_KEY), remote-local (an "
        "offline dry run of remote's serialization), vllm (extra `vllm`); overrides "
        "run.backend",
    )


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
    add_backend_argument(parser)
    if formats:
        parser.add_argument("--format", choices=("text", "json"), default="text")
