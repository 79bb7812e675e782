"""`--set path=value` overrides, applied to the loaded document before validation.

Paths are dotted (`interventions.0.strength`, `run.mode`); values are parsed as YAML with the
recipe's safe loader, so `--set strength=8` is a number and `--set run.prompts=[a, b]` a list. An
overridden value is validated like any other.
"""

from __future__ import annotations

from typing import Any

import yaml

from recipe_engine.errors import UsageError
from recipe_engine.load.yaml_reader import RecipeYamlLoader

__all__ = ["apply_overrides", "parse_override"]


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UsageError(f"--set {text!r}: expected PATH=VALUE, e.g. interventions.0.strength=8")
    path, raw = text.split("=", 1)
    parts = [p for p in path.strip().split(".") if p]
    if not parts:
        raise UsageError(f"--set {text!r}: empty path")
    try:
        value = yaml.load(raw, Loader=RecipeYamlLoader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> None:
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            key: Any = part
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise UsageError(
                        f"--set {text!r}: {part!r} is not an index of a list of {len(node)}"
                    )
                key = int(part)
            elif isinstance(node, dict):
                if part.lstrip("-").isdigit() and int(part) in node:
                    key = int(part)  # layer weight maps have integer keys
                if not last and key not in node:
                    node[key] = {}
            else:
                raise UsageError(
                    f"--set {text!r}: {'.'.join(parts[:depth])} is not a mapping or list"
                )
            if last:
                node[key] = value
            else:
                node = node[key]
