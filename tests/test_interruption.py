"""`steer vectors build` and `steer sweep` killed mid-run (SIGINT, SIGKILL).

Whatever the signal: no partial output (a fresh output path stays absent, an existing output
stays byte for byte as it was, the three sweep files never mix old and new), the cache holds
only complete entries that load, and a rerun exits 0 with outputs byte-identical to an
uninterrupted run's in a clean folder. SIGINT also exits 130 with one line and leaves no
temporary file; a SIGKILL may strand one (nothing can run at SIGKILL), so temporaries carry their
writer's host and pid, are never read, and the next write of the same file deletes them.

The process tests (tests/support/interruption_harness.py) signal the run once its first vector
is in the cache: the run is then demonstrably mid-way (more vectors, or layers, to extract). The
run waits there for the signal (a test-only hook, $STEER_TEST_CHECKPOINT), so the signal cannot
arrive after the run has finished however loaded the machine is: no timing is involved. Each
case covers one command x signal; fresh and existing outputs alternate so each command and each
signal meets both. scripts/interruption_trials.py repeats them at random points of the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recipe_engine.atomic import (
    STALE_AFTER_S,
    hold_sigint,
    remove_stale_temporaries,
    temporary_prefix,
    write_files_atomic,
)
from recipe_engine.sweep import SweepPoint, SweepResult, write_sweep
from recipe_engine.sweep import output as sweep_module
from tests.support.interruption_harness import Reference, interrupt, reference_run

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Reference]]:
    """One uninterrupted run per command, in its own clean folder and cache, made on first use."""

    class Lazy(dict[str, Reference]):
        def __missing__(self, command: str) -> Reference:
            self[command] = reference_run(command, tmp_path_factory.mktemp(f"clean-{command}"))
            return self[command]

    yield Lazy()


CASES = [
    ("vectors", signal.SIGINT, False),
    ("vectors", signal.SIGKILL, True),
    ("sweep", signal.SIGINT, True),
    ("sweep", signal.SIGKILL, False),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "sig", "existing"),
    CASES,
    ids=[f"{c}-{s.name}-{'existing' if e else 'fresh'}" for c, s, e in CASES],
)
def test_interrupted_run_leaves_no_partial_output_and_reruns_identically(
    repo_dir: Path,
    references: dict[str, Reference],
    command: str,
    sig: signal.Signals,
    existing: bool,
) -> None:
    reference = references[command]
    trial = interrupt(command, sig, repo_dir, reference, existing=existing, checkpoint=True)

    # Mid-run: some vectors cached, others never written.
    assert trial.signalled, f"the run ended before the signal: {trial.stderr}"
    assert trial.entries_at_signal >= 1 and trial.missing_keys >= 1, trial
    if sig == signal.SIGINT:
        assert trial.returncode == 130, trial.stderr
        assert trial.stderr == "steer: interrupted\n"  # one line, no traceback
        assert trial.stdout == ""
    else:
        assert trial.returncode == -signal.SIGKILL
    assert trial.state == "untouched"  # fresh: absent; existing: byte for byte as before
    assert trial.beside_outputs == [] and trial.stray_temporaries == []
    if sig == signal.SIGINT:
        assert trial.killed_temporaries == []
    assert trial.cache_entries >= 1
    assert trial.cache_unloadable == 0 and trial.cache_strays == []

    assert trial.rerun_code == 0, trial.rerun_stderr
    assert trial.rerun_identical
    assert trial.rerun_leftovers == []
    assert trial.planted_removed, "a dead writer's temporary file survived the rerun"
    assert trial.live_temporary_kept, "the rerun deleted a live writer's temporary file"


# -- the writes themselves, in process ------------------------------------------------------


def _result() -> SweepResult:
    points = [SweepPoint(0, 0.0, 0.0, 0.5, 0.0), SweepPoint(0, 2.0, 0.1, 0.6, 0.2)]
    return SweepResult("r", "token_prob:x", 0.5, 1.0, points, points[1])


def _previous(folder: Path) -> dict[Path, bytes]:
    files = {folder / f"sweep.{ext}": f"old {ext}".encode() for ext in ("csv", "json", "png")}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def test_sweep_interrupted_while_plotting_keeps_every_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plot is rendered last and slowest: a Ctrl-C there once left a new CSV and JSON next
    to the old PNG."""
    before = _previous(tmp_path)

    def interrupted(result: SweepResult) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "_plot", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_sweep(_result(), tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_set_of_files_is_replaced_only_once_all_are_staged(tmp_path: Path) -> None:
    before = _previous(tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    files = {path: b"new" for path in before}
    files[tmp_path / "blocker" / "sweep.txt"] = b"cannot be staged"
    with pytest.raises(OSError):
        write_files_atomic(files)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["blocker", *(p.name for p in before)]
    )


def test_ctrl_c_is_held_until_the_files_are_written(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt), hold_sigint():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # would raise here, unheld
        write_files_atomic({path: b"complete"})
    assert path.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_temporaries_of_gone_writers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "vectors.safetensors"
    dead = tmp_path / f"{temporary_prefix(target, _dead_pid())}abc.tmp"
    alive = tmp_path / f"{temporary_prefix(target)}abc.tmp"
    other_host = tmp_path / f".{target.name}.00000000-1.abc.tmp"  # pid unknowable from here
    old_other_host = tmp_path / f".{target.name}.00000000-2.abc.tmp"
    old_naming = tmp_path / f".{target.name}.abc123.tmp"  # an older engine's name
    other_target = tmp_path / f"{temporary_prefix(tmp_path / 'other.csv', _dead_pid())}x.tmp"
    for path in (dead, alive, other_host, old_other_host, old_naming, other_target):
        path.write_bytes(b"partial")
    day_ago = time.time() - STALE_AFTER_S - 60
    for path in (old_other_host, old_naming):
        os.utime(path, (day_ago, day_ago))
    assert sorted(remove_stale_temporaries(target)) == sorted([dead, old_other_host, old_naming])
    assert alive.exists() and other_host.exists() and other_target.exists()
