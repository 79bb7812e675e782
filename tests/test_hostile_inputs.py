"""Hostile inputs, end to end through the CLI: one table (tests/support/hostile_cases.py), one
test per row.

Every row runs a `steer` command on a recipe that names a hostile file and asserts the exit
status, that the error is one line naming the file or field and saying what to do, that no
traceback (or "internal error") reaches the user, and, where hostile code was planted (a pickle,
a model folder's .py files), that it never ran. `python scripts/hostile_matrix.py` prints the
same rows as a table.

The tests after the matrix check the matrix's own proofs: that the planted code *would* leave
its marker if run, and that the default limits are what the table says.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import io
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.cli.main import main
from recipe_engine.errors import EnvironmentFailure, UsageError
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.load import prompt_files
from recipe_engine.resolve.model_loader import load_model
from tests.support.hostile_cases import (
    CASES,
    CODE_FILES,
    Case,
    Payload,
    Site,
    error_lines,
    plant_code,
    run_case,
)

# Tiny models: intra-op threads only add synchronisation (10-100x slower on a busy box).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows set the limits they test; none leaks in from the caller's environment."""
    monkeypatch.delenv(prompt_files.ENV_MAX_FILE_BYTES, raising=False)
    monkeypatch.delenv(prompt_files.ENV_MAX_LINE_BYTES, raising=False)


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_hostile_input(item: Case, tmp_path: Path) -> None:
    site = Site(tmp_path / "case")
    site.base.mkdir()
    outcome = run_case(item, site)
    everything = outcome.stdout + outcome.stderr
    shown = f"steer {' '.join(outcome.argv)} -> exit {outcome.exit}\n{everything}"

    assert outcome.exit == item.exit, shown
    assert "Traceback" not in everything, shown
    assert "internal error" not in everything, shown
    lines = error_lines(outcome)
    if item.exit == 0:
        assert lines == [], shown  # let through: validate prints its summary only
    else:
        assert len(lines) == 1, shown  # one line, one cause
        for expected in (*item.names, *item.hint):
            assert expected in lines[0], f"{expected!r} missing from: {lines[0]}"
    if item.marker:
        assert not site.marker.exists(), f"hostile code ran: {site.marker.read_text()}"
    if item.command[:2] == ("vectors", "build"):
        assert not site.out.exists(), "a refused build must not write its output"


def test_every_reference_kind_and_escape_is_a_row() -> None:
    """The matrix covers each kind of reference x each way out, refused and then allowed."""
    kinds = ("include", "prompt-file", "vector-file", "model-folder")
    escapes = ("dotdot", "absolute", "symlink", "symlinked-dir")
    ids = {c.id for c in CASES}
    for kind in kinds:
        for escape in escapes:
            assert f"outside-{kind}-{escape}" in ids
            assert f"allowed-{kind}-{escape}" in ids


# -- the proofs the matrix relies on ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_the_pickle_payload_would_leave_its_marker(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker), protocol=protocol)).close()
    assert marker.exists()


def test_torch_load_of_the_zip_would_leave_its_marker(tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "v.pt"  # .safetensors: torch reads it as such
    torch.save({"payload": Payload(marker)}, path)
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()


@pytest.mark.parametrize("name", CODE_FILES)
def test_the_model_folder_code_would_leave_its_marker(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    plant_code(tmp_path / "custom", marker)
    spec = importlib.util.spec_from_file_location("evil", tmp_path / "custom" / name)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert marker.read_text() == name


def test_the_loader_refuses_custom_code_without_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past validation (the API, `vectors inspect --model`), the loader itself refuses: it passes
    trust_remote_code=False explicitly, so transformers never asks on stdin whether to run it."""
    asked: list[str] = []

    def no_input(prompt: str = "") -> str:
        asked.append(prompt)
        return "y"  # what a user might type: must never be asked

    monkeypatch.setattr(builtins, "input", no_input)
    marker = tmp_path / "marker"
    plant_code(tmp_path / "custom", marker)
    with pytest.raises(EnvironmentFailure) as info:
        load_model(ModelSpec(id="./custom"), tmp_path)
    assert "trust_remote_code: true" in str(info.value)
    assert asked == []
    assert not marker.exists()


def test_default_limits() -> None:
    assert prompt_files.max_prompt_file_bytes() == prompt_files.MAX_PROMPT_FILE_BYTES == 256 << 20
    assert prompt_files.max_prompt_line_bytes() == prompt_files.MAX_PROMPT_LINE_BYTES == 1 << 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100", 100), ("4K", 4096), ("512M", 512 << 20), ("512MiB", 512 << 20), ("2GB", 2 << 30)],
)
def test_limit_values(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv(prompt_files.ENV_MAX_FILE_BYTES, value)
    monkeypatch.setenv(prompt_files.ENV_MAX_LINE_BYTES, value)
    assert prompt_files.max_prompt_file_bytes() == expected
    assert prompt_files.max_prompt_line_bytes() == expected


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5M", "M"])
def test_bad_limit_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(prompt_files.ENV_MAX_LINE_BYTES, value)
    with pytest.raises(UsageError, match=prompt_files.ENV_MAX_LINE_BYTES):
        prompt_files.max_prompt_line_bytes()


@pytest.mark.parametrize("command", [["validate"], ["run"], ["vectors", "build"], ["sweep"]])
def test_limits_are_in_the_help(command: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*command, "--help"])
    for name in (prompt_files.ENV_MAX_FILE_BYTES, prompt_files.ENV_MAX_LINE_BYTES):
        assert name in out.getvalue()
        assert name in (prompt_files.__doc__ or "")


def test_a_long_line_is_never_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line limit is enforced while reading, in bounded pieces."""
    path = tmp_path / "p.txt"
    path.write_bytes(b"x" * (64 << 10))
    monkeypatch.setenv(prompt_files.ENV_MAX_LINE_BYTES, "1K")
    reads: list[int] = []
    real_open = Path.open

    class Spy:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def readline(self, size: int = -1) -> bytes:
            reads.append(size)
            line: bytes = self.handle.readline(size)
            return line

    def spying_open(self: Path, *args: Any, **kwargs: Any) -> Spy:
        return Spy(real_open(self, *args, **kwargs))

    monkeypatch.setattr(Path, "open", spying_open)
    with pytest.raises(prompt_files.PromptFileError, match="1024-byte limit"):
        prompt_files.read_prompts(path, "lines")
    assert reads and all(0 < size <= 1026 for size in reads)
