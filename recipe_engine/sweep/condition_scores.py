"""The scores behind `steer condition`: every labelled prompt scored at every candidate layer.

The condition vector is built at each layer from the recipe's own spec (vectors/build.py, with
its cache), then one trace per batch reads every candidate layer and scores it with the very
function the trace of a run uses (execute/gates.score_read): a threshold found here means the
same thing when the recipe runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nnsight
import torch

from recipe_engine.compiler import leading_marker, probe_logits
from recipe_engine.errors import UsageError
from recipe_engine.execute.gates import score_read
from recipe_engine.execute.steer import batch_layout
from recipe_engine.format.conditions import ConditionLeaf, condition_leaves
from recipe_engine.format.recipe import Recipe
from recipe_engine.plan import ConditionRead
from recipe_engine.resolve.architectures import envoy_at
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["LayerScores", "layer_scores"]


@dataclass
class LayerScores:
    recipe: str
    leaf: ConditionLeaf
    layers: dict[int, list[float]]  # layer -> score of every labelled prompt, in file order
    # where the leaf is, as a --set path ("interventions.0.when"), and whether its vector was
    # rebuilt per layer (it has a `layer:`): both belong to the --set lines reproducing a cell
    leaf_path: str = ""
    vector_follows_layer: bool = False


def _reads(
    model: LoadedModel,
    leaf: ConditionLeaf,
    directions: dict[int, torch.Tensor],
    logits: dict[int, tuple[float, float]],
) -> list[ConditionRead]:
    skip_first = leading_marker(model)
    reads: list[ConditionRead] = []
    for layer, vec in sorted(directions.items()):
        location = model.adapter.locate(leaf.site, layer)
        unit = vec.to(device=model.device, dtype=torch.float32)
        reads.append(
            ConditionRead(
                leaf.vector,
                layer,
                leaf.site,
                location.path,
                location.port,
                layer,
                unit / unit.norm().clamp_min(1e-12),
                leaf.aggregate,
                leaf.score,
                "above",
                0.0,
                skip_first,
                logits.get(layer),
            )
        )
    return reads


def _score_batches(
    model: LoadedModel,
    reads: list[ConditionRead],
    texts: Sequence[str],
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {read.layer: [] for read in reads}
    nn = model.nn
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        with model.lock, torch.inference_mode(), nn.trace(batch, **model.backend_kwargs):
            _, mask = batch_layout(nn)
            saved = nnsight.save([])
            for read in reads:
                envoy = envoy_at(nn, read.path)
                value = envoy.input if read.port == "input" else envoy.output
                if isinstance(value, tuple):
                    value = value[0]
                saved.append(score_read(value, read, mask))
        for read, scores in zip(reads, saved, strict=True):
            out[read.layer] += [float(s) for s in scores.float().cpu().tolist()]
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return out


def template_leaf(recipe: Recipe, intervention: int) -> ConditionLeaf:
    items = recipe.interventions
    if not 0 <= intervention < len(items):
        if not items:
            raise UsageError(f"--intervention {intervention}: the recipe has no interventions")
        indices = "index 0" if len(items) == 1 else f"indices 0..{len(items) - 1}"
        noun = "intervention" if len(items) == 1 else "interventions"
        raise UsageError(
            f"--intervention {intervention} is out of range: the recipe has {len(items)} {noun} "
            f"({indices})"
        )
    if items[intervention].when is None:
        raise UsageError(
            f"intervention {intervention} has no `when:` to search for; give --intervention N "
            "of an intervention with a condition"
        )
    return template_leaf_at(recipe, intervention)[0]


def template_leaf_at(recipe: Recipe, intervention: int) -> tuple[ConditionLeaf, str]:
    """The searched leaf and its `--set` path (`interventions.N.when[.all.K...]`)."""
    when = recipe.interventions[intervention].when
    assert when is not None
    leaf, pointer = condition_leaves(when, "")[0]
    return leaf, f"interventions.{intervention}.when" + pointer.replace("/", ".")


def layer_scores(
    path: str | Path,
    texts: Sequence[str],
    intervention: int,
    layers: Sequence[int | str] | None,
    overrides: list[str] | None,
    progress: Callable[[int, int], None] | None,
    allow_outside_root: bool,
) -> LayerScores:
    from recipe_engine.pipeline import load_recipe
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.sweep.axes import parse_layer_items, resolve_sweep_layers
    from recipe_engine.vectors import build_vectors

    loaded = load_recipe(path, overrides=overrides, allow_outside_root=allow_outside_root)
    recipe, doc = loaded.recipe, loaded.document
    leaf = template_leaf(recipe, intervention)
    _, leaf_path = template_leaf_at(recipe, intervention)
    model = load_model(recipe.model, loaded.model_dir, recipe.run.backend)
    n = model.shape.n_layers
    chosen = resolve_sweep_layers(parse_layer_items(layers or ["all"]), n)
    spec = recipe.vectors[leaf.vector]
    directions: dict[int, torch.Tensor] = {}
    logits: dict[int, tuple[float, float]] = {}
    for layer in chosen:
        if hasattr(spec, "layer"):  # built where it is read, as the recipe would be edited
            vectors = {**recipe.vectors, leaf.vector: spec.model_copy(update={"layer": layer})}
            at_layer = recipe.model_copy(update={"vectors": vectors})
        else:
            at_layer = recipe
        built = build_vectors(at_layer, model, doc, [leaf.vector])
        directions[layer] = built[leaf.vector].tensor.reshape(-1)
        probe = probe_logits({leaf.vector: built[leaf.vector].provenance})
        if leaf.score == "probability":
            if leaf.vector not in probe:
                raise UsageError(f"score: probability needs a probe vector; {leaf.vector!r} is not")
            logits[layer] = probe[leaf.vector]
    reads = _reads(model, leaf, directions, logits)
    scores = _score_batches(model, reads, texts, 16, progress)
    return LayerScores(recipe.name, leaf, scores, leaf_path, hasattr(spec, "layer"))
