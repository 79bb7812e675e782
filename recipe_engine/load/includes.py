"""Load a recipe and the fragments it includes into one document.

Rules (documented in the README):
- `include:` is a path or a list of paths, relative to the file that names it. Included files
  may include others.
- Fragments are merged in the order listed, then the including file is laid on top. Mappings
  merge key by key (recursively); any other value, lists included, is replaced whole by the
  later one. So a fragment can supply `model:` and a few `vectors:`, and the recipe adds its own.
- A cycle is an include of a file that is already on the current include *stack*; including the
  same fragment through two branches (a diamond) is fine.
- Included files must stay inside the repository root like every referenced file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipe_engine.diagnostics import Diagnostic, Location
from recipe_engine.errors import RecipeLoadError
from recipe_engine.load.paths import (
    display_path,
    find_repo_root,
    is_file,
    is_inside,
    real_path,
    resolve_reference,
    unusable_name,
)
from recipe_engine.load.source_map import SourceMap, join_pointer
from recipe_engine.load.yaml_reader import read_yaml_file

__all__ = ["LoadedDocument", "load_document"]

MAX_INCLUDE_DEPTH = 16


@dataclass
class LoadedDocument:
    """A recipe as plain data, before any validation."""

    path: Path
    display: str
    root: Path
    data: dict[str, Any]
    source_map: SourceMap
    # display name of every file read -> the include chain that led to it (outermost first)
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    file_paths: dict[str, Path] = field(default_factory=dict)
    # warnings found while reading (a plain scalar YAML 1.1 would read differently)
    warnings: list[Diagnostic] = field(default_factory=list)

    def locate(self, pointer: str, *, prefer_key: bool = False) -> Location | None:
        return self.source_map.locate(pointer, prefer_key=prefer_key)

    def base_dir(self, pointer: str) -> Path:
        """Folder that relative paths at `pointer` are resolved against: that of the file
        (recipe or fragment) that wrote the value."""
        where = self.locate(pointer)
        if where is not None and where.file in self.file_paths:
            return self.file_paths[where.file].parent
        return self.path.parent

    def diagnostic(
        self,
        code: str,
        message: str,
        pointer: str,
        *,
        severity: str = "error",
        prefer_key: bool = False,
    ) -> Diagnostic:
        location = self.locate(pointer, prefer_key=prefer_key) or Location(self.display, 1, 1)
        chain = self.files.get(location.file, ())
        return Diagnostic(
            code,
            message,
            pointer,
            location,
            "warning" if severity == "warning" else "error",
            chain,
        )


def _deep_merge(
    base: dict[str, Any], base_map: SourceMap, over: dict[str, Any], over_map: SourceMap, at: str
) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        child = join_pointer(at, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], base_map, value, over_map, child)
        else:
            base_map.prune(child)  # the fragment's subtree is gone; so are its locations
            merged[key] = value
    return merged


class _IncludeLoader:
    def __init__(self, root: Path, allow_outside_root: bool) -> None:
        self.root = root
        self.allow_outside_root = allow_outside_root
        self.files: dict[str, tuple[str, ...]] = {}
        self.paths: dict[str, Path] = {}
        self.warnings: list[Diagnostic] = []

    def load(
        self, path: Path, stack: tuple[Path, ...], chain: tuple[str, ...]
    ) -> tuple[Any, SourceMap]:
        display = display_path(path)
        parsed = read_yaml_file(path, display)
        self.files.setdefault(display, chain)
        self.paths.setdefault(display, path)
        known = {(w.location, w.message) for w in self.warnings}  # a diamond reads a file twice
        self.warnings += [
            replace(w, include_chain=chain)
            for w in parsed.warnings
            if (w.location, w.message) not in known
        ]
        data, smap = parsed.data, parsed.source_map
        if not isinstance(data, dict):
            loc = smap.locate("") or Location(display, 1, 1)
            raise RecipeLoadError(
                [
                    Diagnostic(
                        "not-a-mapping", "a recipe must be a YAML mapping (key: value)", "", loc
                    )
                ]
            )
        if "include" not in data:
            return data, smap
        includes = data.pop("include")
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            loc = smap.locate("/include") or Location(display, 1, 1)
            raise RecipeLoadError(
                [
                    Diagnostic(
                        "include-type",
                        "`include` must be a path or a list of paths",
                        "/include",
                        loc,
                    )
                ]
            )
        base: dict[str, Any] = {}
        base_map = SourceMap()
        for index, reference in enumerate(includes):
            pointer = f"/include/{index}" if f"/include/{index}" in smap.values else "/include"
            loc = smap.locate(pointer) or Location(display, 1, 1)
            target = resolve_reference(reference, path.parent)
            fragment, fragment_map = self._load_included(
                target, reference, loc, stack, (*chain, display)
            )
            base = _deep_merge(base, base_map, fragment, fragment_map, "")
            base_map = base_map.overlay(fragment_map)
        merged = _deep_merge(base, base_map, data, smap, "")
        return merged, base_map.overlay(smap)

    def _load_included(
        self,
        target: Path,
        reference: str,
        loc: Location,
        stack: tuple[Path, ...],
        chain: tuple[str, ...],
    ) -> tuple[Any, SourceMap]:
        via = " -> ".join(chain)

        def fail(code: str, message: str) -> RecipeLoadError:
            return RecipeLoadError(
                [Diagnostic(code, message, "/include", loc, "error", chain[:-1])]
            )

        problem = unusable_name(reference)
        if problem is not None:
            raise fail("include-not-found", f"include {reference!r} cannot be a file: {problem}")
        resolved = real_path(target)
        if not self.allow_outside_root and not is_inside(resolved, self.root):
            raise fail(
                "path-outside-root",
                f"include {reference!r} resolves outside the repository root {self.root}; "
                "move it inside, or pass --allow-outside-root",
            )
        if resolved in stack:
            cycle = " -> ".join([*chain, display_path(target)])
            raise fail("include-cycle", f"include cycle: {cycle}")
        if len(stack) >= MAX_INCLUDE_DEPTH:
            raise fail("include-depth", f"includes nest deeper than {MAX_INCLUDE_DEPTH} ({via})")
        if not is_file(resolved):
            raise fail(
                "include-not-found", f"included file {reference!r} does not exist (via {via})"
            )
        return self.load(target, (*stack, resolved), chain)


def load_document(
    path: str | Path, *, root: Path | None = None, allow_outside_root: bool = False
) -> LoadedDocument:
    """Read a recipe file and its includes. Raises RecipeLoadError with located diagnostics."""
    path = Path(path)
    repo_root = root or find_repo_root(path)
    loader = _IncludeLoader(repo_root, allow_outside_root)
    data, smap = loader.load(path, (path.resolve(),), ())
    return LoadedDocument(
        path=path,
        display=display_path(path),
        root=repo_root,
        data=data,
        source_map=smap,
        files=loader.files,
        file_paths=loader.paths,
        warnings=loader.warnings,
    )
