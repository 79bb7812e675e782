"""`steer test --changed-since REF`: which files git says changed, and what each recipe reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

from recipe_engine.errors import UsageError
from recipe_engine.format.file_fields import file_fields
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import FileVector, ProbeVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.lock import lock_path

__all__ = ["changed_files", "recipe_inputs"]


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--changed-since needs git: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"--changed-since: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def changed_files(ref: str, cwd: Path) -> set[Path]:
    """Resolved paths changed since `ref`: committed after it, edited in the work tree, or new
    and untracked (not ignored)."""
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip())
    names = _git(["diff", "--name-only", ref, "--"], cwd).splitlines()
    names += _git(["ls-files", "--others", "--exclude-standard"], top).splitlines()
    return {(top / name).resolve() for name in names if name}


def recipe_inputs(recipe: Recipe, doc: LoadedDocument) -> set[Path]:
    """Every file a recipe's result depends on: itself, its includes, its data and vector
    files, and its lock."""
    paths = {p.resolve() for p in doc.file_paths.values()}
    paths.add(lock_path(doc.path).resolve())
    for field in file_fields(recipe):
        owner = field.owner
        if isinstance(owner, FileVector):
            paths.add((doc.base_dir(field.pointer + "/path") / owner.path).resolve())
        elif isinstance(owner, ProbeVector):
            paths.add((doc.base_dir(field.pointer) / owner.data).resolve())
        elif isinstance(owner, PromptFile):
            paths.add((doc.base_dir(field.pointer + "/file") / owner.file).resolve())
    return paths
