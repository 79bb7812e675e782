"""Fold a compiled plan into a model's weights, exactly, or say why an op cannot be folded.

Every op of the engine is an affine map of the activation it touches (execute/ops.py):
h -> A h + c. Where that activation is the output of one linear layer (a "writer": the
attention output projection at attn_out, the MLP's down projection at mlp_out) the map folds
into that layer: W <- A W, b <- A b + c. At `heads` it acts on the projection's input columns:
W <- W A, b <- b + W c. The residual stream itself (resid_post) is a sum of every earlier
writer, so only a translation (add) folds there, into the bias of the block's last writer (a
trained lowrank, affine in h, folds at attn_out / mlp_out / heads like any op; on the stream it
is refused); and the stream entering block 0 is the embedding, whose table takes any linear
map (a translation only where a position table exists: GPT-2's wpe). A and c are read off the
op itself (`transform` of the zero vector and of the identity), in float64, so what is folded
is what the engine computes, whatever the op.

Directional ablation ("abliteration") is project_out at attn_out and mlp_out of every layer
plus resid_pre of layer 0: every writer and the embedding orthogonalized against the direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.pytorch_utils import Conv1D

from recipe_engine.execute.ops import transform
from recipe_engine.format.positions import ALL_POSITIONS
from recipe_engine.plan import PlanOp

__all__ = ["FamilyLayout", "NotFoldable", "fold_op", "translates"]

_GGUF = "use --format gguf-control-vector, which llama.cpp applies at run time"


class NotFoldable(Exception):
    """An op that has no exact equivalent in the weights; the message says why, `field` which
    field of the intervention is at fault."""

    def __init__(self, message: str, *, field: str = "op") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FamilyLayout:
    family: str
    attn_writer: str  # relative to a block
    mlp_writer: str | None  # None: no single down projection (MoE: the experts mix)
    embeddings: tuple[str, ...]  # token table first; a position table after it
    resid_post_folds: bool  # the block's output is the stream plus its MLP writer's output
    # config switches that give a writer a bias ({} : every writer has one already)
    switches: tuple[tuple[str, str], ...] = (("attn", "attention_bias"), ("mlp", "mlp_bias"))
    # an equivalent architecture to rebuild as (export/families.py says why it is exact)
    rebuild_as: str | None = None
    resid_scale: float = 1.0  # the block adds resid_scale x its MLP output (Granite)
    no_mlp_bias: str = ""  # why the MLP writer cannot hold a translation ("" : it can)
    # MoE (mlp_writer None): every writer of the block's output, whichever the block has: the
    # experts' stacked down projections [experts, out, in], a shared expert's, a dense layer's
    mixed_writers: tuple[str, ...] = ()
    rescales_embedding: bool = False  # the twin's token table differs (untie the unembedding)

    def switch(self, kind: str) -> str | None:
        return dict(self.switches).get(kind)


def affine_of(op: PlanOp, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, c) with transform(h) == A h + c for every h of `width` features (float64)."""
    zero = torch.zeros(1, width, dtype=torch.float64)
    c = transform(zero, op)[0]
    rows = transform(torch.eye(width, dtype=torch.float64), op) - c  # row i: A e_i
    return rows.T.contiguous(), c


def translates(op: PlanOp) -> bool:
    """Whether the op adds a constant (c != 0), which only a bias can hold."""
    width = 1 if op.vector is None else int(op.vector.shape[-1])
    if op.lowrank is not None:
        width = op.lowrank.width
    return bool(affine_of(op, width)[1].abs().max() > 0)


def _linear_view(module: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W [out, in], b [out] or None) of a Linear or a GPT-2 Conv1D, in float64."""
    weight = module.weight.detach().double()
    bias = module.bias.detach().double() if getattr(module, "bias", None) is not None else None
    return (weight.T if isinstance(module, Conv1D) else weight), bias


def _store(module: Any, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Write W [out, in] and b back in the module's own layout and dtype; a module without a
    bias must have been given one (hf.py enables the config's switch first)."""
    dtype = module.weight.dtype
    with torch.no_grad():
        module.weight.copy_((weight.T if isinstance(module, Conv1D) else weight).to(dtype))
        if module.bias is None:
            if bool(bias.abs().max() > 0):
                raise NotFoldable(f"{type(module).__name__} has no bias to hold the translation")
            return
        module.bias.copy_(bias.to(dtype))


def _fold_output(module: torch.nn.Module, a: torch.Tensor, c: torch.Tensor) -> None:
    weight, bias = _linear_view(module)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64) if bias is None else bias
    _store(module, a @ weight, a @ bias + c)


def _fold_input(module: torch.nn.Module, a: torch.Tensor, c: torch.Tensor) -> None:
    weight, bias = _linear_view(module)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64) if bias is None else bias
    _store(module, weight @ a, bias + weight @ c)


def _fold_embedding(model: torch.nn.Module, layout: FamilyLayout, op: PlanOp, width: int) -> None:
    a, c = affine_of(op, width)
    tables: list[Any] = [model.get_submodule(path) for path in layout.embeddings]
    if bool(c.abs().max() > 0) and len(tables) < 2:
        raise NotFoldable(
            f"a translation of the stream entering block 0 needs a position table; "
            f"{layout.family} has none (write it at resid_post of a block instead)"
        )
    with torch.no_grad():
        for index, table in enumerate(tables):
            rows = table.weight.detach().double() @ a.T  # each row e -> A e
            if index == 1:
                rows = rows + c  # every position's row: the translation reaches every token
            table.weight.copy_(rows.to(table.weight.dtype))


def check_foldable(op: PlanOp, layout: FamilyLayout) -> None:
    """Raise NotFoldable when no weight change reproduces `op` exactly."""
    if op.site == "experts":
        raise NotFoldable(
            "site experts acts on chosen routed experts inside the mix: an add or set needs a "
            "per-expert output bias, which the fused experts of most families lack, and the "
            "export does not fold site experts at all (a zero or scale would fit the chosen "
            "experts' down projections, but that fold is not implemented); run it with the "
            "engine (steer run, steer serve)",
            field="site",
        )
    if op.gate is not None:
        raise NotFoldable(
            "`when:` decides per input whether the op acts; weights act on every input",
            field="when",
        )
    if op.positions != ALL_POSITIONS:
        raise NotFoldable(
            f"positions: {op.positions.written} acts on some tokens only; weights act on every "
            "token (use positions: all)",
            field="positions",
        )
    if op.vector is not None and op.vector.dim() != 1:
        raise NotFoldable(
            "a per-position vector differs from token to token; weights cannot", field="vector"
        )
    if op.site == "module" or op.layer is None:
        raise NotFoldable(
            "a `module:` path has no known writer to fold into; use a site", field="module"
        )
    if op.site == "resid_post" or (op.site == "resid_pre" and op.layer > 0):
        # The stream entering block L is what block L-1 wrote (fold_op moves it there).
        if op.op == "lowrank":
            raise NotFoldable(
                f"lowrank at {op.site} is h + R^T(W h + b - R h): it maps the whole stream (the "
                "sum of every earlier writer), not a constant translation, so no bias can hold "
                "it; train and apply it at attn_out or mlp_out (it folds exactly into that "
                "writer's weight and bias there), or run it with the engine (steer run, steer "
                "serve)",
                field="site",
            )
        if op.op != "add":
            raise NotFoldable(
                f"{op.op} at {op.site} acts on the whole stream (the sum of every earlier "
                "writer), which no single weight holds; write it at attn_out/mlp_out of every "
                "layer and resid_pre of layer 0 (directional ablation) or use add"
            )
        if not layout.resid_post_folds or layout.mlp_writer is None or layout.no_mlp_bias:
            why = layout.no_mlp_bias or (
                f"{layout.family} normalizes the MLP output before adding it to the stream"
            )
            raise NotFoldable(f"an add at {op.site} has no bias to enter: {why}", field="site")
    if op.site == "mlp_out" and layout.mlp_writer is None:
        if not layout.mixed_writers:
            raise NotFoldable(f"mlp_out has no single writer to fold into: {layout.no_mlp_bias}")
        if translates(op):
            # a linear map (c = 0) distributes over the mix: A sum_k w_k E_k = sum_k w_k A E_k
            raise NotFoldable(
                f"{op.op} at mlp_out adds a constant, which needs a bias in the MoE block: "
                f"{layout.no_mlp_bias}"
            )


def _fold_mixed(block: torch.nn.Module, layout: FamilyLayout, op: PlanOp) -> None:
    """A linear op (check_foldable refused translations) into every writer of a MoE block."""
    found = False
    for path in layout.mixed_writers:
        try:
            target: Any = block.get_submodule(path.rpartition(".")[0])
        except AttributeError:
            continue  # this block has no such writer (a dense layer, no shared expert)
        leaf = getattr(target, path.rpartition(".")[2], None)
        if leaf is None:
            continue
        found = True
        if isinstance(leaf, torch.nn.Parameter):  # stacked experts [experts, out, in]
            a, _ = affine_of(op, int(leaf.shape[1]))
            with torch.no_grad():
                folded = torch.einsum("oh,ehi->eoi", a, leaf.detach().double())
                leaf.copy_(folded.to(leaf.dtype))
        else:
            a, c = affine_of(op, int(_linear_view(leaf)[0].shape[0]))
            _fold_output(leaf, a, c)
    if not found:
        raise NotFoldable(f"no MLP writer found in the block ({', '.join(layout.mixed_writers)})")


def fold_op(model: torch.nn.Module, layout: FamilyLayout, blocks: str, op: PlanOp) -> None:
    """Fold one op into `model` (in place). Ops must come in the plan's (execution) order."""
    check_foldable(op, layout)
    assert op.layer is not None
    site, layer = op.site, op.layer
    if site == "resid_pre" and layer > 0:
        site, layer = "resid_post", layer - 1
    block = model.get_submodule(f"{blocks}.{layer}")
    if site == "resid_pre":
        table: Any = model.get_submodule(layout.embeddings[0])
        width = table.weight.shape[1]
        _fold_embedding(model, layout, op, int(width))
        return
    if site == "heads":
        writer = block.get_submodule(layout.attn_writer)
        columns = op.columns
        width = _linear_view(writer)[0].shape[1]
        a_sel, c_sel = affine_of(op, len(columns) if columns is not None else width)
        a = torch.eye(width, dtype=torch.float64)
        c = torch.zeros(width, dtype=torch.float64)
        index = torch.arange(width) if columns is None else columns.cpu()
        a[index.unsqueeze(1), index.unsqueeze(0)] = a_sel
        c[index] = c_sel
        _fold_input(writer, a, c)
        return
    if site == "mlp_out" and layout.mlp_writer is None:
        _fold_mixed(block, layout, op)
        return
    path = {"attn_out": layout.attn_writer, "mlp_out": layout.mlp_writer}.get(site)
    if site == "resid_post":
        path = layout.mlp_writer
    if path is None:
        raise NotFoldable(f"site {site} has no writer to fold into")
    writer = block.get_submodule(path)
    width = _linear_view(writer)[0].shape[0]
    a, c = affine_of(op, width)
    if site == "resid_post":
        c = c / layout.resid_scale  # the block adds resid_scale x the writer's output
    _fold_output(writer, a, c)
