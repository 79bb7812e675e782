"""The evaluation table of `steer eval`: steering methods side by side, next to the unsteered
baseline, prompting and random controls, on test prompts disjoint from the tuning prompts.

A method is a vector of the recipe: the recipe's first intervention is run with that vector in
place of its own (`interventions.0.vector=NAME`), at one strength per method.

Selection rule (one, for every method): on the tuning prompts, each strength of the grid is run;
a strength is admissible when the steered fluency (perplexity of the continuations under the
unsteered model) is at most `fluency_budget` times the unsteered model's on the same tuning
prompts; the admissible strength with the highest concept score (the recipe's first concept
metric) is chosen, ties going to the smaller |strength|, then to the earlier one in the grid.
A method with no admissible strength is not measured (its row says so). Without a grid the
strength the recipe writes is used, untuned.

Then, on the test prompts (the recipe's run.prompts; any prompt also among the tuning prompts
is refused): the baseline, prompting (report.prompt_baseline's instruction, once per mode of
the `prompting` setting: as a system message, as a prefix; by default both for chat prompts and
the prefix alone for plain text) and each method at its chosen strength with `controls`
random controls of that method's size at that strength (evaluate/controls.py: a vector's norm,
a low-rank intervention's mean edit norm).

Aggregate (in the spirit of AxBench's harmonic mean), for each row, on the test prompts:

    concept      C = clip((c - c_baseline) / (c_best - c_baseline), 0, 1), c the first concept
                 metric, c_best the highest c of any row of the table (methods and prompting)
    instruction  I = clip(i / i_baseline, 0, 1), i the recipe's instruction metric (a judge's
                 P(yes), or the cosine to the unsteered answer, 1 for the baseline)
    fluency      F = clip(ppl_baseline / ppl, 0, 1), ppl the fluency metric (perplexity)
    aggregate    3 / (1/C + 1/I + 1/F), and 0 when any part is 0 (or not a number)

so the baseline scores 0 (it moves no concept), and a row scores 1 when it reaches the best
concept score with the baseline's fluency and instruction-following. Without an instruction
metric the aggregate is the harmonic mean of C and F (the table says so). A random control's
aggregate is computed the same way from its own values (c_best stays the table's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe_engine.errors import RecipeError, UsageError
from recipe_engine.evaluate.settings import EvalSettings, resolve_settings
from recipe_engine.execute.runner import PassResult
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import PromptBaseline
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.prompt_files import Conversation
from recipe_engine.report.results import RunReport
from recipe_engine.vectors.sources import PromptSourceRef

__all__ = [
    "EvalRow",
    "EvalTable",
    "TuningPoint",
    "aggregate",
    "choose_strength",
    "evaluate_table",
]

# (overrides, a baseline pass to reuse) -> the report of the recipe run with them
Runner = Callable[[Sequence[str], PassResult | None], RunReport]
Loader = Callable[[Sequence[str]], tuple[Recipe, LoadedDocument]]
Log = Callable[[str], None]


@dataclass
class TuningPoint:
    strength: float
    concept: float
    fluency: float
    admissible: bool


@dataclass
class EvalRow:
    """One row: the baseline, a prompting mode, or a method at its chosen strength."""

    label: str
    kind: str  # "baseline" | "prompting" | "method"
    strength: float | None = None
    values: dict[str, float] = field(default_factory=dict)  # metric -> value, test prompts
    controls: dict[str, list[float]] = field(default_factory=dict)  # metric -> control values
    aggregate: float | None = None
    parts: dict[str, float] = field(default_factory=dict)  # concept/instruction/fluency, 0-1
    control_aggregates: list[float] = field(default_factory=list)
    tuning: list[TuningPoint] = field(default_factory=list)
    note: str = ""


@dataclass
class EvalTable:
    recipe: str
    model: dict[str, Any]
    concept: str  # the metric the selection rule maximizes
    instruction: str | None  # the aggregate's instruction metric, if the recipe has one
    columns: list[str]
    rows: list[EvalRow]
    fluency_budget: float
    tuning_fluency: float | None  # the unsteered model's perplexity on the tuning prompts
    test_prompts: int
    tuning_prompts: int
    controls: int
    instruction_text: str | None

    def row(self, label: str) -> EvalRow:
        return next(r for r in self.rows if r.label == label)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def aggregate(
    row: dict[str, float],
    baseline: dict[str, float],
    best_concept: float,
    concept: str,
    instruction: str | None,
) -> tuple[float, dict[str, float]]:
    """The row's aggregate and its normalized parts (the module docstring's formulas)."""

    def clip(x: float) -> float:
        return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))

    span = best_concept - baseline[concept]
    parts = {"concept": clip((row[concept] - baseline[concept]) / span) if span > 0 else 0.0}
    if instruction is not None:
        base = baseline[instruction]
        parts["instruction"] = clip(row[instruction] / base) if base > 0 else 0.0
    parts["fluency"] = clip(baseline["fluency"] / row["fluency"]) if row["fluency"] > 0 else 0.0
    if min(parts.values()) <= 0:
        return 0.0, parts
    return len(parts) / sum(1 / p for p in parts.values()), parts


def choose_strength(points: Sequence[TuningPoint]) -> float | None:
    """The selection rule (module docstring) over measured tuning points; None: none
    admissible."""
    best: TuningPoint | None = None
    for point in points:
        if not point.admissible or math.isnan(point.concept):
            continue
        if (
            best is None
            or point.concept > best.concept
            or (point.concept == best.concept and abs(point.strength) < abs(best.strength))
        ):
            best = point
    return None if best is None else best.strength


def _test_prompts(recipe: Recipe, doc: LoadedDocument) -> list[str | Conversation]:
    """run.prompts as written (plain texts and conversations)."""
    prompts: list[str | Conversation] = []
    for part in prompt_parts(recipe.run.prompts):
        source = PromptSourceRef(part.source, doc, part.pointer, doc.path.parent)
        prompts += [prompt for _, prompt in source.raw()]
    return prompts


def _prompt_keys(recipe: Recipe, doc: LoadedDocument) -> list[str]:
    """run.prompts as written (texts stripped; conversations as their JSON), for overlap."""
    return [_key(prompt) for prompt in _test_prompts(recipe, doc)]


def _key(prompt: str | Conversation) -> str:
    return prompt.strip() if isinstance(prompt, str) else json.dumps(prompt.as_json())


def _columns(report: RunReport) -> tuple[list[str], str, str | None]:
    names = [m.name for m in report.metrics]
    concepts = [n for n in names if n.startswith("concept:") and not n.endswith(":above")]
    if not concepts or "fluency" not in names:
        raise UsageError(
            "steer eval needs a concept metric and a fluency metric in report.metrics "
            "(README, Evaluating)"
        )
    instructions = [n for n in names if n.startswith("instruction")]
    columns = [concepts[0], f"{concepts[0]}:above", *concepts[1:], *instructions, "fluency"]
    columns += [n for n in names if n.startswith("repetition:")]
    return columns, concepts[0], (instructions[0] if instructions else None)


def _values(report: RunReport, side: str, columns: list[str]) -> dict[str, float]:
    out = {}
    for name in columns:
        number = getattr(report.metric(name), side)
        out[name] = math.nan if number is None else float(number)
    return out


@dataclass
class _Setup:
    """What every run of one table shares: its settings (the one source of truth for methods,
    grid, tuning prompts, budget, controls and prompting modes) and how to run and log."""

    run: Runner
    load: Loader
    log: Log
    settings: EvalSettings
    instruction: str | None
    base: list[str]  # overrides every run shares


def _tune(setup: _Setup, method: str) -> tuple[list[TuningPoint], float | None]:
    """Each strength of the grid on the tuning prompts; the unsteered perplexity there."""
    sets = [
        *setup.base,
        f"interventions.0.vector={method}",
        f"run.prompts={setup.settings.tuning}",
        "report.controls=null",
        "report.prompt_baseline=null",
    ]
    points: list[TuningPoint] = []
    baseline: PassResult | None = None
    tuning_fluency = None
    grid = setup.settings.strengths or []
    for k, strength in enumerate(grid):
        setup.log(f"tuning {method}: strength {strength:g} ({k + 1}/{len(grid)})")
        report = setup.run([*sets, f"interventions.0.strength={strength}"], baseline)
        baseline = report.passes.get("baseline")
        concept = _columns(report)[1]
        fluency = report.metric("fluency")
        tuning_fluency = fluency.baseline
        budget = setup.settings.fluency_budget * (fluency.baseline or math.inf)
        value = float(report.metric(concept).steered)
        points.append(TuningPoint(strength, value, fluency.steered, fluency.steered <= budget))
    return points, tuning_fluency


def _prompting_spec(text: str, mode: str) -> str:
    return f"report.prompt_baseline={{text: {json.dumps(text)}, as: {mode}}}"


def _test_rows(setup: _Setup, chosen: dict[str, float | None]) -> tuple[list[EvalRow], RunReport]:
    """Baseline, prompting modes and methods on the test prompts."""
    rows: list[EvalRow] = []
    baseline: PassResult | None = None
    first: RunReport | None = None
    controls = setup.settings.controls
    for method in setup.settings.methods:
        strength = chosen[method]
        if strength is None:
            note = "no strength within the fluency budget on the tuning prompts"
            rows.append(EvalRow(method, "method", note=note))
            continue
        setup.log(f"test prompts: {method} at strength {strength:g}, {controls} controls")
        sets = [*setup.base, f"interventions.0.vector={method}"]
        sets += [f"interventions.0.strength={strength}", "report.prompt_baseline=null"]
        sets.append("report.controls=" + (f"{{random: {controls}}}" if controls else "null"))
        report = setup.run(sets, baseline)
        baseline, first = report.passes.get("baseline"), first or report
        columns = _columns(report)[0]
        row = EvalRow(method, "method", strength, _values(report, "steered", columns))
        row.controls = {n: list(report.metric(n).controls) for n in columns}
        rows.append(row)
    recipe_strength = setup.settings.recipe_strength
    base_sets = [*setup.base, f"interventions.0.strength={recipe_strength}", "report.controls=null"]
    for mode in setup.settings.prompting if setup.instruction else []:
        setup.log(f"test prompts: prompting as {mode}")
        try:
            report = setup.run(
                [*base_sets, _prompting_spec(setup.instruction or "", mode)], baseline
            )
        except RecipeError as exc:  # as: system on plain-text prompts
            note = str(exc.diagnostics[0].message) if exc.diagnostics else str(exc)
            rows.append(EvalRow(f"prompting ({mode})", "prompting", note=note))
            continue
        baseline, first = report.passes.get("baseline"), first or report
        columns = _columns(report)[0]
        rows.append(
            EvalRow(
                f"prompting ({mode})", "prompting", values=_values(report, "prompting", columns)
            )
        )
    if first is None:
        first = setup.run([*base_sets, "report.prompt_baseline=null"], baseline)
    rows.insert(
        0, EvalRow("baseline", "baseline", values=_values(first, "baseline", _columns(first)[0]))
    )
    return rows, first


def _score(rows: list[EvalRow], concept: str, instruction: str | None) -> None:
    base = rows[0].values
    measured = [r for r in rows if r.values and r.kind != "baseline"]
    best = max(
        [base[concept], *(r.values[concept] for r in measured if math.isfinite(r.values[concept]))]
    )
    for row in [rows[0], *measured]:
        row.aggregate, row.parts = aggregate(row.values, base, best, concept, instruction)
        n = len(next(iter(row.controls.values()), []))
        for k in range(n):
            values = {name: vs[k] for name, vs in row.controls.items()}
            row.control_aggregates.append(aggregate(values, base, best, concept, instruction)[0])


def _disjoint_tuning_keys(
    load: Loader, overrides: Sequence[str], settings: EvalSettings, keys: list[str]
) -> list[str]:
    """The tuning prompts' keys; a UsageError when any is also a test prompt."""
    if not settings.tuning:
        return []
    tuning_recipe, tuning_doc = load([*overrides, f"run.prompts={settings.tuning}"])
    tuning_keys = _prompt_keys(tuning_recipe, tuning_doc)
    shared = sorted(set(keys) & set(tuning_keys))
    if shared:
        raise UsageError(
            f"the tuning prompts ({settings.tuning_label}) and the test prompts (run.prompts) "
            f"share {len(shared)} prompt(s), e.g. {shared[0]!r}: a strength chosen on test data "
            "is not a measurement; make them disjoint"
        )
    return tuning_keys


def evaluate_table(
    run: Runner,
    load: Loader,
    *,
    methods: Sequence[str] | None = None,
    strengths: Sequence[float] | None = None,
    tune: str | None = None,
    fluency_budget: float | None = None,
    controls: int | None = None,
    prompting: Sequence[str] | None = None,
    instruction: str | None = None,
    overrides: Sequence[str] = (),
    log: Log | None = None,
) -> EvalTable:
    """The table (module docstring). `run` and `load` run and load the recipe with overrides;
    `tune`: the tuning prompt file, relative to the recipe (needed with `strengths`). Each
    setting left None comes from the recipe's `eval:` block, else its default (`prompting`:
    system and prefix for chat prompts, prefix for plain text; evaluate/settings.py)."""
    recipe, doc = load(list(overrides))
    prompts = _test_prompts(recipe, doc)
    settings = resolve_settings(
        recipe,
        methods=methods,
        strengths=strengths,
        tune=tune,
        fluency_budget=fluency_budget,
        controls=controls,
        prompting=prompting,
        chat_prompts=bool(prompts) and all(isinstance(p, Conversation) for p in prompts),
    )
    spec = recipe.report.prompt_baseline
    text = instruction or (spec.text if isinstance(spec, PromptBaseline) else spec)
    setup = _Setup(run, load, log or (lambda _: None), settings, text, list(overrides))
    keys = [_key(prompt) for prompt in prompts]
    tuning_keys = _disjoint_tuning_keys(load, overrides, settings, keys)
    chosen: dict[str, float | None] = {}
    tuned: dict[str, list[TuningPoint]] = {}
    tuning_fluency = None
    for name in settings.methods:
        if settings.strengths:
            tuned[name], tuning_fluency = _tune(setup, name)
            chosen[name] = choose_strength(tuned[name])
            setup.log(f"chosen on the tuning prompts: {name} strength {chosen[name]}")
        else:
            chosen[name] = settings.recipe_strength
    rows, report = _test_rows(setup, chosen)
    for row in rows:
        row.tuning = tuned.get(row.label, []) if row.kind == "method" else []
    columns, concept, instruction_metric = _columns(report)
    _score(rows, concept, instruction_metric)
    return EvalTable(
        recipe=report.recipe_name,
        model=report.model,
        concept=concept,
        instruction=instruction_metric,
        columns=columns,
        rows=rows,
        fluency_budget=settings.fluency_budget,
        tuning_fluency=tuning_fluency,
        test_prompts=len(keys),
        tuning_prompts=len(tuning_keys),
        controls=settings.controls,
        instruction_text=text,
    )
