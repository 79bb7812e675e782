"""Where a recipe's files may live: inside its repository, unless the user allows otherwise.

A recipe from someone else's repo must not make the engine read `~/.ssh/id_rsa` or
`/etc/passwd`: every path it references is resolved (symlinks included) and must stay under the
repository root, the nearest folder above the recipe that holds `.git`, or the recipe's own folder
when there is none.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

__all__ = [
    "display_path",
    "find_repo_root",
    "is_dir",
    "is_file",
    "is_inside",
    "real_path",
    "resolve_reference",
    "unusable_name",
]


@lru_cache(maxsize=256)
def _root_of(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def find_repo_root(recipe: Path) -> Path:
    return _root_of(recipe.resolve().parent)


def unusable_name(reference: str) -> str | None:
    """Why `reference`, as written in a recipe, cannot name any file; None if it can.

    The OS layer raises ValueError for these instead of saying "no such file": a NUL character
    (YAML's "\\0" escape) and, on POSIX, a lone surrogate (YAML's "\\udc80").
    """
    if "\x00" in reference:
        return "a file name cannot contain a NUL character"
    try:
        os.fsencode(reference)
    except UnicodeEncodeError:
        return "it contains a character that cannot be part of a file name"
    return None


def real_path(path: Path) -> Path:
    """Absolute, symlinks resolved, like Path.resolve(); but a symlink loop stays unresolved
    instead of raising RuntimeError (a loop is then simply not a file)."""
    return Path(os.path.realpath(path))


def is_inside(path: Path, root: Path) -> bool:
    try:
        real_path(path).relative_to(real_path(root))
    except ValueError:  # not below root, or a name the OS refuses outright (NUL)
        return False
    return True


def is_file(path: Path) -> bool:
    """Path.is_file(), but False instead of OSError for a name the OS refuses (a component
    longer than NAME_MAX raises ENAMETOOLONG, which pathlib does not swallow)."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    """Path.is_dir(), with is_file()'s tolerance of names the OS refuses."""
    try:
        return path.is_dir()
    except OSError:
        return False


def resolve_reference(reference: str, base_dir: Path) -> Path:
    """A path written in a recipe, relative to the file that wrote it; `~` is not expanded."""
    path = Path(reference)
    return path if path.is_absolute() else base_dir / path


def display_path(path: Path) -> str:
    """Relative to the working directory when below it (what users typed), else absolute."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        rel = os.path.relpath(absolute)
    except ValueError:
        return str(absolute)
    return str(absolute) if rel.startswith("..") else rel
