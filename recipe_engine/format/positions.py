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

Chat prompts (`messages:`) add positions by role and by text, computed from the characters of
the rendered template (each token's offsets), so they are exact for any template:

    assistant        step 0: the text of assistant turns in the prompt, and the generation
                     prompt the template appends (its last token predicts the answer's first);
                     later steps: the new token (the answer being generated is the assistant's)
    user / system    step 0: the text of those turns;  later steps: nothing
    {after: TEXT}    step 0: every token after the last occurrence of TEXT in the rendered
                     prompt (a token straddling its end counts); later steps: the new token
    {after: TEXT, tokens: N}   step 0: only the first N of those;  later steps: nothing

Template markup (turn headers, end-of-turn tokens, a BOS, a default system prompt the template
inserts) belongs to no role; a plain-text prompt has no turns at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel

__all__ = [
    "ALL_POSITIONS",
    "NAMED_POSITIONS",
    "ROLE_POSITIONS",
    "SLICE_PATTERN",
    "AfterMarker",
    "IndexPositions",
    "MarkerPositions",
    "NamedPositions",
    "PositionSelector",
    "PositionSpec",
    "RolePositions",
    "SlicePositions",
    "TextPositions",
    "parse_positions",
]

NAMED_POSITIONS = ("all", "prompt", "generated", "last")
SLICE_PATTERN = r"^(-?\d+)?:(-?\d+)?$"
_SLICE = re.compile(SLICE_PATTERN)

NamedPosition = Literal["all", "prompt", "generated", "last"]
ROLE_POSITIONS = ("system", "user", "assistant")
Role = Literal["system", "user", "assistant"]


class AfterMarker(RecipeModel):
    """`{after: TEXT}`: the tokens after the last occurrence of TEXT in the rendered prompt."""

    after: str = Field(min_length=1, description="Literal text, e.g. `(` before a CAA answer.")
    tokens: int | None = Field(
        default=None,
        ge=1,
        description="Only the first N tokens after it (and no generated token). Default: all "
        "of them, and every generated token.",
    )


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
        if value in ROLE_POSITIONS:
            return "role"
        return "named" if value in NAMED_POSITIONS else "slice"
    if isinstance(value, list):
        return "indices"
    if isinstance(value, (dict, AfterMarker)):
        return "marker"
    return None


PositionSpec = Annotated[
    Annotated[Literal["all", "prompt", "generated", "last"], Tag("named")]
    | Annotated[Role, Tag("role")]
    | Annotated[AfterMarker, Tag("marker")]
    | Annotated[str, Tag("slice"), Field(pattern=SLICE_PATTERN)]
    | Annotated[list[int], Tag("indices"), Field(min_length=1)],
    Discriminator(
        _position_form,
        custom_error_type="positions_type",
        custom_error_message=(
            "positions must be all, prompt, generated, last, system, user, assistant, "
            '{after: TEXT}, a list of token indices, or a slice like "2:"'
        ),
    ),
    Field(
        description=(
            "Token positions: all | prompt | generated | last | system | user | assistant | "
            '{after: TEXT, tokens: N} | [indices] | "start:stop". Defined per generation step '
            "under the KV cache; see the README."
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


@dataclass(frozen=True)
class RolePositions:
    """The tokens of one role's turns (chat prompts); computed per batch from the rendered text."""

    role: Role

    @property
    def written(self) -> str:
        return self.role

    @property
    def steers_later_steps(self) -> bool:
        return self.role == "assistant"  # the answer being generated is the assistant's turn

    def per_step(self) -> dict[str, str]:
        if self.role == "assistant":
            first = "assistant turns and the generation prompt"
        else:
            first = f"the text of {self.role} turns"
        later = "the new token" if self.steers_later_steps else "nothing"
        return {"step 0": first, "later steps": later}


@dataclass(frozen=True)
class MarkerPositions:
    """The tokens after the last occurrence of a literal text in the rendered prompt."""

    after: str
    tokens: int | None = None

    @property
    def written(self) -> dict[str, Any]:
        return {"after": self.after} | ({"tokens": self.tokens} if self.tokens else {})

    @property
    def steers_later_steps(self) -> bool:
        return self.tokens is None

    def per_step(self) -> dict[str, str]:
        first = f"the tokens after {self.after!r}"
        if self.tokens is not None:
            first = f"the first {self.tokens} token(s) after {self.after!r}"
        return {
            "step 0": first,
            "later steps": "the new token" if self.tokens is None else "nothing",
        }


TextPositions = RolePositions | MarkerPositions  # need the prompt's text, not only its length
PositionSelector = NamedPositions | IndexPositions | SlicePositions | TextPositions
_NAMED: dict[str, NamedPositions] = {name: NamedPositions(name) for name in get_args(NamedPosition)}
ALL_POSITIONS = _NAMED["all"]


def parse_positions(value: str | list[int] | AfterMarker) -> PositionSelector:
    """A validated `positions:` value (PositionSpec) -> its selector. ValueError otherwise."""
    if isinstance(value, list):
        return IndexPositions(tuple(value))
    if isinstance(value, AfterMarker):
        return MarkerPositions(value.after, value.tokens)
    if value in ROLE_POSITIONS:
        return RolePositions(value)  # type: ignore[arg-type]  # checked just above
    if value in _NAMED:
        return _NAMED[value]
    match = _SLICE.match(value)
    if not match:
        raise ValueError(f"unsupported positions {value!r}")
    start, stop = (None if group is None else int(group) for group in match.groups())
    return SlicePositions(start, stop, value)
