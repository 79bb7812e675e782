"""What the vector stage hands a trainer of `kind: trained` vectors.

Training runs the model through a compiled plan (compiler.py, execute/), stages that come after
this one: the trainer (recipe_engine/learned/) is passed into build_vectors by the pipeline,
and this stage keeps what every vector gets: the cache key, the cache, provenance, the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recipe_engine.errors import RecipeError
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.trained import TrainedVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.sources import PromptSourceRef

__all__ = ["TrainRequest", "Trainer"]


@dataclass
class TrainRequest:
    name: str
    spec: TrainedVector
    recipe: Recipe
    model: LoadedModel
    doc: LoadedDocument | None
    pointer: str  # /vectors/NAME
    targets_path: Path | None  # targets: {file: ...}, resolved
    prompts: PromptSourceRef | None  # targets: {prompted: ...}: the prompts answered
    progress: Callable[[str, int, int | None], None] | None
    error: Callable[[str, str, str], RecipeError]  # (code, message, pointer) at the recipe line


# -> (the vector: [D] shared / one layer, or [L, D] one row per layer; its training record)
Trainer = Callable[[TrainRequest], tuple[torch.Tensor, dict[str, Any]]]
