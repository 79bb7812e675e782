"""`interventions:` what to do to the model, where and how strongly.

Operations on an activation h at the selected positions, with u = v / |v| and
s = strength x layer weight:

    add          h <- h + s * v               (v unit-length first if normalize: true)
    set          h <- s * v
    scale        h <- s * h                   (no vector), or scale only the component along u
    zero         h <- 0
    mean_ablate  h <- m                       (m: a mean_activation vector)
    project_out  h <- h - s * (h . u) u       (s = 1 removes the direction entirely)
    clamp        h <- h - (h . u) u + s * u   (fix the component along u to s)
    lowrank      h <- h + s * R^T (W h + b - R h)   (a `kind: trained, form: lowrank` source:
                 LoReFT, R [r, D] with orthonormal rows; s = 1 is the trained intervention)

`site: experts` (MoE models) acts on the outputs E_i(h) of the routed experts i listed in
`experts:`, inside the mix y = sum_k w_k E_{i_k}(h) over each token's chosen experts, with the
router weights w_k as the model applies them (a token that did not route to a listed expert is
unchanged): add E_i <- E_i + s v, set E_i <- s v, scale E_i <- s E_i, zero E_i <- 0 (the
expert's contribution removed; the other weights are not renormalized), mean_ablate E_i <- m.
Ops that need each expert's own output (project_out, clamp, scale along a vector, lowrank) are
refused there. Shared experts (Qwen2-MoE's shared_expert, DeepSeek's shared_experts) are not
routed experts: steer them with `module:`.

Interventions run in the model's execution order (layer, then site: resid_pre, heads,
attn_out, experts, mlp_out, resid_post). Several interventions on the same layer and site compose in
the order they are written: each sees the result of the one before.

`when:` (format/conditions.py) gates an intervention per prompt: it acts only on the rows whose
condition fires at step 0, on every step of their generation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.conditions import Condition
from recipe_engine.format.layers import LayerSpec
from recipe_engine.format.positions import PositionSpec
from recipe_engine.format.sites import (
    INTERVENTION_SITE_FIELD,
    MODULE_FIELD,
    VECTOR_NAME_PATTERN,
    InterventionSite,
    Site,
)

__all__ = [
    "EXPERTS_OPS",
    "OPS",
    "OPS_NEEDING_VECTOR",
    "OPS_WITHOUT_VECTOR",
    "Intervention",
    "Op",
    "Site",
    "experts_op_refusal",
]

Op = Literal["add", "set", "scale", "zero", "mean_ablate", "project_out", "clamp", "lowrank"]
OPS: tuple[str, ...] = (
    "add",
    "set",
    "scale",
    "zero",
    "mean_ablate",
    "project_out",
    "clamp",
    "lowrank",
)
OPS_NEEDING_VECTOR = frozenset({"add", "set", "mean_ablate", "project_out", "clamp", "lowrank"})
OPS_WITHOUT_VECTOR = frozenset({"zero"})
# The ops exact at site experts from the experts module's inputs and output alone (module
# docstring); `scale` only without a vector.
EXPERTS_OPS = ("add", "set", "scale", "zero", "mean_ablate")


def experts_op_refusal(op: str) -> str:
    """Why `op` is refused at site experts (validation and compile say the same)."""
    what = "scale along a vector" if op == "scale" else f"op {op}"
    return (
        f"{what} needs each routed expert's own output, which the fused experts module never "
        "exposes (it returns only their router-weighted sum), so it cannot act exactly at "
        "site: experts; use add, set, scale (no vector), zero or mean_ablate there, or "
        f"{op} at site mlp_out (the mixed output)"
    )


class Intervention(RecipeModel):
    name: str | None = Field(default=None, description="Label shown in reports.")
    op: Op = Field(
        default="add",
        description="add | set | scale | zero | mean_ablate | project_out | clamp | lowrank "
        "(a trained low-rank intervention: its vector is `kind: trained, form: lowrank`).",
    )
    vector: Annotated[str, Field(pattern=VECTOR_NAME_PATTERN)] | None = Field(
        default=None,
        description="Name of a vector under `vectors:`. Required by add, set, mean_ablate, "
        "project_out, clamp and lowrank; optional for scale; not allowed for zero.",
    )
    layers: LayerSpec | None = Field(
        default=None,
        description="Layers to act on. Required unless `module` names a fixed module.",
    )
    site: InterventionSite = INTERVENTION_SITE_FIELD
    module: str | None = MODULE_FIELD
    heads: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="Attention heads to act on; only with site: heads. Default: all heads.",
    )
    experts: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="Routed experts to act on (indices into the MoE block's routed experts, "
        "0..num_experts-1); required with site: experts, and only there.",
    )
    positions: PositionSpec = "all"
    strength: float = Field(
        default=1.0,
        description="Multiplier s (see the op table). Multiplies the raw vector unless "
        "normalize is true.",
    )
    normalize: bool = Field(
        default=False,
        description="Use the vector at unit norm, so strength is the norm actually added.",
    )
    when: Condition | None = Field(
        default=None,
        description="Steer only the prompts whose activations match this condition (CAST): "
        "decided per prompt while it is read (step 0), held for its whole generation; the "
        "other prompts are left exactly as unsteered.",
    )
