"""What no export format can hold, whatever it writes: prompt groups that steer some prompts
otherwise than others (an exported model or control vector acts alike on every prompt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recipe_engine.diagnostics import Diagnostic

if TYPE_CHECKING:
    from recipe_engine.pipeline import CompiledRecipe

__all__ = ["group_refusals"]


def group_refusals(compiled: CompiledRecipe, code: str, lead: str) -> list[Diagnostic]:
    """One diagnostic at /run/prompts when a prompt group has a plan of its own."""
    if all(plan is compiled.plan for plan in compiled.part_plans):
        return []
    return [
        compiled.loaded.document.diagnostic(
            code,
            f"{lead}: prompt groups with their own strength or interventions steer some "
            "prompts otherwise than others; an export acts alike on every prompt (export a "
            "recipe per group)",
            "/run/prompts",
        )
    ]
