# Over 400 lines: the compile stage in one place (gates, widths, heads, experts, per-layer rows).
"""Stage 6: a validated recipe + model + built vectors -> a Plan of concrete operations.

Each PlanOp (plan.py) names the module path and port it touches, the positions, the op, the
prepared tensor and the effective strength (strength x layer weight). Ops are sorted into the
model's execution order (nnsight raises OutOfOrderError otherwise); ops on the same module and
port keep the order they were written in, so they compose left to right.
"""

from __future__ import annotations

import torch

from recipe_engine.errors import RecipeError
from recipe_engine.format.conditions import (
    AllConditions,
    Condition,
    ConditionLeaf,
    NotCondition,
)
from recipe_engine.format.interventions import EXPERTS_OPS, Intervention, experts_op_refusal
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.format.positions import parse_positions
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.trained import TrainedVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.plan import ConditionRead, Gate, LowRank, Plan, PlanOp
from recipe_engine.resolve.architectures import Port
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.lowrank import packed_width, unpack_lowrank

__all__ = [
    "compile_part_plans",
    "compile_plan",
    "leading_marker",
    "per_layer_rows",
    "probe_logits",
]

# Ops that use only the direction of their vector.
DIRECTION_OPS = frozenset({"project_out", "clamp", "scale"})


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


def probe_logits(provenance: dict[str, dict[str, object]]) -> dict[str, tuple[float, float]]:
    """Each probe vector's logistic decision (scale, bias), from its build provenance."""
    found: dict[str, tuple[float, float]] = {}
    for name, info in provenance.items():
        scale, bias = info.get("logit_scale"), info.get("logit_bias")
        if isinstance(scale, (int, float)) and isinstance(bias, (int, float)):
            found[name] = (float(scale), float(bias))
    return found


def leading_marker(model: LoadedModel) -> bool:
    """Whether the tokenizer puts a marker of its own (`<s>`, `<|endoftext|>`) before a text."""
    with model.lock:  # the tokenizer is shared (LoadedModel)
        encoded = model.tokenizer("a", return_special_tokens_mask=True)
    mask = encoded.get("special_tokens_mask") or [0]
    return bool(mask[0]) and len(mask) > 1


class _GateCompiler:
    """`when:` trees -> Gates: each leaf located in the model and its direction prepared."""

    def __init__(
        self,
        model: LoadedModel,
        vectors: dict[str, torch.Tensor],
        events: Events,
        doc: LoadedDocument | None,
        probes: dict[str, tuple[float, float]],
    ) -> None:
        self.model, self.vectors, self.events, self.doc = model, vectors, events, doc
        self.probes = probes
        self.skip_first = leading_marker(model)

    def gate(self, condition: Condition, at: str) -> Gate:
        if isinstance(condition, ConditionLeaf):
            return Gate("leaf", read=self.leaf(condition, at))
        if isinstance(condition, NotCondition):
            return Gate("not", children=(self.gate(condition.not_, at + "/not"),))
        key = "all" if isinstance(condition, AllConditions) else "any"
        items = condition.all if isinstance(condition, AllConditions) else condition.any
        return Gate(
            key, children=tuple(self.gate(c, f"{at}/{key}/{k}") for k, c in enumerate(items))
        )

    def leaf(self, leaf: ConditionLeaf, at: str) -> ConditionRead:
        shape = self.model.shape
        if not -shape.n_layers <= leaf.layer < shape.n_layers:
            message = str(LayerRangeError(leaf.layer, shape.n_layers))
            raise _fail(self.doc, "layer-range", message, at + "/layer")
        layer = leaf.layer % shape.n_layers
        location = self.model.adapter.locate(leaf.site, layer)
        raw = self.vectors[leaf.vector]
        width = shape.heads_width if leaf.site == "heads" else shape.hidden_size
        if raw.dim() != 1 or raw.shape[-1] != width:
            raise _fail(
                self.doc,
                "vector-dim",
                f"condition vector {leaf.vector!r} has shape {list(raw.shape)}; a condition at "
                f"{leaf.site} needs one vector of width {width}",
                at + "/vector",
            )
        if leaf.score == "probability" and leaf.vector not in self.probes:
            raise _fail(
                self.doc,
                "condition-probability",
                f"score: probability needs a probe vector (kind: probe); {leaf.vector!r} has no "
                "logistic decision (a probe built by an older version: rebuild with --no-cache)",
                at + "/score",
            )
        vec = raw.detach().to(device=self.model.device, dtype=torch.float32)
        return ConditionRead(
            vector_name=leaf.vector,
            layer=layer,
            site=leaf.site,
            path=location.path,
            port=location.port,
            order=self.events[(location.path, location.port)],
            direction=vec / vec.norm().clamp_min(1e-12),
            aggregate=leaf.aggregate,
            score=leaf.score,
            compare=leaf.compare,
            threshold=leaf.threshold,
            skip_first=self.skip_first,
            logit=self.probes.get(leaf.vector) if leaf.score == "probability" else None,
        )


def _check_gate_order(ops: list[PlanOp], doc: LoadedDocument | None, at: str) -> None:
    """A condition must be read no later than the first place its intervention acts."""
    if not ops or ops[0].gate is None:
        return
    first = min(op.order[0] for op in ops)
    for leaf in ops[0].gate.leaves():
        if leaf.order > first:
            raise _fail(
                doc,
                "condition-after-target",
                f"the condition reads layer {leaf.layer} {leaf.site}, after the intervention "
                "first acts: a row's gate must be known before its first steered layer",
                at + "/when",
            )


Targets = list[tuple[int | None, float]]  # (layer, weight); layer None: a fixed module path
Events = dict[tuple[str, str], int]


def _targets(item: Intervention, n_layers: int, doc: LoadedDocument | None, at: str) -> Targets:
    if item.module is not None and "{layer}" not in item.module:
        return [(None, 1.0)]
    try:
        return list(resolve_layers(item.layers, n_layers))
    except LayerRangeError as exc:
        raise _fail(doc, "layer-range", str(exc), at + "/layers") from None
    except ValueError as exc:
        raise _fail(doc, "layer-range", str(exc), at + "/layers") from None


def _head_columns(
    item: Intervention,
    model: LoadedModel,
    doc: LoadedDocument | None,
    at: str,
    targets: Targets,
) -> tuple[tuple[int, ...] | None, torch.Tensor | None]:
    """The heads site: the selected heads and their feature columns (None elsewhere)."""
    shape = model.shape
    if item.site != "heads" or item.module is not None:
        return None, None
    for layer, _ in targets:
        if layer is not None and layer in model.heads_refusals:
            raise _fail(doc, "heads-geometry", model.heads_refusals[layer], at + "/site")
    heads = tuple(item.heads) if item.heads else tuple(range(shape.n_heads))
    for head in heads:
        if head >= shape.n_heads:
            raise _fail(
                doc,
                "head-range",
                f"head {head} out of range (model has {shape.n_heads} heads)",
                at + "/heads",
            )
    columns = torch.cat([torch.arange(*shape.head_columns(h)) for h in heads]).to(model.device)
    return heads, columns


def _experts(
    item: Intervention,
    model: LoadedModel,
    doc: LoadedDocument | None,
    at: str,
    targets: Targets,
) -> tuple[tuple[int, ...], int, tuple[str, str]] | None:
    """site experts: the routed experts acted on, the block's count and the experts module's
    (index, weights) parameter names; None elsewhere. Every target layer must have a routed
    experts module (resolve/experts.py)."""
    if item.site != "experts" or item.module is not None:
        return None
    if item.op not in EXPERTS_OPS or (item.op == "scale" and item.vector is not None):
        raise _fail(doc, "experts-op", experts_op_refusal(item.op), at + "/op")
    if not item.experts:
        raise _fail(doc, "missing-experts", "site: experts needs `experts:` (which ones)", at)
    found = []
    for layer, _ in targets:
        assert layer is not None  # site experts always names layers
        if layer not in model.experts:
            why = model.experts_refusals.get(layer) or (
                f"the routed experts of layer {layer} cannot be found on backend "
                f"{model.backend}; use site: mlp_out"
            )
            raise _fail(doc, "experts-site", why, at + "/site")
        found.append(model.experts[layer])
    count = found[0].count
    chosen = tuple(item.experts)
    for k, expert in enumerate(chosen):
        for module in found:
            if expert >= module.count:
                raise _fail(
                    doc,
                    "expert-range",
                    f"expert {expert} out of range ({module.path} has {module.count} routed "
                    f"experts: 0..{module.count - 1})",
                    f"{at}/experts/{k}",
                )
    return chosen, count, (found[0].index_arg, found[0].weights_arg)


def _expected_width(
    item: Intervention,
    model: LoadedModel,
    columns: torch.Tensor | None,
    probe_layer: int | None,
    events: Events,
) -> tuple[int, str]:
    """The width a vector must have here, and what that width is (for the error)."""
    width = model.shape.heads_width if columns is not None else model.shape.hidden_size
    what = "n_heads x head_dim" if columns is not None else "hidden size"
    if item.module is not None and item.vector is not None:
        probe = (
            item.module.replace("{layer}", str(probe_layer))
            if probe_layer is not None
            else item.module
        )
        if (probe, "output") in events:
            width, what = model.module_width(probe), f"output width of {probe}"
    return width, what


def _checked_vector(
    item: Intervention,
    raw: torch.Tensor,
    width: int,
    what: str,
    doc: LoadedDocument | None,
    at: str,
) -> None:
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


def _location(
    item: Intervention,
    layer: int | None,
    model: LoadedModel,
    events: Events,
    doc: LoadedDocument | None,
    at: str,
) -> tuple[str, Port, str]:
    """(module path, port, site) of one target of an intervention."""
    adapter = model.adapter
    if item.module is not None:
        path = item.module.replace("{layer}", str(layer)) if layer is not None else item.module
        port: Port = "output"
        site = "module"
    elif item.site == "experts":
        assert layer is not None and layer in model.experts  # _experts checked every layer
        # ordered at the experts module's input: the op edits its routing weights there and
        # its output when it returns (execute/experts.py)
        path, port, site = model.experts[layer].path, "input", "experts"
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
    return path, port, site


def per_layer_rows(recipe: Recipe, n_layers: int) -> dict[str, list[int]]:
    """Trained vectors holding one row per layer ([L, D]): the layer of each row."""
    rows: dict[str, list[int]] = {}
    for name, spec in recipe.vectors.items():
        if isinstance(spec, TrainedVector) and not spec.shared:
            try:
                layers = [layer for layer, _ in resolve_layers(spec.layers, n_layers)]
            except ValueError:
                continue  # the vector's own build reports it at its line
            if len(layers) > 1:
                rows[name] = layers
    return rows


def _layer_row(
    item: Intervention,
    raw: torch.Tensor,
    layer: int | None,
    trained: list[int],
    doc: LoadedDocument | None,
    at: str,
) -> torch.Tensor:
    """The row of a per-layer trained vector that belongs to `layer`."""
    rank = 3 if item.op == "lowrank" else 2  # lowrank: [L, r, 2D + 1]
    if layer not in trained or raw.dim() != rank or raw.shape[0] != len(trained):
        raise _fail(
            doc,
            "vector-layer",
            f"vector {item.vector!r} was trained with one vector per layer for layers {trained}; "
            f"layer {layer} has none: act on those layers, or train it with shared: true",
            at + "/layers",
        )
    return raw[trained.index(layer)]


def _lowrank(
    item: Intervention,
    raw: torch.Tensor,
    width: int,
    what: str,
    columns: torch.Tensor | None,
    model: LoadedModel,
    doc: LoadedDocument | None,
    at: str,
) -> LowRank:
    """op lowrank's R, W, b from a packed [r, 2D + 1] tensor (vectors/lowrank.py), checked
    against the width here and cast to the model's dtype (no normalizing: R is orthonormal)."""
    if raw.dim() != 2 or packed_width(raw) is None:
        raise _fail(
            doc,
            "vector-shape",
            f"op lowrank needs a `kind: trained, form: lowrank` vector; {item.vector!r} has shape "
            f"{list(raw.shape)}",
            at + "/vector",
        )
    if columns is not None and len(columns) != width:
        raise _fail(
            doc,
            "lowrank-heads",
            "op lowrank acts on all heads together (it was trained on the whole heads site); "
            "remove `heads:`",
            at + "/heads",
        )
    if packed_width(raw) != width:
        raise _fail(
            doc,
            "vector-dim",
            f"low-rank intervention {item.vector!r} acts on width {packed_width(raw)}, but the "
            f"model's {what} here is {width}",
            at + "/vector",
        )
    dtype = next(model.hf.parameters()).dtype
    r, w, b = (t.detach().to(device=model.device, dtype=dtype) for t in unpack_lowrank(raw))
    return LowRank(r, w, b)


def _compile_one(
    index: int,
    item: Intervention,
    model: LoadedModel,
    vectors: dict[str, torch.Tensor],
    events: Events,
    doc: LoadedDocument | None,
    at: str,
    gates: _GateCompiler,
    per_layer: dict[str, list[int]] | None = None,
) -> list[PlanOp]:
    """The ops of one intervention: one per target layer (or one for a fixed module path)."""
    label = item.name or f"{item.op} {item.vector or ''}".strip()
    targets = _targets(item, model.shape.n_layers, doc, at)
    heads, columns = _head_columns(item, model, doc, at, targets)
    experts = _experts(item, model, doc, at, targets)
    vector = None
    rows: dict[int | None, torch.Tensor] = {}
    lowranks: dict[int | None, LowRank] = {}
    if item.op == "lowrank":
        assert item.vector is not None  # validation: op lowrank needs a vector
        raw = vectors[item.vector]
        trained = (per_layer or {}).get(item.vector)
        width, what = _expected_width(item, model, columns, targets[0][0], events)
        for layer, _ in targets:
            part = raw if trained is None else _layer_row(item, raw, layer, trained, doc, at)
            lowranks[layer] = _lowrank(item, part, width, what, columns, model, doc, at)
    elif item.vector is not None:
        raw = vectors[item.vector]
        trained = (per_layer or {}).get(item.vector)
        width, what = _expected_width(item, model, columns, targets[0][0], events)
        for layer, _ in targets if trained is not None else []:
            row = _layer_row(item, raw, layer, trained, doc, at)  # type: ignore[arg-type]
            _checked_vector(item, row, width, what, doc, at)
            row = row.to(columns.device)[..., columns] if columns is not None else row
            rows[layer] = _prepare_vector(row, item, model)
        if trained is None:
            _checked_vector(item, raw, width, what, doc, at)
            if columns is not None:
                raw = raw.to(columns.device)[..., columns]
            vector = _prepare_vector(raw, item, model)
    positions = parse_positions(item.positions)
    gate = None if item.when is None else gates.gate(item.when, at + "/when")
    ops: list[PlanOp] = []
    for layer, weight in targets:
        path, port, site = _location(item, layer, model, events, doc, at)
        ops.append(
            PlanOp(
                index=index,
                label=label,
                op=item.op,
                layer=layer,
                site=site,
                path=path,
                port=port,
                positions=positions,
                strength=item.strength * weight,
                vector_name=item.vector,
                vector=rows.get(layer, vector),
                lowrank=lowranks.get(layer),
                columns=columns,
                heads=heads,
                experts=None if experts is None else experts[0],
                experts_count=None if experts is None else experts[1],
                experts_args=None if experts is None else experts[2],
                order=(events[(path, port)], index),
                gate=gate,
            )
        )
    _check_gate_order(ops, doc, at)
    return ops


def compile_plan(
    recipe: Recipe,
    model: LoadedModel,
    vectors: dict[str, torch.Tensor],
    doc: LoadedDocument | None = None,
    *,
    interventions: list[Intervention] | None = None,
    pointer: str = "/interventions",
    probes: dict[str, tuple[float, float]] | None = None,
) -> Plan:
    """Resolve every intervention (the recipe's, or `interventions` written at `pointer`)
    against the model. `probes`: each probe vector's logistic (scale, bias), for conditions
    with `score: probability` (probe_logits). Raises RecipeError at the recipe line."""
    events = _event_order(model.hf)
    gates = _GateCompiler(model, vectors, events, doc, probes or {})
    items = recipe.interventions if interventions is None else interventions
    per_layer = per_layer_rows(recipe, model.shape.n_layers)
    ops: list[PlanOp] = []
    for index, item in enumerate(items):
        at = f"{pointer}/{index}"
        ops.extend(_compile_one(index, item, model, vectors, events, doc, at, gates, per_layer))
    ops.sort(key=lambda op: op.order)
    return Plan(ops)


def compile_part_plans(
    recipe: Recipe,
    model: LoadedModel,
    vectors: dict[str, torch.Tensor],
    doc: LoadedDocument | None,
    default: Plan,
    probes: dict[str, tuple[float, float]] | None = None,
) -> list[Plan]:
    """One plan per part of run.prompts (format/prompt_groups.py): `default` for prompts
    without a group, else the group's interventions (or the recipe's) at the group's strength."""
    plans: list[Plan] = []
    for part in prompt_parts(recipe.run.prompts):
        group = part.group
        if group is None or (group.interventions is None and group.strength is None):
            plans.append(default)
            continue
        items, pointer = recipe.interventions, "/interventions"
        if group.interventions is not None:
            items, pointer = group.interventions, f"/run/prompts/{part.index}/interventions"
        if group.strength is not None:
            items = [item.model_copy(update={"strength": group.strength}) for item in items]
        plans.append(
            compile_plan(
                recipe, model, vectors, doc, interventions=items, pointer=pointer, probes=probes
            )
        )
    return plans
