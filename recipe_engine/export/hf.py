"""`steer export --format hf`: a transformers model folder with the recipe baked into its weights.

Plain `AutoModelForCausalLM.from_pretrained(DIR)` computes the steered model: no engine, no
nnsight. Translations need biases; a family whose writers have none gets its config's switch
turned on (Llama: attention_bias, mlp_bias), with every bias the switch adds set to zero, so
nothing but the folded ops changes; a family without one is rebuilt as an equivalent family
that has it, or refused (export/families.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeError
from recipe_engine.export.destination import check_destination, write_folder_atomic
from recipe_engine.export.families import layout_for
from recipe_engine.export.fold import _GGUF, FamilyLayout, NotFoldable, fold_op, translates
from recipe_engine.export.groups import group_refusals
from recipe_engine.export.twins import twin_config, twin_state
from recipe_engine.plan import PlanOp

if TYPE_CHECKING:
    from recipe_engine.pipeline import CompiledRecipe

__all__ = ["bake", "export_hf", "refusals"]


def refusals(compiled: CompiledRecipe, layout: FamilyLayout) -> list[Diagnostic]:
    """One diagnostic per op that cannot be baked, at its intervention in the recipe."""
    from recipe_engine.export.fold import check_foldable

    doc, found = compiled.loaded.document, []
    seen: set[int] = set()
    for op in compiled.plan.ops:
        try:
            check_foldable(op, layout)
        except NotFoldable as exc:
            if op.index not in seen:
                seen.add(op.index)
                pointer = f"/interventions/{op.index}/{exc.field}"
                if doc.locate(pointer) is None:
                    pointer = f"/interventions/{op.index}"
                found.append(doc.diagnostic("cannot-bake", f"cannot bake: {exc}", pointer))
    return found


def _writer_kind(op: PlanOp) -> str:
    return "attn" if op.site in ("attn_out", "heads") else "mlp"


def _switches_needed(
    model: torch.nn.Module, layout: FamilyLayout, blocks: str, ops: list[PlanOp]
) -> set[str]:
    """Writers that must hold a translation but have no bias."""
    needed: set[str] = set()
    for op in ops:
        if op.site == "resid_pre" and op.layer == 0:
            continue  # the embedding: fold.py says whether it can take a translation
        kind = _writer_kind(op)
        path = layout.attn_writer if kind == "attn" else layout.mlp_writer
        if path is None:
            continue  # fold_op refuses it with the reason
        writer = model.get_submodule(f"{blocks}.0.{path}")
        if getattr(writer, "bias", None) is not None:
            continue
        if translates(op):
            needed.add(kind)
    return needed


def _rebuild(model: Any, switches: set[str], untie: bool, layout: FamilyLayout, blocks: str) -> Any:
    """A fresh model with the bias switches on (new biases zero) and, if the embedding changes
    while tied to the unembedding, an untied copy of the unembedding."""
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    config = copy.deepcopy(model.config)
    if layout.rebuild_as is not None:
        config = twin_config(config, layout.rebuild_as)
    for kind in sorted(switches):
        switch = layout.switch(kind)
        if switch is None or not hasattr(config, switch):
            why = layout.no_mlp_bias if kind == "mlp" and layout.no_mlp_bias else _GGUF
            raise NotFoldable(
                f"{type(config).__name__} has no bias switch for the {kind} output "
                f"projection, so it cannot hold the translation: {why}",
                field="vector",
            )
        setattr(config, switch, True)
    if untie:
        config.tie_word_embeddings = False
    dtype = next(model.parameters()).dtype
    # every weight is overwritten below (missing biases zeroed): skip the random init, as
    # from_pretrained itself does (it was 4 of SmolLM2-135M's 9.5 s of export)
    with no_init_weights():
        fresh: Any = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    fresh.tie_weights()  # init_weights, skipped above, is what ties them (a tied table saves once)
    state = model.state_dict()
    if layout.rebuild_as is not None:
        state = twin_state(model.config, state)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    if unexpected:
        raise RuntimeError(f"rebuilt model rejects weights {unexpected[:3]}")
    params = dict(fresh.named_parameters())
    with torch.no_grad():
        for name in missing:
            if name.endswith(".bias"):
                params[name].zero_()
            elif name == "lm_head.weight" or (untie and name.endswith("lm_head.weight")):
                params[name].copy_(model.get_output_embeddings().weight)
            else:
                raise RuntimeError(f"rebuilt model lacks weights for {name}")
        out = fresh.get_output_embeddings()
        if untie and out is not None:
            out.weight.copy_(model.get_output_embeddings().weight)
    for kind in switches:
        path = layout.attn_writer if kind == "attn" else layout.mlp_writer
        writer = None if path is None else fresh.get_submodule(f"{blocks}.0.{path}")
        if writer is not None and getattr(writer, "bias", None) is None:
            raise NotFoldable(
                f"{type(fresh).__name__}'s {path} takes no bias even with "
                f"{layout.switch(kind)}: true; {_GGUF}",
                field="vector",
            )
    fresh.eval()
    return fresh


def bake(model: Any, ops: list[PlanOp]) -> tuple[Any, FamilyLayout, set[str], bool]:
    """A plain transformers copy of `model` (a LoadedModel) with `ops` folded in: (model,
    layout, bias switches turned on, whether the unembedding was untied). Raises NotFoldable."""
    layout = layout_for(model.hf.config)
    blocks = model.adapter.blocks
    touches_embedding = any(op.site == "resid_pre" and op.layer == 0 for op in ops)
    changes_table = touches_embedding or layout.rescales_embedding
    untie = changes_table and bool(getattr(model.hf.config, "tie_word_embeddings", False))
    switches = _switches_needed(model.hf, layout, blocks, ops)
    with model.lock:
        baked: Any = _rebuild(model.hf, switches, untie, layout, blocks)
    for op in ops:
        fold_op(baked, layout, blocks, op)
    return baked, layout, switches, untie


def _provenance(compiled: CompiledRecipe) -> dict[str, Any]:
    from recipe_engine import __version__
    from recipe_engine.pipeline import _recipe_sha256

    loaded = compiled.loaded
    vectors = {
        n: json.loads(json.dumps(v.provenance, default=str)) for n, v in compiled.vectors.items()
    }
    return {
        "engine": "recipe-engine",
        "engine_version": __version__,
        "recipe": compiled.recipe.name,
        "recipe_sha256": _recipe_sha256(list(loaded.document.file_paths.values())),
        "model": compiled.recipe.model.id,
        "vectors": vectors,
        "plan": json.loads(json.dumps(compiled.plan.describe(), default=str)),
    }


def export_hf(compiled: CompiledRecipe, out: Path) -> dict[str, Any]:
    """Bake the plan into a copy of the model and write it (with the tokenizer) to `out`.
    Raises RecipeError, at the recipe's lines, when any op cannot be baked, and UsageError when
    `out` is a folder export did not write (export/destination.py)."""
    check_destination(out)
    model, doc = compiled.model, compiled.loaded.document
    try:
        layout = layout_for(model.hf.config)
    except NotFoldable as exc:
        raise RecipeError(
            [doc.diagnostic("cannot-bake", f"cannot bake: {exc}", "/model/id")]
        ) from None
    problems = refusals(compiled, layout)
    problems += group_refusals(compiled, "cannot-bake", "cannot bake")
    if problems:
        raise RecipeError(problems)
    ops = compiled.plan.ops
    try:
        baked, layout, switches, untie = bake(model, ops)
    except NotFoldable as exc:
        pointer = f"/interventions/{ops[0].index}" if ops else "/interventions"
        raise RecipeError([doc.diagnostic("cannot-bake", f"cannot bake: {exc}", pointer)]) from None
    provenance = _provenance(compiled)
    baked.config.steering_export = provenance

    def write(folder: Path) -> None:
        baked.save_pretrained(folder)
        with model.lock:
            model.tokenizer.save_pretrained(folder)

    summary = {
        "format": "hf",
        "out": str(out),
        "bias_switches": sorted(switches),
        "untied": untie,
        "ops": len(ops),
        **{k: provenance[k] for k in ("recipe", "recipe_sha256")},
    }
    write_folder_atomic(out, write, {"written_by": "steer export", **summary})
    return summary
