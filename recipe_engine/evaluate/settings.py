"""The settings of one `steer eval` table, each from the command line if given, else from the
recipe's `eval:` block (format/eval_spec.py), else its default; checked before any run.

The prompting modes' default follows the test prompts: a system message needs a chat prompt to
add it to, so both modes (system, prefix) when every prompt of run.prompts is a conversation,
and prefix alone when any is plain text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from recipe_engine.errors import UsageError
from recipe_engine.format.eval_spec import EvalSpec
from recipe_engine.format.recipe import Recipe

__all__ = [
    "CHAT_MODES",
    "DEFAULT_CONTROLS",
    "DEFAULT_FLUENCY_BUDGET",
    "PLAIN_MODES",
    "EvalSettings",
    "resolve_settings",
]

DEFAULT_FLUENCY_BUDGET = 1.5
DEFAULT_CONTROLS = 8
CHAT_MODES = ("system", "prefix")  # the default prompting modes for chat prompts
PLAIN_MODES = ("prefix",)  # ... and for plain-text ones (no conversation to add a system turn to)


@dataclass(frozen=True)
class EvalSettings:
    methods: list[str]  # vector names, each in place of the first intervention's vector
    strengths: list[float] | None  # the grid tuned over; None: the recipe's strength, untuned
    tuning: str | None  # the tuning prompts as a `run.prompts=` override value (JSON)
    fluency_budget: float
    controls: int
    prompting: list[str]  # the prompting modes shown, in order (empty: no prompting rows)
    recipe_strength: float

    @property
    def tuning_label(self) -> str:
        """The tuning prompt file, as messages name it."""
        return "" if self.tuning is None else str(json.loads(self.tuning)["file"])


def _tuning(tune: str | None, spec: EvalSpec) -> str | None:
    if tune:
        return json.dumps({"file": tune})
    if spec.tune is not None:
        return json.dumps(spec.tune.model_dump(exclude_none=True, by_alias=True))
    return None


def _prompting(flag: Sequence[str] | None, spec: EvalSpec, chat_prompts: bool) -> list[str]:
    if flag is not None:  # an empty --prompting: no prompting rows
        return list(flag)
    if spec.prompting is not None:
        return list(spec.prompting)
    return list(CHAT_MODES if chat_prompts else PLAIN_MODES)


def resolve_settings(
    recipe: Recipe,
    *,
    methods: Sequence[str] | None,
    strengths: Sequence[float] | None,
    tune: str | None,
    fluency_budget: float | None,
    controls: int | None,
    prompting: Sequence[str] | None = None,
    chat_prompts: bool = False,
) -> EvalSettings:
    """The table's settings (module docstring); a UsageError naming the flag when they cannot
    make a table. `chat_prompts`: whether every test prompt is a conversation (the prompting
    modes' default)."""
    spec = recipe.eval or EvalSpec()
    first = recipe.interventions[0] if recipe.interventions else None
    if first is None or first.vector is None:
        raise UsageError("steer eval steers with the recipe's first intervention: give it a vector")
    names = list(methods or spec.methods or [first.vector])
    unknown = [n for n in names if n not in recipe.vectors]
    if unknown:
        raise UsageError(
            f"--methods: no vector {', '.join(unknown)} in the recipe "
            f"(it has {', '.join(recipe.vectors)})"
        )
    grid = list(strengths or spec.strengths or []) or None
    tuning = _tuning(tune, spec)
    if grid and not tuning:
        raise UsageError(
            "--strengths needs --tune FILE (or eval.tune in the recipe): the prompts the "
            "strength is chosen on"
        )
    chosen_controls = controls if controls is not None else spec.controls
    return EvalSettings(
        methods=names,
        strengths=grid,
        tuning=tuning,
        fluency_budget=fluency_budget or spec.fluency_budget or DEFAULT_FLUENCY_BUDGET,
        controls=DEFAULT_CONTROLS if chosen_controls is None else chosen_controls,
        prompting=_prompting(prompting, spec, chat_prompts),
        recipe_strength=first.strength,
    )
