"""Token positions an intervention acts on, and what they mean at each generation step.

Generation runs with the KV cache: step 0 processes the whole (left-padded) prompt, each later
step processes exactly one new token. The words below are defined per step so that every token
of the final sequence is steered at most once, at the step that computes it:

    all        step 0: every real prompt token;       later steps: the new token
    prompt     step 0: every real prompt token;       later steps: nothing
    generated  step 0: nothing (*);                   later steps: the new token
    last       step 0: the last prompt token;         later steps: the new token
    [0, -1]    step 0: those prompt indices (negative from the prompt's end); later: nothing
    "2:"       step 0: that slice of the prompt;      later steps: nothing

(*) the first generated token is predicted from the prompt's last position at step 0, so
`generated` steers the positions that *hold* generated tokens, which exist from step 1 on.
Padding is never touched: indices count real tokens of each prompt, not padded columns.
In `trace` mode there is only step 0; `generated` is then an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Discriminator, Field, Tag

__all__ = [
    "ALL_POSITIONS",
    "NAMED_POSITIONS",
    "SLICE_PATTERN",
    "IndexPositions",
    "NamedPositions",
    "PositionSelector",
    "PositionSpec",
    "SlicePositions",
    "parse_positions",
]

NAMED_POSITIONS = ("all", "prompt", "generated", "last")
SLICE_PATTERN = r"^(-?\d+)?:(-?\d+)?$"
_SLICE = re.compile(SLICE_PATTERN)

NamedPosition = Literal["all", "prompt", "generated", "last"]

# The table above, as data: what each named form steers at step 0 and at every later step.
# Explicit indices and slices steer their prompt positions at step 0 and nothing later.
NAMED_STEPS: dict[str, tuple[str, str]] = {
    "all": ("every real prompt token", "the new token"),
    "prompt": ("every real prompt token", "nothing"),
    "generated": ("nothing", "the new token"),
    "last": ("the prompt's last token", "the new token"),
}


def _position_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "named" if value in NAMED_POSITIONS else "slice"
    if isinstance(value, list):
        return "indices"
    return None


PositionSpec = Annotated[
    Annotated[Literal["all", "prompt", "generated", "last"], Tag("named")]
    | Annotated[str, Tag("slice"), Field(pattern=SLICE_PATTERN)]
    | Annotated[list[int], Tag("indices"), Field(min_length=1)],
    Discriminator(
        _position_form,
        custom_error_type="positions_type",
        custom_error_message=(
            "positions must be all, prompt, generated, last, a list of token indices, "
            'or a slice like "2:"'
        ),
    ),
    Field(
        description=(
            'Token positions: all | prompt | generated | last | [indices] | "start:stop". '
            "Defined per generation step under the KV cache; see the README."
        )
    ),
]


# The parsed form the compiled plan carries: validation checked the spelling, so the trace
# (execute/positions.py) and `steer explain` dispatch on a type instead of re-reading strings.


@dataclass(frozen=True)
class NamedPositions:
    name: NamedPosition

    @property
    def written(self) -> str:
        return self.name

    @property
    def steers_later_steps(self) -> bool:
        """Whether each later generation step's new token is steered."""
        return NAMED_STEPS[self.name][1] != "nothing"

    def per_step(self) -> dict[str, str]:
        first, later = NAMED_STEPS[self.name]
        return {"step 0": first, "later steps": later}


@dataclass(frozen=True)
class IndexPositions:
    indices: tuple[int, ...]  # real-token indices of each prompt; negative from its end

    @property
    def written(self) -> list[int]:
        return list(self.indices)

    @property
    def steers_later_steps(self) -> bool:
        return False

    def per_step(self) -> dict[str, str]:
        return {"step 0": f"prompt positions {self.written}", "later steps": "nothing"}


@dataclass(frozen=True)
class SlicePositions:
    start: int | None  # real-token indices, as Python slices count them
    stop: int | None
    text: str  # as written in the recipe

    @property
    def written(self) -> str:
        return self.text

    @property
    def steers_later_steps(self) -> bool:
        return False

    def per_step(self) -> dict[str, str]:
        return {"step 0": f"prompt positions {self.written}", "later steps": "nothing"}


PositionSelector = NamedPositions | IndexPositions | SlicePositions
_NAMED: dict[str, NamedPositions] = {name: NamedPositions(name) for name in get_args(NamedPosition)}
ALL_POSITIONS = _NAMED["all"]


def parse_positions(value: str | list[int]) -> PositionSelector:
    """A validated `positions:` value (PositionSpec) -> its selector. ValueError otherwise."""
    if isinstance(value, list):
        return IndexPositions(tuple(value))
    if value in _NAMED:
        return _NAMED[value]
    match = _SLICE.match(value)
    if not match:
        raise ValueError(f"unsupported positions {value!r}")
    start, stop = (None if group is None else int(group) for group in match.groups())
    return SlicePositions(start, stop, value)
