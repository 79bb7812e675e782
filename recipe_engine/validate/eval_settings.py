"""The recipe's `eval:` block (format/eval_spec.py), checked torch-free: its methods are vectors
of the recipe, a strength grid comes with the tuning prompts it is chosen on, and its prompting
modes are each named once, with a system message only where the prompts are chat (as far as
validation sees without reading JSONL files; the run's row says so for those)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.validate.text_metrics import plain_prompt

__all__ = ["check_eval_settings"]


def check_eval_settings(
    recipe: Recipe, doc: LoadedDocument, undefined: Callable[[str, str], Diagnostic]
) -> Iterator[Diagnostic]:
    """`undefined(name, pointer)`: the semantic checker's did-you-mean for a vector name."""
    spec = recipe.eval
    if spec is None:
        return
    for index, name in enumerate(spec.methods):
        if name not in recipe.vectors:
            yield undefined(name, f"/eval/methods/{index}")
    if spec.strengths and spec.tune is None:
        yield doc.diagnostic(
            "eval-strengths-need-tune",
            "eval.strengths are chosen among on tuning prompts: add eval.tune: {file: PATH} "
            "(prompts disjoint from run.prompts)",
            "/eval/strengths",
        )
    if spec.tune is not None and not spec.strengths:
        yield doc.diagnostic(
            "eval-tune-unused",
            "eval.tune is only read to choose among eval.strengths: add the grid, or drop it",
            "/eval/tune",
            severity="warning",
        )
    yield from _prompting(recipe, doc)


def _prompting(recipe: Recipe, doc: LoadedDocument) -> Iterator[Diagnostic]:
    modes = (recipe.eval.prompting if recipe.eval else None) or []
    plain = plain_prompt(recipe) if "system" in modes else None
    for index, mode in enumerate(modes):
        at = f"/eval/prompting/{index}"
        if mode in modes[:index]:
            yield doc.diagnostic(
                "eval-prompting-duplicate",
                f"eval.prompting names {mode} twice: each mode is one row of the table; drop "
                "the repeat",
                at,
            )
        elif mode == "system" and plain is not None:
            yield doc.diagnostic(
                "eval-prompting-system",
                f"eval.prompting system gives the instruction as a chat system message, but the "
                f"prompt at {plain} is plain text (no conversation to add it to): use "
                "prompting: [prefix] (the default for plain-text prompts), or write the "
                "prompts as {messages: [...]}",
                at,
            )
    if modes and recipe.report.prompt_baseline is None:
        yield doc.diagnostic(
            "eval-prompting-no-instruction",
            "eval.prompting gives an instruction the recipe does not have: add "
            "report.prompt_baseline: TEXT (or pass steer eval --prompt TEXT)",
            "/eval/prompting",
            severity="warning",
        )
