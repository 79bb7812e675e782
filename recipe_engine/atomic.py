"""Atomic file writes: a reader sees the old file or the new one, never half of either.

A write goes to a temporary file next to the target, which is fsynced and renamed over the
target. Interruptions:

- Ctrl-C (SIGINT) is held while a file is being staged and renamed and takes effect right after
  (as KeyboardInterrupt, in the main thread), so it never strands a temporary file or splits a
  group of files (`write_files_atomic`).
- A process killed outright (SIGKILL, OOM killer, power loss) cannot clean up, so it may leave its
  temporary file behind. Temporary files are named `.<target>.<host>-<pid>.<random>.tmp`: the
  dot hides them, nothing ever reads them (the cache looks up `<key>.safetensors` only), and the
  next write of the same target deletes those whose process is gone. The host tag keeps one
  machine from judging another's process ids in a shared (network) folder; files of other hosts,
  or of an older naming, are removed once they are a day old, when no write can still own them.

Permissions: `mkstemp` creates the temporary file 0600 whatever the umask, so before the rename
it gets the mode a plain `open()` would have given it, `0o666 & ~umask` (0644 under umask 022:
colleagues can read a shared vector file), or, with `keep_mode`, the mode of the file it
replaces (`steer schema` rewriting a tracked file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

__all__ = [
    "current_umask",
    "hold_sigint",
    "remove_stale_temporaries",
    "temporary_prefix",
    "write_bytes_atomic",
    "write_files_atomic",
    "write_text_atomic",
]

# No write lasts this long: a temporary file this old is stranded, whoever made it.
STALE_AFTER_S = 24 * 3600


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def temporary_prefix(path: Path, pid: int | None = None) -> str:
    """How the temporary files of a write of `path` by process `pid` (default: this one) start;
    a random part and `.tmp` follow."""
    return f".{path.name}.{_host_tag()}-{os.getpid() if pid is None else pid}."


def _owner_pattern(target: str) -> re.Pattern[str]:
    return re.compile(re.escape(f".{target}.") + r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[^.]+\.tmp")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files a killed writer of `path` left next to it; returns them."""
    prefix, owned, host = f".{path.name}.", _owner_pattern(path.name), _host_tag()
    removed: list[Path] = []
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for candidate in candidates:
        if not candidate.name.endswith(".tmp"):
            continue
        match = owned.fullmatch(candidate.name)
        try:
            if match and match["host"] == host:
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = time.time() - candidate.stat().st_mtime > STALE_AFTER_S
            if stale:
                candidate.unlink()
                removed.append(candidate)
        except OSError:  # gone already (another cleaner), or not ours to delete: leave it
            continue
    return removed


@contextlib.contextmanager
def hold_sigint() -> Iterator[None]:
    """Hold Ctrl-C for the duration of the block, then deliver it.

    Only the main thread can set signal handlers (and only it receives KeyboardInterrupt), so
    elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except (ValueError, OSError):  # not the main interpreter: cannot hold, carry on
        yield
        return
    try:
        yield
    finally:
        # None: a handler installed outside Python; the default is the closest we can restore.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt
            elif previous != signal.SIG_IGN:
                os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL: die of it as we would have


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS tells it (Linux >= 4.7:
    /proc/self/status). Elsewhere os.umask must set it to read it; that is done under a lock,
    and the mask held meanwhile is 022, so a file another thread creates in that instant gets
    a usual mode, never a world-writable one."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path: Path, keep_mode: bool) -> int:
    if keep_mode:
        try:
            return path.stat().st_mode & 0o7777
        except OSError:
            pass  # a new file: as the umask says
    return 0o666 & ~current_umask()


def _stage(path: Path, data: bytes, mode: int) -> Path:
    """`data` in a complete, fsynced temporary file next to `path`, with permissions `mode`;
    the caller renames it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_bytes_atomic(path: Path, data: bytes, *, keep_mode: bool = False) -> None:
    write_files_atomic({path: data}, keep_mode=keep_mode)


def write_text_atomic(path: Path, text: str, *, keep_mode: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), keep_mode=keep_mode)


def write_files_atomic(files: Mapping[Path, bytes], *, keep_mode: bool = False) -> None:
    """Write several files as one: every file is staged complete before any is renamed, so a
    failure while staging (disk full) leaves all the old files as they were, and the renames then
    run back to back. Ctrl-C is held throughout (a few small writes). Only a hard kill landing
    between two renames (a window of microseconds: no syscall replaces several files at once),
    or a rename that fails (permissions), can leave some files new and some old."""
    staged: list[tuple[Path, Path]] = []
    with hold_sigint():
        try:
            for path, data in files.items():
                staged.append((_stage(path, data, _mode_for(path, keep_mode)), path))
            for tmp, path in staged:
                os.replace(tmp, path)
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
