"""Which optional dependencies a command needs, and the one line that says how to get them.

The base install (`pip install recipe-engine`) is torch-free: validate, schema, explain
--no-model, ls and cp. Everything that loads a model needs the `run` extra. A command that
needs it, run without it, must end in one line naming the exact `pip install`, never in an
ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from recipe_engine.errors import EnvironmentFailure

__all__ = [
    "RUN_EXTRA_INSTALL",
    "RUN_EXTRA_MODULES",
    "MissingExtra",
    "missing_extra_for",
    "require_run_extra",
    "require_serve_extra",
]

RUN_EXTRA_INSTALL = "pip install 'recipe-engine[run]'"

# The top-level modules the `run` extra provides (pyproject.toml), and the packages they pull in
# that the engine imports itself.
RUN_EXTRA_MODULES = frozenset(
    {
        "torch",
        "nnsight",
        "transformers",
        "tokenizers",
        "safetensors",
        "tqdm",
        "matplotlib",
        "numpy",
        "huggingface_hub",
    }
)

# Checked before a model command starts: without these nothing it does can work.
_CORE = ("torch", "nnsight", "transformers")


class MissingExtra(EnvironmentFailure):
    """A command needs an optional dependency that is not installed (exit 3)."""


def _message(what: str, modules: list[str]) -> str:
    verb = "is" if len(modules) == 1 else "are"
    # explain has a torch-free mode: say so on the same line
    alternative = " (or add --no-model)" if what == "steer explain" else ""
    return (
        f"{what} needs the run extra ({', '.join(modules)} {verb} not installed): "
        f"{RUN_EXTRA_INSTALL}{alternative}"
    )


def require_run_extra(what: str) -> None:
    """Raise MissingExtra naming the install command when torch, nnsight or transformers is
    absent. Looks the modules up without importing them."""
    missing = [name for name in _CORE if not _installed(name)]
    if missing:
        raise MissingExtra(_message(what, missing))


SERVE_EXTRA_INSTALL = "pip install 'recipe-engine[serve]'"


def require_serve_extra(what: str) -> None:
    """Raise MissingExtra naming the install command when the HTTP server's packages (the
    `serve` extra: FastAPI, uvicorn) are absent."""
    missing = [name for name in ("fastapi", "uvicorn") if not _installed(name)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtra(
            f"{what} needs the serve extra ({', '.join(missing)} {verb} not installed): "
            f"{SERVE_EXTRA_INSTALL}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a broken half-install
        return False


def missing_extra_for(exc: BaseException, what: str) -> MissingExtra | None:
    """The MissingExtra behind an ImportError raised deep inside a command (a module of the
    run extra imported lazily), or None when the missing module is not one of the extra's."""
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if name is None:
        return None
    top = name.partition(".")[0]
    return MissingExtra(_message(what, [top])) if top in RUN_EXTRA_MODULES else None
