"""The prompting side (report.prompt_baseline): each run prompt with the instruction added, for
the unsteered model to answer.

    plain-text prompt   "INSTRUCTION PROMPT" (the instruction, a space, the prompt)
    chat prompt         as: system (the default): the instruction is a system message, rendered
                        by the model's chat template; a conversation that already opens with a
                        system message gets it appended on a new line (one system turn, as
                        templates expect). as: prefix: "INSTRUCTION CONTENT" in the last user
                        message (the first message when there is no user turn).

Only the text the model answers changes: every side is still judged after the original prompt
(evaluate/judge.py), so the prompting side's numbers compare its answers, not its prompt.
"""

from __future__ import annotations

from recipe_engine.errors import RecipeError
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import PromptBaseline
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.prompt_files import Conversation, Prompt
from recipe_engine.resolve.chat import ChatTemplateError, render_conversation
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.sources import PromptSourceRef

__all__ = ["instructed_prompt", "prompting_texts", "with_instruction"]

POINTER = "/report/prompt_baseline"


def with_instruction(conversation: Conversation, text: str, mode: str) -> Conversation:
    """The conversation with the instruction added: as a system message (`system`) or before
    the last user message's content (`prefix`)."""
    messages = list(conversation.messages)
    if mode == "system":
        if messages[0][0] == "system":
            messages[0] = ("system", f"{messages[0][1]}\n{text}")
        else:
            messages.insert(0, ("system", text))
        return Conversation(tuple(messages))
    users = [i for i, (role, _) in enumerate(messages) if role == "user"]
    at = users[-1] if users else 0
    role, content = messages[at]
    messages[at] = (role, f"{text} {content}")
    return Conversation(tuple(messages))


def instructed_prompt(prompt: Prompt, text: str, forced: str | None, model: LoadedModel) -> str:
    """One prompt with the instruction added, as the prompting side runs it (a trained
    vector's `prompted:` targets are the model's answers to these)."""
    if isinstance(prompt, str):
        if forced == "system":  # validation catches inline prompts; a JSONL file may hold these
            raise ChatTemplateError(
                "as: system needs chat prompts, but this prompt is plain text: write it as "
                '{"messages": [...]}, or use as: prefix'
            )
        return f"{text} {prompt}"
    mode = forced or "system"
    try:
        return render_conversation(model.tokenizer, with_instruction(prompt, text, mode))
    except ChatTemplateError as exc:
        hint = "; use {text: ..., as: prefix}" if mode == "system" else ""
        raise ChatTemplateError(f"{exc}{hint}") from None


def prompting_texts(recipe: Recipe, model: LoadedModel, doc: LoadedDocument) -> list[str]:
    """What the prompting side runs: each prompt of run.prompts (each `run.samples` times in a
    row, as the other sides) with the instruction added."""
    spec = recipe.report.prompt_baseline
    if spec is None:
        return []
    text = spec.text if isinstance(spec, PromptBaseline) else spec
    forced = spec.as_ if isinstance(spec, PromptBaseline) else None
    out: list[str] = []
    with model.lock:  # the tokenizer (its chat template) is shared
        for part in prompt_parts(recipe.run.prompts):
            source = PromptSourceRef(
                part.source, doc, part.pointer, doc.path.parent, model.tokenizer
            )
            for index, prompt in source.raw():
                try:
                    prompted = instructed_prompt(prompt, text, forced, model)
                except ChatTemplateError as exc:
                    where = f"{POINTER}/as" if forced else POINTER
                    message = f"prompt {index + 1} of {part.pointer}: {exc}"
                    diagnostic = doc.diagnostic("prompt-baseline", message, where)
                    raise RecipeError([diagnostic]) from None
                out += [prompted] * recipe.run.samples
    return out
