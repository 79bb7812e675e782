"""The steering profiles `steer serve` offers: one per recipe, named after its file (without
the suffix), compiled once against the served model and cached.

Profiles follow their files: `ProfileStore.refresh` (called by a polling thread) reloads a
recipe whose file changed, validating and compiling it first; an edit that fails keeps the old
profile and logs the diagnostics, each with its file and line; so does a file that is
momentarily empty or half-written (an editor that truncates then writes, a copy in progress):
only a file that is gone removes its profile. Recipes posted over HTTP (off unless the operator
enables it) are validated with the served folder as their root: they can read no file outside
it, and may not set what would load code or weights from elsewhere (`model.trust_remote_code`,
`model.gguf_file`, `model.revision`). A recipe written for another model than the served one
loads (every recipe runs on the served model) with a `profile_model_differs` log line.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_engine.atomic import write_text_atomic
from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeEngineError, RecipeError
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.load.includes import load_document
from recipe_engine.pipeline import CompiledRecipe, compile_recipe, load_recipe
from recipe_engine.plan import Plan
from recipe_engine.validate.sniff import looks_like_recipe

__all__ = ["PROFILE_NAME", "PostRefused", "Profile", "ProfileStore"]

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUFFIXES = (".yaml", ".yml")
_PLANS_KEPT = 16  # strength overrides compiled per profile (a plan is a few vector references)

Log = Callable[..., None]  # log(event, **fields): one JSON line (serve/logs.py)


@dataclass
class Profile:
    name: str
    path: Path
    compiled: CompiledRecipe
    revision: int  # bumped on every reload: a batch never mixes two versions of one profile
    vector_hashes: dict[str, str]
    _plans: dict[float, Plan] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def generation(self) -> GenerationSpec:
        return self.compiled.recipe.run.generation

    def plan(self, strength: float | None) -> Plan:
        """The compiled plan, or with every intervention's strength set to `strength` (its
        layer weights kept): the plan `steer run --set interventions.N.strength=S` runs."""
        if strength is None:
            return self.compiled.plan
        with self._lock:
            if strength not in self._plans:
                if len(self._plans) >= _PLANS_KEPT:
                    self._plans.pop(next(iter(self._plans)))
                recipe = self.compiled.recipe
                items = [i.model_copy(update={"strength": strength}) for i in recipe.interventions]
                steered = recipe.model_copy(update={"interventions": items})
                vectors = {n: v.tensor for n, v in self.compiled.vectors.items()}
                doc = self.compiled.loaded.document
                self._plans[strength] = compile_plan(steered, self.compiled.model, vectors, doc)
            return self._plans[strength]


def vector_hash(compiled: CompiledRecipe, name: str) -> str:
    """sha256 of a vector's float32 values (first 16 hex digits): names what steered a reply."""
    tensor = compiled.vectors[name].tensor.detach().float().cpu().contiguous()
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()[:16]


class PostRefused(ValueError):
    """A posted recipe asks for something a posted recipe may not have (HTTP 403)."""


# model keys that would reach past the served model and folder: code, other weights.
_POST_FORBIDDEN = {
    "trust_remote_code": "runs code that comes with the model",
    "gguf_file": "reads a weights file",
    "revision": "fetches another revision of the model",
}


def _refuse_reaching_out(recipe: Any) -> None:
    model = recipe.model
    for key, why in _POST_FORBIDDEN.items():
        value = getattr(model, key, None)
        if value not in (None, False):
            raise PostRefused(
                f"a posted recipe may not set model.{key} ({why}); remove it, or have the "
                "operator add the recipe file to the served folder"
            )


def _recipe_model(path: Path) -> str | None:
    """model.id as the recipe file writes it (before the served model replaces it)."""
    try:
        data = load_document(path).data
    except Exception:  # unreadable: validation reports it
        return None
    model = data.get("model") if isinstance(data, dict) else None
    found = model.get("id") if isinstance(model, dict) else None
    return found if isinstance(found, str) else None


class ProfileStore:
    """Profiles by name, loaded from recipe files and kept in step with them."""

    def __init__(
        self,
        sources: list[Path],
        overrides: list[str],
        log: Log,
        *,
        allow_outside_root: bool,
        served_models: tuple[str, ...] = (),
    ) -> None:
        self.folders = [s for s in sources if s.is_dir()]
        self.files = [s for s in sources if not s.is_dir()]
        self.overrides = overrides  # the served model, given to every recipe
        self.allow_outside_root = allow_outside_root
        self.served_models = served_models  # how --model was given, and resolved
        self.log = log
        self._profiles: dict[str, Profile] = {}
        self._stamps: dict[Path, int] = {}  # file -> mtime_ns (and size) when last read
        self._revision = 0
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def get(self, name: str) -> Profile | None:
        return self._profiles.get(name)

    def _recipe_files(self) -> list[Path]:
        found = list(self.files)
        for folder in self.folders:
            for path in sorted(folder.iterdir()):
                hidden = path.name.startswith(("_", "."))  # fragments, posted drafts
                if path.suffix in _SUFFIXES and not hidden and looks_like_recipe(path):
                    found.append(path)
        return found

    @staticmethod
    def _stamp(path: Path) -> int:
        stat = path.stat()
        return stat.st_mtime_ns ^ (stat.st_size << 1)

    def _compile(self, path: Path, *, root: Path | None = None) -> Profile:
        loaded = load_recipe(
            path, overrides=self.overrides, allow_outside_root=self.allow_outside_root, root=root
        )
        if root is not None:  # posted: checked before anything is loaded for it
            _refuse_reaching_out(loaded.recipe)
        compiled = compile_recipe(loaded)
        written = _recipe_model(path)
        if written is not None and self.served_models and written not in self.served_models:
            self.log(
                "profile_model_differs",
                profile=path.stem,
                recipe_model=written,
                served_model=self.served_models[0],
                note="the profile runs on the served model; its vectors and settings were "
                "chosen for another",
            )
        hashes = {name: vector_hash(compiled, name) for name in sorted(compiled.vectors)}
        with self._lock:
            self._revision += 1
            revision = self._revision
        return Profile(path.stem, path, compiled, revision, hashes)

    def load_all(self) -> None:
        """The first load: a recipe that fails stops the server (RecipeError)."""
        for path in self._recipe_files():
            stamp = self._stamp(path)
            self._add(self._compile(path), stamp)

    def _add(self, profile: Profile, stamp: int) -> None:
        self._stamps[profile.path] = stamp
        self._profiles = {**self._profiles, profile.name: profile}  # readers see old or new

    def refresh(self) -> None:
        """Reload changed recipe files, add new ones, drop removed ones."""
        present = self._recipe_files()
        # A known file that no longer looks like a recipe (empty, half-written) is still its
        # profile's file: it fails to compile below and the old profile stays.
        present += [p for p in self._stamps if p not in present and p.exists()]
        for path in present:
            try:
                stamp = self._stamp(path)
            except OSError:
                continue  # removed meanwhile: the next refresh drops it
            if self._stamps.get(path) == stamp:
                continue
            self._stamps[path] = stamp  # a bad edit is reported once, not on every poll
            try:
                profile = self._compile(path)
            except RecipeError as exc:
                lines = [d.format() for d in exc.diagnostics]
                self.log("profile_rejected", profile=path.stem, diagnostics=lines)
                continue
            except (RecipeEngineError, OSError) as exc:
                self.log("profile_rejected", profile=path.stem, diagnostics=[str(exc)])
                continue
            self._add(profile, stamp)
            self.log("profile_loaded", profile=profile.name, vectors=profile.vector_hashes)
        for path in set(self._stamps) - set(present):
            del self._stamps[path]
            remaining = {n: p for n, p in self._profiles.items() if p.path != path}
            self._profiles = remaining
            self.log("profile_removed", profile=path.stem)

    def add_posted(self, name: str, text: str) -> Profile:
        """Validate and compile a posted recipe inside the served folder, then keep it there as
        NAME.yaml. Raises RecipeError (invalid), ValueError (name taken or no folder)."""
        if not self.folders:
            raise ValueError("the server serves recipe files, not a folder: nowhere to keep it")
        folder = self.folders[0]
        target = folder / f"{name}.yaml"
        if name in self._profiles or target.exists():
            raise ValueError(f"profile {name!r} exists; edit its file to change it")
        # A hidden draft (skipped by the folder scan) read with the folder as its root: what
        # it includes or reads must be inside the served folder.
        draft = folder / f".posted-{name}.yaml"
        write_text_atomic(draft, text)
        try:
            profile = self._compile(draft, root=folder)
        finally:
            draft.unlink(missing_ok=True)
        write_text_atomic(target, text)
        profile = Profile(name, target, profile.compiled, profile.revision, profile.vector_hashes)
        self._add(profile, self._stamp(target))
        self.log("profile_posted", profile=name, vectors=profile.vector_hashes)
        return profile
