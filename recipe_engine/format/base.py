"""The base every recipe model shares: strict, closed, finite."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["RecipeModel"]


class RecipeModel(BaseModel):
    # extra=forbid: a typo (`strenght:`) must be an error, not a silently ignored key.
    # strict: "4" is not 4, "yes" is not true; YAML already gives real numbers and booleans.
    # allow_inf_nan=False: `.nan` or `.inf` as a strength is a mistake, never a setting.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        validate_default=False,
    )
