"""recipe_engine: declarative steering recipes for language models.

Load and validate (torch-free):

    >>> import recipe_engine
    >>> result = recipe_engine.validate_file("recipes/activation-addition.yaml")
    >>> result.ok
    True

The data flow is one module (or folder) per stage: load -> validate -> check against the model
config -> resolve the model -> build vectors -> compile -> execute -> report.
"""

from recipe_engine.api import (
    CompiledRecipe,
    LoadedRecipe,
    compile_recipe,
    load_recipe,
    run_recipe,
)
from recipe_engine.diagnostics import Diagnostic, Location
from recipe_engine.errors import (
    EnvironmentFailure,
    RecipeEngineError,
    RecipeError,
    RecipeLoadError,
    UsageError,
)
from recipe_engine.format.recipe import FORMAT_VERSION, Recipe
from recipe_engine.validate import ValidationResult, validate_file

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "CompiledRecipe",
    "Diagnostic",
    "EnvironmentFailure",
    "LoadedRecipe",
    "Location",
    "Recipe",
    "RecipeEngineError",
    "RecipeError",
    "RecipeLoadError",
    "UsageError",
    "ValidationResult",
    "__version__",
    "compile_recipe",
    "load_recipe",
    "run_recipe",
    "validate_file",
]
