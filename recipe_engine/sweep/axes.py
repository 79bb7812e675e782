"""What a sweep is asked for, checked before its first cell runs: the layers (written as a
recipe writes `layers:`) and the effect metric (a name the recipe's report will produce).

Kept torch-free and apart from the grid runner so that every mistake in the flags is a usage
error in milliseconds, not after a cell has loaded the model and run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from recipe_engine.errors import UsageError
from recipe_engine.format.layers import RANGE_PATTERN, LayerRangeError, resolve_layers
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import (
    ConceptMetric,
    KLBaselineMetric,
    LogitDiffMetric,
    PerplexityMetric,
    RepetitionMetric,
    TokenProbMetric,
)

__all__ = ["metric_names", "parse_layer_items", "resolve_sweep_layers", "set_flags"]

_RANGE_OR_ALL = re.compile(RANGE_PATTERN)
_INDEX = re.compile(r"^-?\d+$")


def parse_layer_items(values: Sequence[int | str]) -> list[int | str]:
    """`--layers` words -> layer specs of the recipe format: indices, "a:b" ranges, `all`.

    Words may hold comma-separated lists (`0,1`, `0, 2:4`), as people type them."""
    items: list[int | str] = []
    for value in values:
        if isinstance(value, int):
            items.append(value)
            continue
        for word in (w.strip() for w in value.split(",")):
            if not word:
                continue
            if _INDEX.match(word):
                items.append(int(word))
            elif _RANGE_OR_ALL.match(word):
                items.append(word)
            else:
                raise UsageError(
                    f"--layers {word!r}: expected what a recipe's `layers:` takes: an index "
                    "(negative counts from the end), a range a:b (a: and :b too), or all; "
                    "several separated by spaces or commas"
                )
    if not items:
        raise UsageError("--layers: give at least one layer")
    return items


def resolve_sweep_layers(items: Sequence[int | str], n_layers: int) -> list[int]:
    """Layer indices of the model, in the order given, each once (recipe resolution rules)."""
    layers: list[int] = []
    for item in items:
        try:
            layers.extend(layer for layer, _ in resolve_layers(item, n_layers))
        except (LayerRangeError, ValueError) as exc:
            raise UsageError(f"--layers {item}: {exc}") from None
    return list(dict.fromkeys(layers))


def metric_names(recipe: Recipe) -> list[str]:
    """The names of the metrics a run of `recipe` reports (as report/build.py names them)."""
    names: list[str] = []
    for metric in recipe.report.metrics:
        if isinstance(metric, TokenProbMetric):
            names.extend(f"token_prob:{name}" for name in metric.tokens)
        elif isinstance(metric, LogitDiffMetric):
            names.append("logit_diff")
        elif isinstance(metric, KLBaselineMetric):
            names.append("kl_baseline" if metric.text is None else "kl_baseline:text")
        elif isinstance(metric, PerplexityMetric):
            names.append("perplexity")
        elif isinstance(metric, ConceptMetric):
            names += [f"concept:{metric.name}", f"concept:{metric.name}:above"]
        elif isinstance(metric, RepetitionMetric):
            names += [f"repetition:distinct-{metric.n}", "repetition:longest"]
        else:  # fluency, instruction: one value named as the kind
            names.append(metric.kind)
    return names


def set_flags(sets: Sequence[str]) -> str:
    """`--set` lines as a shell would take them: `--set A=1 --set 'B=[x, y]'`."""
    import shlex

    return " ".join(f"--set {shlex.quote(s)}" for s in sets)
