"""Stage 2a: typed validation with pydantic, its errors turned into located Diagnostics."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from recipe_engine.diagnostics import Diagnostic, closest
from recipe_engine.format.layers import RANGE_PATTERN
from recipe_engine.format.positions import NAMED_POSITIONS, ROLE_POSITIONS, SLICE_PATTERN
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.sites import MODULE_PATTERN, VECTOR_NAME_PATTERN
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.source_map import join_pointer
from recipe_engine.load.yaml12 import core_scalar

__all__ = ["did_you_mean", "validate_schema"]

_CODES = {
    "missing": "missing-field",
    "extra_forbidden": "unknown-key",
    "literal_error": "invalid-choice",
    "union_tag_invalid": "unknown-kind",
    "union_tag_not_found": "missing-kind",
    "finite_number": "not-finite",
    "string_pattern_mismatch": "invalid-format",
    "too_short": "empty-value",  # an empty `layers: {}` becomes empty-weight-map below
    "string_too_short": "empty-value",
    "too_long": "too-long",
    "greater_than": "out-of-range",
    "greater_than_equal": "out-of-range",
    "less_than": "out-of-range",
    "less_than_equal": "out-of-range",
    "layers_type": "wrong-type",
    "positions_type": "wrong-type",
    "prompts_type": "wrong-type",
}


_PATTERN_WORDS = {
    RANGE_PATTERN: 'an integer, a list, a half-open range like "2:6" or "4:", or `all`',
    SLICE_PATTERN: "all, prompt, generated, last, system, user, assistant, {after: TEXT}, a "
    'list of indices, or a slice like "2:"',
    MODULE_PATTERN: "a dotted module path such as transformer.h.{layer}.mlp",
    VECTOR_NAME_PATTERN: "an identifier (letters, digits, _; not starting with a digit)",
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$": "letters, digits, '.', '_' and '-' only (no spaces)",
    r"^[0-9a-f]{64}$": "64 lowercase hexadecimal digits (a SHA-256)",
    r"^(auto|cpu|mps|cuda(:\d+)?)$": "auto, cpu, mps, cuda or cuda:N",
}


# Type errors where a quoted scalar ('8', "true") was probably meant as the plain value.
_NUMERIC_KINDS = ("int_type", "float_type", "bool_type", "int_parsing", "float_parsing")


def _plain(text: str) -> bool:
    """`text` unquoted would be a number or boolean (so the quotes are the mistake)."""
    for tag in ("int", "float", "bool"):
        try:
            core_scalar("tag:yaml.org,2002:" + tag, text)
        except ValueError:
            continue
        return True
    return False


def did_you_mean(word: str, options: Any) -> str:
    match = closest(str(word), options)
    return f"; did you mean {match!r}?" if match else ""


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return Recipe.model_json_schema()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _allowed_keys(data: Any, path: list[Any]) -> list[str]:
    """Keys the schema allows in the mapping at `path` of `data` (for 'did you mean')."""
    schema = _schema()
    node = schema
    for part in path:
        node = _branch(schema, node, data)
        if isinstance(data, dict):
            props = node.get("properties", {})
            node = props.get(part) or node.get("additionalProperties") or {}
            data = data.get(part)
        elif isinstance(data, list):
            node = node.get("items", {})
            data = data[part] if isinstance(part, int) and part < len(data) else None
    return sorted(_branch(schema, node, data).get("properties", {}))


def _branch(schema: dict[str, Any], node: dict[str, Any], data: Any) -> dict[str, Any]:
    """`node` resolved, and of a union the branch `data` is meant for."""
    node = _resolve(schema, node)
    for branch_key in ("anyOf", "oneOf"):
        if branch_key in node and isinstance(data, (dict, list)):
            node = _pick_branch(schema, node[branch_key], data)
    return node


def _pick_branch(schema: dict[str, Any], branches: list[Any], data: Any) -> Any:
    """A list's branch is the array one; a mapping's, the one its `kind` names, else the one
    sharing most keys with it (a prompt group with `prompt:` for `prompts:` is still a group,
    not a conversation)."""
    resolved = [_resolve(schema, branch) for branch in branches]
    if isinstance(data, list):
        return next((b for b in resolved if b.get("type") == "array"), {})
    best: dict[str, Any] = {}
    best_score = -1
    for branch in resolved:
        props = branch.get("properties", {})
        kind = props.get("kind", {}).get("const")
        if kind is not None and kind == data.get("kind"):
            return branch
        if kind is None and props:
            close = sum(1 for key in data if key in props or closest(str(key), props))
            if close > best_score:
                best, best_score = branch, close
    return best


def _data_path(data: Any, loc: tuple[Any, ...], keep_missing: bool) -> list[Any]:
    """Pydantic locations contain union tags ('contrastive', 'weights'); keep real keys only."""
    path: list[Any] = []
    node = data
    for at, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part.isdigit()
            and int(part) in node
        ):
            path.append(int(part))
            node = node[int(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif not isinstance(node, (dict, list)):
            break
        elif keep_missing and isinstance(node, dict) and part not in node:
            if at < len(loc) - 1:
                continue  # a union tag ('mapping'): a missing or extra key comes last
            path.append(part)  # a missing or extra key: keep it, it names the field
            break
    return path


def _pointer(path: list[Any]) -> str:
    pointer = ""
    for part in path:
        pointer = join_pointer(pointer, part)
    return pointer


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _message(error: Any, data: Any, path: list[Any], quoted: bool = False) -> str:
    kind = error["type"]
    value = error.get("input")
    field = path[-1] if path else "recipe"
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return f"missing required field {field!r}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(data, path[:-1])
        hint = did_you_mean(field, allowed)
        if not hint and len(path) == 1:  # `prompts:` written at the top instead of under run:
            match = closest(str(field), _allowed_keys(data, ["run"]))
            hint = f"; did you mean 'run.{match}' (under `run:`)?" if match else ""
        listing = f" (allowed: {', '.join(allowed)})" if allowed and not hint else ""
        return f"unknown key {field!r}{hint}{listing}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",")]
        return f"{value!r} is not one of {expected}{did_you_mean(value, options)}"
    if kind == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        return (
            f"unknown kind {ctx.get('tag')!r} (expected one of: {', '.join(tags)})"
            f"{did_you_mean(str(ctx.get('tag')), tags)}"
        )
    if kind == "union_tag_not_found":
        return (
            f"missing `{ctx.get('discriminator', 'kind').strip(chr(39))}`: say which kind this is"
        )
    if kind == "finite_number":
        return f"{field!r} must be a finite number, not NaN or infinity"
    if kind.endswith("_type") or kind in ("bool_parsing", "int_from_float"):
        hint = ""
        if isinstance(value, bool) and "str" in kind:
            hint = " (YAML reads true/false as booleans: quote it)"
        if quoted and isinstance(value, str) and kind in _NUMERIC_KINDS and _plain(value):
            hint = " (remove the quotes)"
        base = error["msg"].replace("Input should be", "expected")
        return f"{field!r}: {base}, got {_describe(value)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        wanted = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
        # A word that is no position reaches the slice branch (format/positions.py): the typo
        # is of a named or role position, not of a slice.
        words = (*NAMED_POSITIONS, *ROLE_POSITIONS)
        hint = did_you_mean(value, words) if pattern == SLICE_PATTERN else ""
        return f"{field!r}: {value!r} is not valid here; expected {wanted}{hint}"
    if kind in ("too_short", "string_too_short"):
        if isinstance(value, dict) and field == "layers":
            return "`layers: {}` is an empty weight map; give at least one {layer: weight}"
        return f"{field!r} must not be empty"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{field!r}: {error['msg']}"


def validate_schema(doc: LoadedDocument) -> tuple[Recipe | None, list[Diagnostic]]:
    version = doc.data.get("version", 1)
    if isinstance(version, bool) or version != 1:
        return None, [
            doc.diagnostic(
                "unsupported-version",
                f"recipe format version {version!r} is not supported; this engine reads version 1",
                "/version",
            )
        ]
    try:
        return Recipe.model_validate(doc.data), []
    except ValidationError as exc:
        diagnostics = []
        seen: set[tuple[str, str]] = set()
        for error in exc.errors(include_url=False):
            keep = error["type"] in ("missing", "extra_forbidden")
            path = _data_path(doc.data, tuple(error["loc"]), keep)
            pointer = _pointer(path)
            code = _CODES.get(error["type"], "invalid-value")
            if code == "empty-value" and path and path[-1] == "layers":
                code = "empty-weight-map"
            if error["type"].endswith("_type") and code == "invalid-value":
                code = "wrong-type"
            message = _message(error, doc.data, path, pointer in doc.source_map.quoted)
            if (pointer, message) in seen:
                continue
            seen.add((pointer, message))
            diagnostics.append(
                doc.diagnostic(
                    code, message, pointer, prefer_key=error["type"] == "extra_forbidden"
                )
            )
        return None, diagnostics
