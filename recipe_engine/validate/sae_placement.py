"""Where an SAE feature is steered against where its SAE reads (cfg.json's hook_name).

A feature's decoder row is a direction learned at one point of the forward pass. Two spellings
name the same point: block L's output (resid_post) is block L+1's input (resid_pre). Steering
at another point is:
- an error at site heads: heads holds the per-head outputs before the attention's output
  projection, another space (and often another width) than any hook an SAE reads;
- a warning elsewhere: every other site is in the residual stream's basis with the model's
  hidden width, so the run is well-defined, and reusing a direction at neighbouring layers is a
  deliberate technique (the engine allows it for every other vector kind); but it is usually a
  slip (hook_resid_pre steered at resid_post), so it is said, and `--strict` fails on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.sae_lens import SaeConfig

__all__ = ["sae_placement"]


def _point(site: str, layer: int) -> tuple[str, int]:
    """One name per point of the forward pass: the residual stream entering block k is
    ("resid", k), whichever of resid_pre k or resid_post k-1 names it."""
    if site == "resid_pre":
        return ("resid", layer)
    if site == "resid_post":
        return ("resid", layer + 1)
    return (site, layer)


def sae_placement(
    doc: LoadedDocument, name: str, cfg: SaeConfig, item: Intervention, at: str, n_layers: int
) -> Iterator[Diagnostic]:
    if item.module is not None or item.layers is None:
        return  # an explicit module: the user chose the place by path
    if item.site == "heads":
        yield doc.diagnostic(
            "sae-hook-site",
            f"vector {name!r} is a feature of an SAE that reads {cfg.hook_name!r}, but this "
            "intervention steers site heads (the per-head outputs before the attention's output "
            f"projection, not that space): use site: {cfg.site}, layers: {cfg.layer}",
            at + "/site",
        )
        return
    try:
        layers = [layer for layer, _ in resolve_layers(item.layers, n_layers)]
    except (LayerRangeError, ValueError):
        return  # reported by the layer checks
    hook = _point(cfg.site, cfg.layer)
    if hook in {_point(item.site, layer) for layer in layers}:
        return
    shown = layers[0] if len(layers) == 1 else layers
    yield doc.diagnostic(
        "sae-hook-mismatch",
        f"vector {name!r} is a feature of an SAE that reads {cfg.hook_name!r} (layer "
        f"{cfg.layer} {cfg.site}), but this intervention steers layer {shown} {item.site}: the "
        "feature's direction was learned at the SAE's hook, elsewhere it is just a direction; "
        f"steer site: {cfg.site}, layers: {cfg.layer} (or ignore this if it is meant)",
        at + ("/site" if "site" in item.model_fields_set else "/layers"),
        severity="warning",
    )
