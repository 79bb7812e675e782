"""The public API is what __all__ says, no more, and importing it stays torch-free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_the_readme_run_rows_snippet_is_written_from_the_api() -> None:
    """Issue 24 item 16: the README's `run_rows(model, [Row(p, plan), Row(q, Plan())],
    generation=GenerationSpec(...))` needed `Plan` and `GenerationSpec`, which the API lacked."""
    code = (
        "from recipe_engine.api import GenerationSpec, Plan, Row, compile_recipe, load_recipe,"
        " run_rows\n"
        "c = compile_recipe(load_recipe('recipes/activation-addition.yaml',"
        " overrides=['run.prompts=[x]']))\n"
        "rows = [Row('The weather today is', c.plan), Row('The weather today is', Plan())]\n"
        "out = run_rows(c.model, rows, mode='generate',"
        " generation=GenerationSpec(max_new_tokens=3))\n"
        "print(len(out), all(len(r.tokens) == 3 for r in out),"
        " bool((out[0].next_logits != out[1].next_logits).any()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(recipe_engine.__file__).parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "STEER_NO_CACHE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True", "True"]
    import recipe_engine.api as api

    assert {"Plan", "GenerationSpec", "Row", "RowResult", "run_rows"} <= set(api.__all__)
