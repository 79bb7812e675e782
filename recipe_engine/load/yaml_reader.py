"""Read one YAML file safely into plain Python data, keeping line and column of every node.

Why not `yaml.safe_load`: it forgets where values came from, silently lets a later duplicate
key win, and expands aliases without a bound (a "billion laughs" file eats all memory). Here
the file is *composed* into a node graph (cheap: aliases stay shared), then walked by our own
constructor that counts every node it produces, rejects non-standard tags instead of acting on
them, and reports duplicate keys.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.reader import ReaderError

from recipe_engine.diagnostics import Diagnostic, Location
from recipe_engine.errors import RecipeLoadError
from recipe_engine.load.source_map import SourceMap, join_pointer

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "RecipeYamlLoader",
    "YamlFile",
    "read_yaml_file",
]

# A recipe is a small hand-written file; these bounds are far above any real one and far below
# what would hurt the machine.
MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RecipeYamlLoader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, reading `1e3` as a number as YAML 1.2 and JSON do.

    YAML 1.1 (PyYAML) wants a dot in a float, so `strength: 1e3` would be the string '1e3'
    and fail as "not a number" although the user wrote one.
    """


RecipeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
_Loader: type = RecipeYamlLoader

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str")}
_TIMESTAMP = _TAG + "timestamp"
_MERGE = _TAG + "merge"
_SCALAR_KINDS = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null"}


@dataclass
class YamlFile:
    data: Any
    source_map: SourceMap


def _fail(file: str, code: str, message: str, line: int = 1, column: int = 1) -> RecipeLoadError:
    return RecipeLoadError([Diagnostic(code, message, "", Location(file, line, column))])


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(
            file,
            "file-too-large",
            f"recipe is {len(raw)} bytes; the limit is {MAX_FILE_BYTES} bytes. Move prompt "
            "lists into files referenced with {file: ...}",
        )
    if b"\x00" in raw[:8192]:
        raise _fail(file, "binary-file", "file is binary, not a YAML recipe")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _fail(
            file,
            "not-utf8",
            f"byte 0x{raw[exc.start]:02x} is not valid UTF-8; save the file as UTF-8",
            line,
            column,
        ) from None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise _fail(file, "empty-file", "file is empty; a recipe needs at least `version: 1`")
    return text


class _Builder:
    """Turns a composed node graph into dicts/lists/scalars plus a SourceMap."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.map = SourceMap()
        self.count = 0
        self._scalars = yaml.SafeLoader("")

    def _loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def _error(self, node: yaml.Node, code: str, message: str) -> RecipeLoadError:
        loc = self._loc(node)
        return _fail(self.file, code, message, loc.line, loc.column)

    def build(self, node: yaml.Node, pointer: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._too_many(node)
        if depth > MAX_DEPTH:
            raise self._error(
                node, "yaml-too-deep", f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)"
            )
        self.map.values[pointer] = self._loc(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, pointer, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                raise self._tag_error(node)
            return [
                self.build(item, join_pointer(pointer, i), depth + 1)
                for i, item in enumerate(node.value)
            ]
        return self._scalar(node)

    def _too_many(self, node: yaml.Node) -> RecipeLoadError:
        return self._error(
            node,
            "yaml-too-many-nodes",
            f"document expands to more than {MAX_NODES} nodes (alias bomb or runaway "
            "anchors); recipes do not need this",
        )

    def _tag_error(self, node: yaml.Node) -> RecipeLoadError:
        return self._error(
            node,
            "yaml-tag",
            f"YAML tag {node.tag!r} is not allowed: recipes are plain data, and tags that "
            "construct objects are never executed. Remove the tag",
        )

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # keep dates as the text the user wrote: JSON has no date type
        if node.tag not in _SCALAR_TAGS:
            raise self._tag_error(node)
        value = self._construct(node)
        if isinstance(value, float) and not math.isfinite(value):
            return value  # kept; the schema stage rejects NaN/Inf with the field's name
        return value

    def _construct(self, node: yaml.Node) -> Any:
        """PyYAML's constructor for a standard scalar tag, its Python errors made diagnostics.

        The constructors trust the tag: an explicit `!!int abc` or `!!bool maybe`, a plain
        scalar the YAML 1.1 resolver over-matches (`0b_`, `0x_`) and an integer past Python's
        digit limit for int() (CVE-2020-10735) all raise ValueError, KeyError or IndexError
        from inside PyYAML, which would otherwise surface as an internal error.
        """
        try:
            return self._scalars.construct_object(node)
        except (ValueError, KeyError, IndexError, TypeError, OverflowError):
            pass
        kind = _SCALAR_KINDS.get(str(node.tag).removeprefix(_TAG), str(node.tag))
        text = str(node.value)
        digits = sum(c.isdigit() for c in text)
        limit = sys.get_int_max_str_digits()
        if kind == "an integer" and limit and digits > limit:
            message = f"integer of {digits} digits is too long (the limit is {limit} digits)"
        else:
            shown = repr(text) if len(text) <= 40 else repr(text[:40] + "...")
            message = f"{shown} cannot be read as {kind} (quote it, or drop the tag, if it is text)"
        raise self._error(node, "yaml-value", message)

    def _key(self, node: yaml.Node) -> str | int:
        if not isinstance(node, yaml.ScalarNode):
            raise self._error(node, "yaml-key-type", "mapping keys must be plain scalars")
        if node.tag == _TAG + "int":
            value = self._construct(node)
            assert isinstance(value, int)
            return value
        if node.tag not in _SCALAR_TAGS | {_TIMESTAMP}:
            raise self._tag_error(node)
        if node.tag == _TAG + "null" and node.style is None and node.value in ("", "~", "null"):
            raise self._error(node, "yaml-key-type", "empty mapping key")
        # `on:`/`yes:` stay strings: YAML 1.1 would turn these keys into booleans.
        return str(node.value)

    def _merge_sources(self, node: yaml.Node) -> list[yaml.MappingNode]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(
            isinstance(n, yaml.MappingNode) for n in node.value
        ):
            return list(node.value)
        raise self._error(
            node, "yaml-merge", "`<<` must be followed by a mapping or a list of them"
        )

    def _flatten(self, node: yaml.MappingNode, depth: int) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key/value pairs a merged mapping contributes, its own merge keys expanded."""
        if depth > MAX_DEPTH:
            raise self._error(node, "yaml-too-deep", f"merge keys nest deeper than {MAX_DEPTH}")
        pairs = [(k, v) for k, v in node.value if k.tag != _MERGE]
        # Charged before expanding, one per visit and one per pair: merge keys are an alias
        # bomb of their own (`&b {<<: [*a, *a, ...]}` nested ten deep lists 10^10 pairs, even
        # when the mappings are empty), and the pairs are gathered here, not built, so the
        # count in build() would only see them after the damage.
        self.count += 1 + len(pairs)
        if self.count > MAX_NODES:
            raise self._too_many(node)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node):
                    pairs.extend(self._flatten(source, depth + 1))
        return pairs

    def _put(
        self,
        result: dict[Any, Any],
        key: Any,
        key_node: yaml.Node,
        value_node: yaml.Node,
        pointer: str,
        depth: int,
    ) -> None:
        child = join_pointer(pointer, key)
        self.map.keys[child] = self._loc(key_node)
        result[key] = self.build(value_node, child, depth + 1)

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int) -> dict[Any, Any]:
        if node.tag != _TAG + "map":
            raise self._tag_error(node)
        result: dict[Any, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node):
                    merged.extend(self._flatten(source, depth + 1))
            else:
                explicit.append((key_node, value_node))
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in explicit:
            key = self._key(key_node)
            if key in seen:
                first = self._loc(seen[key])
                raise self._error(
                    key_node,
                    "duplicate-key",
                    f"duplicate key {key!r} (first defined at line {first.line}); YAML would "
                    "silently keep only one of them",
                )
            seen[key] = key_node
        # Merge keys (`<<: *defaults`) fill in only what the mapping does not set itself;
        # among several merged mappings the earlier one wins, as the YAML merge spec says.
        for key_node, value_node in merged:
            key = self._key(key_node)
            if key not in seen and key not in result:
                self._put(result, key, key_node, value_node, pointer, depth)
        for key_node, value_node in explicit:
            self._put(result, self._key(key_node), key_node, value_node, pointer, depth)
        return result


def _reader_location(text: str, position: int) -> tuple[int, int]:
    """Line and column of a reader error's offset: libyaml counts UTF-8 bytes, the pure-Python
    reader characters."""
    if _BaseLoader is not yaml.SafeLoader:
        text = text.encode("utf-8")[:position].decode("utf-8", "replace")
        position = len(text)
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def read_yaml_file(path: Path, display: str) -> YamlFile:
    """Read `path` (named `display` in messages). Raises RecipeLoadError, never a yaml error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(display, "file-not-found", "file does not exist") from None
    except IsADirectoryError:
        raise _fail(display, "file-not-found", "is a directory, not a recipe file") from None
    except OSError as exc:
        raise _fail(display, "file-unreadable", f"cannot read file: {exc.strerror}") from None
    text = _decode(raw, display)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        message = f"YAML syntax error: {problem}{context}"
        raise _fail(display, "yaml-syntax", message, line, column) from None
    except ReaderError as exc:
        # Not a MarkedYAMLError: it has no mark, only an offset, and its str() spans two lines.
        line, column = _reader_location(text, exc.position)
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        message = f"YAML syntax error: character {char!r} is not allowed in a YAML file"
        raise _fail(display, "yaml-syntax", message, line, column) from None
    except yaml.YAMLError as exc:
        raise _fail(display, "yaml-syntax", f"YAML error: {exc}") from None
    except RecursionError:
        raise _fail(display, "yaml-too-deep", "document nests too deeply") from None
    if node is None or (
        isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null" and node.value == ""
    ):
        raise _fail(display, "empty-file", "file is empty; a recipe needs at least `version: 1`")
    builder = _Builder(display)
    data = builder.build(node, "", 0)
    return YamlFile(data, builder.map)
