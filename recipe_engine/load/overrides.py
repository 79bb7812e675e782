"""`--set path=value` overrides, applied to the loaded document before validation.

Paths are dotted (`interventions.0.strength`, `run.mode`); values are parsed as YAML with the
recipe's reader (YAML 1.2 core schema), so `--set strength=8` is a number, `--set
run.prompts=[a, b]` a list and `--set interventions.0.layers=1:3` the range "1:3". An overridden
value is validated like any other, and its diagnostics point at the command line
(`command line (--set model.idd=x)`), not at the file line the value replaced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from recipe_engine.diagnostics import Diagnostic, Location
from recipe_engine.errors import RecipeLoadError, UsageError
from recipe_engine.load.source_map import SourceMap, join_pointer
from recipe_engine.load.yaml_reader import YamlFile, parse_yaml_text

__all__ = ["apply_overrides", "command_line_location", "parse_override"]


def command_line_location(flag_text: str) -> Location:
    """Where a value given on the command line came from; line 0 means "not in a file"."""
    return Location(f"command line ({flag_text})", 0, 0)


def _parse_value(text: str, raw: str) -> YamlFile:
    if not raw.strip():
        return YamlFile("", SourceMap())
    try:
        return parse_yaml_text(raw, f"--set {text}")
    except RecipeLoadError:
        return YamlFile(raw, SourceMap())  # not YAML (`[a`): the text itself, as written


def _split(text: str) -> tuple[list[str], str]:
    if "=" not in text:
        raise UsageError(f"--set {text!r}: expected PATH=VALUE, e.g. interventions.0.strength=8")
    path, raw = text.split("=", 1)
    parts = [p for p in path.strip().split(".") if p]
    if not parts:
        raise UsageError(f"--set {text!r}: empty path")
    return parts, raw


def parse_override(text: str) -> tuple[list[str], Any]:
    parts, raw = _split(text)
    return parts, _parse_value(text, raw).data


def _place(data: dict[str, Any], text: str, parts: list[str], value: Any) -> str:
    """Put `value` at `parts`; returns the JSON pointer it landed at."""
    node: Any = data
    pointer = ""
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        key: Any = part
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                raise UsageError(
                    f"--set {text!r}: {part!r} is not an index of a list of {len(node)}"
                )
            key = int(part) % len(node)
        elif isinstance(node, dict):
            if part.lstrip("-").isdigit() and int(part) in node:
                key = int(part)  # layer weight maps have integer keys
            if not last and key not in node:
                node[key] = {}
        else:
            raise UsageError(f"--set {text!r}: {'.'.join(parts[:depth])} is not a mapping or list")
        pointer = join_pointer(pointer, key)
        if last:
            node[key] = value
        else:
            node = node[key]
    return pointer


def apply_overrides(
    data: dict[str, Any], overrides: list[str], source_map: SourceMap | None = None
) -> list[Diagnostic]:
    """Apply `--set` overrides to `data`. With the document's `source_map`, every overridden
    value (and key) is re-located to the command line. Returns warnings about the values
    (`yaml11-scalar`); raises UsageError for a path that does not fit the document."""
    warnings: list[Diagnostic] = []
    for text in overrides:
        parts, raw = _split(text)
        parsed = _parse_value(text, raw)
        pointer = _place(data, text, parts, parsed.data)
        where = command_line_location(getattr(text, "flag", None) or f"--set {text}")
        warnings += [
            replace(w, pointer=pointer + w.pointer, location=where) for w in parsed.warnings
        ]
        if source_map is None:
            continue
        source_map.prune(pointer)
        source_map.keys[pointer] = where
        for sub in (*parsed.source_map.values, ""):
            source_map.values[pointer + sub] = where
        for sub in parsed.source_map.keys:
            source_map.keys[pointer + sub] = where
        source_map.quoted |= {pointer + sub for sub in parsed.source_map.quoted}
    return warnings
