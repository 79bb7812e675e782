"""Build each vector kind. Dependencies between vectors (expr) are built first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recipe_engine import expr as expr_lang
from recipe_engine.errors import RecipeError
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import (
    ActivationVector,
    ContrastiveVector,
    ExprVector,
    FileVector,
    MeanActivationVector,
    ProbeVector,
    RandomVector,
)
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.load.prompt_files import file_format, read_prompts
from recipe_engine.resolve.model_loader import LoadedModel
from recipe_engine.vectors.extraction import read_activations
from recipe_engine.vectors.probe import train_probe

__all__ = ["BuiltVector", "build_vectors", "resolve_prompts"]


@dataclass
class BuiltVector:
    tensor: torch.Tensor  # float32, CPU
    provenance: dict[str, Any] = field(default_factory=dict)


def resolve_prompts(source: Any, doc: LoadedDocument | None, pointer: str, base: Path) -> list[str]:
    if isinstance(source, str):
        return [source]
    if isinstance(source, list):
        return list(source)
    assert isinstance(source, PromptFile)
    folder = doc.base_dir(pointer) if doc is not None else base
    path = resolve_reference(source.file, folder)
    return read_prompts(path, file_format(path, source.format), source.field, source.limit)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def _proj(v: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    u = _unit(onto)
    return (v @ u) * u


_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "unit": _unit,
    "proj": _proj,
    "reject": lambda v, other: v - _proj(v, other),
}


def _first_pc(data: torch.Tensor, sign_reference: torch.Tensor) -> torch.Tensor:
    """Unit first principal direction of the rows of `data`, oriented along `sign_reference`."""
    _, _, vh = torch.linalg.svd(data.double(), full_matrices=False)
    direction = vh[0].float()
    return direction if float(direction @ sign_reference) >= 0 else -direction


class _Builder:
    def __init__(self, recipe: Recipe, model: LoadedModel, doc: LoadedDocument | None) -> None:
        self.recipe = recipe
        self.model = model
        self.doc = doc
        self.base = doc.path.parent if doc is not None else Path.cwd()
        self.built: dict[str, BuiltVector] = {}
        self.batch_size = recipe.run.batch_size

    def prompts(self, source: Any, pointer: str) -> list[str]:
        return resolve_prompts(source, self.doc, pointer, self.base)

    def read(self, spec: Any, prompts: list[str], position: Any) -> torch.Tensor:
        return read_activations(
            self.model,
            prompts,
            layer=spec.layer,
            site=spec.site,
            module=spec.module,
            position=position,
            batch_size=self.batch_size,
        )

    def build(self, name: str) -> BuiltVector:
        if name in self.built:
            return self.built[name]
        spec = self.recipe.vectors[name]
        at = f"/vectors/{name}"
        provenance: dict[str, Any] = {"kind": spec.kind, "model": self.model.identity}
        tensor: torch.Tensor
        if isinstance(spec, RandomVector):
            dim = spec.dim or self.model.shape.hidden_size
            generator = torch.Generator().manual_seed(spec.seed)
            tensor = torch.randn(dim, generator=generator)
            tensor = tensor / tensor.norm() * spec.norm
            provenance.update(seed=spec.seed, norm=spec.norm)
        elif isinstance(spec, FileVector):
            tensor = self.load_file(spec, at)
            provenance.update(path=spec.path, key=spec.key)
        elif isinstance(spec, ActivationVector):
            tensor = self.read(spec, [spec.prompt], spec.position)[0]
            provenance.update(layer=spec.layer, site=spec.site, position=spec.position)
        elif isinstance(spec, MeanActivationVector):
            rows = self.read(spec, self.prompts(spec.prompts, at + "/prompts"), spec.position)
            tensor = rows.mean(dim=0)
            provenance.update(layer=spec.layer, site=spec.site, prompts=len(rows))
        elif isinstance(spec, ContrastiveVector):
            tensor = self.contrastive(spec, at, provenance)
        elif isinstance(spec, ProbeVector):
            tensor = self.probe(spec, at, provenance)
        else:
            assert isinstance(spec, ExprVector)
            tensor = self.expression(spec)
            provenance.update(expr=spec.expr)
        tensor = tensor.float().cpu()
        if spec.normalize == "unit":
            tensor = _unit(tensor)
        if not bool(torch.isfinite(tensor).all()):
            raise self.error("vector-not-finite", f"vector {name!r} contains NaN or Inf", at)
        provenance["norm"] = float(tensor.norm())
        self.built[name] = BuiltVector(tensor, provenance)
        return self.built[name]

    def error(self, code: str, message: str, pointer: str) -> RecipeError:
        from recipe_engine.diagnostics import Diagnostic

        if self.doc is not None:
            return RecipeError([self.doc.diagnostic(code, message, pointer)])
        return RecipeError([Diagnostic(code, message, pointer)])

    def load_file(self, spec: FileVector, at: str) -> torch.Tensor:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = self.doc.base_dir(at + "/path") if self.doc is not None else self.base
        path = resolve_reference(spec.path, folder)
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

    def contrastive(
        self, spec: ContrastiveVector, at: str, provenance: dict[str, Any]
    ) -> torch.Tensor:
        positive = self.prompts(spec.positive, at + "/positive")
        negative = self.prompts(spec.negative, at + "/negative")
        if spec.paired and len(positive) != len(negative):
            raise self.error(
                "paired-length",
                f"paired: true needs as many negative prompts as positive ones "
                f"({len(positive)} vs {len(negative)})",
                at + "/negative",
            )
        rows = self.read(spec, positive + negative, spec.position)
        pos, neg = rows[: len(positive)], rows[len(positive) :]
        mean_diff = pos.mean(dim=0) - neg.mean(dim=0)
        provenance.update(
            layer=spec.layer,
            site=spec.site,
            position=spec.position,
            method=spec.method,
            positive=len(positive),
            negative=len(negative),
        )
        if spec.method == "mean_diff":
            return mean_diff
        if spec.method == "pca_diff":
            # Principal direction of the paired differences, scaled to the mean difference's
            # projection so that strength means the same as for mean_diff.
            direction = _first_pc(pos - neg, mean_diff)
        else:
            # pca_center: centre each class on its own mean... of the pair; the remaining
            # variance is the concept axis (RepE style).
            centre = (pos.mean(dim=0) + neg.mean(dim=0)) / 2
            direction = _first_pc(torch.cat([pos, neg]) - centre, mean_diff)
        return direction * (mean_diff @ direction)

    def probe(self, spec: ProbeVector, at: str, provenance: dict[str, Any]) -> torch.Tensor:
        import json

        folder = self.doc.base_dir(at + "/data") if self.doc is not None else self.base
        path = resolve_reference(spec.data, folder)
        texts: list[str] = []
        labels: list[int] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append(row[spec.text_field])
                labels.append(int(row[spec.label_field]))
        features = self.read(spec, texts, spec.position)
        result = train_probe(
            features,
            torch.tensor(labels),
            test_fraction=spec.test_fraction,
            regularization=spec.regularization,
            seed=spec.seed,
        )
        provenance.update(
            layer=spec.layer,
            site=spec.site,
            examples=len(texts),
            train_accuracy=result.train_accuracy,
            test_accuracy=result.test_accuracy,
        )
        return result.direction

    def expression(self, spec: ExprVector) -> torch.Tensor:
        tree = expr_lang.parse(spec.expr)
        env = {name: self.build(name).tensor for name, _ in expr_lang.names_in(tree)}
        value = expr_lang.evaluate(tree, env, _FUNCTIONS)
        result = torch.as_tensor(value, dtype=torch.float32)
        for other in spec.orthogonalize_against:
            result = result - _proj(result, self.build(other).tensor)
        return result


def build_vectors(
    recipe: Recipe,
    model: LoadedModel,
    doc: LoadedDocument | None = None,
    names: list[str] | None = None,
) -> dict[str, BuiltVector]:
    """Build the named vectors (default: every vector the interventions use, with their deps)."""
    builder = _Builder(recipe, model, doc)
    wanted = (
        names
        if names is not None
        else [item.vector for item in recipe.interventions if item.vector is not None]
    )
    for name in dict.fromkeys(wanted):
        builder.build(name)
    return builder.built
