"""Every field of a recipe that names a file the engine reads, walked in one place.

Validation checks each of them (validate/references.py) and `steer cp` copies each of them
(examples.py): with one walk, a field that reads a file cannot be known to one and missed by
the other (a metric's `text:` once was).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from recipe_engine.format.expectations import ConditionsExpectation
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.prompts import PromptSource
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.trained import PromptedTargets, TrainedVector
from recipe_engine.format.vectors import (
    ContrastiveVector,
    FileVector,
    MeanActivationVector,
    ProbeVector,
)
from recipe_engine.load.source_map import join_pointer

__all__ = ["FileField", "file_fields"]


@dataclass(frozen=True)
class FileField:
    """One field that reads files: a prompt source (an inline list, or {file: PATH}) at
    `pointer`, a probe's labelled data (`pointer` is its `data`), a vector file (`pointer`
    is the vector's), or a trained vector's target file (`pointer` is its `targets`)."""

    owner: PromptSource | ProbeVector | FileVector | TrainedVector
    pointer: str


def file_fields(recipe: Recipe) -> Iterator[FileField]:
    for name, spec in recipe.vectors.items():
        at = join_pointer("/vectors", name)
        if isinstance(spec, ContrastiveVector):
            yield FileField(spec.positive, at + "/positive")
            yield FileField(spec.negative, at + "/negative")
        elif isinstance(spec, MeanActivationVector):
            yield FileField(spec.prompts, at + "/prompts")
        elif isinstance(spec, ProbeVector):
            yield FileField(spec, at + "/data")
        elif isinstance(spec, FileVector):
            yield FileField(spec, at)
        elif isinstance(spec, TrainedVector):
            if isinstance(spec.targets, PromptedTargets):
                yield FileField(spec.targets.prompts, at + "/targets/prompts")
            else:
                yield FileField(spec, at + "/targets")
    for part in prompt_parts(recipe.run.prompts):
        yield FileField(part.source, part.pointer)
    for index, metric in enumerate(recipe.report.metrics):
        # perplexity and kl_baseline read texts: any metric with a `text` source
        text = getattr(metric, "text", None)
        if text is not None:
            yield FileField(text, f"/report/metrics/{index}/text")
    for index, claim in enumerate(recipe.expect):
        if isinstance(claim, ConditionsExpectation):
            for key in ("fires_on", "silent_on"):
                source = getattr(claim.conditions, key)
                if source is not None:
                    yield FileField(source, f"/expect/{index}/conditions/{key}")
    if recipe.eval is not None and recipe.eval.tune is not None:
        yield FileField(recipe.eval.tune, "/eval/tune")
