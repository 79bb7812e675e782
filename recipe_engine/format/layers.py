"""Layer selections: which blocks an intervention or vector acts on, and with what weight.

Accepted forms:
    6                  one layer (negative counts from the end: -1 is the last)
    [2, 4, -1]         several layers, each with weight 1
    "2:6"              a Python-style half-open range (2, 3, 4, 5); "4:" and ":-2" work too
    all                every layer
    {6: 0.5, 8: 1.0}   per-layer weights; the weight multiplies the intervention's strength
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

__all__ = ["LayerRangeError", "LayerSpec", "resolve_layers"]

_RANGE = re.compile(r"^(-?\d+)?:(-?\d+)?$")
RANGE_PATTERN = r"^(all|(-?\d+)?:(-?\d+)?)$"


def _layer_form(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "index"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "range"
    if isinstance(value, dict):
        return "weights"
    return None


LayerSpec = Annotated[
    Annotated[int, Tag("index")]
    | Annotated[list[int], Tag("list"), Field(min_length=1)]
    | Annotated[str, Tag("range"), Field(pattern=RANGE_PATTERN)]
    | Annotated[dict[int, float], Tag("weights"), Field(min_length=1)],
    Discriminator(
        _layer_form,
        custom_error_type="layers_type",
        custom_error_message=(
            'layers must be an integer, a list of integers, a range like "2:6", `all`, '
            "or a {layer: weight} map"
        ),
    ),
    Field(
        description=(
            "Layers to act on: an index (negative counts from the end), a list, a half-open "
            'range "start:stop", `all`, or a {layer: weight} map whose weights multiply '
            "`strength`."
        )
    ),
]


class LayerRangeError(ValueError):
    """A layer index outside the model; `layer` is the offending index as written."""

    def __init__(self, layer: int, n_layers: int) -> None:
        self.layer = layer
        self.n_layers = n_layers
        super().__init__(
            f"layer {layer} out of range (model has {n_layers} layers: 0..{n_layers - 1}, "
            f"or -{n_layers}..-1 from the end)"
        )


def _normalize(layer: int, n_layers: int) -> int:
    if not -n_layers <= layer < n_layers:
        raise LayerRangeError(layer, n_layers)
    return layer % n_layers


def resolve_layers(spec: Any, n_layers: int) -> list[tuple[int, float]]:
    """Expand a validated LayerSpec into sorted (layer index, weight) pairs.

    Raises LayerRangeError for an index outside the model, ValueError for a duplicate.
    """
    pairs: list[tuple[int, float]]
    if isinstance(spec, int):
        pairs = [(_normalize(spec, n_layers), 1.0)]
    elif isinstance(spec, list):
        pairs = [(_normalize(layer, n_layers), 1.0) for layer in spec]
    elif isinstance(spec, dict):
        pairs = [(_normalize(layer, n_layers), float(w)) for layer, w in spec.items()]
    elif spec == "all":
        pairs = [(i, 1.0) for i in range(n_layers)]
    else:
        match = _RANGE.match(spec)
        if not match:
            raise ValueError(f"invalid layer range {spec!r}")
        start = int(match.group(1)) if match.group(1) else None
        stop = int(match.group(2)) if match.group(2) else None
        indices = list(range(n_layers))[slice(start, stop)]
        if not indices:
            raise ValueError(f"layer range {spec!r} selects no layer of a {n_layers}-layer model")
        pairs = [(i, 1.0) for i in indices]
    seen: set[int] = set()
    for layer, _ in pairs:
        if layer in seen:
            raise ValueError(f"layer {layer} is selected twice")
        seen.add(layer)
    return sorted(pairs)
