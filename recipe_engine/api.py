"""The Python API, which the CLI itself uses: load -> compile -> run (or explain).

    >>> from recipe_engine import load_recipe, compile_recipe, run_recipe
    >>> loaded = load_recipe("recipes/activation-addition.yaml", overrides=["run.mode=trace"])
    >>> report = run_recipe(compile_recipe(loaded))
    >>> report.metric("token_prob:positive").delta

Thread safety: nnsight is not thread-safe, so every pass through a model holds that model's
lock; models are cached per process and shared, so concurrent calls serialize on the model
they use and never corrupt each other's traces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_engine.errors import EnvironmentFailure, RecipeError
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.validate import validate_file

__all__ = ["CompiledRecipe", "LoadedRecipe", "compile_recipe", "load_recipe", "run_recipe"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class LoadedRecipe:
    recipe: Recipe
    document: LoadedDocument

    @property
    def model_dir(self) -> Path:
        return self.document.base_dir("/model/id")


@dataclass
class CompiledRecipe:
    loaded: LoadedRecipe
    model: Any  # LoadedModel
    vectors: dict[str, Any]  # name -> BuiltVector
    plan: Any  # Plan
    timing: dict[str, float]

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    def explain(self) -> dict[str, Any]:
        shape = self.model.shape
        return {
            "version": 1,
            "recipe": self.recipe.name,
            "model": {
                "id": self.recipe.model.id,
                "family": self.model.adapter.family,
                "layers": shape.n_layers,
                "hidden_size": shape.hidden_size,
                "heads": shape.n_heads,
            },
            "mode": self.recipe.run.mode,
            "backend": "local",
            "leaves_the_machine": [],
            "order": "model execution order; same module and port: recipe order",
            "plan": self.plan.describe(),
            "vectors": {name: _vector_json(v) for name, v in self.vectors.items()},
        }


def _vector_json(built: Any) -> dict[str, Any]:
    info = {k: v for k, v in built.provenance.items()}
    info["norm"] = round(float(built.tensor.norm()), 6)
    info["shape"] = list(built.tensor.shape)
    return info


def load_recipe(
    path: str | Path,
    *,
    overrides: list[str] | None = None,
    check_model: bool = True,
    allow_outside_root: bool = False,
) -> LoadedRecipe:
    """Load and validate a recipe (torch-free). Raises RecipeError with every diagnostic."""
    result = validate_file(
        path, check_model=check_model, allow_outside_root=allow_outside_root, overrides=overrides
    )
    if result.environment_failure:
        raise EnvironmentFailure(result.errors[0].format())
    if result.recipe is None or result.document is None:
        raise RecipeError(result.errors or result.diagnostics)
    return LoadedRecipe(result.recipe, result.document)


def _as_loaded(source: LoadedRecipe | str | Path) -> LoadedRecipe:
    return source if isinstance(source, LoadedRecipe) else load_recipe(source)


def compile_recipe(source: LoadedRecipe | str | Path) -> CompiledRecipe:
    """Load the model, build the vectors the interventions use, and compile the plan."""
    from recipe_engine.compiler import compile_plan
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.vectors import build_vectors

    loaded = _as_loaded(source)
    recipe, doc = loaded.recipe, loaded.document
    start = time.perf_counter()
    model = load_model(recipe.model, loaded.model_dir)
    loaded_at = time.perf_counter()
    vectors = build_vectors(recipe, model, doc)
    built_at = time.perf_counter()
    plan = compile_plan(recipe, model, {n: v.tensor for n, v in vectors.items()}, doc)
    timing = {"load_s": loaded_at - start, "vectors_s": built_at - loaded_at}
    return CompiledRecipe(loaded, model, vectors, plan, timing)


def run_recipe(
    source: CompiledRecipe | LoadedRecipe | str | Path,
    *,
    progress: Progress | None = None,
    baseline: Any = None,
) -> Any:
    """Run a recipe: baseline and steered passes, metrics. Returns a RunReport.

    `baseline` (a PassResult from an earlier report's `passes["baseline"]`) skips recomputing
    the unsteered pass when only the interventions changed."""
    from recipe_engine.report.build import build_report

    compiled = source if isinstance(source, CompiledRecipe) else compile_recipe(source)
    return build_report(compiled, progress, baseline)
