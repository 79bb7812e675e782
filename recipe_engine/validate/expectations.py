"""Checks of `expect:` (format/expectations.py): each claim names a number this recipe's report
will hold, so a claim that could never be measured is an error at its line, not a FAIL later."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.expectations import (
    ConditionsExpectation,
    MetricExpectation,
    UntouchedExpectation,
)
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import (
    ConceptMetric,
    FluencyMetric,
    InstructionMetric,
    KLBaselineMetric,
    LogitDiffMetric,
    PerplexityMetric,
    RepetitionMetric,
    TokenProbMetric,
)
from recipe_engine.validate.schema_errors import did_you_mean

__all__ = ["check_expectations", "computed_metrics"]

Report = Callable[[str, str, str], Diagnostic]  # (code, message, pointer)

# The metric names the report can hold, as patterns: a name that fits one is a known metric
# (then "this recipe does not compute it"), one that fits none is a typo.
_KNOWN = re.compile(
    r"token_prob:.+|logit_diff|kl_baseline(:text)?|perplexity|concept:.+|fluency"
    r"|repetition:(distinct-\d+|longest)|instruction(:judge)?"
)
_FIXED_NAMES = (
    "logit_diff",
    "kl_baseline",
    "kl_baseline:text",
    "perplexity",
    "fluency",
    "repetition:longest",
    "instruction",
    "instruction:judge",
)
_ADD = {
    "token_prob": "{kind: token_prob, tokens: {SET: [...]}}",
    "logit_diff": "{kind: logit_diff, positive: [...], negative: [...]}",
    "kl_baseline": "{kind: kl_baseline}",
    "perplexity": "{kind: perplexity, text: ...}",
    "concept": "{kind: concept, name: NAME, ...}",
    "fluency": "{kind: fluency}",
    "repetition": "{kind: repetition, n: N}",
    "instruction": "{kind: instruction}",
}


def computed_metrics(recipe: Recipe) -> dict[str, bool]:
    """Every metric name this recipe's report holds -> whether it has per-prompt values."""
    names: dict[str, bool] = {}
    for metric in recipe.report.metrics:
        if isinstance(metric, TokenProbMetric):
            names.update({f"token_prob:{s}": True for s in metric.tokens})
        elif isinstance(metric, LogitDiffMetric):
            names["logit_diff"] = True
        elif isinstance(metric, KLBaselineMetric):
            names["kl_baseline" if metric.text is None else "kl_baseline:text"] = (
                metric.text is None
            )
        elif isinstance(metric, PerplexityMetric):
            names["perplexity"] = False
        elif isinstance(metric, ConceptMetric):
            names[f"concept:{metric.name}"] = True
            names[f"concept:{metric.name}:above"] = True
        elif isinstance(metric, FluencyMetric):
            names["fluency"] = True
        elif isinstance(metric, RepetitionMetric):
            names[f"repetition:distinct-{metric.n}"] = True
            names["repetition:longest"] = True
        elif isinstance(metric, InstructionMetric):
            names["instruction" if metric.judge is None else "instruction:judge"] = True
    return names


def check_expectations(recipe: Recipe, error: Report) -> Iterator[Diagnostic]:
    for index, claim in enumerate(recipe.expect):
        at = f"/expect/{index}"
        if isinstance(claim, MetricExpectation):
            yield from _metric(recipe, claim, at, error)
        elif isinstance(claim, ConditionsExpectation):
            yield from _conditions(recipe, claim, at, error)
        elif isinstance(claim, UntouchedExpectation):
            unconditional = [k for k, i in enumerate(recipe.interventions) if i.when is None]
            if unconditional or not recipe.interventions:
                yield error(
                    "expect-untouched-unconditional",
                    "untouched: every row is acted on by an intervention without `when:` "
                    f"({', '.join(f'interventions.{k}' for k in unconditional) or 'none'}), so "
                    "no row is left untouched: give each intervention a condition, or drop "
                    "the claim",
                    at + "/untouched",
                )


def _metric(
    recipe: Recipe, claim: MetricExpectation, at: str, error: Report
) -> Iterator[Diagnostic]:
    computed = computed_metrics(recipe)
    yield from _metric_name(claim.metric, computed, at, error)
    yield from _sides(recipe, claim, at, error)
    yield from _bounds(claim, computed, at, error)


def _metric_name(
    name: str, computed: dict[str, bool], at: str, error: Report
) -> Iterator[Diagnostic]:
    if name not in computed:
        if _KNOWN.fullmatch(name):
            kind = name.split(":")[0]
            yield error(
                "expect-metric-not-computed",
                f"{name} is not computed by this recipe (it computes "
                f"{', '.join(computed) or 'no metric'}{did_you_mean(name, computed)}): add "
                f"{_ADD[kind]} to report.metrics, or bound a metric it computes",
                at + "/metric",
            )
        else:
            candidates = [*computed, *(n for n in _FIXED_NAMES if n not in computed)]
            yield error(
                "expect-unknown-metric",
                f"unknown metric {name!r}{did_you_mean(name, candidates)} (this recipe computes "
                f"{', '.join(computed) or 'no metric'})",
                at + "/metric",
            )


def _sides(
    recipe: Recipe, claim: MetricExpectation, at: str, error: Report
) -> Iterator[Diagnostic]:
    sides = [claim.of, claim.minus, claim.ratio_to]
    if claim.minus is not None and claim.ratio_to is not None:
        yield error(
            "expect-two-operations",
            "give minus or ratio_to, not both: one claim measures one quantity",
            at + "/ratio_to",
        )
    if claim.of == "control_z" and (claim.minus or claim.ratio_to):
        yield error(
            "expect-z-operation",
            "control_z is already relative to the controls: drop minus/ratio_to",
            at + "/of",
        )
    controls = recipe.report.controls
    if any(s in ("control_mean", "control_z") for s in sides) and not (
        controls and controls.random >= 2
    ):
        key = "of" if claim.of.startswith("control") else ("minus" if claim.minus else "ratio_to")
        yield error(
            "expect-needs-controls",
            "control_z and control_mean need random controls (an sd needs 2 or more): set "
            "report.controls: {random: 8}",
            f"{at}/{key}",
        )
    if "prompting" in sides and recipe.report.prompt_baseline is None:
        key = "of" if claim.of == "prompting" else ("minus" if claim.minus else "ratio_to")
        yield error(
            "expect-needs-prompting",
            "the prompting side needs report.prompt_baseline (the instruction it is run with)",
            f"{at}/{key}",
        )


def _bounds(
    claim: MetricExpectation, computed: dict[str, bool], at: str, error: Report
) -> Iterator[Diagnostic]:
    name = claim.metric
    bounds = claim.per_prompt if claim.per_prompt is not None else claim
    if claim.per_prompt is not None:
        if claim.at_least is not None or claim.at_most is not None:
            yield error(
                "expect-per-prompt-bounds",
                "with per_prompt the bounds go inside it: per_prompt: {at_least: X, fraction: F}",
                at + ("/at_least" if claim.at_least is not None else "/at_most"),
            )
        if claim.of.startswith("control") or claim.ratio_to or claim.minus == "control_mean":
            yield error(
                "expect-per-prompt-quantity",
                "per_prompt bounds a side (minus another) prompt by prompt; controls and ratios "
                "have no per-prompt values",
                at + "/per_prompt",
            )
        if name in computed and not computed[name]:
            yield error(
                "expect-per-prompt-metric",
                f"{name} is measured over its texts as a whole, not per prompt: bound its mean",
                at + "/per_prompt",
            )
    if bounds.at_least is None and bounds.at_most is None:
        where = at + ("/per_prompt" if claim.per_prompt is not None else "")
        yield error("expect-no-bound", "give at_least, at_most or both", where)
    elif (
        bounds.at_least is not None
        and bounds.at_most is not None
        and bounds.at_least > bounds.at_most
    ):
        yield error(
            "expect-empty-range",
            f"at_least {bounds.at_least} is above at_most {bounds.at_most}: nothing can pass",
            at + ("/per_prompt" if claim.per_prompt is not None else "") + "/at_least",
        )


def _conditions(
    recipe: Recipe, claim: ConditionsExpectation, at: str, error: Report
) -> Iterator[Diagnostic]:
    spec = claim.conditions
    count = len(recipe.interventions)
    if spec.intervention >= count:
        yield error(
            "expect-no-intervention",
            f"intervention {spec.intervention}: the recipe has {count} (0..{count - 1})",
            at + "/conditions/intervention",
        )
    elif recipe.interventions[spec.intervention].when is None:
        yield error(
            "expect-not-conditional",
            f"interventions.{spec.intervention} has no `when:`, so it acts on every prompt",
            at + "/conditions/intervention",
        )
    if spec.fires_on is None and spec.silent_on is None:
        yield error(
            "expect-no-bound",
            "give fires_on, silent_on or both (prompts of the run)",
            at + "/conditions",
        )
