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

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

__all__ = ["NAMED_POSITIONS", "SLICE_PATTERN", "PositionSpec"]

NAMED_POSITIONS = ("all", "prompt", "generated", "last")
SLICE_PATTERN = r"^(-?\d+)?:(-?\d+)?$"


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
