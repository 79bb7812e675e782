"""Checks of the evaluation fields: metrics read on generated text, random controls, prompting
as a baseline and sampled continuations (format/report_spec.py, format/run_spec.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import TEXT_METRICS, ConceptMetric
from recipe_engine.validate.schema_errors import did_you_mean

__all__ = ["check_evaluation"]

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
