"""`steer ls` and `steer cp NAME DEST`: list the example recipes that ship with the engine, and
copy one, with the files it reads, to start from. Torch-free."""

from __future__ import annotations

import argparse
import json
import sys

from recipe_engine.cli.common_flags import add_format

__all__ = ["add_parser", "run_cp", "run_ls"]

LS_EPILOG = """\
examples:
  steer ls
  steer ls --format json
"""

CP_EPILOG = """\
examples:
  steer cp activation-addition my-recipes/
  steer run my-recipes/activation-addition.yaml

Copies the recipe and every file it reads (included fragments, prompt and probe data, vector
files) into DEST, at the same relative places, so that the copy validates and runs as the
original. DEST is created if missing; an existing file is never overwritten (exit 2, nothing
copied).
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = subparsers.add_parser(
        "ls",
        help="list the example recipes that ship with the engine",
        description="List the bundled example recipes with a one-line description each.",
        epilog=LS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_format(ls)
    ls.set_defaults(handler=run_ls)
    cp = subparsers.add_parser(
        "cp",
        help="copy an example recipe, with the files it needs, into a folder",
        description="Copy a bundled example recipe and the files it reads into DEST.",
        epilog=CP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cp.add_argument("name", metavar="NAME", help="an example's name, as `steer ls` shows it")
    cp.add_argument("dest", metavar="DEST", help="folder to copy into (created if missing)")
    cp.set_defaults(handler=run_cp)


def run_ls(args: argparse.Namespace) -> int:
    from recipe_engine.api import list_examples

    examples = list_examples()
    if args.format == "json":
        rows = [{"name": e.name, "description": e.description} for e in examples]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    width = max((len(e.name) for e in examples), default=0)
    for example in examples:
        print(f"{example.name:<{width}}  {example.description}")
    return 0


def run_cp(args: argparse.Namespace) -> int:
    from recipe_engine.api import copy_example, display_path

    written = copy_example(args.name, args.dest)
    for path in written:
        print(f"wrote {display_path(path)}")
    return 0
