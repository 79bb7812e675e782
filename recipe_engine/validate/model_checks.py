"""Stage 3 (`--check-model`): the recipe against the model's config, without weights or torch.

Layer and head indices must exist, and vector files must match the width of the site they act
on. Catching these here means the user sees the recipe line, not nnsight's
"'Envoy' object has no attribute '10'" or a bare torch shape error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from recipe_engine.builtin_models import builtin_name
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.conditions import condition_leaves
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import InstructionMetric
from recipe_engine.format.vectors import FileVector, RandomVector, SaeFeatureVector
from recipe_engine.load.gguf_header import GGUFError, read_gguf_metadata, shape_config_from_gguf
from recipe_engine.load.gguf_vectors import is_gguf, read_gguf_header
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.load.sae_lens import SaeLayoutError, read_sae_config
from recipe_engine.load.safetensors_header import SafetensorsError, read_header
from recipe_engine.load.source_map import join_pointer
from recipe_engine.model_config import (
    ModelShape,
    ModelUnavailable,
    cached_hub_folder,
    custom_code_entries,
    custom_code_message,
    is_local_path,
    read_model_shape,
    shape_from_config,
)
from recipe_engine.model_store import PACKAGE_PREFIX, local_model
from recipe_engine.validate.chat_template import chat_template_problems
from recipe_engine.validate.conditions import all_interventions, check_condition_order
from recipe_engine.validate.lowrank import check_lowrank_rank
from recipe_engine.validate.sae_placement import sae_placement

__all__ = ["ENVIRONMENT_CODES", "check_against_model"]

# Problems of the machine, not of the recipe: they map to exit code 3.
ENVIRONMENT_CODES = frozenset({"model-not-cached", "model-not-installed"})


def _model_shape(spec: ModelSpec, recipe_dir: Path) -> ModelShape:
    """From config.json, or from a GGUF file's header (never dequantized here)."""
    local = local_model(spec.id, spec.gguf_file, recipe_dir)
    if local is not None and local.gguf:
        try:
            return shape_from_config(shape_config_from_gguf(read_gguf_metadata(local.path)))
        except GGUFError as exc:
            raise ModelUnavailable("gguf-invalid", f"{local.reference}: {exc}") from None
    return read_model_shape(spec.id, spec.revision, recipe_dir)


def check_against_model(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    spec = recipe.model
    try:
        shape = _model_shape(spec, doc.base_dir("/model/id"))
    except ModelUnavailable as exc:
        if exc.code == "model-not-cached" and recipe.run.backend == "remote":
            # NDIF holds the weights; the config and tokenizer are fetched when the run
            # starts. Shapes cannot be checked offline: say so, without failing.
            return [
                doc.diagnostic(
                    "model-shape-unchecked",
                    f"{spec.id!r} is not in the local cache, so layers, heads and widths are "
                    "checked when the remote run starts (it fetches the config)",
                    "/model/id",
                    severity="warning",
                )
            ]
        return [doc.diagnostic(exc.code, str(exc), "/model/id")]
    found = list(_ModelChecks(recipe, doc, shape).run())
    found += check_condition_order(recipe, doc, shape.n_layers)
    found += chat_template_problems(recipe, doc)
    if (
        builtin_name(spec.id) is None
        and not is_local_path(spec.id)
        and not spec.id.startswith(PACKAGE_PREFIX)
        and not spec.trust_remote_code
    ):
        # A cached hub model: the reference checks only see local folders, so its custom code
        # (auto_map) is refused here, from its cached JSON (local folders: references.py).
        entries = custom_code_entries(cached_hub_folder(spec.id, spec.revision))
        if entries:
            message = custom_code_message(spec.id, entries)
            found.append(doc.diagnostic("remote-code-not-trusted", message, "/model/id"))
    return found


class _ModelChecks:
    def __init__(self, recipe: Recipe, doc: LoadedDocument, shape: ModelShape) -> None:
        self.recipe = recipe
        self.doc = doc
        self.shape = shape

    def run(self) -> Iterator[Diagnostic]:
        shape = self.shape
        for name, spec in self.recipe.vectors.items():
            at = join_pointer("/vectors", name)
            layer = getattr(spec, "layer", None)
            if isinstance(layer, int) and not -shape.n_layers <= layer < shape.n_layers:
                yield self.doc.diagnostic(
                    "layer-range", str(LayerRangeError(layer, shape.n_layers)), at + "/layer"
                )
            if isinstance(spec, RandomVector) and spec.dim not in (None, shape.hidden_size):
                yield self.doc.diagnostic(
                    "vector-dim",
                    f"dim {spec.dim} differs from the model's hidden size {shape.hidden_size}",
                    at + "/dim",
                )
            if isinstance(spec, FileVector):
                yield from self.file_width(name, spec, at)
            if isinstance(spec, SaeFeatureVector):
                yield from self.sae_hook(name, spec, at)
        for at, item in all_interventions(self.recipe):
            if item.layers is not None:
                yield from self.layers(item.layers, at + "/layers")
            for k, head in enumerate(item.heads or []):
                if head >= shape.n_heads:
                    yield self.doc.diagnostic(
                        "head-range",
                        f"head {head} out of range (model has {shape.n_heads} heads: "
                        f"0..{shape.n_heads - 1})",
                        f"{at}/heads/{k}",
                    )
            if item.site == "experts" and item.module is None:
                yield from self.experts(item.experts or [], at)
        yield from check_lowrank_rank(self.recipe, self.doc, shape)
        for index, metric in enumerate(self.recipe.report.metrics):
            # The instruction metric reads the unsteered model's residual stream at `layer`
            # (without a judge); torch would wrap an index past the model (layer 7 of 4 is 3).
            if (
                isinstance(metric, InstructionMetric)
                and metric.judge is None
                and not -shape.n_layers <= metric.layer < shape.n_layers
            ):
                yield self.doc.diagnostic(
                    "layer-range",
                    str(LayerRangeError(metric.layer, shape.n_layers)),
                    f"/report/metrics/{index}/layer",
                )

    def experts(self, experts: list[int], at: str) -> Iterator[Diagnostic]:
        """site: experts needs a MoE model; each expert index must exist."""
        count = self.shape.n_experts
        if count is None:
            yield self.doc.diagnostic(
                "experts-site",
                f"site experts needs a mixture-of-experts model; {self.recipe.model.id!r} "
                f"({self.shape.model_type}) has no routed experts in its config (num_experts, "
                "num_local_experts, n_routed_experts): use site: mlp_out for its MLP output",
                at + "/site",
            )
            return
        for k, expert in enumerate(experts):
            if expert >= count:
                yield self.doc.diagnostic(
                    "expert-range",
                    f"expert {expert} out of range (the model has {count} routed experts: "
                    f"0..{count - 1})",
                    f"{at}/experts/{k}",
                )

    def layers(self, spec: object, pointer: str) -> Iterator[Diagnostic]:
        n = self.shape.n_layers
        in_range = [spec] if not isinstance(spec, (list, dict)) else list(spec)
        if all(not isinstance(x, int) or -n <= x < n for x in in_range):
            # Only now can duplicates be seen: with 4 layers, 1 and -3 are the same layer.
            if isinstance(spec, str) and ":" in spec:
                bounds = [int(b) if b else None for b in spec.split(":")]
                if any(b is not None and not -n <= b <= n for b in bounds):
                    kept = list(range(n))[slice(*bounds)]
                    yield self.doc.diagnostic(
                        "layer-range-clamped",
                        f"range {spec!r} reaches past the model's {n} layers; like a Python "
                        f"slice it is cut to {kept}",
                        pointer,
                        severity="warning",
                    )
            try:
                resolve_layers(spec, n)
            except LayerRangeError as exc:
                yield self.doc.diagnostic("layer-range", str(exc), pointer)
            except ValueError as exc:
                code = "duplicate-layer" if "twice" in str(exc) else "layer-range"
                yield self.doc.diagnostic(code, str(exc), pointer)
            return
        if isinstance(spec, list):
            for k, layer in enumerate(spec):
                if not -n <= layer < n:
                    yield self.doc.diagnostic(
                        "layer-range", str(LayerRangeError(layer, n)), f"{pointer}/{k}"
                    )
            return
        if isinstance(spec, dict):
            for layer in spec:
                if not -n <= layer < n:
                    yield self.doc.diagnostic(
                        "layer-range",
                        str(LayerRangeError(layer, n)),
                        join_pointer(pointer, layer),
                        prefer_key=True,
                    )
            return
        if isinstance(spec, int):
            yield self.doc.diagnostic("layer-range", str(LayerRangeError(spec, n)), pointer)

    def width_for(self, vector_name: str) -> tuple[int, str]:
        """The width a vector must have: hidden size, or n_heads x head_dim if used on heads
        (by an intervention, or by a condition that reads site heads)."""
        for _, item in all_interventions(self.recipe):
            if item.vector == vector_name and item.site == "heads" and item.module is None:
                return self.shape.heads_width, "n_heads x head_dim"
            leaves = condition_leaves(item.when, "") if item.when is not None else []
            if any(leaf.vector == vector_name and leaf.site == "heads" for leaf, _ in leaves):
                return self.shape.heads_width, "n_heads x head_dim"
        return self.shape.hidden_size, "hidden size"

    def sae_hook(self, name: str, spec: SaeFeatureVector, at: str) -> Iterator[Diagnostic]:
        """cfg.json's hook_name against the model (its layer exists) and against each
        intervention that steers with the feature (same place in the forward pass)."""
        path = resolve_reference(spec.path, self.doc.base_dir(at + "/path"))
        try:
            cfg = read_sae_config(path)
        except (OSError, SaeLayoutError):
            return  # reported by the reference checks (validate/references.py)
        n = self.shape.n_layers
        if cfg.layer >= n:
            yield self.doc.diagnostic(
                "sae-hook-layer",
                f"{spec.path}: cfg.json hook_name {cfg.hook_name!r} reads layer {cfg.layer}, but "
                f"the model has {n} layers (0..{n - 1}): this SAE was trained on another model",
                at + "/path",
            )
            return
        for pointer, item in all_interventions(self.recipe):
            if item.vector == name:
                yield from sae_placement(self.doc, name, cfg, item, pointer, n)

    def file_width(self, name: str, spec: FileVector, at: str) -> Iterator[Diagnostic]:
        path = resolve_reference(spec.path, self.doc.base_dir(at + "/path"))
        try:
            tensors, _ = read_gguf_header(path) if is_gguf(path) else read_header(path)
        except (OSError, SafetensorsError):
            return  # already reported by the reference checks
        key = (
            spec.key
            if spec.key is not None
            else (next(iter(tensors)) if len(tensors) == 1 else None)
        )
        if key is None or key not in tensors or not tensors[key].shape:
            return
        width, what = self.width_for(name)
        actual = tensors[key].shape[-1]
        if actual != width:
            yield self.doc.diagnostic(
                "vector-dim",
                f"vector {name!r} has width {actual}, but the model's {what} is {width}; "
                "use a vector built for this model",
                at + "/path",
            )
