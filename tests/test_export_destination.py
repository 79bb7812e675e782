"""`steer export --format hf --out DIR` never deletes what it did not write (issue 24 items 1, 2).

It used to swap any existing DIR out and delete it (a README and sub/important.csv gone, exit
0), crash on `--out .` (EBUSY from renaming the current directory), and leave its files 0600 in a
0700 folder whatever the umask.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_engine.export.destination import MARKER
from tests.conftest import RECIPES

RECIPE = str(RECIPES / "activation-addition.yaml")


def _export(out: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_engine", "export", RECIPE, "--format", "hf", "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "STEER_NO_CACHE": "1"},
        preexec_fn=lambda: os.umask(umask),
    )


def _someone_elses(folder: Path) -> dict[Path, bytes]:
    (folder / "sub").mkdir(parents=True)
    files = {folder / "README": b"mine\n", folder / "sub" / "important.csv": b"a,b\n1,2\n"}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def test_a_folder_export_did_not_write_is_refused_and_kept(tmp_path: Path) -> None:
    files = _someone_elses(tmp_path / "out")
    done = _export("out", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "did not write" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in files} == files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README", "sub"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


def test_the_current_directory_is_never_moved(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    files = _someone_elses(busy)
    done = _export(".", busy)
    assert done.returncode == 2, done.stderr
    assert "current directory" in done.stderr and "internal error" not in done.stderr
    assert {p: p.read_bytes() for p in files} == files
    # an empty current directory is filled in place (it stays the same folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    done = _export(".", empty)
    assert done.returncode == 0, done.stderr
    assert empty.stat().st_ino == inode
    assert (empty / "config.json").is_file() and (empty / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


def test_a_folder_export_wrote_is_replaced(tmp_path: Path) -> None:
    assert _export("out", tmp_path).returncode == 0
    (tmp_path / "out" / "stale.bin").write_bytes(b"from the first export's time")
    (tmp_path / "out" / MARKER).touch()  # still the engine's folder
    done = _export("out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "out" / "stale.bin").exists()
    assert (tmp_path / "out" / "config.json").is_file()


@pytest.mark.parametrize(
    ("umask", "folder", "file"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)]
)
def test_exported_files_follow_the_umask(
    tmp_path: Path, umask: int, folder: int, file: int
) -> None:
    done = _export("out", tmp_path, umask)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == folder
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in modes and MARKER in modes
    assert modes == dict.fromkeys(modes, file)
