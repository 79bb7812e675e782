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

__all__ = ["display_path", "find_repo_root", "is_inside", "resolve_reference"]


@lru_cache(maxsize=256)
def _root_of(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def find_repo_root(recipe: Path) -> Path:
    return _root_of(recipe.resolve().parent)


def is_inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


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
