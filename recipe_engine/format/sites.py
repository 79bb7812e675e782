"""Sites: named places in a transformer block where a vector is read or written."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

__all__ = [
    "INTERVENTION_SITES",
    "MODULE_PATTERN",
    "SITES",
    "VECTOR_NAME_PATTERN",
    "InterventionSite",
    "Site",
]

Site = Literal["resid_pre", "resid_post", "attn_out", "mlp_out", "heads"]
SITES: tuple[str, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out", "heads")
# Interventions may also write the routed experts' outputs of a MoE block, before the router
# weights mix them. Nothing can read there (the experts module holds the experts' outputs only
# already mixed), so vectors and conditions keep `Site`.
InterventionSite = Literal["resid_pre", "resid_post", "attn_out", "mlp_out", "heads", "experts"]
INTERVENTION_SITES: tuple[str, ...] = (*SITES, "experts")

# Dotted module path below the model root, with an optional {layer} placeholder,
# e.g. "transformer.h.{layer}.mlp.c_fc" or "model.layers.{layer}.self_attn.o_proj".
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+|\{layer\}))*$"
VECTOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Typed Any: Field() stands in for a default of the annotated Literal type.
SITE_FIELD: Any = Field(
    default="resid_post",
    description=(
        "resid_pre (block input) | resid_post (block output) | attn_out (attention output) | "
        "mlp_out (MLP output) | heads (per-head slices of the input of the attention output "
        "projection)."
    ),
)
INTERVENTION_SITE_FIELD: Any = Field(
    default="resid_post",
    description=(
        "resid_pre (block input) | resid_post (block output) | attn_out (attention output) | "
        "mlp_out (MLP output; on MoE models the MoE block's mixed output) | heads (per-head "
        "slices of the input of the attention output projection) | experts (the outputs of "
        "the routed experts listed in `experts:`, before the router weights mix them; MoE "
        "models only)."
    ),
)
MODULE_FIELD: Any = Field(
    default=None,
    pattern=MODULE_PATTERN,
    description=(
        "Escape hatch: an explicit module path (its output is used), e.g. "
        "transformer.h.{layer}.mlp.c_fc. {layer} is replaced by each selected layer. "
        "Overrides `site`."
    ),
)
