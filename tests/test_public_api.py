"""The public API is what __all__ says, no more, and importing it stays torch-free."""

from __future__ import annotations

import subprocess
import sys

import recipe_engine

PUBLIC = {
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
}


def test_all_is_pinned() -> None:
    assert set(recipe_engine.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(recipe_engine, name), name


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, recipe_engine; print('torch' in sys.modules, 'nnsight' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False"
