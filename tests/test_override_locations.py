"""Values from the command line are located at the command line, and type errors say "remove
the quotes" only where the source had quotes."""

from __future__ import annotations

import math

import pytest

from recipe_engine.errors import UsageError
from recipe_engine.sweep import run_sweep
from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL, RECIPES
from tests.helpers import run_steer

DEMO = RECIPES / "activation-addition.yaml"


def test_set_unknown_key_is_located_at_the_flag() -> None:
    result = validate_file(DEMO, overrides=["model.idd=x"])

    [error] = result.errors
    assert error.code == "unknown-key"
    assert error.location is not None
    assert error.location.file == "command line (--set model.idd=x)"
    # before: _fragments/tiny-model.yaml:4:1, the line of `model:` in a file the user never named
    assert error.format().startswith("command line (--set model.idd=x): /model/idd: ")
    assert "unknown key 'idd'" in error.format()
    assert error.to_json()["line"] is None


def test_set_wrong_type_is_located_at_the_flag_without_a_quotes_hint() -> None:
    result = validate_file(DEMO, overrides=["interventions.0.strength=three"])

    [error] = result.errors
    assert error.code == "wrong-type"
    assert error.location is not None
    assert error.location.file == "command line (--set interventions.0.strength=three)"
    assert "quotes" not in error.message


def test_set_replaces_a_files_locations_below_it() -> None:
    """A value set on the command line owns its whole subtree: an error inside it is not sent
    to the line of the file value it replaced."""
    result = validate_file(DEMO, overrides=["run.prompts=[a, 3]"])

    [error] = result.errors
    assert error.pointer == "/run/prompts/1"
    assert error.location is not None and error.location.file.startswith("command line")


@pytest.mark.parametrize(
    ("value", "hint"),
    [("three", False), ('"three"', False), ('"3"', True), ("'1e3'", True), ("three3", False)],
)
def test_remove_the_quotes_only_for_quoted_numbers(write, value: str, hint: bool) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        MINIMAL
        + "vectors:\n  v: {kind: random, seed: 1, norm: 1.0}\n"
        + f"interventions:\n  - {{vector: v, op: add, layers: 0, strength: {value}}}\n",
    )
    [error] = validate_file(path).errors
    assert error.code == "wrong-type" and error.pointer == "/interventions/0/strength"
    assert ("remove the quotes" in error.message) is hint


def test_sweep_nan_strength_is_a_flag_error() -> None:
    with pytest.raises(UsageError) as info:
        run_sweep(DEMO, [0], [1.0, math.nan])
    assert "--strengths nan" in str(info.value)
    assert "quotes" not in str(info.value)


def test_sweep_cli_nan_strength_names_the_flag() -> None:
    result = run_steer("sweep", str(DEMO), "--layers", "0", "--strengths", "nan")
    assert result.returncode == 2
    assert "--strengths nan" in result.stderr
    assert "quotes" not in result.stderr and ".yaml:" not in result.stderr
