"""recipe_engine: declarative steering recipes for language models.

Load and validate (torch-free):

    >>> import recipe_engine
    >>> result = recipe_engine.validate_file("recipes/activation-addition.yaml")
    >>> result.ok
    True

The data flow is one module (or folder) per stage: load -> validate -> check against the model
config -> resolve the model -> build vectors -> compile -> execute -> report; recipe_engine.api
is the typed public API over all of it (README, Architecture).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recipe_engine.api import (
        CompiledRecipe,
        LoadedRecipe,
        RunReport,
        SweepResult,
        build_vectors_file,
        compile_recipe,
        explain_recipe,
        inspect_vectors,
        load_recipe,
        run_recipe,
        run_sweep,
    )
    from recipe_engine.diagnostics import Diagnostic, Location
    from recipe_engine.errors import (
        EnvironmentFailure,
        NumericalFailure,
        RecipeEngineError,
        RecipeError,
        RecipeLoadError,
        UsageError,
    )
    from recipe_engine.format.recipe import FORMAT_VERSION, Recipe
    from recipe_engine.validate import ValidationResult, validate_file
    from recipe_engine.version import __version__

# Imported on first use (PEP 562): `steer` starts with only what its command needs, so a Ctrl-C
# during start-up already reaches the CLI's handler (exit 130, one line), and `import
# recipe_engine` stays cheap.
_WHERE = {
    "CompiledRecipe": "recipe_engine.api",
    "LoadedRecipe": "recipe_engine.api",
    "RunReport": "recipe_engine.api",
    "SweepResult": "recipe_engine.api",
    "build_vectors_file": "recipe_engine.api",
    "compile_recipe": "recipe_engine.api",
    "explain_recipe": "recipe_engine.api",
    "inspect_vectors": "recipe_engine.api",
    "load_recipe": "recipe_engine.api",
    "run_recipe": "recipe_engine.api",
    "run_sweep": "recipe_engine.api",
    "Diagnostic": "recipe_engine.diagnostics",
    "Location": "recipe_engine.diagnostics",
    "EnvironmentFailure": "recipe_engine.errors",
    "NumericalFailure": "recipe_engine.errors",
    "RecipeEngineError": "recipe_engine.errors",
    "RecipeError": "recipe_engine.errors",
    "RecipeLoadError": "recipe_engine.errors",
    "UsageError": "recipe_engine.errors",
    "FORMAT_VERSION": "recipe_engine.format.recipe",
    "Recipe": "recipe_engine.format.recipe",
    "ValidationResult": "recipe_engine.validate",
    "validate_file": "recipe_engine.validate",
    "__version__": "recipe_engine.version",  # one constant, stdlib only: cheap at start-up
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'recipe_engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "FORMAT_VERSION",
    "CompiledRecipe",
    "Diagnostic",
    "EnvironmentFailure",
    "LoadedRecipe",
    "Location",
    "NumericalFailure",
    "Recipe",
    "RecipeEngineError",
    "RecipeError",
    "RecipeLoadError",
    "RunReport",
    "SweepResult",
    "UsageError",
    "ValidationResult",
    "__version__",
    "build_vectors_file",
    "compile_recipe",
    "explain_recipe",
    "inspect_vectors",
    "load_recipe",
    "run_recipe",
    "run_sweep",
    "validate_file",
]
