"""Entry point of `steer`. Maps errors to exit codes: 0 ok, 1 invalid recipe, 2 usage,
3 runtime or environment failure, 130 interrupted (Ctrl-C: one line, files left as they were).
No traceback reaches the user unless --debug."""

from __future__ import annotations

import argparse
import atexit
import importlib
import signal
import sys
import traceback
from collections.abc import Sequence

from recipe_engine.atomic import hold_sigint
from recipe_engine.cli import (
    condition,
    eval,
    examples,
    explain,
    export,
    lock,
    run,
    schema,
    serve,
    sweep,
    test,
    validate,
    vectors,
)
from recipe_engine.cli.common_flags import (
    HelpFormatter,
    add_debug,
    apply_no_cache,
    check_before_work,
)
from recipe_engine.cli.did_you_mean import SteerArgumentParser
from recipe_engine.errors import RecipeEngineError, RecipeError, UsageError
from recipe_engine.extras import missing_extra_for, require_run_extra
from recipe_engine.version import FORMAT_VERSION, __version__

__all__ = ["build_parser", "main"]

SUBCOMMANDS = (
    validate,
    run,
    test,
    lock,
    explain,
    vectors,
    sweep,
    eval,
    condition,
    export,
    serve,
    schema,
    examples,
)

# Limits on the files a recipe names, set in the environment (like STEER_CACHE_DIR) so that every
# command, and the Python API, honour them alike. Added to the help of each command that reads
# recipes; recipe_engine/load/prompt_files.py documents them.
ENVIRONMENT = """\
environment:
  STEER_MAX_PROMPT_FILE_BYTES  largest prompt or probe-data file read (default 256M)
  STEER_MAX_PROMPT_LINE_BYTES  longest line (one prompt) of such a file (default 1M)
                               (bytes, or with a K, M or G suffix: STEER_MAX_PROMPT_FILE_BYTES=1G)
  STEER_CACHE_DIR              where extracted vectors are cached (STEER_NO_CACHE=1: none)
  STEER_MODEL_CACHE            where GGUF models are cached once dequantized
                               (default ~/.cache/recipe-engine/models)
  STEER_MODEL_ROOTS            model stores: folders (os.pathsep-separated) whose models a
                               recipe's model.id may name without --allow-outside-root
"""


def _with_environment(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """Append ENVIRONMENT to the help of this parser and of the subcommands below it (not to
    schema and inspect: they read no recipe); give every subcommand --debug and the help
    formatter that shows defaults."""
    parser.epilog = f"{parser.epilog}\n\n{ENVIRONMENT}" if parser.epilog else ENVIRONMENT
    _common_to_all(parser, top=top)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name not in ("schema", "inspect", "ls", "cp"):  # they read no recipe
                    _with_environment(child, top=False)
                else:
                    _common_to_all(child, top=False)


def _common_to_all(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.formatter_class = HelpFormatter
    if not top and not any(a.dest == "debug" for a in parser._actions):
        add_debug(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = SteerArgumentParser(
        prog="steer",
        description="Declarative steering recipes for language models.",
        epilog="Run `steer COMMAND --help` for each command's examples.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"steer (recipe-engine) {__version__}, recipe format {FORMAT_VERSION}",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks of failures (also accepted after the command)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    _with_environment(parser)
    return parser


_teardown_quiet = False


def _ignore_sigint_at_exit() -> None:
    """From the first atexit callback on, ignore Ctrl-C.

    By then the command is over and its files are written; the rest of the teardown (torch's
    atexit hooks take up to a second) would turn a late Ctrl-C into an "Exception ignored in
    atexit callback" traceback or a death by signal after a success. atexit runs callbacks last
    registered first, so this one runs before the libraries' own; threads are joined before any,
    so a hung thread can still be interrupted. Harmless when `main` runs inside another program:
    it only takes effect when that program exits.
    """
    global _teardown_quiet
    if not _teardown_quiet:
        _teardown_quiet = True
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    _ignore_sigint_at_exit()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while parsing arguments or reporting another error
        print("steer: interrupted", file=sys.stderr)
        # CPython flags a KeyboardInterrupt that escapes an exec() of a string as unhandled,
        # even once caught, and `python -m` then exits by killing itself with SIGINT instead of
        # returning 130. A Ctrl-C during the imports often passes through one (dataclasses
        # build their methods with exec). Exec-ing any string clears the flag.
        exec("")
        return 130


# Commands that load a model import torch with Ctrl-C held. Interrupted mid-import, torch's
# initialisation can swallow the KeyboardInterrupt (the command then runs to the end) or abort
# the process (pybind11 error_already_set -> std::terminate, a core dump). Held, the Ctrl-C lands
# right after the import (a second or two), where `main` handles it like any other.
TORCH_COMMANDS = ("run", "test", "explain", "vectors", "sweep", "condition", "export", "serve")


def _model_command(args: argparse.Namespace) -> str | None:
    """`steer run`, `steer vectors build`...: the command as typed when it loads a model (it
    then needs the run extra), else None."""
    if args.command not in TORCH_COMMANDS or getattr(args, "no_model", False):
        return None
    verb = getattr(args, "verb", None)
    return f"steer {args.command}" + (f" {verb}" if verb else "")


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_before_work(args)
    except UsageError as exc:
        print(f"steer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    apply_no_cache(args)
    command = _model_command(args)
    try:
        if command is not None:
            require_run_extra(command)  # one line naming the pip install, not a traceback
            with hold_sigint():
                importlib.import_module("torch")
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
    except Exception as exc:  # the last line of defence: one line, not a traceback
        # A module of the run extra imported lazily deep inside (matplotlib for a sweep's plot):
        # the same line as a missing torch.
        missing = missing_extra_for(exc, command or f"steer {args.command}")
        if args.debug:
            traceback.print_exc()
        if missing is not None:
            print(f"steer: error: {missing}", file=sys.stderr)
        elif not args.debug:
            print(
                f"steer: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                "traceback, and please report it)",
                file=sys.stderr,
            )
        return 3


if __name__ == "__main__":
    sys.exit(main())
