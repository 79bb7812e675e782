"""Check a run's `expect:` claims (format/expectations.py) against its report: one result per
claim, PASS or FAIL with the measured value and the bound, at the claim's line.

Numbers are read from the report's JSON shape (report/results.py), the same document `steer run
--json` writes, so a claim checks exactly what a user can read; only `untouched` compares the
raw passes (bit-identity cannot be seen in 6-decimal JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recipe_engine.diagnostics import Location
from recipe_engine.format.expectations import (
    ConditionsExpectation,
    Expectation,
    MetricExpectation,
    UntouchedExpectation,
)
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.report.results import RunReport

__all__ = ["ExpectationResult", "check_expectations", "describe"]


@dataclass(frozen=True)
class ExpectationResult:
    """One claim's verdict. `measured` and `bound` are short texts ("0.5123", ">= 0.4")."""

    index: int
    claim: str  # the claim, one line: what the PASS/FAIL line and the JUnit test case name
    passed: bool
    measured: str
    bound: str
    location: Location | None

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.claim}: {self.measured} (want {self.bound})"


def describe(claim: Expectation) -> str:
    """A claim as one line, e.g. `token_prob:positive steered - baseline`."""
    if isinstance(claim, MetricExpectation):
        text = f"{claim.metric} {claim.of}"
        if claim.minus:
            text += f" - {claim.minus}"
        if claim.ratio_to:
            text += f" / {claim.ratio_to}"
        return text + (" per prompt" if claim.per_prompt else "")
    if isinstance(claim, ConditionsExpectation):
        return f"conditions of interventions.{claim.conditions.intervention}"
    return "untouched rows bit-identical to the baseline"


def _bound(at_least: float | None, at_most: float | None) -> str:
    parts = []
    if at_least is not None:
        parts.append(f">= {at_least:g}")
    if at_most is not None:
        parts.append(f"<= {at_most:g}")
    return " and ".join(parts)


def _within(value: float, at_least: float | None, at_most: float | None) -> bool:
    if math.isnan(value):
        return False
    return (at_least is None or value >= at_least) and (at_most is None or value <= at_most)


def _number(value: Any) -> float:
    """A report number: JSON writes NaN and Inf as strings; a missing side is NaN."""
    return math.nan if value is None else float(value)


def _side(metric: dict[str, Any], side: str) -> float:
    controls = metric.get("controls") or {}
    if side == "control_mean":
        return _number(controls.get("mean"))
    if side == "control_z":
        return _number(controls.get("z"))
    return _number(metric.get(side))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _metric(claim: MetricExpectation, metric: dict[str, Any]) -> tuple[bool, str, str]:
    if claim.per_prompt is not None:
        rows = metric.get("per_prompt") or {}
        own = [_number(v) for v in rows.get(claim.of, [])]
        if claim.minus:
            other = [_number(v) for v in rows.get(claim.minus, [])]
            own = [a - b for a, b in zip(own, other, strict=False)]
        spec = claim.per_prompt
        held = sum(_within(v, spec.at_least, spec.at_most) for v in own)
        share = held / len(own) if own else 0.0
        measured = f"{held}/{len(own)} prompts ({share:.3g})"
        bound = f"{_bound(spec.at_least, spec.at_most)} on >= {spec.fraction:g} of prompts"
        return bool(own) and share >= spec.fraction, measured, bound
    value = _side(metric, claim.of)
    if claim.minus:
        value -= _side(metric, claim.minus)
    elif claim.ratio_to:
        under = _side(metric, claim.ratio_to)
        value = value / under if under else math.copysign(math.inf, value) if value else math.nan
    bound = _bound(claim.at_least, claim.at_most)
    return _within(value, claim.at_least, claim.at_most), _fmt(value), bound


def _prompt_set(source: Any, doc: LoadedDocument, pointer: str) -> list[str]:
    from recipe_engine.vectors.sources import resolve_prompts

    return resolve_prompts(source, doc, pointer, doc.base_dir(pointer))


def _conditions(
    claim: ConditionsExpectation, report: dict[str, Any], doc: LoadedDocument, at: str
) -> tuple[bool, str, str]:
    spec = claim.conditions
    fired: dict[str, bool] = {}
    for prompt in report["prompts"]:
        for outcome in prompt["conditions"]:
            if outcome["intervention"] == spec.intervention:
                fired[prompt["prompt"]] = outcome["fired"]
    wrong: list[str] = []
    total = 0
    bounds = []
    for key, want in (("fires_on", True), ("silent_on", False)):
        source = getattr(spec, key)
        if source is None:
            continue
        bounds.append(f"{'fires' if want else 'silent'} on each {key} prompt")
        for text in _prompt_set(source, doc, f"{at}/conditions/{key}"):
            total += 1
            if text not in fired:
                wrong.append(f"{text!r} is not a prompt of the run")
            elif fired[text] != want:
                wrong.append(f"{'silent' if want else 'fired'} on {text!r}")
    measured = f"{total - len(wrong)}/{total} as claimed"
    if wrong:
        measured += (
            ": " + "; ".join(wrong[:3]) + (f" (+{len(wrong) - 3})" if len(wrong) > 3 else "")
        )
    return not wrong, measured, ", ".join(bounds)


def _untouched(report: RunReport) -> tuple[bool, str, str]:
    import torch

    steered, baseline = report.passes.get("steered"), report.passes.get("baseline")
    rows = [
        row
        for row, p in enumerate(report.prompts)
        if p.conditions and not any(c.fired for c in p.conditions)
    ]
    differ = []
    for row in rows:
        if steered is None or baseline is None:
            differ.append(row)
            continue
        same = torch.equal(steered.next_logits[row], baseline.next_logits[row])
        if steered.generated or baseline.generated:
            same = same and steered.generated[row] == baseline.generated[row]
        if not same:
            differ.append(row)
    measured = f"{len(rows) - len(differ)}/{len(rows)} untouched rows identical"
    if differ:
        measured += f" (rows {', '.join(map(str, differ[:5]))} differ)"
    return bool(rows) and not differ, measured, "every untouched row identical (and at least one)"


def check_expectations(
    report: RunReport, recipe: Recipe, doc: LoadedDocument
) -> list[ExpectationResult]:
    """Every `expect:` claim of `recipe`, checked against its run's `report`."""
    document = report.to_json()
    metrics = {m["name"]: m for m in document["metrics"]}
    results = []
    for index, claim in enumerate(recipe.expect):
        at = f"/expect/{index}"
        if isinstance(claim, MetricExpectation):
            if claim.metric in metrics:
                passed, measured, bound = _metric(claim, metrics[claim.metric])
            else:  # validation rules this out; a report from another recipe could still miss it
                passed, measured, bound = False, "not in the report", "a value"
        elif isinstance(claim, ConditionsExpectation):
            passed, measured, bound = _conditions(claim, document, doc, at)
        else:
            assert isinstance(claim, UntouchedExpectation)
            passed, measured, bound = _untouched(report)
        results.append(
            ExpectationResult(index, describe(claim), passed, measured, bound, doc.locate(at))
        )
    return results
