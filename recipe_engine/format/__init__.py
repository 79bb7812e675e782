"""Recipe format v1 as pydantic models: the one source of truth for the JSON Schema.

Torch-free. Every field carries a description, which flows into `schemas/recipe.schema.json`
so editors show it on hover.
"""

from recipe_engine.format.interventions import Intervention, Op, Site
from recipe_engine.format.layers import LayerSpec, resolve_layers
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.positions import PositionSpec
from recipe_engine.format.prompts import PromptFile, PromptSource
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import ReportSpec
from recipe_engine.format.run_spec import GenerationSpec, RunSpec
from recipe_engine.format.vectors import VectorSpec

__all__ = [
    "GenerationSpec",
    "Intervention",
    "LayerSpec",
    "ModelSpec",
    "Op",
    "PositionSpec",
    "PromptFile",
    "PromptSource",
    "Recipe",
    "ReportSpec",
    "RunSpec",
    "Site",
    "VectorSpec",
    "resolve_layers",
]
