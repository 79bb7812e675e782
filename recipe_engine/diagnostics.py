"""Diagnostics: one problem in one recipe, with where it is and a stable code.

Rendered as `file:line:col: /json/pointer: message [code]`. Codes are stable: tests, editors
and CI annotations key on them, so a code is never renamed once released.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Diagnostic", "FlagOverride", "Location", "Severity", "closest", "one_line"]

Severity = Literal["error", "warning"]

# Control characters (\n, \r, \t, \x85...), line and paragraph separators, lone surrogates.
_UNPRINTABLE = frozenset({"Cc", "Zl", "Zp", "Cs"})


def one_line(text: str) -> str:
    """`text` with line breaks, other control characters and lone surrogates escaped as repr()
    writes them.

    A diagnostic is one line that tools split on newlines and editors parse as
    `file:line:col:`; recipe keys, file names and YAML errors can carry any of these (a YAML
    key "a\\nb" puts a newline in the pointer), and a lone surrogate cannot even be written to
    a UTF-8 terminal.
    """
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file; line and column are 1-based, as editors count them.

    Line 0 marks a place that is not in a file: `file` then says where the value came from
    (`command line (--set model.id=x)`)."""

    file: str
    line: int
    column: int


class FlagOverride(str):
    """A `--set PATH=VALUE` override that a command's own flag stands for (`--controls 2` is
    `report.controls={random: 2}`): the diagnostics of its value are located at the flag the
    user typed (`command line (--controls 2)`), not at a `--set` they never wrote
    (load/overrides.py)."""

    flag: str

    def __new__(cls, text: str, flag: str) -> FlagOverride:
        made = super().__new__(cls, text)
        made.flag = flag
        return made


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    pointer: str = ""
    location: Location | None = None
    severity: Severity = "error"
    # Files that included the one the problem is in, outermost first.
    include_chain: tuple[str, ...] = field(default=())

    def format(self) -> str:
        loc = self.location
        if loc is None:
            where = ""
        elif loc.line == 0:
            where = f"{loc.file}: "
        else:
            where = f"{loc.file}:{loc.line}:{loc.column}: "
        pointer = f"{self.pointer or '/'}: "
        level = "" if self.severity == "error" else "warning: "
        return one_line(f"{where}{pointer}{level}{self.message} [{self.code}]")

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "pointer": self.pointer or "/",
            "file": self.location.file if self.location else None,
            "line": self.location.line if self.location and self.location.line else None,
            "column": self.location.column if self.location and self.location.line else None,
            "include_chain": list(self.include_chain),
        }

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        return (loc.file, loc.line, loc.column, self.code) if loc else ("", 0, 0, self.code)


def closest(word: str, options: Iterable[object]) -> str | None:
    """The option `word` was most likely meant to be, if any is close: the one rule behind every
    "did you mean" (recipe keys and choices, command-line flags and commands)."""
    matches = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return matches[0] if matches else None
