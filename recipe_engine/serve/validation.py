"""A request body that fails validation, said as OpenAI says it: one sentence per problem naming
the field and what to change, and `param` set to the first field at fault (`messages[0].content`
style), instead of pydantic's own text ("Extra inputs are not permitted", `param: null`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["explain_invalid"]

# What a field of each pydantic error type must be, said to a client.
_KINDS = {
    "int_type": "an integer (a JSON number without a fraction, not a string or true/false)",
    "int_from_float": "an integer (a JSON number without a fraction)",
    "bool_type": "true or false",
    "string_type": "a string",
    "float_type": "a number",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _is_branch_tag(part: object) -> bool:
    """pydantic names the union member it tried in the location ('str', 'list[str]',
    'constrained-str', 'TextPart'): not a field."""
    if not isinstance(part, str):
        return False
    return (
        "[" in part or "-" in part or part in ("str", "int", "float", "bool") or part[:1].isupper()
    )


def _param(loc: Sequence[object]) -> str:
    out = ""
    for part in loc:
        if part == "body" or _is_branch_tag(part):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_literal(expected: str) -> str:
    """pydantic's Python spelling of allowed values, in JSON's: False -> false, 'x' -> "x"."""
    words = {"False": "false", "True": "true", "None": "null"}
    out = expected
    for python, spelled in words.items():
        out = out.replace(python, spelled)
    return out.replace("'", '"')


def _sentence(error: dict[str, Any], where: str) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    field = f"`{where}`" if where else "the body"
    if kind == "missing":
        return f"{field} is required: add it"
    if kind == "extra_forbidden":
        return f"{field} is not supported by this server: remove it"
    if kind == "literal_error":
        allowed = _json_literal(str(ctx.get("expected", "")))
        return f"{field} must be {allowed} on this server: change it or leave it out"
    if kind in _KINDS:
        return f"{field} must be {_KINDS[kind]}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("over", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("under", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{field} must be {words} {ctx.get(key)}: change it"
    if kind == "too_long":
        return f"{field} may have at most {ctx.get('max_length')} items: remove some"
    if kind == "too_short" and isinstance(error.get("input"), str):
        return f"{field} must not be empty: give some text"
    if kind == "too_short":
        return f"{field} needs at least {ctx.get('min_length')} item(s): add one"
    if kind == "string_too_long":
        return f"{field} may be at most {ctx.get('max_length')} characters: shorten it"
    if kind == "string_too_short":
        return f"{field} must not be empty: give some text"
    if kind == "finite_number":
        return f"{field} must be a finite number"
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{field}: {message}"


def explain_invalid(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """(message, param) for a body's validation errors."""
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            return f"the request body is not valid JSON ({detail}): send a JSON object", None
    by_field: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        by_field.setdefault(_param(error.get("loc", ())), []).append(error)
    for where in list(by_field):
        only_type = all(str(e.get("type", "")).endswith("_type") for e in by_field[where])
        deeper = [k for k in by_field if k != where and k.startswith(where)]
        if only_type and deeper:  # a union member that matched says more, inside this field
            del by_field[where]
    sentences: list[str] = []
    for where, found in by_field.items():
        # A union (`stop`: a string or a list) reports every member it tried: the member
        # whose type matched says what is wrong; the others only that the type differs.
        specific = [e for e in found if not str(e.get("type", "")).endswith("_type")]
        for error in specific or found[:1]:
            sentence = _sentence(error, where)
            if sentence not in sentences:
                sentences.append(sentence)
    params = [p for p in by_field if p]
    message = "; ".join(sentences) or "the request body is invalid"
    return f"invalid request: {message}", (params[0] if params else None)
