"""Every file under tests/data/invalid/ is a broken recipe that must fail with exactly the errors
it announces.

A fixture states its expectations in its first lines, one per expected error:

    # expect: CODE LINE

(LINE is 1-based and is where the diagnostic must point). Files that cannot carry a comment
(binary data) are listed in EXPECTATIONS.txt as `FILE CODE LINE`. Warnings are not expectations:
the test compares the error diagnostics only, and compares them exactly, so a missing error, an
extra error or a wrong line all fail. Support files live in folders starting with "_". Fixtures
under check_model/ are only wrong against the model's config: they are validated with
check_model=True, and must be valid without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recipe_engine.validate import validate_file
from tests.conftest import DATA
from tests.helpers import run_steer

INVALID = DATA / "invalid"
CHECK_MODEL_DIR = "check_model"
EXPECT = re.compile(r"^# expect: ([a-z0-9-]+) ([1-9][0-9]*)\s*$")

# Codes the fixture set must exercise (each at least once).
REQUIRED_CODES = {
    "yaml-syntax", "duplicate-key", "yaml-tag", "yaml-value", "yaml-too-many-nodes", "empty-file",
    "not-utf8", "binary-file", "missing-field", "unknown-key", "invalid-choice", "unknown-kind",
    "missing-kind", "wrong-type", "not-finite", "invalid-format", "empty-value",
    "empty-weight-map", "out-of-range", "unsupported-version", "undefined-vector",
    "missing-vector", "unexpected-vector", "heads-needs-heads-site", "position-mode",
    "missing-layers", "layers-with-fixed-module", "module-and-site", "duplicate-layer",
    "expr-syntax", "expr-type", "vector-cycle", "pca-needs-pairs", "paired-length",
    "generation-range", "metric-mode", "metric-needs-baseline", "unknown-builtin",
    "path-outside-root", "file-not-found", "include-cycle", "include-not-found",
    "remote-code-not-explicit", "not-safetensors", "vector-key-missing", "sha256-mismatch",
    "prompt-file-invalid", "probe-data-invalid", "layer-range", "head-range", "vector-dim",
}  # fmt: skip


def _is_fixture(path: Path) -> bool:
    rel = path.relative_to(INVALID)
    return path.is_file() and not any(part.startswith(("_", ".")) for part in rel.parts)


def _fixtures() -> list[Path]:
    found = {p for pattern in ("**/*.yaml", "**/*.yml") for p in INVALID.glob(pattern)}
    return sorted(p for p in found if _is_fixture(p))


def _table() -> dict[str, list[tuple[str, int]]]:
    table: dict[str, list[tuple[str, int]]] = {}
    for raw in (INVALID / "EXPECTATIONS.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        name, code, line = raw.split()
        table.setdefault(name, []).append((code, int(line)))
    return table


def _expectations(path: Path) -> list[tuple[str, int]]:
    rel = path.relative_to(INVALID).as_posix()
    table = _table()
    if rel in table:
        return sorted(table[rel])
    expected = []
    # latin-1 never fails, so the header of a deliberately non-UTF-8 fixture is still read
    for line in path.read_bytes().decode("latin-1").splitlines():
        if not line.startswith("#"):
            break
        match = EXPECT.match(line)
        if match:
            expected.append((match.group(1), int(match.group(2))))
        else:
            assert not line.startswith("# expect"), f"malformed expectation {line!r} in {rel}"
    return sorted(expected)


FIXTURES = _fixtures()


def _id(path: Path) -> str:
    return path.relative_to(INVALID).as_posix()


def _check_model(path: Path) -> bool:
    return path.relative_to(INVALID).parts[0] == CHECK_MODEL_DIR


def test_fixture_count() -> None:
    assert len(FIXTURES) > 25


def test_expectation_table_names_existing_fixtures() -> None:
    for name in _table():
        assert (INVALID / name) in FIXTURES, f"EXPECTATIONS.txt names unknown fixture {name}"


def test_fixtures_cover_every_required_code() -> None:
    covered = {code for path in FIXTURES for code, _ in _expectations(path)}
    assert REQUIRED_CODES - covered == set()


@pytest.mark.parametrize("path", FIXTURES, ids=_id)
def test_invalid_fixture(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{_id(path)} announces no `# expect: CODE LINE`"

    result = validate_file(path, check_model=_check_model(path))

    errors = result.errors
    got = sorted((d.code, d.location.line if d.location else 0) for d in errors)
    shown = "\n".join(d.format() for d in result.diagnostics)
    assert got == expected, f"diagnostics were:\n{shown}"
    assert result.recipe is None
    assert not result.ok
    for diagnostic in errors:
        assert diagnostic.location is not None
        if diagnostic.include_chain:
            # the problem is in a fragment: the chain starts at the fixture itself
            assert Path(diagnostic.include_chain[0]).resolve() == path.resolve()
            assert Path(diagnostic.location.file).resolve() != path.resolve()
        else:
            assert Path(diagnostic.location.file).resolve() == path.resolve()


@pytest.mark.parametrize("path", [p for p in FIXTURES if _check_model(p)], ids=_id)
def test_check_model_fixture_on_a_builtin_model_fails_without_the_flag(path: Path) -> None:
    """A builtin model's shape ships with the package, so its layers, heads and widths are
    checked by every validation (issue 19 item 8); --check-model is for other models."""
    assert "builtin:" in path.read_text(encoding="utf-8")
    plain = validate_file(path)
    flagged = validate_file(path, check_model=True)
    assert [d.format() for d in plain.errors] == [d.format() for d in flagged.errors]
    got = sorted((d.code, d.location.line if d.location else 0) for d in plain.errors)
    assert got == _expectations(path)


def test_cli_rejects_the_whole_folder() -> None:
    proc = run_steer("validate", ".", cwd=INVALID)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout
    assert "Traceback" not in proc.stderr
    # support folders are skipped; the check_model fixtures use builtin models, whose shape
    # is checked without --check-model
    summary = f"{len(FIXTURES)} files checked: 0 valid, {len(FIXTURES)} invalid"
    assert summary in proc.stdout
    reported = set()
    for line in proc.stdout.splitlines():
        included = re.search(r"\(included from ([^ )]+)", line)
        if included:  # the error is in a fragment; the recipe is the start of the chain
            reported.add(included.group(1))
        elif re.search(r"\[[a-z0-9-]+\]$", line):
            reported.add(line.split(":", 1)[0])
    expected = {_id(p) for p in FIXTURES}
    assert expected - reported == set()


def test_cli_check_model_rejects_the_check_model_folder() -> None:
    proc = run_steer("validate", "--check-model", str(INVALID / CHECK_MODEL_DIR))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for code in ("layer-range", "head-range", "vector-dim"):
        assert f"[{code}]" in proc.stdout
