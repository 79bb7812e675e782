"""Is this YAML file a recipe? For `steer validate --skip-non-recipes`: a pre-commit hook or a
glob over a whole repository also meets workflows, `.pre-commit-config.yaml`, docker-compose
files..., which must be neither validated nor reported.

A file is a recipe when its top level is a mapping that holds a recipe section (`model`,
`vectors`, `interventions`, `run`, `report` or `include`) together with `version:` or with a
second recipe section. So a recipe that forgot `version:` is still validated (and told so),
while docker-compose (`version` + `services`) and workflows (`name`, `on`, `jobs`) are not
recipes. The sniff reads only the top-level keys: YAML is composed, not constructed, so
aliases are not expanded and no value is interpreted; a file that is not valid YAML is judged
by its unindented `key:` lines, so a broken recipe is still reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from recipe_engine.format.recipe import Recipe

__all__ = ["RECIPE_SECTIONS", "looks_like_recipe", "top_level_keys"]

# The sections only a recipe has: every field of the root model but the generic ones, plus the
# loader's include:. `name` and `description` are in every other kind of YAML file too.
RECIPE_SECTIONS = frozenset({*Recipe.model_fields, "include"} - {"version", "name", "description"})

# Enough for any recipe's top level; a longer file is judged by its beginning.
_SNIFF_BYTES = 1 << 20

_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:(?:[ \t]|$)", re.MULTILINE)


def top_level_keys(text: str) -> set[str]:
    """The keys of the first document's top-level mapping (empty when it is not a mapping)."""
    try:
        node = next(yaml.compose_all(text, Loader=yaml.SafeLoader), None)
    except (yaml.YAMLError, RecursionError):
        return set(_KEY_LINE.findall(text))
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def looks_like_recipe(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_SNIFF_BYTES)
    except OSError:
        return True  # let validation report the file it cannot read
    keys = top_level_keys(raw.decode("utf-8", errors="replace").lstrip("\ufeff"))
    sections = keys & RECIPE_SECTIONS
    return bool(sections) and ("version" in keys or len(sections) >= 2)
