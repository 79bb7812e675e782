"""Where `steer export --format hf` may write its folder, and how it puts it there.

An export folder is replaced as a whole (a reader sees the old model or the new one), so the
engine must never take a folder that holds anything else: it writes a marker file into every
folder it exports, and it replaces a non-empty folder only when that marker is there (as
`steer cp` never overwrites a file it did not write). The current directory (or one that holds
it) is never moved: an empty one is filled in place; a non-empty one is refused.

The staging folder comes from mkdtemp (0700) and some writers create 0600 files; the folder put
in place gets the modes a plain mkdir and open() would give under the umask.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from recipe_engine.atomic import current_umask, hold_sigint
from recipe_engine.errors import UsageError

__all__ = ["MARKER", "check_destination", "write_folder_atomic"]

# Written into every folder the engine exports; its presence is what allows a later replace.
MARKER = ".recipe-engine-export"


def _holds_cwd(out: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    target = out.resolve()
    return cwd == target or target in cwd.parents


def check_destination(out: Path) -> None:
    """Raise UsageError (before any work) when `out` is not a folder export may write."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} exists and is not a folder: name a new folder")
    if not out.exists():
        return
    try:
        entries = [p.name for p in out.iterdir()]
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot read the folder ({exc.strerror})") from None
    if not entries:
        return
    if _holds_cwd(out):
        raise UsageError(
            f"--out {out} is the current directory (or holds it) and is not empty: export "
            "never replaces it; name a new folder, e.g. --out steered-model"
        )
    if MARKER not in entries:
        raise UsageError(
            f"--out {out} is a folder that steer export did not write (it holds "
            f"{entries[0]!r}{' and more' if len(entries) > 1 else ''}); export replaces only "
            "its own folders: remove it or name a new folder"
        )


def _usual_modes(folder: Path) -> None:
    mask = current_umask()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def write_folder_atomic(
    out: Path, write: Callable[[Path], None], summary: dict[str, object]
) -> None:
    """Fill a staging folder beside `out` with `write(path)` and the marker (`summary` as JSON),
    then swap it in: a reader sees the old folder or the new one."""
    out = Path(os.path.abspath(out))  # `.` has no name and is its own parent
    check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old: Path | None = None
    try:
        write(stage)
        (stage / MARKER).write_text(json.dumps(summary, sort_keys=True) + "\n", encoding="utf-8")
        _usual_modes(stage)
        with hold_sigint():
            check_destination(out)  # again: nothing may have landed there while writing
            if out.exists() and _holds_cwd(out):  # empty (checked): fill it, never move it
                for entry in sorted(stage.iterdir()):
                    os.replace(entry, out / entry.name)
                stage.rmdir()
                return
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
                os.replace(out, old / out.name)
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
