"""The instruction metric with `judge: MODEL`: a language model's probability that an answer
addresses its question.

The judging prompt is fixed (JUDGE_TEMPLATE), with the question (the run prompt's last user
message, or the whole plain-text prompt) and the answer (the decoded continuation, prefill not
included; an empty answer is judged too: it addresses nothing):

    Question: {question}
    Answer: {answer}
    Does the answer address the question? Reply Yes or No.

A judge with a chat template reads it as the one user message of a conversation, rendered with
the generation prompt; a judge without one reads it followed by "\\nReply:". The text is
tokenized as the engine tokenizes any prompt (the tokenizer's own special tokens added; a BOS
that both the template and the tokenizer add is kept once). Then

    P(Yes) = sum over the strings YES ("Yes", " Yes", "yes", " yes") of the probability that
             the judge writes that string next, in its tokenizer's encoding of it: the product
             of next-token probabilities along its tokens (one token for most vocabularies)
    P(No)  = the same over NO ("No", " No", "no", " no")
    score  = P(Yes) / (P(Yes) + P(No))

The judge is loaded like model.id (resolve/model_loader.py: offline, builtin:, local folders,
model stores, pkg: GGUF files dequantized once), in float32, never with code of its own, and
once per process (the loader's cache).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from recipe_engine.errors import EnvironmentFailure
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.resolve.chat import ChatText
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.resolve.model_loader import load_model

__all__ = ["JUDGE_TEMPLATE", "NO", "PLAIN_SUFFIX", "YES", "judge_scores", "load_judge", "question"]

JUDGE_TEMPLATE = (
    "Question: {question}\nAnswer: {answer}\nDoes the answer address the question? Reply Yes or No."
)
PLAIN_SUFFIX = "\nReply:"
YES = ("Yes", " Yes", "yes", " yes")
NO = ("No", " No", "no", " no")


def load_judge(reference: str, recipe_dir: Path, device: str) -> LoadedModel:
    """The judge model, loaded (or reused from the loader's cache) as model.id would be."""
    spec = ModelSpec(id=reference, dtype="float32", device=device, trust_remote_code=False)
    return load_model(spec, recipe_dir)


def question(prompt: str) -> str:
    """What the answer is judged against: a chat prompt's last user message, else the prompt."""
    spans = prompt.spans if isinstance(prompt, ChatText) else ()
    users = [span for span in spans if span.role == "user"]
    return prompt[users[-1].start : users[-1].end] if users else str(prompt)


def judging_text(tokenizer: Any, asked: str, answer: str) -> str:
    """The judging prompt as the judge reads it (its chat template's rendering, or plain)."""
    content = JUDGE_TEMPLATE.format(question=asked, answer=answer)
    if not getattr(tokenizer, "chat_template", None):
        return content + PLAIN_SUFFIX
    messages = [{"role": "user", "content": content}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja's TemplateError, or a template's raise_exception()
        raise EnvironmentFailure(f"the judge's chat template failed: {exc}") from None
    bos = str(getattr(tokenizer, "bos_token", None) or "")
    adds_bos = bos and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    if adds_bos and text.startswith(bos):  # the tokenizer adds the BOS the template wrote
        return str(text[len(bos) :])
    return str(text)


def _log_probs(judge: LoadedModel, ids: list[int]) -> torch.Tensor:
    """[T, V] float32 log-probabilities of the next token at each position (one unpadded row)."""
    tensor = torch.tensor([ids], device=judge.device)
    logits = judge.hf(input_ids=tensor, attention_mask=torch.ones_like(tensor)).logits
    return torch.log_softmax(logits[0].float().cpu(), dim=-1)


def _mass(judge: LoadedModel, ids: list[int], last: torch.Tensor, strings: Sequence[str]) -> float:
    """The probability that the judge writes one of `strings` next (they are distinct strings,
    so their probabilities add)."""
    total = 0.0
    for string in strings:
        tokens = list(judge.tokenizer(string, add_special_tokens=False)["input_ids"])
        if len(tokens) == 1:
            total += float(last[tokens[0]].exp())
            continue
        steps = _log_probs(judge, ids + tokens[:-1])[len(ids) - 1 :]
        picked = steps.gather(-1, torch.tensor(tokens).unsqueeze(-1))
        total += float(picked.sum().exp())
    return total


def judge_scores(judge: LoadedModel, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
    """Per answer: P(Yes) / (P(Yes) + P(No)) of the judge after the judging prompt."""
    out: list[float] = []
    with judge.lock, torch.inference_mode():  # the judge may be the run's own model
        for prompt, answer in zip(prompts, answers, strict=True):
            text = judging_text(judge.tokenizer, question(prompt), answer)
            ids = list(judge.tokenizer(text)["input_ids"])
            last = _log_probs(judge, ids)[-1]
            yes, no = _mass(judge, ids, last, YES), _mass(judge, ids, last, NO)
            out.append(yes / (yes + no) if yes + no > 0 else math.nan)
    return out
