"""Reporters for `steer validate`, chosen by name: text, json, github.

The JSON shape is stable (tools parse it):
    {"version": 1,
     "summary": {"files": N, "valid": N, "invalid": N, "errors": N, "warnings": N},
     "files": [{"path": "...", "valid": bool,
                "diagnostics": [{"code", "severity", "message", "pointer", "file", "line",
                                 "column", "include_chain"}]}]}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from recipe_engine.diagnostics import one_line
from recipe_engine.terminal import colour, use_colour

if TYPE_CHECKING:
    from recipe_engine.api import ValidationResult

__all__ = ["REPORTERS"]


def _summary(results: Sequence[ValidationResult]) -> dict[str, int]:
    return {
        "files": len(results),
        "valid": sum(r.ok for r in results),
        "invalid": sum(not r.ok for r in results),
        "errors": sum(len(r.errors) for r in results),
        "warnings": sum(len(r.warnings) for r in results),
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def report_text(results: Sequence[ValidationResult], out: TextIO) -> None:
    enabled = use_colour(out)
    for result in results:
        for diag in result.diagnostics:
            line = diag.format()
            if diag.include_chain:
                line += one_line(f" (included from {' -> '.join(diag.include_chain)})")
            out.write(colour(line, "red" if diag.severity == "error" else "yellow", enabled) + "\n")
    s = _summary(results)
    verdict = f"{_count(s['files'], 'file')} checked: {s['valid']} valid, {s['invalid']} invalid"
    detail = f" ({_count(s['errors'], 'error')}, {_count(s['warnings'], 'warning')})"
    out.write(colour(verdict, "green" if not s["invalid"] else "bold", enabled) + detail + "\n")


def report_json(results: Sequence[ValidationResult], out: TextIO) -> None:
    payload = {
        "version": 1,
        "summary": _summary(results),
        "files": [
            {
                "path": r.display,
                "valid": r.ok,
                "diagnostics": [d.to_json() for d in r.diagnostics],
                **({"note": r.note} if r.note else {}),
            }
            for r in results
        ],
    }
    out.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def report_github(results: Sequence[ValidationResult], out: TextIO) -> None:
    """GitHub Actions workflow commands: annotations on the pull request's changed lines."""
    for result in results:
        for diag in result.diagnostics:
            props = [f"title={_escape_property(diag.code)}"]
            if diag.location and diag.location.line:  # line 0: the command line, not a file
                props = [
                    f"file={_escape_property(one_line(diag.location.file))}",
                    f"line={diag.location.line}",
                    f"col={diag.location.column}",
                    *props,
                ]
            level = "error" if diag.severity == "error" else "warning"
            # one_line: a lone surrogate cannot be written to the runner's UTF-8 log
            message = one_line(f"{diag.pointer or '/'}: {diag.message}")
            out.write(f"::{level} {','.join(props)}::{_escape_data(message)}\n")
    s = _summary(results)
    out.write(f"{_count(s['files'], 'file')} checked: {s['valid']} valid, {s['invalid']} invalid\n")


REPORTERS: dict[str, Callable[[Sequence[ValidationResult], TextIO], None]] = {
    "text": report_text,
    "json": report_json,
    "github": report_github,
}
