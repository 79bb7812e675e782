"""`steer test PATH...`: run the recipes that carry `expect:` and check their claims."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_engine.atomic import write_text_atomic
from recipe_engine.cli.common_flags import add_allow_outside_root, add_set, missing_path_message
from recipe_engine.diagnostics import one_line
from recipe_engine.errors import UsageError

if TYPE_CHECKING:
    from recipe_engine.api import RecipeTestResult

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer test recipes/                          every recipe with expect: below, recursively
  steer test recipes/ --junit results.xml      also a JUnit report for CI
  steer test recipes/ --format github          failures as GitHub Actions annotations
  steer test recipes/ --changed-since origin/main   only recipes whose inputs changed

One line per claim: PASS or FAIL, the measured value and the bound. A recipe with a
RECIPE.lock is checked against it first; a mismatch fails it without running (--update-lock
rewrites the lock). Exit status: 0 every claim holds, 1 a claim failed or a recipe is invalid
or off its lock, 2 usage error, 3 runtime failure.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run recipes with expect: and check their claims (CI regression tests)",
        description="Run every recipe that has `expect:` and check each claim on its report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="recipe files or directories")
    add_set(parser)
    add_allow_outside_root(parser)
    parser.add_argument(
        "--format",
        choices=("text", "github"),
        default="text",
        help="github: failures also as ::error annotations at the claim's line",
    )
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report to FILE")
    parser.add_argument(
        "--changed-since",
        metavar="REF",
        help="only recipes whose file, includes, data or vector files changed since this git ref",
    )
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="rewrite each recipe's lock instead of checking it",
    )
    parser.set_defaults(handler=run)


def _escape(text: str, *, prop: bool = False) -> str:
    """GitHub workflow-command escaping (data; properties also escape : and ,)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _print(result: RecipeTestResult, github: bool) -> None:
    for line in result.lock_differences:
        print(one_line(f"LOCK {result.display}: {line}"))
    if result.error is not None:
        print(one_line(f"ERROR {result.display}: {result.error}"))
        if github:
            print(f"::error file={_escape(result.display, prop=True)}::{_escape(result.error)}")
    for claim in result.results:
        where = claim.location
        at = f"{where.file}:{where.line}" if where else result.display
        print(one_line(f"{claim.line().split(' ', 1)[0]} {at}: {claim.line().split(' ', 1)[1]}"))
        if github and not claim.passed and where is not None:
            print(
                f"::error file={_escape(where.file, prop=True)},line={where.line},"
                f"col={where.column},title={_escape('steer test', prop=True)}::"
                f"{_escape(claim.line())}"
            )
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import run_recipe_tests

    try:
        results = run_recipe_tests(
            args.paths,
            changed_since=args.changed_since,
            overrides=args.overrides,
            allow_outside_root=args.allow_outside_root,
            update_lock=args.update_lock,
            on_result=lambda r: _print(r, args.format == "github"),
        )
    except FileNotFoundError as exc:
        raise UsageError(missing_path_message(str(exc))) from None
    if args.junit:
        from recipe_engine.api import junit_xml

        write_text_atomic(Path(args.junit), junit_xml(results))
    claims = [c for r in results for c in r.results]
    failed = sum(not c.passed for c in claims)
    broken = sum(r.error is not None for r in results)
    print(
        f"{len(results)} recipe(s), {len(claims)} claim(s): {len(claims) - failed} passed, "
        f"{failed} failed" + (f", {broken} recipe(s) did not run" if broken else ""),
        file=sys.stderr,
    )
    return 1 if failed or broken else 0
