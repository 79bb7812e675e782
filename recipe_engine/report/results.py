"""The result of running a recipe, and its stable JSON shape (format version 1):

    {"version": 1,
     "recipe": {"name", "path"}, "model": {"id", "family", "layers", "hidden_size", "heads"},
     "mode": "trace" | "generate" | "edit",
     "plan": [{"intervention", "label", "op", "layer", "site", "module", "port", "heads",
               "positions", "positions_per_step", "vector", "vector_norm", "strength"}],
     "vectors": {NAME: {"kind", "norm", ...provenance}},
     "prompts": [{"prompt",
                  "baseline": {"continuation", "top_tokens": [{"token", "id", "prob"}]} | null,
                  "steered":  {"continuation", "top_tokens": [...]},
                  "group": NAME | null (a prompt group of run.prompts),
                  "conditions": [{"intervention", "condition", "fired", "scores"}],
                  ("prompting": {...}: with report.prompt_baseline)}],
     "metrics": [{"name", "kind", "baseline", "steered", "delta", ...,
                  "prompting" (report.prompt_baseline), "ci95": [lo, hi] (run.samples > 1),
                  "controls": {"n", "mean", "sd", "z", "values"} (report.controls)}],
     "groups": [{"group", "plan"}]: the plan of each prompt group with its own,
     "group_metrics": {NAME: [the metrics that are means over prompts (token_prob,
                        logit_diff, kl_baseline of the prompts), over that group's prompts]},
     "conditions": [{"intervention", "condition", "fired", "prompts",
                     "groups": {NAME: {"fired", "prompts"}}}]: how many prompts each fired on,
     "warnings": [one line each: the steered output looks broken, and the likely cause],
     "timing": {"load_s", "vectors_s", "run_s"}}

Floats are rounded to 6 places; NaN and Inf appear as the strings "nan"/"inf".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recipe_engine.report.metrics import MetricValue

__all__ = ["ConditionOutcome", "PromptOutcome", "RunReport", "SideOutcome"]

REPORT_VERSION = 1


@dataclass
class SideOutcome:
    continuation: str | None
    top_tokens: list[tuple[str, int, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "continuation": self.continuation,
            "top_tokens": [
                {"token": tok, "id": tid, "prob": round(prob, 6)}
                for tok, tid, prob in self.top_tokens
            ],
        }


@dataclass(frozen=True)
class ConditionOutcome:
    """Whether one conditional intervention (`when:`) fired for a prompt, and the scores (one
    per condition leaf, in the order written) that decided it."""

    intervention: int
    condition: str
    fired: bool
    scores: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "intervention": self.intervention,
            "condition": self.condition,
            "fired": self.fired,
            "scores": [round(s, 6) for s in self.scores],
        }


@dataclass
class PromptOutcome:
    prompt: str
    steered: SideOutcome
    baseline: SideOutcome | None = None
    group: str | None = None
    conditions: list[ConditionOutcome] = field(default_factory=list)
    prompting: SideOutcome | None = None  # report.prompt_baseline


@dataclass
class RunReport:
    recipe_name: str
    recipe_path: str
    model: dict[str, Any]
    mode: str
    plan: list[dict[str, Any]]
    vectors: dict[str, dict[str, Any]]
    prompts: list[PromptOutcome] = field(default_factory=list)
    metrics: list[MetricValue] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    # The raw passes behind the numbers (logits, tokens); not part of the JSON report.
    passes: dict[str, Any] = field(default_factory=dict, repr=False)
    # One line each: the steered model looks broken (report/health.py has the rules).
    warnings: list[str] = field(default_factory=list)
    # The plan of each prompt group that has its own: [{"group", "plan"}] (issue 24 item 7)
    groups: list[dict[str, Any]] = field(default_factory=list)
    # Per prompt group: the metrics that are means over prompts, over its prompts alone
    group_metrics: dict[str, list[MetricValue]] = field(default_factory=dict)

    def condition_summary(self) -> list[dict[str, Any]]:
        """How many prompts each `when:` condition fired on, overall and per prompt group: a
        claim like "the food prompts were steered" is read off, not counted by hand."""
        summary: dict[tuple[int, str], dict[str, Any]] = {}
        for prompt in self.prompts:
            for cond in prompt.conditions:
                entry = summary.setdefault(
                    (cond.intervention, cond.condition),
                    {
                        "intervention": cond.intervention,
                        "condition": cond.condition,
                        "fired": 0,
                        "prompts": 0,
                        "groups": {},
                    },
                )
                entry["fired"] += int(cond.fired)
                entry["prompts"] += 1
                if prompt.group is not None:
                    fired, seen = entry["groups"].get(prompt.group, (0, 0))
                    entry["groups"][prompt.group] = (fired + int(cond.fired), seen + 1)
        for entry in summary.values():
            entry["groups"] = {
                name: {"fired": fired, "prompts": seen}
                for name, (fired, seen) in entry["groups"].items()
            }
        return list(summary.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "recipe": {"name": self.recipe_name, "path": self.recipe_path},
            "model": self.model,
            "mode": self.mode,
            "plan": self.plan,
            "vectors": self.vectors,
            "prompts": [
                {
                    "prompt": p.prompt,
                    "baseline": p.baseline.to_json() if p.baseline else None,
                    "steered": p.steered.to_json(),
                    "group": p.group,
                    "conditions": [c.to_json() for c in p.conditions],
                    **({"prompting": p.prompting.to_json()} if p.prompting else {}),
                }
                for p in self.prompts
            ],
            "metrics": [m.to_json() for m in self.metrics],
            "groups": list(self.groups),
            "group_metrics": {
                name: [m.to_json() for m in values] for name, values in self.group_metrics.items()
            },
            "conditions": self.condition_summary(),
            "warnings": list(self.warnings),
            "timing": {k: round(v, 4) for k, v in self.timing.items()},
        }

    def metric(self, name: str) -> MetricValue:
        for value in self.metrics:
            if value.name == name:
                return value
        raise KeyError(name)
