"""The flags every subcommand shares, defined once so that they mean the same everywhere.

    --set PATH=VALUE      validate run explain sweep vectors-build: override a field
    --format FORMAT       the same and vectors-inspect: text | json (validate: | github)
    --out PATH            run sweep vectors-build schema export: what OUT_KINDS says for each
    --allow-outside-root  validate run explain sweep vectors-build: files outside the repo
    --backend BACKEND     validate run explain sweep vectors-build: --set run.backend=BACKEND
    --no-cache            run explain sweep vectors-build: STEER_NO_CACHE=1 for the command
    --debug               every command, before or after its name: tracebacks of failures

`check_before_work` runs before any command starts working: a recipe that does not exist and an
--out that cannot be what the command writes are usage errors (exit 2, one line), not a failure
after the work is done. tests/test_common_flags.py walks the parser tree to hold this table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from recipe_engine.api import BACKENDS
from recipe_engine.diagnostics import FlagOverride
from recipe_engine.errors import UsageError

__all__ = [
    "OUT_KINDS",
    "RECIPE_COMMANDS",
    "HelpFormatter",
    "add_allow_outside_root",
    "add_backend_argument",
    "add_debug",
    "add_format",
    "add_no_cache",
    "add_out",
    "add_set",
    "apply_no_cache",
    "check_before_work",
    "missing_path_message",
]

# Subcommands (as `steer ...` words) that read a recipe: each has --set, --format,
# --allow-outside-root, --backend and --debug.
RECIPE_COMMANDS = ("validate", "run", "explain", "sweep", "vectors build")

# What --out names, per kind: a directory, one file with a given suffix, or either.
OUT_KINDS = {
    "dir": "a directory (created if missing)",
    "json-or-dir": "a file ending in .json, or else a directory that gets <recipe name>.json",
    ".safetensors": "a file ending in .safetensors",
    "file-or-stdout": "a file, or - for standard output",
    "export": "a directory (--format hf) or a file ending in .gguf (gguf-control-vector)",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs kept as written; every option with a meaningful default shows it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default == []
            or default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


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
        backend = FlagOverride(f"run.backend={values}", f"--backend {values}")
        namespace.overrides = [*(namespace.overrides or []), backend]


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field before validation (VALUE is read as YAML); repeatable",
    )


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        action=_BackendAction,
        help="where to run: local, remote (NDIF; key in NDIF_API_KEY), remote-local (an "
        "offline dry run of remote's serialization), vllm (extra `vllm`); same as "
        "--set run.backend=BACKEND",
    )


def add_allow_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="let the recipe reference files outside its repository",
    )


def add_format(
    parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")
) -> None:
    parser.add_argument("--format", choices=choices, default="text", help="output format")


def add_no_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="extract vectors again and leave the cache alone (same as STEER_NO_CACHE=1)",
    )


def add_out(
    parser: argparse.ArgumentParser, kind: str, *, required: bool = False, **kw: str
) -> None:
    """--out PATH, where PATH is OUT_KINDS[kind]; checked by check_before_work."""
    meaning = OUT_KINDS[kind]
    parser.add_argument(
        "--out",
        required=required,
        metavar=kw.get("metavar", "PATH"),
        help=kw.get("help", "write the output to PATH") + f"; PATH is {meaning}",
    )
    parser.set_defaults(out_kind=kind)


def add_debug(parser: argparse.ArgumentParser) -> None:
    """--debug on a subcommand too (`steer run R --debug`). SUPPRESS: when it is not given
    there, the value from before the subcommand (or the top-level default) stays."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of failures",
    )


def apply_no_cache(args: argparse.Namespace) -> None:
    # The whole command runs in this process: the environment switch reaches every vector
    # build (compile_recipe, sweeps) without threading a flag through the API.
    if getattr(args, "no_cache", False):
        os.environ["STEER_NO_CACHE"] = "1"


def missing_path_message(raw: str) -> str:
    """The one wording of a missing input path, for every subcommand."""
    return f"{raw}: no such file or directory"


def _check_recipe(raw: str) -> None:
    path = Path(raw)
    if not path.exists():
        raise UsageError(missing_path_message(raw))
    if path.is_dir():
        raise UsageError(f"{raw}: is a directory; this command takes one recipe file")


def _check_out(raw: str, kind: str) -> None:
    out = Path(raw)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {raw}: {parent} is a file, not a directory")
    looks_like_file = out.suffix != ""
    if kind == "dir":
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {raw}: is a file; --out takes a directory here")
        if looks_like_file and out.suffix in (".csv", ".json", ".png"):
            raise UsageError(
                f"--out {raw}: --out takes a directory here (it receives several files); "
                f"did you mean --out {out.parent / out.stem}/?"
            )
    elif kind == "json-or-dir":
        if out.suffix == ".json":
            if out.is_dir():
                raise UsageError(f"--out {raw}: is a directory; a .json --out names the file")
        elif out.exists() and not out.is_dir():
            raise UsageError(f"--out {raw}: is a file; give a directory, or a path ending in .json")
    elif kind == "export":
        if out.suffix == ".gguf" and out.is_dir():
            raise UsageError(f"--out {raw}: is a directory; a .gguf --out names the file")
        if out.suffix != ".gguf" and out.exists() and not out.is_dir():
            raise UsageError(f"--out {raw}: is a file; --format hf writes a directory")
    elif kind == "file-or-stdout":
        if raw != "-" and out.is_dir():
            raise UsageError(f"--out {raw}: is a directory; give a file path, or - for stdout")
    else:  # a suffix
        if out.suffix != kind:
            raise UsageError(f"--out {raw}: this file must end in {kind}")
        if out.is_dir():
            raise UsageError(f"--out {raw}: is a directory; give a file path ending in {kind}")


def check_before_work(args: argparse.Namespace) -> None:
    """Usage errors that must surface before any work: the recipe exists, --out can be written."""
    recipe = getattr(args, "recipe", None)
    if isinstance(recipe, str):
        _check_recipe(recipe)
    data = getattr(args, "data", None)  # steer condition's labelled prompts
    if isinstance(data, str) and not Path(data).is_file():
        raise UsageError(missing_path_message(data))
    out = getattr(args, "out", None)
    kind = getattr(args, "out_kind", None)
    if isinstance(out, str) and isinstance(kind, str):
        _check_out(out, kind)
