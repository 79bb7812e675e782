"""Entry point of `steer`. Maps errors to exit codes: 0 ok, 1 invalid recipe, 2 usage,
3 runtime or environment failure. No traceback reaches the user unless --debug."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from recipe_engine import __version__
from recipe_engine.cli import explain, run, schema, sweep, validate, vectors
from recipe_engine.errors import RecipeEngineError, RecipeError

__all__ = ["build_parser", "main"]

SUBCOMMANDS = (validate, run, explain, vectors, sweep, schema)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steer",
        description="Declarative steering recipes for language models.",
        epilog="Run `steer COMMAND --help` for each command's examples.",
    )
    parser.add_argument("--version", action="version", version=f"steer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except RecipeError as exc:
        for diag in exc.diagnostics:
            print(diag.format(), file=sys.stderr)
        return exc.exit_code
    except RecipeEngineError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"steer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("steer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"steer: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                "traceback, and please report it)",
                file=sys.stderr,
            )
        return 3


if __name__ == "__main__":
    sys.exit(main())
