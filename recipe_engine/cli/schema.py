"""`steer schema`: write or check the generated JSON Schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recipe_engine.atomic import write_text_atomic
from recipe_engine.cli.common_flags import add_out

__all__ = ["DEFAULT_SCHEMA_PATH", "add_parser", "run"]

DEFAULT_SCHEMA_PATH = "schemas/recipe.schema.json"

EPILOG = """\
examples:
  steer schema                  write schemas/recipe.schema.json
  steer schema --check          exit 1 if the file differs from what the engine generates
  steer schema --out -          print it
  (-o/--output is the old spelling of --out, still accepted)

Editors pick the schema up from the first line of a recipe:
  # yaml-language-server: $schema=../schemas/recipe.schema.json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="write or check the recipe JSON Schema",
        description="Generate the JSON Schema of recipe format v1 from the engine's models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out(parser, "file-or-stdout", help="the schema file")
    parser.set_defaults(out=DEFAULT_SCHEMA_PATH)
    # Deprecated spelling, kept so existing scripts and hooks keep working; hidden from --help.
    parser.add_argument("--output", "-o", dest="out", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import render_schema

    text = render_schema()
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            print(f"{target} is up to date")
            return 0
        state = "is missing" if current is None else "is out of date"
        print(f"{target} {state}; regenerate it with: steer schema --out {target}")
        return 1
    write_text_atomic(target, text, keep_mode=True)  # a tracked file keeps its permissions
    print(f"wrote {target}")
    return 0
