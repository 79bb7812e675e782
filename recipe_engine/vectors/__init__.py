"""Stage 5: build every named vector of a recipe into a tensor, with its provenance.

The names below load on first use (PEP 562): `recipe_engine.vectors.sources`, which reads the
prompts a recipe names, stays importable without torch (`steer explain --no-model`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recipe_engine.vectors.build import BuiltVector, build_vectors

__all__ = ["BuiltVector", "build_vectors"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("recipe_engine.vectors.build"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'recipe_engine.vectors' has no attribute {name!r}")
