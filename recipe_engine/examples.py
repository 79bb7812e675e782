"""The example recipes that ship with the engine: list them, copy one with what it needs.

In this repository they are `recipes/` (where the README and the tests name them); in an
installed wheel they are `recipe_engine/examples/` (setup.py maps one onto the other). A copy
takes the recipe and every file it reads, fragments (include:), prompt and probe data and
vector files, at the same relative places, so that the copy validates and runs as the original.
Torch-free.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_engine.atomic import hold_sigint
from recipe_engine.errors import EnvironmentFailure, RecipeError, UsageError

if TYPE_CHECKING:
    from recipe_engine.format.recipe import Recipe
    from recipe_engine.load.includes import LoadedDocument

__all__ = ["Example", "copy_example", "examples_dir", "list_examples", "needed_files"]


@dataclass(frozen=True)
class Example:
    name: str  # the file name without .yaml: what `steer cp NAME` takes
    path: Path
    description: str  # the recipe's `description:` (one line)


def examples_dir() -> Path:
    """Where the example recipes are: inside the installed package, or, running from a source
    checkout (an editable install), the repository's recipes/ folder."""
    package = Path(__file__).resolve().parent
    installed = package / "examples"
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "recipes").is_dir():
        return checkout / "recipes"
    raise EnvironmentFailure(
        f"the example recipes are missing from this installation (looked in {installed}); "
        "reinstall recipe-engine"
    )


def _load(path: Path) -> tuple[Recipe, LoadedDocument]:
    from recipe_engine.validate import validate_file

    result = validate_file(path)
    if result.recipe is None or result.document is None:
        raise RecipeError(result.errors or result.diagnostics)
    return result.recipe, result.document


# Folders of examples below the top one, each its own gallery (its recipes, fragments and data
# side by side): `real/` runs the same recipes on real models (SmolLM2 from a package).
GALLERIES = ("real",)


def list_examples() -> list[Example]:
    """Every example recipe (fragments, whose names start with "_", are not recipes), by name:
    the top folder's as `NAME`, a gallery's as `real/NAME`."""
    root = examples_dir()
    # sorted by the name shown (the stem): by file name, `a-b.yaml` would come before `a.yaml`
    paths = sorted(root.glob("*.yaml"), key=lambda p: p.stem)
    for gallery in GALLERIES:
        paths += sorted((root / gallery).glob("*.yaml"), key=lambda p: p.stem)
    found = []
    for path in paths:
        if path.name.startswith(("_", ".")):
            continue
        recipe, _ = _load(path)
        description = (recipe.description or "").strip().splitlines()
        name = path.relative_to(root).with_suffix("").as_posix()
        found.append(Example(name, path, description[0] if description else ""))
    return found


def _example(name: str) -> Example:
    examples = list_examples()
    for example in examples:
        if name in (example.name, f"{example.name}.yaml"):
            return example
    names = ", ".join(e.name for e in examples)
    raise UsageError(f"no example recipe named {name!r} (steer ls lists them: {names})")


def needed_files(recipe_path: Path) -> list[Path]:
    """The recipe and every file it reads (includes, prompt, probe and vector files), as paths
    relative to the recipe's folder, each below that folder."""
    from recipe_engine.format.file_fields import file_fields
    from recipe_engine.format.prompts import PromptFile
    from recipe_engine.format.vectors import (
        FileVector,
        ProbeVector,
        SaeFeatureVector,
        TrainedVector,
    )
    from recipe_engine.load.paths import resolve_reference
    from recipe_engine.model_config import is_local_path

    recipe, doc = _load(recipe_path)
    files = {recipe_path.resolve(), *(p.resolve() for p in doc.file_paths.values())}

    def add(reference: str, pointer: str) -> None:
        files.add(resolve_reference(reference, doc.base_dir(pointer)).resolve())

    for field in file_fields(recipe):
        if isinstance(field.owner, ProbeVector):
            add(field.owner.data, field.pointer)
        elif isinstance(field.owner, FileVector):
            add(field.owner.path, field.pointer + "/path")
            if isinstance(field.owner, SaeFeatureVector):  # sae-lens: cfg.json names the hook
                add(str(Path(field.owner.path).parent / "cfg.json"), field.pointer + "/path")
        elif isinstance(field.owner, TrainedVector):
            add(field.owner.targets.file, field.pointer + "/file")  # type: ignore[union-attr]
        elif isinstance(field.owner, PromptFile):
            add(field.owner.file, field.pointer + "/file")
    if is_local_path(recipe.model.id) or any(
        getattr(m, "classifier", None) for m in recipe.report.metrics
    ):
        raise UsageError(f"{recipe_path.name} loads a local model folder; it cannot be copied")
    base = recipe_path.resolve().parent
    relative = []
    for path in sorted(files):
        try:
            relative.append(path.relative_to(base))
        except ValueError:
            raise EnvironmentFailure(
                f"{recipe_path.name} reads {path}, outside its folder; it cannot be copied"
            ) from None
    return relative


def _staging_dir(parent: Path, name: str) -> Path:
    """A new, hidden folder in `parent` (created under the umask, unlike mkdtemp's 0700)."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = parent / f".{name}.steer-cp-{secrets.token_hex(4)}.tmp"
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.is_file() and not b.is_symlink() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def copy_example(name: str, dest: str | Path) -> list[Path]:
    """Copy example recipe `name` and the files it needs into folder `dest` (created if
    missing), keeping their relative places. Never overwrites: if any of the files exists in
    `dest` with other contents, nothing is copied (UsageError); identical ones are kept. All
    or nothing: the files are staged in full first; into a new `dest`, one rename places them
    all. Returns the paths written."""
    example = _example(name)
    source_dir = example.path.resolve().parent
    relative = needed_files(example.path)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder: give a folder to copy into")
    # A file already there with the same bytes (the fragment two examples share) is kept.
    same = [rel for rel in relative if _same_file(source_dir / rel, dest / rel)]
    relative = [rel for rel in relative if rel not in same]
    targets = [dest / rel for rel in relative]
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing:
        raise UsageError(
            f"{existing[0]} already exists and differs from the example's; steer cp never "
            "overwrites: remove it or choose another destination"
        )
    fresh = not dest.exists()
    staging = _staging_dir(dest.parent if fresh else dest, dest.name)
    try:
        for rel in relative:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_dir / rel, staging / rel)
        with hold_sigint():  # Ctrl-C lands after the files are placed or rolled back
            if fresh:
                os.rename(staging, dest)
            else:
                _link_all(staging, dest, relative)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return targets


def _link_all(staging: Path, dest: Path, relative: list[Path]) -> None:
    """Hard-link each staged file to its place in an existing `dest`: a link never replaces a
    file that appeared meanwhile (FileExistsError), and on any failure the links already made
    are removed, so `dest` is left as it was."""
    placed: list[Path] = []
    made_dirs: list[Path] = []
    try:
        for rel in relative:
            target = dest / rel
            for folder in reversed(target.parents):
                if not folder.exists() and folder.is_relative_to(dest):
                    folder.mkdir()
                    made_dirs.append(folder)
            os.link(staging / rel, target)
            placed.append(target)
    except BaseException as exc:
        for target in placed:
            target.unlink(missing_ok=True)
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, FileExistsError):
            raise UsageError(
                f"{exc.filename2 or exc.filename} appeared while copying; nothing was copied"
            ) from None
        raise
