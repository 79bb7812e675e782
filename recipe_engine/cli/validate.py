"""`steer validate PATH...`: schema and semantic checks, torch-free."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_engine.cli.common_flags import (
    add_allow_outside_root,
    add_backend_argument,
    add_format,
    add_set,
    missing_path_message,
)
from recipe_engine.cli.validate_report import REPORTERS
from recipe_engine.diagnostics import one_line
from recipe_engine.errors import UsageError

if TYPE_CHECKING:
    from recipe_engine.api import ValidationResult

__all__ = ["add_parser", "find_recipes", "find_recipes_and_missing", "run"]

EPILOG = """\
examples:
  steer validate recipes/                     every *.yaml below, recursively
  steer validate a.yaml b.yaml --format json  machine-readable
  steer validate recipes/ --format github     annotations in GitHub Actions
  steer validate recipes/ --check-model       also layer/head/width checks (config only)
  steer validate --skip-non-recipes a.yaml .github/ci.yml   only a.yaml, if it is a recipe

Directories are searched recursively for *.yaml and *.yml; names starting with "_" or "."
(fragments meant for include:, hidden folders) are skipped. Exit status: 0 valid, 1 invalid,
2 usage error (a path that does not exist: the others are still checked and reported),
3 environment failure (e.g. a hub model not in the local cache).
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check recipes against the schema and each other (torch-free)",
        description="Validate recipe files: schema, references, semantics. Never imports torch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="recipe files or directories")
    add_set(parser)
    add_backend_argument(parser)
    add_format(parser, tuple(sorted(REPORTERS)))
    parser.add_argument(
        "--check-model",
        action="store_true",
        help="also check layers, heads and vector widths against the model's config (no weights)",
    )
    add_allow_outside_root(parser)
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--skip-non-recipes",
        action="store_true",
        help="skip YAML files that are not recipes (workflows, .pre-commit-config.yaml...): a "
        "recipe has a top-level recipe section (model, vectors, interventions, run, report, "
        "include) and version: or a second section; for hooks and repository-wide globs",
    )
    parser.set_defaults(handler=run)


def _skip(path: Path) -> bool:
    return path.name.startswith(("_", "."))


def find_recipes(paths: Iterable[str]) -> list[Path]:
    """The recipe files named by `paths` (directories searched); UsageError for a missing one."""
    found, missing = find_recipes_and_missing(paths)
    if missing:
        raise UsageError(missing_path_message(missing[0]))
    return found


def find_recipes_and_missing(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    found: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            matches = [
                p
                for p in sorted(path.rglob("*"))
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(_skip(Path(part)) for part in p.relative_to(path).parts)
            ]
            if not matches:
                raise UsageError(f"no recipe files (*.yaml, *.yml) under {raw}")
            found.extend(matches)
        elif path.exists():
            found.append(path)
        else:
            missing.append(raw)
    return found, missing


def _only_recipes(files: list[Path]) -> list[Path]:
    from recipe_engine.api import looks_like_recipe

    verdicts = [(f, looks_like_recipe(f)) for f in files]
    kept = [f for f, recipe in verdicts if recipe]
    skipped = [str(f) for f, recipe in verdicts if not recipe]
    if skipped:  # on stderr: the report itself (stdout, JSON) covers recipes only
        shown = ", ".join(skipped[:5]) + (
            f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        print(
            f"steer: skipped {len(skipped)} YAML file(s) that are not recipes: {shown}",
            file=sys.stderr,
        )
    return kept


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import validate_file

    # A missing path is a usage error (exit 2, as for every command), but the files that do
    # exist are still checked and reported, and --format json stays one valid document.
    files, missing = find_recipes_and_missing(args.paths)
    if args.skip_non_recipes:
        files = _only_recipes(files)
    results: list[ValidationResult] = [
        validate_file(
            p,
            check_model=args.check_model,
            allow_outside_root=args.allow_outside_root,
            overrides=args.overrides,
        )
        for p in files
    ]
    if args.format == "json":  # one document listing every path given
        results += [missing_result(raw) for raw in missing]
    REPORTERS[args.format](results, sys.stdout)
    if args.format != "json":  # stdout stays one diagnostic a line; JSON carries it as `note`
        for result in results:
            if result.note:
                print(one_line(f"steer: note: {result.display}: {result.note}"), file=sys.stderr)
    for raw in missing:
        print(f"steer: error: {missing_path_message(raw)}", file=sys.stderr)
    if missing:
        return 2
    failed = [r for r in results if not r.ok or (args.strict and r.warnings)]
    if not failed:
        return 0
    if all(r.environment_failure for r in failed):
        return 3
    return 1


def missing_result(raw: str) -> ValidationResult:
    """The entry of a path that does not exist, so that reports list every path given."""
    from recipe_engine.api import ValidationResult
    from recipe_engine.diagnostics import Diagnostic

    message = "no such file or directory"
    return ValidationResult(Path(raw), raw, [Diagnostic("no-such-file", message)])
