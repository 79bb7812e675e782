"""Hypothesis strategies that make broken recipes, for fuzzing `steer validate`.

Shared by tests/test_fuzz_recipes.py (a CI-bounded run) and scripts/fuzz_campaign.py (a long
one). Deliberately independent of recipe_engine: inputs are shaped after the example recipes in
recipes/ and after what YAML and file systems allow, never after what the engine expects, so
the fuzzer does not inherit the engine's blind spots.

A `FuzzCase` is a recipe (bytes) plus the extra files, symlinks and flags it needs. `write_case`
lays it out in a folder that also holds copies of the example recipes' support folders
(`_fragments/`, `data/`, `vectors/`), so a lightly mutated example starts out valid and the
mutations reach past the schema into references, includes and prompt files.

Six families of cases:
- data level (`data_mutated`): parse an example, delete keys, swap in values of the wrong type,
  huge or non-finite numbers, odd unicode, deep nesting, bad expressions, then
  `yaml.safe_dump` it again;
- text and byte level (`text_mutated`): truncate, splice two recipes, insert YAML tags,
  anchors, duplicate keys, tabs, CRLF, a BOM, very long lines, random bytes, other encodings;
- structure (`structural`): billion laughs through aliases and through merge keys, recursive
  aliases, nesting past every bound, documents of 100k nodes;
- garbage (`raw_garbage`): empty files, random bytes and text, lone BOMs and separators;
- includes (`include_graphs`): random include graphs (cycles, diamonds, chains past the
  depth limit, missing, outside the repository, symlink loops, broken fragments);
- references (`references`): prompt, probe, vector and model files named in odd ways or
  holding garbage, hub models that are not cached.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

__all__ = [
    "CASE_TOKEN",
    "MARKER_NAME",
    "OUTSIDE_TOKEN",
    "FuzzCase",
    "data_mutated",
    "fuzz_cases",
    "include_graphs",
    "merge_bomb",
    "raw_garbage",
    "references",
    "seed_texts",
    "structural",
    "text_mutated",
    "write_case",
]

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
RECIPE_NAME = "recipe.yaml"

# Placeholders, substituted by write_case: absolute paths are only known once the case has a
# folder. The tokens cannot occur in YAML by accident.
CASE_TOKEN = "@@CASE@@"
OUTSIDE_TOKEN = "@@OUTSIDE@@"
MARKER_TOKEN = "@@MARKER@@"
# A YAML tag that constructs objects would create this file if the loader ever executed it.
MARKER_NAME = "PWNED"

FORMATS = ("text", "json", "github")


@dataclass(frozen=True)
class FuzzCase:
    """One input for `steer validate`, independent of where it will be written."""

    recipe: bytes
    # extra files and symlinks, relative to the case folder (the recipe's folder)
    files: tuple[tuple[str, bytes], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    flags: tuple[str, ...] = ()
    fmt: str = "text"
    validate_dir: bool = False  # pass the case folder instead of the recipe file
    label: str = ""
    steps: tuple[str, ...] = field(default=())

    def argv(self, target: Path) -> list[str]:
        return ["validate", *self.flags, "--format", self.fmt, str(target)]

    def to_json(self) -> dict[str, Any]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")

        return {
            "label": self.label,
            "steps": list(self.steps),
            "recipe": b64(self.recipe),
            "files": [[name, b64(data)] for name, data in self.files],
            "links": [list(link) for link in self.links],
            "flags": list(self.flags),
            "fmt": self.fmt,
            "validate_dir": self.validate_dir,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> FuzzCase:
        return cls(
            recipe=base64.b64decode(payload["recipe"]),
            files=tuple((name, base64.b64decode(data)) for name, data in payload["files"]),
            links=tuple((link, target) for link, target in payload["links"]),
            flags=tuple(payload["flags"]),
            fmt=payload["fmt"],
            validate_dir=payload["validate_dir"],
            label=payload.get("label", ""),
            steps=tuple(payload.get("steps", ())),
        )


# -- materializing a case -------------------------------------------------------------------------


def _substitute(data: bytes, case_dir: Path, outside: Path) -> bytes:
    for token, value in (
        (CASE_TOKEN, str(case_dir)),
        (OUTSIDE_TOKEN, str(outside)),
        (MARKER_TOKEN, str(case_dir / MARKER_NAME)),
    ):
        data = data.replace(token.encode(), value.encode())
    return data


def write_case(case: FuzzCase, case_dir: Path, outside: Path) -> Path:
    """Lay `case` out in the empty folder `case_dir` (inside a repository); return the recipe.

    `outside` is an existing file outside that repository, for references that must be refused.
    """
    for folder in support_dirs():
        shutil.copytree(folder, case_dir / folder.name, symlinks=True)
    for name, data in case.files:
        path = case_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_substitute(data, case_dir, outside))
    for name, target in case.links:
        path = case_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(_substitute(target.encode(), case_dir, outside).decode(), path)
    recipe = case_dir / RECIPE_NAME
    recipe.write_bytes(_substitute(case.recipe, case_dir, outside))
    return recipe


# -- the seed corpus: the example recipes -------------------------------------------------------


@cache
def support_dirs() -> tuple[Path, ...]:
    """The folders next to the example recipes (fragments, prompt data, vectors...)."""
    return tuple(p for p in sorted(RECIPES.iterdir()) if p.is_dir())


@cache
def seed_texts() -> dict[str, str]:
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(RECIPES.glob("*.yaml"))}
    assert texts, f"no example recipes under {RECIPES}"
    return texts


@cache
def seed_data() -> dict[str, Any]:
    return {name: yaml.safe_load(text) for name, text in seed_texts().items()}


@cache
def fragment_text() -> str:
    return (RECIPES / "_fragments" / "tiny-model.yaml").read_text(encoding="utf-8")


def _walk(node: Any) -> tuple[set[str], list[Any]]:
    keys: set[str] = set()
    scalars: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(str(key))
            sub_keys, sub_scalars = _walk(value)
            keys |= sub_keys
            scalars += sub_scalars
    elif isinstance(node, list):
        for item in node:
            sub_keys, sub_scalars = _walk(item)
            keys |= sub_keys
            scalars += sub_scalars
    else:
        scalars.append(node)
    return keys, scalars


@cache
def known_keys() -> list[str]:
    found: set[str] = set()
    for data in seed_data().values():
        found |= _walk(data)[0]
    return sorted(found)


@cache
def known_scalars() -> list[Any]:
    found: list[Any] = []
    for data in seed_data().values():
        for value in _walk(data)[1]:
            if value not in found:
                found.append(value)
    return found


# -- values -------------------------------------------------------------------------------------

NASTY_NUMBERS: list[Any] = [
    0, 1, -1, 2, 3, 4, -4, -5, 63, 64, 65, 100, 101, 4096, 4097,
    2**31 - 1, 2**31, 2**63, -(2**63) - 1, 2**64, 10**400, -(10**400),
    0.0, -0.0, 0.5, 1.5, 1e-320, 5e-324, 1e308, -1e308, 1.7976931348623157e308,
    float("inf"), float("-inf"), float("nan"),
]  # fmt: skip

NASTY_STRINGS: list[str] = [
    "", " ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\x01\x02\x7f", "\x1b[31mred\x1b[0m",
    "\u202eevil\u202c", "שלום עולם", "مرحبا بالعالم", "🎉🔥💥", "👨\u200d👩\u200d👧", "e\u0301",
    "\ufeff", "\u2028", "\u2029", "\x85", "\u200b", "null", "~", "true", "yes", "on", "no",
    "1", "1.0", "1e3", "0x1F", "0o17", ".nan", ".inf", "all", "last", "mean", "prompt",
    "generated", "2:", ":-1", "1:2:3", "-0:", "::", "{layer}", "transformer.h.{layer}.mlp",
    "model.layers.{layer}.self_attn.o_proj", "builtin:", "builtin:nope", "builtin:tiny-random",
    "gpt2", "org/name", "./", "../", "/", ".", "..", "/etc/hostname", "~/.ssh/id_rsa",
    "data/neutral.txt", "data", "a" * 300, "x" * 5000, "%s%n%x", "{0}", "${HOME}", "$(id)",
    "<script>", "'", '"', "\\", "*a", "&a", "!tag", "- a", "a: b", "#", "@", "`", "a b",
    "sentiment", "unit(sentiment)", "sentiment - ", "((((((", "proj(a)", "1/0", "a" * 70,
    "0" * 64, "A" * 64, "f" * 63,
]  # fmt: skip


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(NASTY_NUMBERS),
        st.integers(),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(NASTY_STRINGS),
        st.sampled_from(known_scalars()),
    )


def _keys() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(known_keys()),
        st.text(max_size=12),
        st.integers(min_value=-5, max_value=70),
        st.sampled_from(NASTY_STRINGS[:40]),
        st.sampled_from([None, True, False, 1.5, 10**400]),
    )


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys(), inner, max_size=4),
        max_leaves=10,
    )


def _nested(depth: int, as_list: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


# -- data-level mutation --------------------------------------------------------------------------

DataPath = tuple[Any, ...]


def _paths(node: Any, prefix: DataPath = ()) -> list[DataPath]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _get(root: Any, path: DataPath) -> Any:
    for part in path:
        root = root[part]
    return root


def _set(root: Any, path: DataPath, value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _typo(word: str, draw: st.DrawFn) -> str:
    if not word:
        return "x"
    i = draw(st.integers(0, len(word) - 1))
    how = draw(st.sampled_from(["drop", "double", "swap", "upper", "space"]))
    if how == "drop":
        return word[:i] + word[i + 1 :] or "x"
    if how == "double":
        return word[:i] + word[i] + word[i:]
    if how == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == "upper":
        return word.upper()
    return word + " "


def _retype(value: Any, draw: st.DrawFn) -> Any:
    """A value of another type that still carries the old one's content."""
    if isinstance(value, bool):
        return draw(st.sampled_from(["yes", "true", 1, [value], None]))
    if isinstance(value, (int, float)):
        return draw(st.sampled_from([str(value), [value], {"value": value}, bool(value), None]))
    if isinstance(value, str):
        options: list[Any] = [[value], {value: value}, None, True, len(value), value.encode()]
        if value.strip().lstrip("-").isdigit():
            options.append(int(value))
        return draw(st.sampled_from(options))
    if isinstance(value, list):
        return draw(
            st.sampled_from(
                [{str(i): v for i, v in enumerate(value)}, value[0] if value else None, "a, b"]
            )
        )
    if isinstance(value, dict):
        return draw(st.sampled_from([list(value.values()), list(value), "x", None, 0]))
    return draw(st.sampled_from([{}, [], "null", 0]))


INCLUDE_REFS = [
    "_fragments/tiny-model.yaml", "./_fragments/tiny-model.yaml", "_fragments", "missing.yaml",
    RECIPE_NAME, "./" + RECIPE_NAME, "../" + RECIPE_NAME, "data/neutral.txt",
    "vectors/sentiment.safetensors", "/etc/hostname", OUTSIDE_TOKEN, CASE_TOKEN + "/" + RECIPE_NAME,
    "", ".", "a\x00b", "x" * 300, "\u202e.yaml", "🎉.yaml", "_fragments//tiny-model.yaml",
    "_fragments/tiny-model.yaml/", "~/x.yaml", "../" * 12 + "etc/hostname",
]  # fmt: skip

DATA_OPS = (
    "delete", "replace", "retype", "rename", "add", "number", "empty", "deep", "dup_item",
    "swap", "include", "wrap", "expr",
)  # fmt: skip

# `kind: expr` vectors: a small language with its own parser, bounds and type checker.
EXPRESSIONS = [
    "{v}", "-{v}", "-" * 1500 + "{v}", "+-" * 700 + "{v}", "(" * 49 + "{v}" + ")" * 49,
    "(" * 60 + "{v}" + ")" * 60, "unit(" * 60 + "{v}" + ")" * 60, "{v} + " * 400 + "{v}",
    "(-" * 30 + "{v}" + ")" * 30, "1e999 * {v}", "{v} / 0", "0 * {v}", "{v} * {v}",
    "proj({v}, {v})", "proj({v}, {v}, {v})", "reject({v})", "unit()", "nope({v})", "{v} +",
    "", " ", "{v} @ {v}", "{v}; import os", "__import__('os')", "{v}.__class__", "1" * 2001,
    "(" * 2000, "{v} - 0.5 * {v}", "unit({v}) + unit({v})", "1 + 2", "é", "\U0001d44e",
    "{v}\n+ {v}", "{v} - {v} * 1e308 * 1e308", "9" * 400 + " * {v}", "{v}" * 3, "()", ",",
]  # fmt: skip


def _mutate_data(data: Any, op: str, draw: st.DrawFn) -> tuple[Any, str]:
    paths = _paths(data)
    inner = [p for p in paths if p]
    if op == "delete" and inner:
        path = draw(st.sampled_from(inner))
        del _get(data, path[:-1])[path[-1]]
        return data, f"delete {path}"
    if op == "replace":
        path = draw(st.sampled_from(paths))
        return _set(data, path, draw(_values())), f"replace {path}"
    if op == "retype":
        path = draw(st.sampled_from(paths))
        return _set(data, path, _retype(_get(data, path), draw)), f"retype {path}"
    if op == "rename":
        keyed = [p for p in inner if isinstance(_get(data, p[:-1]), dict)]
        if keyed:
            path = draw(st.sampled_from(keyed))
            parent = _get(data, path[:-1])
            new = draw(st.one_of(st.just(_typo(str(path[-1]), draw)), _keys()))
            parent[new] = parent.pop(path[-1])
            return data, f"rename {path} -> {new!r}"
    if op == "add":
        mappings = [p for p in paths if isinstance(_get(data, p), dict)]
        if mappings:
            path = draw(st.sampled_from(mappings))
            key = draw(_keys())
            _get(data, path)[key] = draw(_values())
            return data, f"add {(*path, key)}"
    if op == "number":
        path = draw(st.sampled_from(paths))
        return _set(data, path, draw(st.sampled_from(NASTY_NUMBERS))), f"number {path}"
    if op == "empty":
        path = draw(st.sampled_from(paths))
        return _set(data, path, draw(st.sampled_from([{}, [], "", None]))), f"empty {path}"
    if op == "deep":
        path = draw(st.sampled_from(paths))
        depth = draw(st.sampled_from([8, 62, 63, 64, 65, 80]))
        value = _nested(depth, draw(st.booleans()))
        return _set(data, path, value), f"deep {path} {depth}"
    if op == "dup_item":
        lists = [p for p in paths if isinstance(_get(data, p), list) and _get(data, p)]
        if lists:
            path = draw(st.sampled_from(lists))
            items = _get(data, path)
            items.append(copy.deepcopy(draw(st.sampled_from(items))))
            return data, f"dup_item {path}"
    if op == "swap" and len(inner) >= 2:
        a = draw(st.sampled_from(inner))
        b = draw(st.sampled_from(inner))
        if a[: len(b)] != b and b[: len(a)] != a:
            va, vb = copy.deepcopy(_get(data, a)), copy.deepcopy(_get(data, b))
            _set(data, a, vb)
            _set(data, b, va)
            return data, f"swap {a} {b}"
    if op == "include" and isinstance(data, dict):
        refs = draw(st.lists(st.sampled_from(INCLUDE_REFS), max_size=3))
        data["include"] = draw(st.sampled_from([refs, refs[0] if refs else None, 7, {"a": 1}]))
        return data, f"include {data['include']!r}"
    if op == "expr" and isinstance(data, dict):
        vectors = data.get("vectors")
        if not isinstance(vectors, dict):
            vectors = data["vectors"] = {}
        names = [str(k) for k in vectors] or ["v"]
        target = draw(st.sampled_from(names))
        expr = draw(st.sampled_from(EXPRESSIONS)).replace("{v}", target)
        spec: dict[str, Any] = {"kind": "expr", "expr": expr}
        if draw(st.booleans()):
            spec["orthogonalize_against"] = draw(
                st.lists(st.sampled_from([*names, "e", "nope", "1x", ""]), max_size=3)
            )
        name = draw(st.sampled_from(["e", *names]))
        vectors[name] = spec
        if draw(st.booleans()) and isinstance(data.get("interventions"), list):
            data["interventions"].append({"vector": name, "layers": 0})
        return data, f"expr {name} = {expr[:40]!r}"
    if op == "wrap":
        path = draw(st.sampled_from(paths))
        value = _get(data, path)
        return _set(data, path, draw(st.sampled_from([[value], {"x": value}]))), f"wrap {path}"
    return data, f"{op} (no-op)"


def _dump(data: Any, draw: st.DrawFn) -> str:
    options: dict[str, Any] = {
        "allow_unicode": draw(st.booleans()),
        "default_flow_style": draw(st.sampled_from([False, None, True])),
        "width": draw(st.sampled_from([80, 20, 10**6])),
        "explicit_start": draw(st.booleans()),
    }
    if draw(st.booleans()):
        try:
            text: str = yaml.safe_dump(data, sort_keys=True, **options)
            return text
        except TypeError:  # keys of mixed types (1 and "a") do not sort
            pass
    text = yaml.safe_dump(data, sort_keys=False, **options)
    return text


# -- text-level mutation --------------------------------------------------------------------------

BIG_INT = "1" * 5000  # past Python's 4300-digit int<->str conversion limit
INTERESTING_VALUES = [
    "!!python/object/apply:os.system ['touch " + MARKER_TOKEN + "']",
    "!!python/object/new:builtins.open ['" + MARKER_TOKEN + "', 'w']",
    "!!python/object/apply:subprocess.call [['touch', '" + MARKER_TOKEN + "']]",
    "!!python/name:os.system", "!!python/tuple [1, 2]", "!custom value", "!custom",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]",
    "!!int abc", "!!int ''", "!!int 1.5", "!!float ''", "!!float abc", "!!float 1e400",
    "!!bool maybe", "!!bool ''", "!!null 3", "!!str [1, 2]", "!!map [1]", "!!seq {a: 1}",
    "!!timestamp not-a-date", "!!timestamp 2001-12-14", "!!merge x", "!<tag:yaml.org,2002:int> 7",
    "!<tag:example.com,2000:x> 1", "!!int " + BIG_INT, BIG_INT, "-" + BIG_INT,
    "0b_", "0x_", "0b1_", "0x_1", "0o17", "0_7", "1_000", "1:30", "-1:30", "190:20:30",
    "1e400", "-1e400", "1e308", "-1e308", "1e-400", "10e10000", ".nan", ".NaN", ".inf",
    "-.inf", "+.inf", ".Inf", "1" + "0" * 400, "1." + "0" * 400, "0." + "0" * 400 + "1",
    "'\\0'", '"\\0"', '"a\\x00b"', '"\\ud800"', '"\\U0001F600"', '"\\u202eevil"', '"\\L"',
    '"\\N"', '"\\e\\a"', "&a [1, 2]", "*a", "*undefined", "&a", "&a &b 1", "*a *b",
    "[*a, *a]", "{<<: *a}", "[1, 2", "{a: 1", "'unterminated", '"unterminated', "|", ">-",
    "|\n  block\n  text", "? a", "[a]: b", "{a: 1}: b", "- - 1", "- a\n- b", "{}", "[]",
    "null", "~", "", "yes", "no", "on", "off", "y", "n", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "12:30:00", "%YAML", "@", "`", "\tx", "x\ty", "a: b: c", "#", "- ", ": ", "-",
]  # fmt: skip

INTERESTING_LINES = [
    "%YAML 1.2", "%YAML 1.1", "%YAML 2.0", "%TAG ! tag:example.com,2000:", "---", "...",
    "--- !custom", "--- |", "<<: *a", "<<: 1", "<<: [1, 2]", "<<: {version: 2}", "? [a, b]",
    ": c", "? |\n  key", "[a]: b", "&a x: 1", "*a : 1", "!!python/name:os.system key: 1",
    "!!int abc: 1", "!!int " + BIG_INT + ": 1", BIG_INT + ": 1", "1.5: x", "true: x",
    "null: x", "~: x", "'': x", "? : x", "x:\ty", "\tx: 1", "x: 1 # comment", "# comment",
    "version: 2", "version: 1.0", "version: '1'", "version: true", "version: .nan",
    "version: 1" + "0" * 5000, "version: -1e400", "name: a b", "include: missing.yaml",
    "include: [" + RECIPE_NAME + "]", "include: {a: 1}", "include: 1e400", "include: \"\\0\"",
    "include: '" + "x" * 300 + "'", "description: " + "x" * 100_000,
    "description: [" + ", ".join(["1"] * 20_000) + "]", "- item", "-", ":", "{", "}", "[", "]",
    "\u202eRTL: \u05e9\u05dc\u05d5\u05dd", "emoji🎉: 🔥", "ключ: значение", "x: \ufeff",
    "\ufeffversion: 1", "x: a\u2028b", "x: a\x85b", "\x7f: del", "x: \x1b[31m",
]  # fmt: skip

LINE_VALUE = re.compile(r"^(?P<head>\s*(?:- )?[^\s:#][^:#\n]*:)[ ]+(?P<value>\S[^\n]*)$")


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _text_mutation(text: str, draw: st.DrawFn) -> tuple[str, str]:
    op = draw(
        st.sampled_from(
            [
                "truncate", "splice", "insert_line", "delete_line", "duplicate_line",
                "swap_lines", "replace_value", "tabs", "crlf", "lone_cr", "long_line",
                "unicode", "indent", "dedent", "strip_newline", "insert_value_inline",
            ]
        )
    )  # fmt: skip
    lines = _lines(text)
    if op == "truncate":
        cut = draw(st.integers(0, len(text)))
        return text[:cut], f"truncate {cut}"
    if op == "splice":
        other = seed_texts()[draw(st.sampled_from(sorted(seed_texts())))]
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(0, len(other)))
        return text[:i] + other[j:], f"splice {i} {j}"
    if op == "insert_line":
        at = draw(st.integers(0, len(lines)))
        indent = draw(st.sampled_from(["", "", "  ", "    ", " ", "\t"]))
        line = draw(st.sampled_from(INTERESTING_LINES))
        lines.insert(at, indent + line)
        return "\n".join(lines), f"insert_line {at} {line[:40]!r}"
    if op == "delete_line" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        del lines[at]
        return "\n".join(lines), f"delete_line {at}"
    if op == "duplicate_line" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        lines.insert(at + draw(st.integers(0, 3)), lines[at])
        return "\n".join(lines), f"duplicate_line {at}"
    if op == "swap_lines" and len(lines) > 1:
        a = draw(st.integers(0, len(lines) - 1))
        b = draw(st.integers(0, len(lines) - 1))
        lines[a], lines[b] = lines[b], lines[a]
        return "\n".join(lines), f"swap_lines {a} {b}"
    if op in ("replace_value", "insert_value_inline"):
        candidates = [i for i, ln in enumerate(lines) if LINE_VALUE.match(ln)]
        if candidates:
            at = draw(st.sampled_from(candidates))
            match = LINE_VALUE.match(lines[at])
            assert match is not None
            value = draw(st.sampled_from(INTERESTING_VALUES))
            if op == "replace_value":
                lines[at] = f"{match.group('head')} {value}"
            else:
                lines[at] = f"{match.group('head')} {value} {match.group('value')}"
            return "\n".join(lines), f"{op} {at} {value[:40]!r}"
    if op == "tabs":
        every = draw(st.booleans())
        out = []
        for ln in lines:
            stripped = ln.lstrip(" ")
            width = len(ln) - len(stripped)
            if width and (every or draw(st.booleans())):
                ln = "\t" * (width // 2) + stripped
            out.append(ln)
        return "\n".join(out), "tabs"
    if op == "crlf":
        return text.replace("\n", "\r\n"), "crlf"
    if op == "lone_cr":
        return text.replace("\n", "\r"), "lone_cr"
    if op == "long_line":
        at = draw(st.integers(0, len(lines)))
        size = draw(st.sampled_from([1025, 5000, 70_000, 300_000]))
        what = draw(st.sampled_from(["key", "value", "comment", "flow"]))
        line = {
            "key": "k" * size + ": 1",
            "value": "description: " + "v" * size,
            "comment": "# " + "c" * size,
            "flow": "x: [" + ",".join(["1"] * (size // 2)) + "]",
        }[what]
        lines.insert(at, line)
        return "\n".join(lines), f"long_line {what} {size}"
    if op == "unicode":
        at = draw(st.integers(0, len(text)))
        chunk = draw(st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(NASTY_STRINGS)))
        return text[:at] + chunk + text[at:], f"unicode {at} {chunk[:20]!r}"
    if op == "indent" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = draw(st.sampled_from([" ", "  ", "   ", "\t"])) + lines[at]
        return "\n".join(lines), f"indent {at}"
    if op == "dedent" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = lines[at].lstrip()
        return "\n".join(lines), f"dedent {at}"
    if op == "strip_newline":
        return text.rstrip("\n"), "strip_newline"
    return text, f"{op} (no-op)"


def _byte_mutation(raw: bytes, draw: st.DrawFn) -> tuple[bytes, str]:
    op = draw(
        st.sampled_from(
            [
                "bom", "double_bom", "utf16", "utf32", "latin1", "insert_bytes", "flip",
                "truncate", "nul", "nul_after_8k", "control", "c1", "overlong", "oversize",
            ]
        )
    )  # fmt: skip
    if op == "bom":
        return b"\xef\xbb\xbf" + raw, op
    if op == "double_bom":
        return b"\xef\xbb\xbf\xef\xbb\xbf" + raw, op
    if op in ("utf16", "utf32", "latin1"):
        text = raw.decode("utf-8", "replace")
        encoding = {"utf16": "utf-16", "utf32": "utf-32", "latin1": "latin-1"}[op]
        return text.encode(encoding, "replace"), op
    at = draw(st.integers(0, len(raw)))
    if op == "insert_bytes":
        chunk = draw(st.binary(min_size=1, max_size=16))
        return raw[:at] + chunk + raw[at:], f"insert_bytes {at} {chunk!r}"
    if op == "flip" and raw:
        at = min(at, len(raw) - 1)
        value = draw(st.integers(0, 255))
        return raw[:at] + bytes([value]) + raw[at + 1 :], f"flip {at} {value}"
    if op == "truncate":
        return raw[:at], f"truncate_bytes {at}"
    if op == "nul":
        return raw[:at] + b"\x00" + raw[at:], f"nul {at}"
    if op == "nul_after_8k":
        # the binary-file check looks at the first 8 KiB only
        padding = b"# padding\n" * 900
        return raw + b"\n" + padding + b"x: a\x00b\n", op
    if op == "control":
        char = draw(st.sampled_from([b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f"]))
        return raw[:at] + char + raw[at:], f"control {at} {char!r}"
    if op == "c1":
        return raw[:at] + "\x85\x9b".encode() + raw[at:], f"c1 {at}"
    if op == "overlong":
        return raw[:at] + b"\xc0\xaf\xed\xa0\x80" + raw[at:], f"overlong {at}"
    if op == "oversize":
        return raw + b"\n# " + b"z" * (1 << 20) + b"\n", op
    return raw, f"{op} (no-op)"


# -- families of cases ----------------------------------------------------------------------------


@st.composite
def data_mutated(draw: st.DrawFn) -> FuzzCase:
    """An example recipe, parsed, mutated as data, dumped again (sometimes mutated as text)."""
    name = draw(st.sampled_from(sorted(seed_texts())))
    data = copy.deepcopy(seed_data()[name])
    steps = [name]
    for _ in range(draw(st.integers(1, 4))):
        data, note = _mutate_data(data, draw(st.sampled_from(DATA_OPS)), draw)
        steps.append(note)
    text = _dump(data, draw)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        text, note = _text_mutation(text, draw)
        steps.append(note)
    return FuzzCase(text.encode("utf-8"), label="data", steps=tuple(steps))


@st.composite
def text_mutated(draw: st.DrawFn) -> FuzzCase:
    """An example recipe mutated as text, then maybe as bytes."""
    name = draw(st.sampled_from(sorted(seed_texts())))
    text = seed_texts()[name]
    steps = [name]
    for _ in range(draw(st.integers(1, 4))):
        text, note = _text_mutation(text, draw)
        steps.append(note)
    raw = text.encode("utf-8")
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        raw, note = _byte_mutation(raw, draw)
        steps.append(note)
    return FuzzCase(raw, label="text", steps=tuple(steps))


def _billion_laughs(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int, width: int) -> str:
    # Every anchor is defined inside one merge list: nothing is built until the merge is
    # flattened, so a loader that counts nodes only while building sees the bomb too late.
    sources = ["&m0 {k0: 1, k1: 2}"]
    for i in range(1, levels):
        sources.append(f"&m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * width) + "]}")
    return "x: {<<: [" + ", ".join(sources) + "]}\n"


def _deep_block(depth: int, as_list: bool) -> str:
    if as_list:
        return (
            "x:\n"
            + "".join("  " * (i + 1) + "-\n" for i in range(depth - 1))
            + ("  " * depth + "- 1\n")
        )
    return (
        "x:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth)) + "  " * (depth + 1) + "1\n"
    )


@st.composite
def structural(draw: st.DrawFn) -> FuzzCase:
    """Alias bombs, recursion, deep nesting, huge documents: the loader's resource bounds."""
    kind = draw(
        st.sampled_from(
            [
                "laughs", "merge_bomb", "recursive_alias", "recursive_merge", "deep_flow",
                "deep_flow_map", "deep_block", "many_keys", "many_items", "anchor_chain",
                "self_merge_list",
            ]
        )
    )  # fmt: skip
    if kind == "laughs":
        levels, width = draw(st.integers(2, 10)), draw(st.integers(2, 12))
        body = _billion_laughs(levels, width)
        note = f"{kind} {levels}x{width}"
    elif kind == "merge_bomb":
        levels, width = draw(st.integers(2, 12)), draw(st.integers(2, 10))
        body = merge_bomb(levels, width)
        note = f"{kind} {levels}x{width}"
    elif kind == "recursive_alias":
        body = draw(st.sampled_from(["a: &a [1, *a]\n", "a: &a {b: *a}\n", "&a [*a]\n"]))
        note = kind
    elif kind == "recursive_merge":
        body = draw(st.sampled_from(["a: &a {<<: *a}\n", "a: &a {x: {<<: *a}}\n"]))
        note = kind
    elif kind in ("deep_flow", "deep_flow_map"):
        # the deepest ones are rare: each costs a second of parsing
        depth = draw(st.sampled_from([10, 63, 64, 65, 66, 200, 1000] * 3 + [10_000, 60_000]))
        body = (
            "x: " + "[" * depth + "1" + "]" * depth + "\n"
            if kind == "deep_flow"
            else "x: " + "{a: " * depth + "1" + "}" * depth + "\n"
        )
        note = f"{kind} {depth}"
    elif kind == "deep_block":
        depth = draw(st.sampled_from([10, 62, 63, 64, 65, 100, 300]))
        body = _deep_block(depth, draw(st.booleans()))
        note = f"{kind} {depth}"
    elif kind == "many_keys":
        count = draw(st.sampled_from([100, 1000] * 4 + [30_000, 110_000]))
        body = "".join(f"k{i}: {i}\n" for i in range(count))
        note = f"{kind} {count}"
    elif kind == "many_items":
        count = draw(st.sampled_from([1000, 5000] * 4 + [99_999, 100_001, 200_000]))
        body = "x: [" + ",".join(["1"] * count) + "]\n"
        note = f"{kind} {count}"
    elif kind == "anchor_chain":
        count = draw(st.sampled_from([10, 100, 2000]))
        body = "a0: &a0 1\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, count))
        note = f"{kind} {count}"
    else:
        body = "a: &a {x: 1}\nb: {<<: [*a, *a, *a, *a]}\n"
        note = kind
    prefix = draw(st.sampled_from(["", "version: 1\n", seed_texts()["activation-addition.yaml"]]))
    return FuzzCase((prefix + body).encode("utf-8"), label="structural", steps=(note,))


@st.composite
def raw_garbage(draw: st.DrawFn) -> FuzzCase:
    """Files that are barely (or not at all) YAML."""
    raw = draw(
        st.one_of(
            st.binary(max_size=2000),
            st.text(max_size=500).map(lambda t: t.encode("utf-8")),
            st.sampled_from(
                [
                    b"", b"\n", b"   \n\t\n", b"# only a comment\n", b"---\n", b"...\n",
                    b"--- \n...\n", b"~\n", b"null\n", b"[]\n", b"{}\n", b"- 1\n", b"'\n",
                    b"!!binary\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\xff\xfe", b"\xfe\xff",
                    b"\x00", b"version: 1\n---\nversion: 1\n", b"--- 1\n--- 2\n", b"%YAML 1.2\n",
                    b"\r\n\r\n", b"\r", b"\x85", "\u2028".encode(), b"version: 1", b"1",
                    b"version: 1\n" * 3, b"*a\n", b"&a\n", b"!custom\n", b"? \n", b": \n",
                ]
            ),
        )
    )  # fmt: skip
    return FuzzCase(raw, label="garbage")


FRAGMENT_BODIES = [
    "model:\n  id: builtin:tiny-random\n",
    "vectors:\n  noise: {kind: random, seed: 3}\n",
    "model: {trust_remote_code: true}\n",
    "run: {mode: generate}\n",
    "interventions: [{vector: sentiment, layers: 0}]\n",
    "version: 1\n", "version: 2\n", "", "# empty\n", "- a list\n", "just a string\n",
    "model: [1, 2]\n", "vectors: null\n", "x: !!python/name:os.system\n", "a: b\na: c\n",
    "model: {id: builtin:tiny-random, id: builtin:tiny-sentiment}\n", "{\n", "\x00\x01",
]  # fmt: skip


@st.composite
def include_graphs(draw: st.DrawFn) -> FuzzCase:
    """A recipe over a random graph of fragments: cycles, diamonds, long chains, bad targets."""
    count = draw(st.integers(1, 5))
    names = [f"_fuzz/f{i}.yaml" for i in range(count)]
    steps: list[str] = []
    files: list[tuple[str, bytes]] = []
    links: list[tuple[str, str]] = []

    def ref_to(target: int, from_fragment: bool) -> str:
        plain = f"f{target}.yaml" if from_fragment else names[target]
        style = draw(st.sampled_from(["plain", "plain", "dot", "up", "abs"]))
        if style == "dot":
            return "./" + plain
        if style == "up":
            return "../_fuzz/f" + str(target) + ".yaml" if from_fragment else "_fuzz/../" + plain
        if style == "abs":
            return CASE_TOKEN + "/" + names[target]
        return plain

    odd_refs = [
        "missing.yaml", "../" + RECIPE_NAME, "../data", "loop.yaml", "dangling.yaml",
        "outside.yaml", "../../../../../../../etc/hostname", OUTSIDE_TOKEN, "bin.yaml", "",
        "x" * 300, "a\x00b.yaml", "\u202eevil.yaml",
    ]  # fmt: skip
    for i in range(count):
        body = draw(st.sampled_from(FRAGMENT_BODIES))
        if draw(st.booleans()):
            body = fragment_text()  # _fuzz/ sits next to _fragments/: its paths still work
        targets = draw(st.lists(st.integers(0, count - 1), max_size=3))
        refs = [ref_to(t, True) for t in targets]
        refs += draw(st.lists(st.sampled_from(odd_refs), max_size=1))
        if refs:
            include = draw(st.sampled_from(["list", "single", "flow"]))
            if include == "single" and len(refs) == 1:
                body = f"include: {json.dumps(refs[0])}\n" + body
            else:
                body = "include:\n" + "".join(f"  - {json.dumps(r)}\n" for r in refs) + body
        steps.append(f"f{i} -> {refs}")
        files.append((names[i], body.encode("utf-8")))
    # fragments the odd references point at
    links += [("_fuzz/loop.yaml", "loop.yaml"), ("_fuzz/dangling.yaml", "nowhere.yaml")]
    links.append(("_fuzz/outside.yaml", OUTSIDE_TOKEN))
    files.append(("_fuzz/bin.yaml", b"\x00\x01\x02binary"))
    if draw(st.booleans()):  # a chain longer than any sane include depth
        depth = draw(st.sampled_from([15, 16, 17, 20]))
        for i in range(depth):
            nxt = f"include: c{i + 1}.yaml\n" if i + 1 < depth else "run: {mode: trace}\n"
            files.append((f"_fuzz/c{i}.yaml", nxt.encode()))
        names.append("_fuzz/c0.yaml")
        steps.append(f"chain {depth}")
    seed_name = draw(st.sampled_from(sorted(seed_texts())))
    recipe_refs = [ref_to(t, False) for t in draw(st.lists(st.integers(0, count - 1), max_size=3))]
    if names[-1].endswith("c0.yaml") and draw(st.booleans()):
        recipe_refs.append(names[-1])
    if draw(st.booleans()):
        recipe_refs.insert(0, "_fragments/tiny-model.yaml")
    if draw(st.booleans()):
        recipe_refs.append(draw(st.sampled_from([RECIPE_NAME, *odd_refs])))
    lines = [ln for ln in seed_texts()[seed_name].split("\n") if not ln.startswith("include:")]
    value = json.dumps(recipe_refs) if recipe_refs else draw(st.sampled_from(["[]", "null"]))
    at = draw(st.integers(0, len(lines)))
    lines.insert(at, f"include: {value}")
    steps.insert(0, f"{seed_name} include {value}")
    return FuzzCase(
        "\n".join(lines).encode("utf-8"),
        files=tuple(files),
        links=tuple(links),
        label="includes",
        steps=tuple(steps),
    )


def _safetensors(header: bytes, data: bytes = b"\x00" * 16, length: int | None = None) -> bytes:
    size = len(header) if length is None else length
    return struct.pack("<Q", size) + header + data


SAFETENSORS_BODIES = [
    _safetensors(b'{"v": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'),
    _safetensors(b'{"v": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 16]}}'),
    _safetensors(b'{"v": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1e999]}}'),
    _safetensors(b'{"v": {"dtype": "F32", "shape": [-4], "data_offsets": [0, NaN]}}'),
    _safetensors(b'{"v": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": []}}'),
    _safetensors(b'{"v": {"dtype": "I64", "shape": [], "data_offsets": [0, 0]}}'),
    _safetensors(b'{"v": {"dtype": "F32", "shape": "44", "data_offsets": [0, 16]}}'),
    _safetensors(b'{"v": {"dtype": {"a": 1}, "shape": {"4": 1}, "data_offsets": [0, 16]}}'),
    _safetensors(b'{"v": [1, 2], "__metadata__": [1]}'),
    _safetensors(b'{"__metadata__": {"a": {"b": 1}}, "v": 1}'),
    _safetensors(b"{" + b'"a": [' * 5000 + b"]" * 5000 + b"}"),
    _safetensors(b"[" * 100_000 + b"]" * 100_000),
    _safetensors(b'{"v": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', length=2**63),
    _safetensors(b"{}", length=1),
    _safetensors(b"{\xff\xfe}"),
    _safetensors(b'{"\\ud800": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'),
    b"\x80\x04\x95" + b"\x00" * 20, b"PK\x03\x04" + b"\x00" * 20, b"", b"\x00" * 8, b"{}",
]  # fmt: skip

PROMPT_BODIES = [
    b"", b"\n\n", b"one prompt\n", b"\xef\xbb\xbfbom\r\ncrlf\r\n", b"caf\xe9\n", b"a\x00b\n",
    b'{"text": "a"}\n', b'{"text": 1}\n', b'"plain string"\n', b'{"text": "a"\n', b"[1, 2]\n",
    b'{"text": "' + b"x" * 100_000 + b'"}\n', b"9" * 5000 + b"\n", b"[" * 100_000 + b"\n",
    b'{"text": "\\ud800"}\n', b'{"text": NaN, "label": Infinity}\n',
    b"\x85\n" + "\u2028\n".encode(),
    b'{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n',
    b'{"text": "a", "label": 1e999}\n', b'{"text": "a", "label": ' + b"1" * 5000 + b"}\n",
    b'{"text": "a", "label": true}\n{"text": "b", "label": 0}\n', b"\xff\xfe\x00\x00",
    '{"text": "🎉 \u202eevil"}\n'.encode(), b"null\n", b"{}\n", b"\x1a\x1b\x1c\n",
]  # fmt: skip

REFERENCE_NAMES = [
    "gen/p.txt", "gen/p.jsonl", "gen/v.safetensors", "gen/p", "gen/odd name.txt",
    "gen/ünïcødé.txt", "gen/🎉.jsonl", "gen/\u202eevil.txt", "gen/new\nline.txt",
    "gen/" + "n" * 250 + ".txt",
]  # fmt: skip

ODD_REFERENCES = [
    "missing.txt", "data", "data/", "data/neutral.txt/", "data//neutral.txt",
    "data/./neutral.txt", "./data/../data/neutral.txt", "../" * 3 + "outside.txt",
    "../" * 20 + "etc/hostname", "/etc/hostname", OUTSIDE_TOKEN, "gen/loop.txt",
    "gen/dangling.txt", "gen/outside_link.txt", "gen/dir_link", "~/x.txt", "", " ", ".", "..",
    "a\x00b.txt", "x" * 300, ("y" * 200 + "/") * 30 + "z.txt", "\U0001f389.txt", "C:\\x.txt",
    "\\\\server\\share", "file:///etc/hostname", "data/neutral.txt\x00.png", RECIPE_NAME,
    "vectors/sentiment.safetensors", "data/sentiment.jsonl", "data/calibration.jsonl",
]  # fmt: skip

REFERENCE_KEYS = ("file", "data", "path")


def _reference_paths(node: Any, prefix: DataPath = ()) -> list[DataPath]:
    """Paths of the values that name files: {file: X}, probe `data`, vector `path`, model id."""
    found: list[DataPath] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (key in REFERENCE_KEYS and isinstance(value, str)) or (
                key == "id" and prefix == ("model",)
            ):
                found.append((*prefix, key))
            else:
                found += _reference_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _reference_paths(value, (*prefix, index))
    return found


@st.composite
def references(draw: st.DrawFn) -> FuzzCase:
    """Examples whose prompt, probe, vector or model references point at odd or broken files."""
    name = draw(st.sampled_from(sorted(seed_texts())))
    data = copy.deepcopy(seed_data()[name])
    steps = [name]
    files: list[tuple[str, bytes]] = []
    links = [
        ("gen/loop.txt", "loop.txt"),
        ("gen/dangling.txt", "nowhere.txt"),
        ("gen/outside_link.txt", OUTSIDE_TOKEN),
        ("gen/dir_link", "../data"),
        ("loop.yaml", "loop.yaml"),  # found by `steer validate DIR`
        ("gen/up", ".."),  # a folder cycle for the recursive search
    ]
    if draw(st.booleans()):  # bring the fragment's references into the recipe itself
        fragment = yaml.safe_load(fragment_text())
        fragment["vectors"]["sentiment"]["positive"]["file"] = "data/positive.txt"
        fragment["vectors"]["sentiment"]["negative"]["file"] = "data/negative.txt"
        data.pop("include", None)
        data.setdefault("model", fragment["model"])
        vectors = data.setdefault("vectors", {})
        if isinstance(vectors, dict):
            vectors.setdefault("sentiment", fragment["vectors"]["sentiment"])
        steps.append("inline fragment")
    if draw(st.integers(0, 5)) == 0:  # a hub model: with --check-model, exit 3 if not cached
        hub = ["org/name", "gpt2", "a/b/c", "org/" + "n" * 300, "x" * 300, "../x", "org/na me"]
        data.setdefault("model", {})["id"] = draw(st.sampled_from(hub))
        steps.append(f"model {data['model']['id'][:40]!r}")
    elif draw(st.integers(0, 4)) == 0:  # a local model folder, its config.json fuzzed
        data.setdefault("model", {})["id"] = draw(st.sampled_from(["./m", "./m/", "../m", "."]))
        config = draw(
            st.sampled_from(
                [
                    b'{"n_layer": 4, "n_embd": 64, "n_head": 4}',
                    b'{"n_layer": 4, "n_embd": 64, "n_head": 0}',
                    b'{"n_layer": 0, "n_embd": 0, "n_head": 1}',
                    b'{"n_layer": -4, "n_embd": -64, "n_head": -4, "head_dim": -1}',
                    b'{"n_layer": 1e999, "n_embd": 64, "n_head": 4}',
                    b'{"n_layer": ' + b"9" * 5000 + b', "n_embd": 64, "n_head": 4}',
                    b'{"n_layer": 1000000000000, "n_embd": 64, "n_head": 4}',
                    b'{"n_layer": 4, "n_embd": 1000000000000, "n_head": 1000000000000}',
                    b'{"text_config": {"num_hidden_layers": 2, "hidden_size": 8, '
                    b'"num_attention_heads": 2}}',
                    b'{"text_config": [1]}', b"[" * 100_000, b"[]", b"", b"\xff", b"null",
                    b'{"n_layer": true, "n_embd": 64, "n_head": 4}',
                    b'{"n_layer": 4, "n_embd": 64, "n_head": 4, "head_dim": 0}',
                ]
            )
        )  # fmt: skip
        files.append(("m/config.json", config))
        steps.append(f"model ./m {config[:40]!r}")
    refs = _reference_paths(data)
    for _ in range(draw(st.integers(1, 3)) if refs else 0):
        path = draw(st.sampled_from(refs))
        if path == ("model", "id"):
            continue
        if draw(st.booleans()):
            target = draw(st.sampled_from(REFERENCE_NAMES))
            body = draw(
                st.sampled_from(SAFETENSORS_BODIES if path[-1] == "path" else PROMPT_BODIES)
            )
            if draw(st.integers(0, 3)) == 0:
                body = draw(st.binary(max_size=200))
            if "\n" not in target and len(target) < 255:
                files.append((target, body))
            steps.append(f"{path} -> {target!r} ({body[:30]!r})")
        else:
            target = draw(st.sampled_from(ODD_REFERENCES))
            steps.append(f"{path} -> {target!r}")
        _set(data, path, target)
        if path[-1] == "file" and draw(st.integers(0, 3)) == 0:
            spec = _get(data, path[:-1])
            spec[draw(st.sampled_from(["limit", "format", "field"]))] = draw(
                st.sampled_from([0, -1, 10**400, 1.5, "jsonl", "lines", "csv", "", None, "text"])
            )
    text = _dump(data, draw)
    return FuzzCase(
        text.encode("utf-8"),
        files=tuple(files),
        links=tuple(links),
        label="references",
        steps=tuple(steps),
    )


def families() -> st.SearchStrategy[FuzzCase]:
    return st.one_of(
        data_mutated(), text_mutated(), structural(), raw_garbage(), include_graphs(), references()
    )


@st.composite
def with_options(draw: st.DrawFn, base: st.SearchStrategy[FuzzCase]) -> FuzzCase:
    """Add an output format and flags to a case."""
    case = draw(base)
    fmt = draw(st.sampled_from(["text", "text", "json", "json", "github"]))
    flags = []
    if draw(st.integers(0, 4)) == 0:
        flags.append("--strict")
    if draw(st.integers(0, 4)) == 0:
        # config-only checks; exit 3 is then allowed, for environment problems only
        flags.append("--check-model")
    if draw(st.integers(0, 9)) == 0:
        flags.append("--allow-outside-root")
    return FuzzCase(
        case.recipe,
        files=case.files,
        links=case.links,
        flags=tuple(flags),
        fmt=fmt,
        validate_dir=draw(st.integers(0, 9)) == 0,
        label=case.label,
        steps=case.steps,
    )


def fuzz_cases(family: st.SearchStrategy[FuzzCase] | None = None) -> st.SearchStrategy[FuzzCase]:
    """Cases of one family (or of all), with a random output format and flags."""
    return with_options(family if family is not None else families())
