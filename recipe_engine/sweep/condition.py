"""`steer condition`: find where and how a `when:` condition separates labelled prompts.

Like CAST's condition-point search: for every candidate layer, the condition vector is built at
that layer from the recipe's own spec (its `layer:` replaced; a vector without one is used as
is), each labelled prompt is read at the condition's site and reduced as the condition reduces
it (`aggregate`), and scored (`score`). Every threshold between two tuning scores, with each
comparator (above / below), is a cell; precision, recall and F1 (label 1 = should fire) are
measured on the tuning split, the best cell wins (ties: the lower layer, `above`, then the
middle of the tied thresholds, the widest margin) and is measured again on the held-out split,
which played no part in choosing it.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_engine.errors import UsageError

__all__ = ["ConditionCell", "ConditionSearch", "find_condition", "read_labelled"]

COMPARATORS = ("above", "below")


@dataclass(frozen=True)
class ConditionCell:
    layer: int
    compare: str
    threshold: float
    precision: float
    recall: float
    f1: float

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "compare": self.compare,
            "threshold": self.threshold,
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "f1": round(self.f1, 6),
        }


@dataclass
class ConditionSearch:
    recipe: str
    vector: str
    site: str
    aggregate: str
    score: str
    tuning: int  # labelled prompts used to choose
    heldout: int  # labelled prompts used only to measure the choice
    cells: list[ConditionCell]
    best: ConditionCell
    heldout_result: ConditionCell  # the best cell measured on the held-out split
    # per layer: (score, label) of every tuning prompt, for the plot
    scores: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    # `--set` lines that make the recipe score as the best cell did (issue 24 item 4: the
    # vector is rebuilt at each searched layer, so its `layer:` changes too, not only when's)
    sets: list[str] = field(default_factory=list)

    def snippet(self) -> str:
        """The `when:` to paste into the recipe."""
        b = self.best
        return (
            f"when: {{vector: {self.vector}, layer: {b.layer}, site: {self.site}, "
            f"aggregate: {self.aggregate}, score: {self.score}, compare: {b.compare}, "
            f"threshold: {b.threshold:g}}}"
        )

    def set_flags(self) -> str:
        """The best cell as `steer run RECIPE` flags."""
        from recipe_engine.sweep.axes import set_flags

        return set_flags(self.sets)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "recipe": self.recipe,
            "condition": {
                "vector": self.vector,
                "site": self.site,
                "aggregate": self.aggregate,
                "score": self.score,
            },
            "split": {"tuning": self.tuning, "heldout": self.heldout},
            "best": self.best.to_json(),
            "heldout": self.heldout_result.to_json(),
            "when": self.snippet(),
            "sets": list(self.sets),
            "cells": [c.to_json() for c in self.cells],
        }


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """{"text": ..., "label": 0|1} per line; a bad line is a usage error naming it."""
    from recipe_engine.load.prompt_files import PromptFileError, iter_lines

    texts: list[str] = []
    labels: list[int] = []
    try:
        for number, raw in iter_lines(path):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                text, label = row["text"], row["label"]
            except (ValueError, KeyError, TypeError):
                raise UsageError(
                    f'{path}:{number}: expected a JSON object {{"text": ..., "label": 0 or 1}}'
                ) from None
            if not isinstance(text, str) or label not in (0, 1) or isinstance(label, bool):
                raise UsageError(f"{path}:{number}: text must be a string and label 0 or 1")
            texts.append(text)
            labels.append(int(label))
    except (OSError, PromptFileError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if len(set(labels)) < 2 or min(labels.count(0), labels.count(1)) < 2:
        raise UsageError(f"{path}: needs at least 2 prompts of each label (0 and 1)")
    return texts, labels


def split(labels: Sequence[int], heldout: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the tuning and held-out prompts, stratified by label, seeded."""
    rng = random.Random(seed)
    tune: list[int] = []
    hold: list[int] = []
    for label in (0, 1):
        members = [i for i, y in enumerate(labels) if y == label]
        rng.shuffle(members)
        n = min(max(1, round(len(members) * heldout)), len(members) - 1) if heldout > 0 else 0
        hold += members[:n]
        tune += members[n:]
    return sorted(tune), sorted(hold)


def measure(
    scores: Sequence[float], labels: Sequence[int], compare: str, threshold: float, layer: int
) -> ConditionCell:
    fired = [(s > threshold) if compare == "above" else (s < threshold) for s in scores]
    tp = sum(f and y == 1 for f, y in zip(fired, labels, strict=True))
    fp = sum(f and y == 0 for f, y in zip(fired, labels, strict=True))
    fn = sum((not f) and y == 1 for f, y in zip(fired, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ConditionCell(layer, compare, threshold, precision, recall, f1)


def thresholds(scores: Sequence[float], limit: int) -> list[float]:
    """Midpoints between consecutive distinct scores (and one past each end), at most `limit`,
    rounded to 4 decimals: the value written into the recipe is the value measured."""
    values = sorted(set(scores))
    cuts = [values[0] - 1e-3] + [(a + b) / 2 for a, b in itertools.pairwise(values)]
    cuts.append(values[-1] + 1e-3)
    if len(cuts) > limit:
        step = (len(cuts) - 1) / (limit - 1)
        cuts = [cuts[round(i * step)] for i in range(limit)]
    return sorted({round(c, 4) for c in cuts})


def choose(cells: list[ConditionCell]) -> ConditionCell:
    top = max(c.f1 for c in cells)
    tied = [c for c in cells if c.f1 == top]
    layer = min(c.layer for c in tied)
    compare = next(k for k in COMPARATORS if any(c.layer == layer and c.compare == k for c in tied))
    row = sorted(
        (c for c in tied if c.layer == layer and c.compare == compare), key=lambda c: c.threshold
    )
    return row[(len(row) - 1) // 2]


Progress = Callable[[int, int], None]


def find_condition(
    path: str | Path,
    data: str | Path,
    *,
    intervention: int = 0,
    layers: Sequence[int | str] | None = None,
    heldout: float = 0.3,
    seed: int = 0,
    max_thresholds: int = 64,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
    allow_outside_root: bool = False,
) -> ConditionSearch:
    """Search layers x comparators x thresholds for the condition of `intervention`."""
    from recipe_engine.sweep.condition_scores import layer_scores

    if not 0 <= heldout < 1:
        raise UsageError(f"--holdout {heldout}: give a fraction in [0, 1)")
    texts, labels = read_labelled(Path(data))
    tune, hold = split(labels, heldout, seed)
    scored = layer_scores(
        path, texts, intervention, layers, overrides, progress, allow_outside_root
    )
    cells: list[ConditionCell] = []
    plot: dict[int, list[tuple[float, int]]] = {}
    for layer, scores in scored.layers.items():
        tune_scores, tune_labels = [scores[i] for i in tune], [labels[i] for i in tune]
        plot[layer] = list(zip(tune_scores, tune_labels, strict=True))
        for compare in COMPARATORS:
            for cut in thresholds(tune_scores, max_thresholds):
                cells.append(measure(tune_scores, tune_labels, compare, cut, layer))
    best = choose(cells)
    held_scores = [scored.layers[best.layer][i] for i in hold]
    held = measure(held_scores, [labels[i] for i in hold], best.compare, best.threshold, best.layer)
    leaf = scored.leaf
    sets = [*(overrides or [])]
    if scored.vector_follows_layer:
        sets.append(f"vectors.{leaf.vector}.layer={best.layer}")
    sets += [
        f"{scored.leaf_path}.layer={best.layer}",
        f"{scored.leaf_path}.compare={best.compare}",
        f"{scored.leaf_path}.threshold={best.threshold:g}",
    ]
    return ConditionSearch(
        scored.recipe,
        leaf.vector,
        leaf.site,
        leaf.aggregate,
        leaf.score,
        len(tune),
        len(hold),
        cells,
        best,
        held,
        plot,
        sets,
    )
