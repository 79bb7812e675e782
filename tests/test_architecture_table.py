"""The README's Architectures table is what scripts/architecture_table.py renders from the
matrix tests' results (tests/data/*_matrix.json, which those tests assert they reproduce)."""

from __future__ import annotations

from scripts.architecture_table import README, rendered


def test_readme_table_is_the_tests_results() -> None:
    current = README.read_text()
    assert current == rendered(current), "run: python -m scripts.architecture_table"
