"""README facts that used to drift from the code (issue 24 item 16): every extra of
pyproject.toml has its row in the Install table, and the README states no profile count for
`steer serve recipes/` (it said 11 while 14 were served)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_extra_has_a_row_in_the_install_table() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    table = README[README.index("### Install") :].split("\n\n")[1]
    rows = set(re.findall(r"(?m)^\| `pip install [^`]*\[(\w+)\]", table))
    assert extras == rows


def test_no_stated_profile_count_for_the_served_folder() -> None:
    for line in README.splitlines():
        if "steer serve recipes/" in line:
            assert not re.search(r"\b\d+ profiles\b", line), line
