"""Checks of the evaluation fields: metrics read on generated text, random controls, prompting
as a baseline and sampled continuations (format/report_spec.py, format/run_spec.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from recipe_engine.builtin_models import BUILTINS, builtin_name
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import TEXT_METRICS, ConceptMetric, PromptBaseline
from recipe_engine.load.prompt_files import file_format
from recipe_engine.validate.schema_errors import did_you_mean

__all__ = ["check_evaluation", "plain_prompt"]

Report = Callable[[str, str, str], Diagnostic]  # (code, message, pointer)


def check_evaluation(recipe: Recipe, error: Report) -> Iterator[Diagnostic]:
    run = recipe.run
    for index, metric in enumerate(recipe.report.metrics):
        at = f"/report/metrics/{index}"
        if isinstance(metric, TEXT_METRICS) and run.mode == "trace":
            yield error(
                "metric-mode",
                f"{metric.kind} is read on generated continuations; trace mode generates none: "
                "set run.mode: generate (or edit)",
                at + "/kind",
            )
        if isinstance(metric, TEXT_METRICS) and run.backend in ("remote", "vllm"):
            yield error(
                "metric-backend",
                f"{metric.kind} judges the continuations with the unsteered model on this "
                f"machine, which backend {run.backend!r} does not load: use backend local (or "
                "remote-local), or drop the metric",
                at + "/kind",
            )
        if isinstance(metric, ConceptMetric):
            yield from _concept(recipe, metric, at, error)
        judge = getattr(metric, "judge", None)
        name = builtin_name(judge) if judge is not None else None
        if name is not None and name not in BUILTINS:  # as model.id (semantic.py); the rest of
            # a judge reference (folders, packages) is checked with the files (references.py)
            yield error(
                "unknown-builtin",
                f"no builtin model {name!r} (available: {', '.join(sorted(BUILTINS))})"
                f"{did_you_mean(name, BUILTINS)}",
                at + "/judge",
            )
    yield from _prompt_baseline(recipe, error)
    if run.samples > 1 and not run.generation.do_sample:
        yield error(
            "samples-need-sampling",
            f"run.samples: {run.samples} draws several continuations per prompt, but greedy "
            "decoding gives the same one each time: set run.generation.do_sample: true",
            "/run/samples",
        )
    if recipe.report.controls is not None and not any(i.vector for i in recipe.interventions):
        yield error(
            "controls-need-vector",
            "report.controls replaces each steering vector with random ones, but no "
            "intervention uses a vector",
            "/report/controls",
        )


def _concept(recipe: Recipe, metric: ConceptMetric, at: str, error: Report) -> Iterator[Diagnostic]:
    sources = [metric.probe, metric.words, metric.classifier]
    if sum(source is not None for source in sources) != 1:
        yield error(
            "concept-source",
            "a concept metric needs exactly one of `probe: VECTOR`, `words: [...]` or "
            "`classifier: FOLDER`",
            at,
        )
        return
    if (metric.classifier is None) != (metric.label is None):
        yield error(
            "concept-label",
            "`classifier:` and `label:` go together: name the label whose probability scores "
            "the concept (one of the classifier's config.json id2label names)",
            at,
        )
    if metric.probe is None:
        return
    spec = recipe.vectors.get(metric.probe)
    if spec is None:
        yield error(
            "unknown-vector",
            f"concept probe {metric.probe!r} is not a vector of this recipe (have: "
            f"{', '.join(recipe.vectors) or 'none'}){did_you_mean(metric.probe, recipe.vectors)}",
            at + "/probe",
        )
    elif not hasattr(spec, "layer"):
        yield error(
            "concept-probe-layer",
            f"vector {metric.probe!r} ({spec.kind}) says no layer to read: a concept probe "
            "needs a vector read from activations (contrastive, probe, activation, "
            "mean_activation)",
            at + "/probe",
        )


def plain_prompt(recipe: Recipe) -> str | None:
    """Where run.prompts has a plain-text prompt, as far as validation can see without reading
    JSONL files (which may hold either; the run checks those): its pointer, or None."""
    for part in prompt_parts(recipe.run.prompts):
        source = part.source
        if isinstance(source, str):
            return part.pointer
        if isinstance(source, list):
            for index, item in enumerate(source):
                if isinstance(item, str):
                    return part.pointer if len(source) == 1 else f"{part.pointer}/{index}"
        lines = isinstance(source, PromptFile) and file_format(Path(source.file), source.format)
        if lines == "lines":
            return part.pointer + "/file"
    return None


def _prompt_baseline(recipe: Recipe, error: Report) -> Iterator[Diagnostic]:
    spec = recipe.report.prompt_baseline
    if not isinstance(spec, PromptBaseline) or spec.as_ != "system":
        return
    plain = plain_prompt(recipe)
    if plain is not None:
        yield error(
            "prompt-baseline-system",
            f"prompt_baseline as: system makes the instruction a chat system message, but the "
            f"prompt at {plain} is plain text (no messages: to add it to): write that prompt "
            "as {messages: [...]}, or use as: prefix",
            "/report/prompt_baseline/as",
        )
