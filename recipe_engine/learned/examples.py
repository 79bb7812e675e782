"""A trained vector's examples as token ids: read from its target file, or written by the
unsteered model itself under an instruction (the prompting side's texts, evaluate/prompting.py).

Each example is a prompt's ids and one completion's ids (lm) or two (chosen, rejected). The
prompt is tokenized the way a run tokenizes it (the tokenizer's own markers included, a
conversation rendered by the chat template); completions without markers, so the sequence the
model reads is the prompt followed by exactly the completion's tokens.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from recipe_engine.errors import RecipeError
from recipe_engine.evaluate.prompting import instructed_prompt
from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.format.trained import PromptedTargets, TargetFile
from recipe_engine.load.prompt_files import Prompt, PromptFileError
from recipe_engine.load.target_files import read_targets
from recipe_engine.plan import Plan
from recipe_engine.resolve.chat import ChatTemplateError, render_conversation
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.trained_request import TrainRequest

__all__ = ["Example", "load_examples"]


@dataclass(frozen=True)
class Example:
    prompt: tuple[int, ...]
    completions: tuple[tuple[int, ...], ...]  # (completion,) or (chosen, rejected)


def _prompt_text(model: LoadedModel, prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else render_conversation(model.tokenizer, prompt)


def _ids(model: LoadedModel, text: str, markers: bool) -> tuple[int, ...]:
    return tuple(model.tokenizer(text, add_special_tokens=markers)["input_ids"])


def _from_file(request: TrainRequest) -> list[Example]:
    spec, model = request.spec, request.model
    assert isinstance(spec.targets, TargetFile) and request.targets_path is not None
    at = request.pointer + "/targets/file"
    examples: list[Example] = []
    try:
        with model.lock:  # the tokenizer is shared
            for row in read_targets(request.targets_path, spec.objective, spec.targets.limit):
                try:
                    prompt = _ids(model, _prompt_text(model, row.prompt), True)
                except ChatTemplateError as exc:
                    raise PromptFileError(str(exc), row.line) from None
                completions = tuple(_ids(model, text, False) for text in row.completions)
                if not all(completions):
                    raise PromptFileError("a completion has no tokens", row.line)
                examples.append(Example(prompt, completions))
    except PromptFileError as exc:
        raise request.error("target-file-invalid", f"{spec.targets.file}: {exc}", at) from None
    return examples


def _answers(model: LoadedModel, texts: list[str], max_new_tokens: int) -> list[tuple[int, ...]]:
    gen = GenerationSpec(max_new_tokens=max_new_tokens, do_sample=False)
    result = generate_pass(model, Plan(), texts, gen, batch_size=16)
    return [tuple(ids) for ids in result.generated]


def _prompted(request: TrainRequest) -> list[Example]:
    spec, model = request.spec, request.model
    targets = spec.targets
    assert isinstance(targets, PromptedTargets) and request.prompts is not None
    raw = [prompt for _, prompt in request.prompts.raw()][: targets.n]
    at = request.pointer + "/targets"
    if len(raw) < 2:
        raise request.error("target-file-invalid", "training needs at least 2 prompts", at)
    try:
        with model.lock:
            bare = [_prompt_text(model, p) for p in raw]
            chosen = [instructed_prompt(p, targets.prompted, targets.as_, model) for p in raw]
            opposite = [
                instructed_prompt(p, targets.opposite, targets.as_, model)
                if targets.opposite
                else b
                for p, b in zip(raw, bare, strict=True)
            ]
    except ChatTemplateError as exc:
        raise request.error("prompt-baseline", str(exc), at) from None
    pairs = spec.objective != "lm"
    # minutes on a real model before the first step: say what the wait is
    answers = len(raw) * (2 if pairs else 1)
    print(
        f"train {request.name}: the unsteered model writes {answers} prompted targets "
        f"({targets.max_new_tokens} tokens each)",
        file=sys.stderr,
        flush=True,
    )
    winners = _answers(model, chosen, targets.max_new_tokens)
    losers = _answers(model, opposite, targets.max_new_tokens) if pairs else []
    examples: list[Example] = []
    with model.lock:
        for index, text in enumerate(bare):
            completions = (winners[index], losers[index]) if pairs else (winners[index],)
            if all(completions):  # an answer that ends at once teaches nothing: left out
                examples.append(Example(_ids(model, text, True), completions))
    if len(examples) < 2:
        raise request.error(
            "target-file-invalid", "the model answered fewer than 2 prompts with any text", at
        )
    return examples


def load_examples(request: TrainRequest) -> list[Example]:
    try:
        if isinstance(request.spec.targets, PromptedTargets):
            return _prompted(request)
        return _from_file(request)
    except RecipeError:
        raise
