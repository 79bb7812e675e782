"""The engine's version and the recipe format version it reads: each written once, here.

pyproject.toml reads `__version__` from this file (setuptools' dynamic version), so the wheel's
metadata, `recipe_engine.__version__` and `steer --version` cannot disagree. Stdlib only: `steer
--version` and the build read it without importing pydantic.
"""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "__version__"]

__version__ = "0.1.0"

# The `version:` a recipe declares; format/recipe.py accepts exactly this one.
FORMAT_VERSION = 1
