"""Files the tool writes get the permissions the umask asks for (`mkstemp` alone makes 0600),
and `steer schema` keeps the mode of the tracked file it rewrites."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RECIPES, REPO


def _steer(umask: int, *args: str, env: dict[str, str] | None = None) -> None:
    """Run `steer ARGS` in a child with `umask` (the umask is per process: the test runner's
    own stays as it is)."""
    done = subprocess.run(
        [sys.executable, "-m", "recipe_engine", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
        preexec_fn=lambda: os.umask(umask),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_reports_vectors_and_cache_entries_follow_the_umask(
    tmp_path: Path, umask: int, expected: int
) -> None:
    cache = tmp_path / "cache"
    env = {"STEER_CACHE_DIR": str(cache)}
    recipe = str(RECIPES / "activation-addition.yaml")
    _steer(umask, "run", recipe, "--out", str(tmp_path / "reports"), env=env)
    _steer(umask, "vectors", "build", recipe, "--out", str(tmp_path / "v.safetensors"), env=env)
    written = [
        tmp_path / "reports" / "activation-addition.json",
        tmp_path / "v.safetensors",
        *cache.rglob("*.safetensors"),
    ]
    assert len(written) >= 3  # a cache entry was written too
    assert {str(p): _mode(p) for p in written} == {str(p): expected for p in written}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o027, 0o000])
def test_current_umask_reads_the_process_umask(umask: int) -> None:
    code = (
        "import os, sys\n"
        f"os.umask({umask})\n"
        "from recipe_engine import atomic\n"
        "seen = atomic.current_umask()\n"
        "real_open = open\n"
        "def no_proc(path, *a, **k):\n"
        "    if str(path).startswith('/proc'):\n"
        "        raise OSError('no /proc')\n"
        "    return real_open(path, *a, **k)\n"
        "atomic.open = no_proc\n"  # the fallback path: os.umask under a lock
        "fallback = atomic.current_umask()\n"
        "print(seen, fallback, os.umask(0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(umask)] * 3


def test_schema_rewrite_keeps_the_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "recipe.schema.json"
    target.write_text("{}\n", encoding="utf-8")  # out of date: steer schema rewrites it
    target.chmod(0o640)
    _steer(0o077, "schema", "--output", str(target))
    assert target.read_text(encoding="utf-8") != "{}\n"
    assert _mode(target) == 0o640
    new = tmp_path / "new.schema.json"
    _steer(0o022, "schema", "--output", str(new))
    assert _mode(new) == 0o644
