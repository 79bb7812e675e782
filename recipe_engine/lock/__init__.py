"""`RECIPE.lock`: the exact inputs of a recipe, so a shared recipe reproduces or says why not.

    {"lock_version": 1, "recipe": NAME,
     "model": {"id", "weights": {FILE: sha256}, "tokenizer": sha256, "chat_template": sha256},
     "recipe_files": {PATH: sha256},   the recipe and every file it includes
     "data_files": {PATH: sha256},     every prompt, text and probe-data file it reads
     "vector_files": {PATH: sha256},   every vector file (kind: file)
     "vectors": {NAME: sha256},        the values of each vector read from a file
     "versions": {"recipe-engine", "torch", "transformers", "nnsight"}}

Paths are relative to the recipe's folder. What it promises: the inputs are the same, bit for
bit (model weights, tokenizer, chat template, data, vectors, library versions); then results
agree within floating-point noise, not bit for bit: CPUs and BLAS builds order sums
differently, so extracted vectors and metrics move at the 1e-6 level (a shipped vector rebuilt
on another CPU differed by 1.9e-6), and expectations keep margins far above that. A hub model
is pinned by model.revision, not hashed (its files are not read to check the lock).

Torch-free: hashes are read from files (cached by path, size and mtime: lock/hashes.py).
"""

from __future__ import annotations

import functools
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from recipe_engine.atomic import write_text_atomic
from recipe_engine.builtin_models import BUILTINS, builtin_name
from recipe_engine.format.file_fields import file_fields
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import FileVector, ProbeVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.lock.hashes import HashCache, default_hash_cache, tensor_hashes
from recipe_engine.model_config import ModelUnavailable
from recipe_engine.model_store import local_model

__all__ = ["LOCK_VERSION", "build_lock", "check_lock", "lock_path", "write_lock"]

LOCK_VERSION = 1
LIBRARIES = ("recipe-engine", "torch", "transformers", "nnsight")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt")


def lock_path(recipe_path: str | Path) -> Path:
    path = Path(recipe_path)
    return path.with_name(path.name + ".lock")


def _version(name: str) -> str | None:
    return _installed_version(name)


@functools.cache  # reading a distribution's metadata costs ~25 ms; it cannot change mid-process
def _installed_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _folder_model(folder: Path, hashes: HashCache) -> dict[str, Any]:
    weights = {p.name: hashes.sha256(p) for p in sorted(folder.glob("*.safetensors"))}
    tokenizer = [folder / n for n in _TOKENIZER_FILES if (folder / n).is_file()]
    template: str | None = None
    jinja = folder / "chat_template.jinja"
    config = folder / "tokenizer_config.json"
    if jinja.is_file():
        template = hashes.sha256(jinja)
    elif config.is_file():
        text = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if text is not None:
            import hashlib

            template = hashlib.sha256(json.dumps(text).encode()).hexdigest()
    return {
        "weights": weights,
        "tokenizer": {p.name: hashes.sha256(p) for p in tokenizer},
        "chat_template": template,
    }


def _model(recipe: Recipe, doc: LoadedDocument, hashes: HashCache) -> dict[str, Any]:
    spec = recipe.model
    out: dict[str, Any] = {"id": spec.id}
    if spec.revision:
        out["revision"] = spec.revision
    name = builtin_name(spec.id)
    if name is not None:
        folder = BUILTINS[name].weights_dir if name in BUILTINS else None
        if folder is None:  # built from a seed at load time: its code is pinned by the version
            return out
        shipped = {p.name: hashes.sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
        return {**out, **_folder_model(folder, hashes), "shipped_files": shipped}
    try:
        local = local_model(spec.id, spec.gguf_file, doc.base_dir("/model/id"))
    except ModelUnavailable:
        return {**out, "weights": "not installed"}
    if local is None:
        return out  # a hub id: pinned by model.revision
    if local.gguf:
        # one file: weights, tokenizer and chat template are all in it
        return {**out, "weights": {local.path.name: hashes.sha256(local.path)}}
    return {**out, **_folder_model(local.path, hashes)}


def build_lock(
    recipe: Recipe, doc: LoadedDocument, hashes: HashCache | None = None
) -> dict[str, Any]:
    """The lock of a validated recipe, as a JSON object."""
    hashes = hashes or default_hash_cache()
    base = doc.path.parent
    recipe_files = {_rel(p, base): hashes.sha256(p) for p in doc.file_paths.values()}
    data: dict[str, str] = {}
    vector_files: dict[str, str] = {}
    vectors: dict[str, str] = {}
    for field in file_fields(recipe):
        owner = field.owner
        if isinstance(owner, FileVector):
            path = doc.base_dir(field.pointer + "/path") / owner.path
            vector_files[_rel(path, base)] = hashes.sha256(path)
            name = field.pointer.rsplit("/", 1)[1]
            values = tensor_hashes(path)
            key = owner.key if owner.key is not None else next(iter(values), None)
            if key in values:
                vectors[name] = values[key]
        elif isinstance(owner, ProbeVector):
            path = doc.base_dir(field.pointer) / owner.data
            data[_rel(path, base)] = hashes.sha256(path)
        elif isinstance(owner, PromptFile):
            path = doc.base_dir(field.pointer + "/file") / owner.file
            data[_rel(path, base)] = hashes.sha256(path)
    lock = {
        "lock_version": LOCK_VERSION,
        "recipe": recipe.name,
        "model": _model(recipe, doc, hashes),
        "recipe_files": recipe_files,
        "data_files": data,
        "vector_files": vector_files,
        "vectors": vectors,
        "versions": {name: _version(name) for name in LIBRARIES},
    }
    hashes.save()
    return lock


def write_lock(recipe: Recipe, doc: LoadedDocument) -> Path:
    """Write RECIPE.lock (sorted keys, newline-terminated, atomically); returns its path."""
    target = lock_path(doc.path)
    text = json.dumps(build_lock(recipe, doc), indent=2, sort_keys=True) + "\n"
    write_text_atomic(target, text)
    return target


_WHAT = {
    "recipe_files": "a recipe file changed",
    "data_files": "a data file changed",
    "vector_files": "a vector file changed",
    "vectors": "a vector's values changed",
}


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return json.dumps(value) if not isinstance(value, str) else value


def _differences(section: str, locked: Any, now: Any, path: str = "") -> list[str]:
    if isinstance(locked, dict) and isinstance(now, dict):
        lines = []
        for key in sorted(set(locked) | set(now)):
            where = f"{path}/{key}" if path else str(key)
            if key not in now:
                lines.append(f"{_label(section, where)}: {where} is gone (in the lock)")
            elif key not in locked:
                lines.append(f"{_label(section, where)}: {where} is new (not in the lock)")
            else:
                lines.extend(_differences(section, locked[key], now[key], where))
        return lines
    if locked == now:
        return []
    if section == "versions":
        return [f"{path} {now} vs {locked} in the lock"]
    return [f"{_label(section, path)}: {path} is {_short(now)}, the lock has {_short(locked)}"]


def _label(section: str, path: str) -> str:
    if section == "model":
        part = path.split("/")[0]
        return {"tokenizer": "tokenizer changed", "chat_template": "chat template changed"}.get(
            part, "model changed"
        )
    return _WHAT.get(section, f"{section} changed")


def check_lock(recipe: Recipe, doc: LoadedDocument) -> list[str] | None:
    """What differs from the recipe's lock, one line each ([] when nothing does); None when the
    recipe has no lock next to it."""
    path = lock_path(doc.path)
    if not path.is_file():
        return None
    try:
        locked = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path.name} is not a lock file ({exc}): rewrite it with --update-lock"]
    now = build_lock(recipe, doc)
    lines: list[str] = []
    for section in sorted(set(locked) | set(now)):
        lines.extend(_differences(section, locked.get(section), now.get(section)))
    return lines
