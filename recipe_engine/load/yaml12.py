"""YAML 1.2's core schema for recipes: the loader's resolvers, the value of a scalar, and how
this engine read plain scalars before (YAML 1.1), for the `yaml11-scalar` warning.

Apart from yaml_reader.py, which walks the node graph, so that the schema's rules can be read
(and checked against https://yaml.org/spec/1.2.2/#1032-tag-resolution) in one place.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import yaml

__all__ = [
    "BOOL",
    "MERGE",
    "NULL",
    "PLAIN_STYLES",
    "SCALAR_KINDS",
    "SCALAR_TAGS",
    "TAG",
    "TIMESTAMP",
    "BaseLoader",
    "RecipeYamlLoader",
    "Yaml11Resolver",
    "core_scalar",
    "describe_value",
    "same_value",
]

BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RecipeYamlLoader(BaseLoader):  # type: ignore[misc]
    """The safe loader with YAML 1.2's core schema instead of PyYAML's YAML 1.1 resolvers.

    YAML 1.1 reads `1:3` as the base-60 integer 63 (a layer range silently became layer 63),
    `010` as the octal 8, `on`/`off`/`yes`/`no` as booleans and `1e3` as text. Under the core
    schema only true/false (any case form) are booleans, integers are decimal, 0o octal or 0x
    hex, `1e3` is a number, and everything else is a string. Construct values with
    `core_scalar`, not PyYAML's constructors, which still follow YAML 1.1 (`!!int 010` -> 8).
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


TAG = "tag:yaml.org,2002:"
# https://yaml.org/spec/1.2.2/#1032-tag-resolution, in the order the spec tries them.
NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
for _tag, _pattern, _first in (
    ("null", NULL, [*"~nN", ""]),
    ("bool", BOOL, list("tTfF")),
    ("int", INT, list("-+0123456789")),
    ("float", FLOAT, list("-+0123456789.")),
):
    RecipeYamlLoader.add_implicit_resolver(TAG + _tag, _pattern, _first)
# Merge keys (`<<: *defaults`) are not in the core schema, but recipes have always had them.
RecipeYamlLoader.add_implicit_resolver(TAG + "merge", re.compile(r"^(?:<<)$"), ["<"])

SCALAR_TAGS = {TAG + t for t in ("null", "bool", "int", "float", "str")}
TIMESTAMP = TAG + "timestamp"
MERGE = TAG + "merge"
PLAIN_STYLES = (None, "")  # a plain scalar's style: the pure-Python parser says None, libyaml ""
SCALAR_KINDS = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null"}


def core_scalar(tag: str, text: str) -> Any:
    """The value of a scalar with a standard tag under YAML 1.2's core schema.

    Raises ValueError when the text is not a value of that tag (`!!int abc`, `!!bool yes`).
    """
    kind = tag.removeprefix(TAG)
    if kind == "str":
        return text
    if kind == "null" and NULL.match(text):
        return None
    if kind == "bool" and BOOL.match(text):
        return text.lower() == "true"
    if kind == "int" and INT.match(text):
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)
    if kind == "float" and (FLOAT.match(text) or INT.match(text)):
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(core_scalar(TAG + "int", text)) if INT.match(text) else float(text)
    raise ValueError(f"{text!r} is not a {kind}")


class Yaml11Resolver(yaml.resolver.Resolver):
    """How this engine read plain scalars before it followed YAML 1.2 (PyYAML's YAML 1.1
    resolvers plus `1e3` as a number): the reference for the `yaml11-scalar` warning."""


Yaml11Resolver.add_implicit_resolver(
    TAG + "float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    return f"the string {value!r}"


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b
