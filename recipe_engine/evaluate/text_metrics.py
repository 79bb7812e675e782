"""Metrics read on generated continuations (generate and edit modes). Each side (baseline,
steered, prompting) is scored the same way; evaluate/judge.py ran the unsteered model over the
continuations, and the numbers are computed here:

    concept:NAME        mean score per continuation. words: (phrase occurrences) / (words);
                        probe: mean over the continuation's tokens of h . v/|v|, h the unsteered
                        model's activation at the vector's layer and site
                        classifier: the folder's probability of `label`
    concept:NAME:above  fraction of continuations whose score is above the threshold
    fluency             exp(mean over continuations of mean token NLL given the prompt), under
                        the unsteered model: a perplexity (lower is more fluent)
    repetition:distinct-N   unique word N-grams / word N-grams, per continuation, averaged
    repetition:longest      longest word n-gram that occurs twice in a continuation, averaged
    instruction         cosine of each answer's mean activation with the unsteered answer's to
                        the same prompt, averaged (baseline: 1 by definition)
    instruction:judge   with `judge: MODEL`: that model's P(Yes) / (P(Yes) + P(No)) that each
                        answer addresses its question, averaged (evaluate/instruction_judge.py)

Words are lowercase runs of letters, digits and apostrophes. With run.samples > 1, each metric
of the steered side carries a 95% confidence interval of its mean (normal approximation,
1.96 standard errors; fluency's is taken on the NLL, then exponentiated).
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

import torch

from recipe_engine.evaluate.judge import Judged
from recipe_engine.execute.passes import RunPasses
from recipe_engine.format.report_spec import (
    ConceptMetric,
    FluencyMetric,
    InstructionMetric,
    RepetitionMetric,
)
from recipe_engine.report.metrics import MetricValue

__all__ = ["TEXT_MEASURES", "distinct_n", "longest_repeat", "phrase_rate", "words"]

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(tokens: list[str], n: int) -> float:
    """Unique n-grams / n-grams; NaN when the text has fewer than n words."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


def longest_repeat(tokens: list[str]) -> int:
    """The longest n such that some n-gram occurs at least twice (overlaps allowed); 0 if no
    word repeats."""
    best = 0
    for n in range(1, len(tokens)):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if len(set(grams)) == len(grams):
            break  # no n-gram repeats, so no longer one can
        best = n
    return best


def phrase_rate(tokens: list[str], phrases: list[str]) -> float:
    """Occurrences of the phrases (whole words, case-insensitive) per word; NaN if no words."""
    if not tokens:
        return math.nan
    hits = 0
    for phrase in phrases:
        target = words(phrase)
        n = len(target)
        hits += sum(tokens[i : i + n] == target for i in range(len(tokens) - n + 1))
    return hits / len(tokens)


def _mean(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return statistics.fmean(real) if real else math.nan


def _ci(values: list[float]) -> tuple[float, float] | None:
    real = [v for v in values if not math.isnan(v)]
    if len(real) < 2:
        return None
    half = 1.96 * statistics.stdev(real) / math.sqrt(len(real))
    mean = statistics.fmean(real)
    return (mean - half, mean + half)


def _value(
    name: str,
    kind: str,
    per_side: dict[str, list[float]],
    samples: int,
    detail: dict[str, Any] | None = None,
) -> MetricValue:
    """One metric from each side's per-continuation scores (their mean)."""
    scores = {side: _mean(values) for side, values in per_side.items()}
    ci = _ci(per_side["steered"]) if samples > 1 else None
    return MetricValue(
        name,
        kind,
        scores.get("baseline"),
        scores["steered"],
        detail or {},
        prompting=scores.get("prompting"),
        ci95=ci,
        per_prompt={side: list(values) for side, values in per_side.items()},
    )


def _concept(metric: ConceptMetric, index: int, passes: RunPasses) -> list[MetricValue]:
    judged, samples = passes.judged, passes.samples
    if metric.words is not None:
        phrases = list(metric.words)
        scores = {s: [phrase_rate(words(t), phrases) for t in j.texts] for s, j in judged.items()}
        default = 0.0
    elif metric.classifier is not None:
        scores = {side: j.probe[index] for side, j in judged.items()}
        default = 0.5
    else:
        scores = {side: j.probe[index] for side, j in judged.items()}
        default = _mean(scores["baseline"]) if "baseline" in scores else 0.0
    threshold = metric.threshold if metric.threshold is not None else default
    above = {
        side: [math.nan if math.isnan(v) else float(v > threshold) for v in values]
        for side, values in scores.items()
    }
    name = f"concept:{metric.name}"
    source: dict[str, Any] = {"words": metric.words}
    if metric.probe:
        source = {"probe": metric.probe}
    elif metric.classifier:
        source = {"classifier": metric.classifier, "label": metric.label}
    return [
        _value(name, "concept", scores, samples, source),
        _value(f"{name}:above", "concept", above, samples, {"threshold": round(threshold, 6)}),
    ]


def _fluency(metric: FluencyMetric, index: int, passes: RunPasses) -> list[MetricValue]:
    nll = {side: j.nll for side, j in passes.judged.items()}
    value = _value("fluency", "fluency", nll, passes.samples, {"unit": "perplexity"})
    exp = math.exp
    value.baseline = None if value.baseline is None else exp(value.baseline)
    value.prompting = None if value.prompting is None else exp(value.prompting)
    value.steered = exp(value.steered)
    if value.ci95 is not None:
        value.ci95 = (exp(value.ci95[0]), exp(value.ci95[1]))
    value.per_prompt = {side: [exp(v) for v in nll] for side, nll in value.per_prompt.items()}
    return [value]


def _repetition(metric: RepetitionMetric, index: int, passes: RunPasses) -> list[MetricValue]:
    split = {side: [words(t) for t in j.texts] for side, j in passes.judged.items()}
    distinct = {side: [distinct_n(w, metric.n) for w in ws] for side, ws in split.items()}
    longest = {side: [float(longest_repeat(w)) for w in ws] for side, ws in split.items()}
    n = passes.samples
    return [
        _value(f"repetition:distinct-{metric.n}", "repetition", distinct, n),
        _value("repetition:longest", "repetition", longest, n, {"unit": "words"}),
    ]


def _similarity(answers: torch.Tensor, reference: torch.Tensor) -> list[float]:
    cos = torch.nn.functional.cosine_similarity(answers, reference, dim=-1)
    return [float(c) for c in cos]  # NaN rows (empty answers) stay NaN


def _instruction(metric: InstructionMetric, index: int, passes: RunPasses) -> list[MetricValue]:
    judged: dict[str, Judged] = passes.judged
    if metric.judge is not None:
        scores = {side: j.addressed[index] for side, j in judged.items()}
        detail = {"judge": metric.judge, "unit": "P(yes)"}
        return [_value("instruction:judge", "instruction", scores, passes.samples, detail)]
    if "baseline" not in judged:
        nan = [math.nan]
        return [_value("instruction", "instruction", {"steered": nan}, 1)]
    reference = judged["baseline"].answers[index]
    sims = {side: _similarity(j.answers[index], reference) for side, j in judged.items()}
    return [_value("instruction", "instruction", sims, passes.samples, {"unit": "cosine"})]


def _adapt(measure: Any) -> Any:
    """As report/build.py's MEASURES call them: (metric, index, tokenizer, passes)."""
    return lambda metric, index, tokenizer, passes: measure(metric, index, passes)


TEXT_MEASURES: dict[type, Any] = {
    ConceptMetric: _adapt(_concept),
    FluencyMetric: _adapt(_fluency),
    RepetitionMetric: _adapt(_repetition),
    InstructionMetric: _adapt(_instruction),
}
