# Over 400 lines: one builder for every vector kind, so each gets the same cache and checks.
"""Build each vector kind. Dependencies between vectors (expr) are built first.

Extracted kinds (contrastive, probe, activation, mean_activation) and trained vectors go through
the cache; random, file and expr vectors are cheap and always rebuilt. Trained vectors are
trained by the `trainer` the caller passes (recipe_engine/learned/: it runs compiled plans, a
later stage than this one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recipe_engine import __version__
from recipe_engine import expr as expr_lang
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeError
from recipe_engine.format.conditions import condition_leaves
from recipe_engine.format.positions import AfterMarker
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import ConceptMetric
from recipe_engine.format.trained import PromptedTargets
from recipe_engine.format.vectors import (
    ActivationVector,
    ContrastiveVector,
    ExprVector,
    FileVector,
    MeanActivationVector,
    ProbeVector,
    RandomVector,
    TrainedVector,
)
from recipe_engine.load.gguf_vectors import is_gguf, read_gguf_vectors
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.load.prompt_files import iter_lines
from recipe_engine.load.safetensors_header import SafetensorsError
from recipe_engine.resolve.context import PromptTooLong
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.validate.conditions import all_interventions
from recipe_engine.vectors.algebra import FUNCTIONS, first_pc, unit
from recipe_engine.vectors.cache import VectorCache, cache_key, default_cache
from recipe_engine.vectors.extraction import extraction_batch_size, iter_activations
from recipe_engine.vectors.file_kinds import file_vector
from recipe_engine.vectors.probe import train_probe
from recipe_engine.vectors.sources import PromptSourceRef, file_sha256, resolve_prompts
from recipe_engine.vectors.trained_request import Trainer, TrainRequest

__all__ = ["BuiltVector", "VectorProgress", "build_vectors", "resolve_prompts"]

EXTRACTED = (ContrastiveVector, ProbeVector, ActivationVector, MeanActivationVector)
CACHED = (*EXTRACTED, TrainedVector)
# Part of a trained vector's cache key: bump when training computes something else.
TRAINER_VERSION = 1
VectorProgress = Callable[[str, int, int | None], None]  # (vector name, prompts done, total)


@dataclass
class BuiltVector:
    tensor: torch.Tensor  # float32, CPU
    provenance: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


class _Builder:
    def __init__(
        self,
        recipe: Recipe,
        model: LoadedModel,
        doc: LoadedDocument | None,
        cache: VectorCache | None,
        progress: VectorProgress | None,
        trainer: Trainer | None = None,
    ) -> None:
        self.trainer = trainer
        self.recipe = recipe
        self.model = model
        self.doc = doc
        self.cache = cache
        self.progress = progress
        self.base = doc.path.parent if doc is not None else Path.cwd()
        self.built: dict[str, BuiltVector] = {}
        self.file_paths: dict[str, Path] = {}  # vector pointer -> the file it was read from
        self.batch_size = extraction_batch_size(recipe.run.batch_size, model.device)

    def source(self, value: Any, pointer: str) -> PromptSourceRef:
        return PromptSourceRef(value, self.doc, pointer, self.base, self.model.tokenizer)

    def error(self, code: str, message: str, pointer: str) -> RecipeError:
        if self.doc is not None:
            return RecipeError([self.doc.diagnostic(code, message, pointer)])
        return RecipeError([Diagnostic(code, message, pointer)])

    def activations(
        self, name: str, spec: Any, prompts: Any, position: Any, to_host: bool = True
    ) -> Any:
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if self.progress:
                self.progress(name, done[0], None)

        try:
            yield from iter_activations(
                self.model,
                prompts,
                layer=spec.layer,
                site=spec.site,
                module=spec.module,
                position=position,
                batch_size=self.batch_size,
                progress=tick,
                to_host=to_host,
            )
        except IndexError as exc:
            raise self.error("position-range", str(exc), f"/vectors/{name}/position") from None
        except PromptTooLong as exc:
            raise self.error("prompt-too-long", str(exc), f"/vectors/{name}") from None

    def rows(self, name: str, spec: Any, prompts: Any, position: Any) -> torch.Tensor:
        chunks = list(self.activations(name, spec, prompts, position))
        if not chunks:
            raise self.error("prompt-file-empty", "no prompts", f"/vectors/{name}")
        return torch.cat(chunks)

    def build(self, name: str) -> BuiltVector:
        if name in self.built:
            return self.built[name]
        spec = self.recipe.vectors[name]
        at = f"/vectors/{name}"
        provenance: dict[str, Any] = {
            "kind": spec.kind,
            "model": self.model.identity,
            "engine_version": __version__,
        }
        # Computed with or without a cache: the key is part of the provenance, and a file
        # built with --no-cache must be byte-identical to a cached build (a sha256 pin made
        # from one must hold for the other).
        key = self.key(name, spec) if isinstance(spec, CACHED) else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                built = BuiltVector(hit[0].float(), hit[1], cached=True)
                self.built[name] = built
                return built
        tensor = self.compute(name, spec, at, provenance)
        tensor = tensor.float().cpu()
        if spec.normalize == "unit":
            tensor = unit(tensor)
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = f"{int((~finite).sum())} of {finite.numel()} values"
            # Say where the bad numbers come from, so the message says what to fix.
            if isinstance(spec, FileVector):
                fix = f"{spec.path} holds broken data: rebuild the file"
            elif isinstance(spec, TrainedVector):
                fix = "lower its lr, or set max_norm"
            elif isinstance(spec, EXTRACTED):
                fix = (
                    "the model's activations there are not finite (in float16 or bfloat16, "
                    "try `model.dtype: float32`)"
                )
            else:
                fix = "check the vectors and numbers it is computed from"
            raise self.error(
                "vector-not-finite", f"vector {name!r} contains NaN or Inf ({bad}); {fix}", at
            )
        provenance["normalize"] = spec.normalize
        provenance["norm"] = round(float(tensor.norm()), 6)
        provenance["shape"] = list(tensor.shape)
        if key is not None:
            provenance["cache_key"] = key
            if self.cache is not None:
                self.cache.put(key, tensor, provenance)
        self.built[name] = BuiltVector(tensor, provenance)
        return self.built[name]

    def trained_key(self, name: str, spec: TrainedVector) -> str:
        at = f"/vectors/{name}/targets"
        described = spec.model_dump(mode="json", by_alias=True, exclude={"description"})
        targets = described["targets"]
        if isinstance(spec.targets, PromptedTargets):
            data = self.source(spec.targets.prompts, at + "/prompts").sha256()
            targets.pop("prompts")
        else:
            data = file_sha256(self.target_path(spec, at))
            targets.pop("file")
        parts = {"model": self.model.identity, "spec": described, "data": data}
        return cache_key({**parts, "trainer_version": TRAINER_VERSION})

    def target_path(self, spec: TrainedVector, at: str) -> Path:
        assert not isinstance(spec.targets, PromptedTargets)
        folder = self.doc.base_dir(at + "/file") if self.doc is not None else self.base
        return resolve_reference(spec.targets.file, folder)

    def trained(self, name: str, spec: TrainedVector, at: str, provenance: dict[str, Any]) -> Any:
        if self.trainer is None:
            raise self.error(
                "vector-untrainable",
                f"vector {name!r} is trained: build it with steer run or steer vectors (this "
                "entry point builds no trained vectors)",
                at,
            )
        prompted = isinstance(spec.targets, PromptedTargets)
        request = TrainRequest(
            name=name,
            spec=spec,
            recipe=self.recipe,
            model=self.model,
            doc=self.doc,
            pointer=at,
            targets_path=None if prompted else self.target_path(spec, at + "/targets"),
            prompts=(
                self.source(spec.targets.prompts, at + "/targets/prompts")  # type: ignore[union-attr]
                if prompted
                else None
            ),
            progress=self.progress,
            error=self.error,
        )
        tensor, record = self.trainer(request)
        provenance.update(record)
        return tensor

    def key(self, name: str, spec: Any) -> str:
        if isinstance(spec, TrainedVector):
            return self.trained_key(name, spec)
        data: dict[str, str] = {}
        for field_name in ("positive", "negative", "prompts"):
            if hasattr(spec, field_name):
                ref = self.source(getattr(spec, field_name), f"/vectors/{name}/{field_name}")
                data[field_name] = ref.sha256()
        if isinstance(spec, ProbeVector):
            folder = self.doc.base_dir(f"/vectors/{name}/data") if self.doc else self.base
            data["data"] = file_sha256(resolve_reference(spec.data, folder))
        described = spec.model_dump(mode="json", exclude={"description"})
        for field_name in ("positive", "negative", "prompts", "data"):
            described.pop(field_name, None)  # replaced by the data's hash
        return cache_key({"model": self.model.identity, "spec": described, "data": data})

    def compute(self, name: str, spec: Any, at: str, provenance: dict[str, Any]) -> torch.Tensor:
        if isinstance(spec, RandomVector):
            dim = spec.dim or self.model.shape.hidden_size
            generator = torch.Generator().manual_seed(spec.seed)
            tensor = torch.randn(dim, generator=generator)
            provenance.update(seed=spec.seed)
            return tensor / tensor.norm() * spec.norm
        if isinstance(spec, FileVector):
            provenance.update(path=spec.path, key=spec.key)
            tensor = self.load_file(spec, at)
            return file_vector(spec, tensor, self.file_paths[at], provenance)
        if isinstance(spec, ExprVector):
            provenance.update(expr=spec.expr, orthogonalize_against=spec.orthogonalize_against)
            return self.expression(name, spec)
        if isinstance(spec, TrainedVector):
            return self.trained(name, spec, at, provenance)
        position = spec.position
        if isinstance(position, AfterMarker):  # a JSON value in the provenance
            position = position.model_dump(exclude_none=True)
        provenance.update(layer=spec.layer, site=spec.site, module=spec.module, position=position)
        if isinstance(spec, ActivationVector):
            provenance.update(prompts=1, data_sha256=self.source(spec.prompt, at).sha256())
            return self.rows(name, spec, [spec.prompt], spec.position)[0]
        if isinstance(spec, MeanActivationVector):
            return self.mean_activation(name, spec, at, provenance)
        if isinstance(spec, ContrastiveVector):
            return self.contrastive(name, spec, at, provenance)
        assert isinstance(spec, ProbeVector)
        return self.probe(name, spec, at, provenance)

    def mean_activation(
        self, name: str, spec: MeanActivationVector, at: str, provenance: dict[str, Any]
    ) -> torch.Tensor:
        source = self.source(spec.prompts, at + "/prompts")
        total: torch.Tensor | None = None
        count = 0
        # A float32 running sum kept on the model's device: O(width) memory, one host copy per run.
        for chunk in self.activations(name, spec, source, spec.position, to_host=False):
            total = chunk.sum(dim=0) if total is None else total + chunk.sum(dim=0)
            count += chunk.shape[0]
        if total is None:
            raise self.error("prompt-file-empty", "no prompts", at + "/prompts")
        provenance.update(prompts=count, data_sha256=source.sha256())
        return (total / count).cpu()

    def load_file(self, spec: FileVector, at: str) -> torch.Tensor:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = self.doc.base_dir(at + "/path") if self.doc is not None else self.base
        path = self.file_paths[at] = resolve_reference(spec.path, folder)
        if is_gguf(path):
            return self.load_gguf(spec, path, at)
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise self.error("not-safetensors", f"{spec.path}: {exc}", at + "/path") from None
        key = spec.key if spec.key is not None else next(iter(tensors))
        if key not in tensors:
            raise self.error(
                "vector-key-missing", f"{spec.path} has no tensor {key!r}", at + "/key"
            )
        return tensors[key]

    def load_gguf(self, spec: FileVector, path: Path, at: str) -> torch.Tensor:
        """A llama.cpp control vector (load/gguf_vectors.py); file_vector fills in its layer."""
        try:
            arrays = read_gguf_vectors(path)
        except (SafetensorsError, OSError) as exc:
            raise self.error("not-safetensors", f"{spec.path}: {exc}", at + "/path") from None
        key = spec.key if spec.key is not None else next(iter(arrays))
        if key not in arrays:
            raise self.error(
                "vector-key-missing", f"{spec.path} has no tensor {key!r}", at + "/key"
            )
        return torch.from_numpy(arrays[key].copy())

    def contrastive(
        self, name: str, spec: ContrastiveVector, at: str, provenance: dict[str, Any]
    ) -> torch.Tensor:
        positive = self.source(spec.positive, at + "/positive")
        negative = self.source(spec.negative, at + "/negative")
        pos = self.rows(name, spec, positive, spec.position)
        neg = self.rows(name, spec, negative, spec.position)
        if spec.paired and len(pos) != len(neg):
            raise self.error(
                "paired-length",
                f"paired: true needs as many negative prompts as positive ones "
                f"({len(pos)} vs {len(neg)})",
                at + "/negative",
            )
        mean_diff = pos.mean(dim=0) - neg.mean(dim=0)
        provenance.update(
            method=spec.method,
            paired=spec.paired,
            positive=len(pos),
            negative=len(neg),
            data_sha256={"positive": positive.sha256(), "negative": negative.sha256()},
        )
        if spec.method == "mean_diff":
            return mean_diff
        if spec.method == "pca_diff":
            # First principal component of the paired differences (uncentred, as in RepE).
            direction = first_pc(pos - neg, mean_diff)
        else:
            # pca_center: centre all activations on the grand mean; the first component of
            # what remains is the axis separating the classes.
            centre = torch.cat([pos, neg]).mean(dim=0)
            direction = first_pc(torch.cat([pos, neg]) - centre, mean_diff)
        # A unit direction scaled by the mean difference's projection on it, so that a given
        # strength moves activations about as far as mean_diff would.
        return direction * (mean_diff @ direction)

    def probe(
        self, name: str, spec: ProbeVector, at: str, provenance: dict[str, Any]
    ) -> torch.Tensor:
        folder = self.doc.base_dir(at + "/data") if self.doc is not None else self.base
        path = resolve_reference(spec.data, folder)
        texts: list[str] = []
        labels: list[int] = []
        # The same reading as validation (size limits, a UTF-8 BOM), which vetted every row.
        for _, line in iter_lines(path):
            if line.strip():
                row = json.loads(line)
                texts.append(row[spec.text_field])
                labels.append(int(row[spec.label_field]))
        features = self.rows(name, spec, texts, spec.position)
        result = train_probe(
            features,
            torch.tensor(labels),
            test_fraction=spec.test_fraction,
            regularization=spec.regularization,
            seed=spec.seed,
        )
        provenance.update(
            examples=len(texts),
            data_sha256=file_sha256(path),
            train_accuracy=round(result.train_accuracy, 6),
            test_accuracy=None if result.test_accuracy is None else round(result.test_accuracy, 6),
            library="torch L-BFGS logistic regression",
            logit_scale=result.scale,
            logit_bias=result.bias,
        )
        return result.direction

    def expression(self, name: str, spec: ExprVector) -> torch.Tensor:
        tree = expr_lang.parse(spec.expr)
        env = {name: self.build(name).tensor for name, _ in expr_lang.names_in(tree)}
        value = expr_lang.evaluate(tree, env, FUNCTIONS)
        result = torch.as_tensor(value, dtype=torch.float32)
        # Orthonormalize the named vectors first (Gram-Schmidt), then remove the result's
        # component in their span: removing projections one by one is only orthogonal to the
        # last vector when the named vectors are not orthogonal to each other.
        basis: list[torch.Tensor] = []
        for other in spec.orthogonalize_against:
            v = self.build(other).tensor.float()
            for u in basis:
                v = v - (v @ u) * u
            if float(v.norm()) > 1e-6 * max(1.0, float(self.build(other).tensor.norm())):
                basis.append(v / v.norm())
        before = float(result.norm())
        for u in basis:
            result = result - (result @ u) * u
        if basis and float(result.norm()) <= 1e-6 * max(before, 1e-12):
            raise self.error(
                "vector-degenerate",
                f"{spec.expr!r} lies in the span of {', '.join(spec.orthogonalize_against)}: "
                "nothing is left after orthogonalizing",
                f"/vectors/{name}/orthogonalize_against",
            )
        return result


def used_vectors(recipe: Recipe) -> list[str]:
    """Every vector an intervention (the recipe's or a prompt group's), a condition or a concept
    metric's probe names (a judge probe need not steer anything)."""
    names: list[str] = [
        m.probe for m in recipe.report.metrics if isinstance(m, ConceptMetric) and m.probe
    ]
    for at, item in all_interventions(recipe):
        if item.vector is not None:
            names.append(item.vector)
        if item.when is not None:
            names.extend(leaf.vector for leaf, _ in condition_leaves(item.when, at))
    return names


def build_vectors(
    recipe: Recipe,
    model: LoadedModel,
    doc: LoadedDocument | None = None,
    names: list[str] | None = None,
    *,
    cache: VectorCache | bool | None = True,
    progress: VectorProgress | None = None,
    trainer: Trainer | None = None,
) -> dict[str, BuiltVector]:
    """Build the named vectors (default: every vector the interventions use, with their deps).

    cache=True uses the default cache (see vectors/cache.py), False none, or pass a VectorCache.
    trainer: trains `kind: trained` vectors (recipe_engine.learned.train_vector).
    """
    store = default_cache() if cache is True else (cache or None)
    builder = _Builder(recipe, model, doc, store, progress, trainer)
    wanted = names if names is not None else used_vectors(recipe)
    for name in dict.fromkeys(wanted):
        builder.build(name)
    return builder.built
