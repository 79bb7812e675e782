"""Judge generated continuations with the unsteered model: the forward passes behind the
metrics read on generated text (evaluate/text_metrics.py computes the numbers from these).

    nll        per continuation: mean negative log-likelihood of its tokens given its prompt,
               under the unsteered model (the fluency metric's input)
    classifier per continuation: a sequence-classification model's probability of a label
    mean_acts  per continuation: the unsteered model's activations at a layer and site,
               averaged over the continuation's tokens read on its own (concept probes, and
               the instruction metric's answer similarity)
    addressed  per continuation: a judge model's P(Yes) that it addresses its prompt
               (the instruction metric with `judge:`, evaluate/instruction_judge.py)

Every side (baseline, steered, prompting, each control) is judged by the same unsteered model
and after the same original prompt, so the numbers compare continuations, not prompts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recipe_engine.errors import EnvironmentFailure
from recipe_engine.evaluate.instruction_judge import judge_scores
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import ConceptMetric, FluencyMetric, InstructionMetric
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.extraction import read_activations

__all__ = ["Judged", "continuation_nll", "judge_side", "mean_activations"]


def continuation_nll(
    model: LoadedModel, prompts: Sequence[str], continuations: Sequence[list[int]], batch_size: int
) -> list[float]:
    """Per continuation: mean NLL (nats per token) of its token ids after its prompt's tokens,
    under the plain (unsteered) model; NaN for an empty continuation. Sequences are padded on
    the right, so every real token keeps its position and sees no padding."""
    out: list[float] = []
    pad = model.tokenizer.pad_token_id or 0
    rows: list[tuple[list[int], int]] = []
    with model.lock:  # the tokenizer is shared (LoadedModel)
        for prompt, new in zip(prompts, continuations, strict=True):
            prompt_ids = list(model.tokenizer(prompt)["input_ids"])
            rows.append((prompt_ids + list(new), len(prompt_ids)))
    with model.lock, torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (seq, _) in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            device = model.device
            logits = model.hf(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logprobs = torch.log_softmax(logits.float().cpu(), dim=-1)
            for row, (seq, n_prompt) in enumerate(batch):
                if len(seq) == n_prompt:
                    out.append(math.nan)
                    continue
                targets = torch.tensor(seq[n_prompt:])
                # logits at position t predict token t + 1
                picked = logprobs[row, n_prompt - 1 : len(seq) - 1].gather(
                    -1, targets.unsqueeze(-1)
                )
                out.append(float(-picked.mean()))
    return out


def mean_activations(
    model: LoadedModel,
    texts: Sequence[str],
    *,
    layer: int,
    site: str,
    module: str | None,
    batch_size: int,
) -> torch.Tensor:
    """[N, width] float32: each text's activations averaged over its tokens (as `position:
    mean` reads a vector: no padding, no tokenizer-added BOS); a row of NaN for an empty text."""
    keep = [i for i, text in enumerate(texts) if text.strip()]
    width = model.shape.hidden_size
    out = torch.full((len(texts), width), math.nan)
    if keep:
        layer = layer % model.shape.n_layers
        acts = read_activations(
            model,
            [texts[i] for i in keep],
            layer=layer,
            site=site,
            module=module,
            position="mean",
            batch_size=batch_size,
        )
        out[torch.tensor(keep)] = acts.float().cpu()
    return out


@dataclass
class Judged:
    """One side's continuations as the unsteered model reads them (only what the report's
    metrics need is computed)."""

    texts: list[str]  # decoded continuations
    nll: list[float] = field(default_factory=list)  # fluency: per continuation
    # concept metric (probe or classifier) -> score per continuation
    probe: dict[int, list[float]] = field(default_factory=dict)
    answers: dict[int, torch.Tensor] = field(default_factory=dict)  # instruction -> [N, width]
    # instruction with a judge -> per continuation: P(Yes) / (P(Yes) + P(No))
    addressed: dict[int, list[float]] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _classifier(folder: Path) -> tuple[Any, Any]:
    """A sequence-classification model folder, loaded once per process (on the CPU, in
    float32): offline, safetensors only, never with code of its own (validation checked the
    folder)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    # float32 whatever the checkpoint's dtype: one judge forward per text, on the CPU
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, dtype=torch.float32, **options
    )
    return model.eval(), AutoTokenizer.from_pretrained(folder, **options)


def classifier_scores(folder: Path, label: str, texts: Sequence[str]) -> list[float]:
    """Per text: the classifier's probability of `label`; NaN for an empty text. One text per
    forward pass, so no padding convention of the classifier's can matter."""
    model, tokenizer = _classifier(folder)
    names = {str(v): int(k) for k, v in model.config.id2label.items()}
    if label not in names:
        raise EnvironmentFailure(
            f"classifier {folder}: no label {label!r} (its labels: {', '.join(names)})"
        )
    out = []
    with torch.inference_mode():
        for text in texts:
            if not text.strip():
                out.append(math.nan)
                continue
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0].float()
            out.append(float(logits.softmax(-1)[names[label]]))
    return out


def judge_side(
    recipe: Recipe,
    model: LoadedModel,
    vectors: Mapping[str, torch.Tensor],
    prompts: Sequence[str],
    generated: Sequence[list[int]],
    classifiers: Mapping[int, Path] | None = None,
    judges: Mapping[int, LoadedModel] | None = None,
) -> Judged:
    """What the text metrics of `recipe` need of one side's continuations. `classifiers` and
    `judges`: per metric index, its classifier folder and its loaded judge model."""
    size = recipe.run.batch_size
    with model.lock:  # the tokenizer is shared (LoadedModel)
        texts = [model.tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
    judged = Judged(texts)
    for index, metric in enumerate(recipe.report.metrics):
        if isinstance(metric, FluencyMetric) and not judged.nll:
            judged.nll = continuation_nll(model, prompts, generated, size)
        elif isinstance(metric, ConceptMetric) and metric.classifier is not None:
            folder = (classifiers or {})[index]
            judged.probe[index] = classifier_scores(folder, metric.label or "", texts)
        elif isinstance(metric, ConceptMetric) and metric.probe is not None:
            spec = recipe.vectors[metric.probe]
            vector = vectors[metric.probe].float().cpu()
            unit = vector.reshape(-1, vector.shape[-1]).mean(0)
            unit = unit / unit.norm().clamp_min(1e-12)
            acts = mean_activations(
                model,
                texts,
                layer=getattr(spec, "layer"),  # noqa: B009 (validation checked it has one)
                site=getattr(spec, "site", "resid_post"),
                module=getattr(spec, "module", None),
                batch_size=size,
            )
            judged.probe[index] = (acts @ unit).tolist()
        elif isinstance(metric, InstructionMetric) and metric.judge is not None:
            judged.addressed[index] = judge_scores((judges or {})[index], prompts, texts)
        elif isinstance(metric, InstructionMetric):
            judged.answers[index] = mean_activations(
                model, texts, layer=metric.layer, site="resid_post", module=None, batch_size=size
            )
    return judged
