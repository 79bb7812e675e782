"""Read one YAML file safely into plain Python data, keeping line and column of every node.

Why not `yaml.safe_load`: it forgets where values came from, silently lets a later duplicate
key win, and expands aliases without a bound (a "billion laughs" file eats all memory). Here
the file is *composed* into a node graph (cheap: aliases stay shared), then walked by our own
constructor that counts every node it produces, rejects non-standard tags instead of acting on
them, and reports duplicate keys.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.reader import ReaderError

from recipe_engine.diagnostics import Diagnostic, Location
from recipe_engine.errors import RecipeLoadError
from recipe_engine.load.source_map import SourceMap, join_pointer
from recipe_engine.load.yaml12 import (
    MERGE,
    PLAIN_STYLES,
    SCALAR_KINDS,
    SCALAR_TAGS,
    TAG,
    TIMESTAMP,
    BaseLoader,
    RecipeYamlLoader,
    Yaml11Resolver,
    core_scalar,
    describe_value,
    same_value,
)

_Loader: type = RecipeYamlLoader

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "RecipeYamlLoader",
    "YamlFile",
    "core_scalar",
    "parse_yaml_text",
    "read_yaml_file",
]

# A recipe is a small hand-written file; these bounds are far above any real one and far below
# what would hurt the machine.
MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64


@dataclass
class YamlFile:
    data: Any
    source_map: SourceMap
    # `yaml11-scalar` warnings: plain scalars a YAML 1.1 reader would read differently
    warnings: list[Diagnostic] = field(default_factory=list)


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
        self.warnings: list[Diagnostic] = []
        self._yaml11 = yaml.SafeLoader("")  # constructs the YAML 1.1 reading, for warnings
        self._yaml11_resolver = Yaml11Resolver()

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
            if node.tag != TAG + "seq":
                raise self._tag_error(node)
            return [
                self.build(item, join_pointer(pointer, i), depth + 1)
                for i, item in enumerate(node.value)
            ]
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            self.map.quoted.add(pointer)
        value = self._scalar(node)
        if isinstance(node, yaml.ScalarNode) and node.tag != TIMESTAMP:
            self._warn_if_yaml11_differs(node, value, pointer)
        return value

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
        if node.tag == TIMESTAMP:
            return node.value  # keep dates as the text the user wrote: JSON has no date type
        if node.tag not in SCALAR_TAGS:
            raise self._tag_error(node)
        value = self._construct(node)
        if isinstance(value, float) and not math.isfinite(value):
            return value  # kept; the schema stage rejects NaN/Inf with the field's name
        return value

    def _construct(self, node: yaml.Node) -> Any:
        """The YAML 1.2 value of a standard scalar tag; text that is not a value of its tag
        (`!!int abc`, `!!bool maybe`, an integer past Python's digit limit for int(),
        CVE-2020-10735) becomes a diagnostic instead of an internal error."""
        try:
            value = core_scalar(str(node.tag), str(node.value))
        except (ValueError, OverflowError):
            pass
        else:
            return value
        kind = SCALAR_KINDS.get(str(node.tag).removeprefix(TAG), str(node.tag))
        text = str(node.value)
        digits = sum(c.isdigit() for c in text)
        limit = sys.get_int_max_str_digits()
        if kind == "an integer" and limit and digits > limit:
            message = f"integer of {digits} digits is too long (the limit is {limit} digits)"
        else:
            shown = repr(text) if len(text) <= 40 else repr(text[:40] + "...")
            message = f"{shown} cannot be read as {kind} (quote it, or drop the tag, if it is text)"
        raise self._error(node, "yaml-value", message)

    def _yaml11_tag(self, text: str) -> str:
        tag = self._yaml11_resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        return str(tag)

    def _yaml11_value(self, text: str) -> tuple[bool, Any]:
        tag = self._yaml11_tag(text)
        if tag == TIMESTAMP:
            return True, text  # dates were always kept as text
        try:
            constructor = self._yaml11.yaml_constructors[tag]
            return True, constructor(self._yaml11, yaml.ScalarNode(tag, text))
        except (ValueError, KeyError, IndexError, TypeError, OverflowError):
            return False, None

    def _warn_if_yaml11_differs(
        self, node: yaml.ScalarNode, value: Any, pointer: str, *, key: bool = False
    ) -> None:
        """Warn where a plain scalar means something else to a YAML 1.1 reader (and meant it
        to this engine before): `1:3` was 63, `yes` true, `010` 8, `0o17` text."""
        text = str(node.value)
        if node.style not in PLAIN_STYLES or not text:
            return
        old_tag = self._yaml11_tag(text)
        if old_tag == node.tag == TAG + "str":
            return  # text to both readers: the common case, decided without constructing
        ok, old = self._yaml11_value(text)
        if key and old_tag != TAG + "int":
            ok, old = True, text  # keys other than integers were always kept as text
        if not ok or same_value(old, value):
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            advice = f"; write {value!r} so that every reader sees that number"
        else:
            advice = f'; quote it ("{text}") so that every reader sees text'
        loc = self._loc(node)
        self.warnings.append(
            Diagnostic(
                "yaml11-scalar",
                f"{text} is {describe_value(value)} (YAML 1.2 core schema, which this engine "
                f"follows); a YAML 1.1 reader sees {describe_value(old)}{advice}",
                pointer,
                loc,
                "warning",
            )
        )

    def _key(self, node: yaml.Node) -> str | int:
        if not isinstance(node, yaml.ScalarNode):
            raise self._error(node, "yaml-key-type", "mapping keys must be plain scalars")
        if node.tag == TAG + "int":
            value = self._construct(node)
            assert isinstance(value, int)
            return value
        if node.tag not in SCALAR_TAGS | {TIMESTAMP}:
            raise self._tag_error(node)
        if (
            node.tag == TAG + "null"
            and node.style in PLAIN_STYLES
            and node.value in ("", "~", "null")
        ):
            raise self._error(node, "yaml-key-type", "empty mapping key")
        # Other keys stay strings (`true:` included): keys are names, and integer keys are
        # the layer indices of weight maps.
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
        pairs = [(k, v) for k, v in node.value if k.tag != MERGE]
        # Charged before expanding, one per visit and one per pair: merge keys are an alias
        # bomb of their own (`&b {<<: [*a, *a, ...]}` nested ten deep lists 10^10 pairs, even
        # when the mappings are empty), and the pairs are gathered here, not built, so the
        # count in build() would only see them after the damage.
        self.count += 1 + len(pairs)
        if self.count > MAX_NODES:
            raise self._too_many(node)
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
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
        if isinstance(key_node, yaml.ScalarNode):  # always: _key() rejects other keys
            self._warn_if_yaml11_differs(key_node, key, child, key=True)
        result[key] = self.build(value_node, child, depth + 1)

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int) -> dict[Any, Any]:
        if node.tag != TAG + "map":
            raise self._tag_error(node)
        result: dict[Any, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
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
    if BaseLoader is not yaml.SafeLoader:
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
    return parse_yaml_text(_decode(raw, display), display)


def parse_yaml_text(text: str, display: str) -> YamlFile:
    """Parse YAML text (a file's, or a `--set` value's) named `display` in messages, with the
    same schema, limits and diagnostics as a recipe file. Raises RecipeLoadError."""
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
        isinstance(node, yaml.ScalarNode) and node.tag == TAG + "null" and node.value == ""
    ):
        raise _fail(display, "empty-file", "file is empty; a recipe needs at least `version: 1`")
    builder = _Builder(display)
    data = builder.build(node, "", 0)
    return YamlFile(data, builder.map, builder.warnings)
