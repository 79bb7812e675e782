"""Read a sparse autoencoder saved in sae-lens's layout, torch-free: a folder holding
`cfg.json` (its `hook_name`, or `hook_point` in older releases, names where the SAE reads, in
TransformerLens's naming: `blocks.L.hook_resid_post`) and `sae_weights.safetensors` (`W_dec`
[d_sae, d_in]: row f is feature f's direction in the model's activation space, `b_dec`, `W_enc`,
`b_enc`). `kind: sae_feature` steers along one decoder row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SaeConfig", "SaeLayoutError", "read_sae_config"]

# TransformerLens hook names -> the engine's sites
_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_out)$")


class SaeLayoutError(ValueError):
    pass


@dataclass(frozen=True)
class SaeConfig:
    layer: int
    site: str
    hook_name: str


def read_sae_config(weights: Path) -> SaeConfig:
    """The layer and site of the SAE whose weights are `weights` (cfg.json beside it)."""
    cfg_path = weights.parent / "cfg.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SaeLayoutError(
            f"there is no cfg.json beside {weights.name}; sae-lens saves one with the SAE"
        ) from None
    except (OSError, ValueError) as exc:
        raise SaeLayoutError(f"its cfg.json cannot be read as JSON ({exc})") from None
    hook = cfg.get("hook_name", cfg.get("hook_point")) if isinstance(cfg, dict) else None
    if not isinstance(hook, str):
        raise SaeLayoutError(
            "its cfg.json has no `hook_name` (nor `hook_point`, older sae-lens) saying where the "
            "SAE reads"
        )
    found = _HOOK.match(hook)
    if found is None:
        raise SaeLayoutError(
            f"its cfg.json hook_name {hook!r} is no hook point the engine steers: expected "
            "blocks.L.hook_resid_pre, blocks.L.hook_resid_post, blocks.L.hook_attn_out or "
            "blocks.L.hook_mlp_out"
        )
    return SaeConfig(int(found.group(1)), found.group(2), hook)
