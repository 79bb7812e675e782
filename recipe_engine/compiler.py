"""Stage 6: a validated recipe + model + built vectors -> a Plan of concrete operations.

Each PlanOp names the module path and port it touches, the positions, the op, the prepared
tensor and the effective strength (strength x layer weight). Ops are sorted into the model's
execution order (nnsight raises OutOfOrderError otherwise); ops on the same module and port keep
the order they were written in, so they compose left to right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.errors import RecipeError
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.resolve.architectures import Port
from recipe_engine.resolve.model_loader import LoadedModel

__all__ = ["Plan", "PlanOp", "compile_plan"]

# Ops that use only the direction of their vector.
DIRECTION_OPS = frozenset({"project_out", "clamp", "scale"})


@dataclass(frozen=True)
class PlanOp:
    index: int  # position of the intervention in the recipe
    label: str
    op: str
    layer: int | None
    site: str  # a site name, or "module" for the escape hatch
    path: str
    port: Port
    positions: Any  # str | list[int], as in the recipe
    strength: float
    vector_name: str | None = None
    vector: torch.Tensor | None = None  # prepared: dtype/device of the model, sliced to heads
    columns: torch.Tensor | None = None  # heads site: feature columns of the selected heads
    heads: tuple[int, ...] | None = None
    order: tuple[int, int] = (0, 0)

    def describe(self) -> dict[str, Any]:
        vec = self.vector
        return {
            "intervention": self.index,
            "label": self.label,
            "op": self.op,
            "layer": self.layer,
            "site": self.site,
            "module": self.path,
            "port": self.port,
            "heads": list(self.heads) if self.heads is not None else None,
            "positions": self.positions,
            "positions_per_step": positions_per_step(self.positions),
            "vector": self.vector_name,
            "vector_norm": None if vec is None else round(float(vec.float().norm()), 6),
            "strength": self.strength,
        }


@dataclass
class Plan:
    ops: list[PlanOp] = field(default_factory=list)

    def describe(self) -> list[dict[str, Any]]:
        return [op.describe() for op in self.ops]


def positions_per_step(positions: Any) -> dict[str, str]:
    later = {
        "all": "the new token",
        "last": "the new token",
        "generated": "the new token",
    }.get(positions if isinstance(positions, str) else "", "nothing")
    first = {
        "all": "every real prompt token",
        "prompt": "every real prompt token",
        "generated": "nothing",
        "last": "the prompt's last token",
    }.get(positions if isinstance(positions, str) else "", f"prompt positions {positions}")
    return {"step 0": first, "later steps": later}


def _event_order(model: torch.nn.Module) -> dict[tuple[str, str], int]:
    """Order in which module inputs and outputs appear during a forward pass.

    A module's input comes when it is entered, its output when it is left, after its
    children's: so block L's input < its attention output < its MLP output < its own output.
    Registration order stands in for call order, which holds for every supported family.
    """
    order: dict[tuple[str, str], int] = {}
    counter = 0

    def visit(module: torch.nn.Module, name: str) -> None:
        nonlocal counter
        order[(name, "input")] = counter
        counter += 1
        for child_name, child in module.named_children():
            visit(child, f"{name}.{child_name}" if name else child_name)
        order[(name, "output")] = counter
        counter += 1

    visit(model, "")
    return order


def _fail(doc: LoadedDocument | None, code: str, message: str, pointer: str) -> RecipeError:
    from recipe_engine.diagnostics import Diagnostic

    if doc is not None:
        return RecipeError([doc.diagnostic(code, message, pointer)])
    return RecipeError([Diagnostic(code, message, pointer)])


def _prepare_vector(tensor: torch.Tensor, item: Intervention, model: LoadedModel) -> torch.Tensor:
    vec = tensor.detach().to(device=model.device, dtype=torch.float32)
    if item.normalize or item.op in DIRECTION_OPS:
        norm = vec.norm(dim=-1, keepdim=True)
        vec = vec / norm.clamp_min(1e-12)
    dtype = next(model.hf.parameters()).dtype
    return vec.to(dtype)


def compile_plan(
    recipe: Recipe,
    model: LoadedModel,
    vectors: dict[str, torch.Tensor],
    doc: LoadedDocument | None = None,
) -> Plan:
    """Resolve every intervention against the model. Raises RecipeError at the recipe line."""
    shape, adapter = model.shape, model.adapter
    events = _event_order(model.hf)
    ops: list[PlanOp] = []
    for index, item in enumerate(recipe.interventions):
        at = f"/interventions/{index}"
        label = item.name or f"{item.op} {item.vector or ''}".strip()
        if item.module is not None and "{layer}" not in item.module:
            targets: list[tuple[int | None, float]] = [(None, 1.0)]
        else:
            try:
                targets = list(resolve_layers(item.layers, shape.n_layers))
            except LayerRangeError as exc:
                raise _fail(doc, "layer-range", str(exc), at + "/layers") from None
            except ValueError as exc:
                raise _fail(doc, "layer-range", str(exc), at + "/layers") from None
        columns = None
        heads: tuple[int, ...] | None = None
        width = shape.hidden_size
        if item.site == "heads" and item.module is None:
            heads = tuple(item.heads) if item.heads else tuple(range(shape.n_heads))
            for head in heads:
                if head >= shape.n_heads:
                    raise _fail(
                        doc,
                        "head-range",
                        f"head {head} out of range (model has {shape.n_heads} heads)",
                        at + "/heads",
                    )
            hd = shape.head_dim
            columns = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in heads]).to(
                model.device
            )
            width = shape.heads_width
        what = "n_heads x head_dim" if columns is not None else "hidden size"
        if item.module is not None and item.vector is not None:
            probe_layer = targets[0][0]
            probe = (
                item.module.replace("{layer}", str(probe_layer))
                if probe_layer is not None
                else item.module
            )
            if (probe, "output") in events:
                width, what = model.module_width(probe), f"output width of {probe}"
        vector = None
        if item.vector is not None:
            raw = vectors[item.vector]
            if raw.shape[-1] != width:
                raise _fail(
                    doc,
                    "vector-dim",
                    f"vector {item.vector!r} has width {raw.shape[-1]}, but the model's {what} "
                    f"here is {width}",
                    at + "/vector",
                )
            if raw.dim() == 2 and item.op not in ("add", "set"):
                raise _fail(
                    doc,
                    "vector-shape",
                    f"vector {item.vector!r} holds one vector per position {list(raw.shape)}; "
                    "only add and set patch position by position. Use a one-vector source "
                    "(position: last or mean) for this op",
                    at + "/vector",
                )
            if raw.dim() not in (1, 2):
                raise _fail(
                    doc,
                    "vector-shape",
                    f"vector {item.vector!r} has shape {list(raw.shape)}",
                    at + "/vector",
                )
            if columns is not None:
                raw = raw.to(columns.device)[..., columns]
            vector = _prepare_vector(raw, item, model)
        for layer, weight in targets:
            if item.module is not None:
                path = (
                    item.module.replace("{layer}", str(layer)) if layer is not None else item.module
                )
                port: Port = "output"
                site = "module"
            else:
                assert layer is not None
                location = adapter.locate(item.site, layer)
                path, port, site = location.path, location.port, item.site
            if (path, port) not in events:
                raise _fail(
                    doc,
                    "unknown-module",
                    f"the model has no module {path!r} ({type(model.hf).__name__}, adapter "
                    f"{adapter.family})",
                    at + ("/module" if item.module else "/site"),
                )
            ops.append(
                PlanOp(
                    index=index,
                    label=label,
                    op=item.op,
                    layer=layer,
                    site=site,
                    path=path,
                    port=port,
                    positions=item.positions,
                    strength=item.strength * weight,
                    vector_name=item.vector,
                    vector=vector,
                    columns=columns,
                    heads=heads,
                    order=(events[(path, port)], index),
                )
            )
    ops.sort(key=lambda op: op.order)
    return Plan(ops)
