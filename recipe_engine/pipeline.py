"""The pipeline, stage after stage: load -> compile -> run (or explain, or build vectors into a
file). recipe_engine.api re-exports it as the public API, which the CLI stands on.

    >>> from recipe_engine import load_recipe, compile_recipe, run_recipe
    >>> loaded = load_recipe("recipes/activation-addition.yaml", overrides=["run.mode=trace"])
    >>> report = run_recipe(compile_recipe(loaded))
    >>> report.metric("token_prob:positive").delta

Thread safety: nnsight is not thread-safe, so every pass through a model holds that model's
lock; models are cached per process and shared, so concurrent calls serialize on the model
they use and never corrupt each other's traces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import EnvironmentFailure, RecipeError
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.validate import validate_file

if TYPE_CHECKING:  # torch-bound types; imported where they are used
    from recipe_engine.execute.runner import PassResult
    from recipe_engine.plan import Plan
    from recipe_engine.report.results import RunReport
    from recipe_engine.resolve.loaded_model import LoadedModel
    from recipe_engine.vectors.build import BuiltVector, VectorProgress

__all__ = [
    "GPU_BATCH_SIZE",
    "CompiledRecipe",
    "LoadedRecipe",
    "Progress",
    "batch_for_device",
    "build_vectors_file",
    "compile_recipe",
    "explain_recipe",
    "load_recipe",
    "run_recipe",
]

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class LoadedRecipe:
    recipe: Recipe
    document: LoadedDocument
    warnings: list[Diagnostic] = field(default_factory=list)  # validation warnings

    @property
    def model_dir(self) -> Path:
        return self.document.base_dir("/model/id")


@dataclass
class CompiledRecipe:
    loaded: LoadedRecipe
    model: LoadedModel
    vectors: dict[str, BuiltVector]
    plan: Plan
    timing: dict[str, float]
    # one plan per part of run.prompts when it holds prompt groups (compile_part_plans)
    part_plans: list[Plan] = field(default_factory=list)

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    def explain(self) -> dict[str, Any]:  # a JSON object: `steer explain --format json`
        shape = self.model.shape
        return {
            "version": 1,
            "recipe": self.recipe.name,
            "model": {
                "id": self.recipe.model.id,
                "family": self.model.adapter.family,
                "layers": shape.n_layers,
                "hidden_size": shape.hidden_size,
                "heads": shape.n_heads,
                "head_dim": shape.head_dim,
                "head_dim_from": shape.head_dim_key,
                "blocks": self.model.adapter.blocks,
                "blocks_why": self.model.adapter.why,
            },
            "mode": self.recipe.run.mode,
            **backend_summary(
                self.loaded, {n: int(v.tensor.numel()) for n, v in self.vectors.items()}
            ),
            "order": "model execution order; same module and port: recipe order",
            "plan": self.plan.describe(),
            "prompt_positions": self.prompt_positions(),
            "vectors": {name: _vector_json(v) for name, v in self.vectors.items()},
            **self._groups(),
        }

    def prompt_positions(self, first: int = 3) -> list[dict[str, Any]]:
        """Which tokens each intervention steers in the first prompts (execute/positions.py),
        each prompt with the plan of its group."""
        from itertools import islice

        from recipe_engine.execute.positions import explain_positions
        from recipe_engine.vectors.sources import PromptSourceRef

        doc, model = self.loaded.document, self.model
        parts = list(prompt_parts(self.recipe.run.prompts))
        plans = self.part_plans or [self.plan] * len(parts)
        shown: list[dict[str, Any]] = []
        with model.lock:  # the tokenizer is shared (LoadedModel)
            for part, plan in zip(parts, plans, strict=True):
                if len(shown) >= first:
                    break
                ref = PromptSourceRef(
                    part.source, doc, part.pointer, doc.path.parent, model.tokenizer
                )
                prompts = list(islice(ref, first - len(shown)))
                shown += explain_positions(plan, prompts, model.tokenizer)
        return shown

    def _groups(self) -> dict[str, Any]:
        """The plan of each prompt group of run.prompts that has its own (none: no key)."""
        parts = list(prompt_parts(self.recipe.run.prompts))
        own = [
            {"group": part.group.name or f"#{part.index}", "plan": plan.describe()}
            for part, plan in zip(parts, self.part_plans, strict=False)
            if part.group is not None and plan is not self.plan
        ]
        return {"groups": own} if own else {}


def backend_summary(loaded: LoadedRecipe, vector_sizes: dict[str, int]) -> dict[str, Any]:
    """Where the recipe runs and what leaves the machine (for `steer explain`)."""
    from recipe_engine.resolve.backends import describe_backend
    from recipe_engine.vectors.sources import PromptSourceRef

    recipe, doc = loaded.recipe, loaded.document
    count = sum(  # conversations stay unrendered: only counted here
        sum(1 for _ in PromptSourceRef(part.source, doc, part.pointer, doc.path.parent).raw())
        for part in prompt_parts(recipe.run.prompts)
    )
    return describe_backend(recipe.run.backend, count, vector_sizes)


NOTE_WITHOUT_MODEL = (
    "nothing was loaded or sent: the compiled plan needs the model. `steer explain "
    "--backend remote-local` on a small model of the same family shows it offline"
)


def explain_without_model(
    loaded: LoadedRecipe, *, note: str = NOTE_WITHOUT_MODEL
) -> dict[str, Any]:
    """The explanation without loading the model (torch-free): for remote and vLLM backends,
    where compiling would load the model or send requests, and for `steer explain --no-model`.
    The backend, what would leave the machine, and the interventions as written.
    """
    recipe = loaded.recipe
    return {
        "version": 1,
        "recipe": recipe.name,
        "model": {"id": recipe.model.id},
        "mode": recipe.run.mode,
        **backend_summary(loaded, {name: -1 for name in recipe.vectors}),
        "order": None,
        "plan": None,
        "interventions": [
            i.model_dump(mode="json", exclude_none=True, by_alias=True)
            for i in recipe.interventions
        ],
        "note": note,
    }


def _vector_json(built: BuiltVector) -> dict[str, Any]:
    info = {k: v for k, v in built.provenance.items()}
    info["norm"] = round(float(built.tensor.norm()), 6)
    info["shape"] = list(built.tensor.shape)
    return info


def load_recipe(
    path: str | Path,
    *,
    overrides: list[str] | None = None,
    check_model: bool = True,
    allow_outside_root: bool = False,
    root: Path | None = None,
) -> LoadedRecipe:
    """Load and validate a recipe (torch-free). Raises RecipeError with every diagnostic.
    `root`: the folder its files must be in (default: its repository)."""
    result = validate_file(
        path,
        check_model=check_model,
        allow_outside_root=allow_outside_root,
        overrides=overrides,
        root=root,
    )
    if result.environment_failure:
        raise EnvironmentFailure(result.errors[0].format())
    if result.recipe is None or result.document is None:
        raise RecipeError(result.errors or result.diagnostics)
    return LoadedRecipe(result.recipe, result.document, result.warnings)


def _as_loaded(source: LoadedRecipe | str | Path) -> LoadedRecipe:
    return source if isinstance(source, LoadedRecipe) else load_recipe(source)


def compile_recipe(source: LoadedRecipe | str | Path) -> CompiledRecipe:
    """Load the model, build the vectors the interventions use, and compile the plan."""
    from recipe_engine.compiler import compile_part_plans, compile_plan, probe_logits
    from recipe_engine.execute.marker_check import check_markers
    from recipe_engine.learned import train_vector
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.vectors import build_vectors

    loaded = _as_loaded(source)
    recipe, doc = loaded.recipe, loaded.document
    # Chat prompts on a model the header says has no chat template: refused before the load (a
    # GGUF conversion takes minutes), as `validate --check-model` refuses them.
    from recipe_engine.validate.chat_template import chat_template_problems

    problems = chat_template_problems(recipe, doc)
    if problems:
        raise RecipeError(problems)
    start = time.perf_counter()
    model = load_model(recipe.model, loaded.model_dir, recipe.run.backend)
    _check_prompt_lengths(loaded, model)
    check_markers(recipe, doc, model.tokenizer)
    loaded_at = time.perf_counter()
    vectors = build_vectors(recipe, model, doc, trainer=train_vector)
    built_at = time.perf_counter()
    tensors = {n: v.tensor for n, v in vectors.items()}
    probes = probe_logits({n: v.provenance for n, v in vectors.items()})
    plan = compile_plan(recipe, model, tensors, doc, probes=probes)
    parts = compile_part_plans(recipe, model, tensors, doc, plan, probes)
    timing = {"load_s": loaded_at - start, "vectors_s": built_at - loaded_at}
    return CompiledRecipe(loaded, model, vectors, plan, timing, parts)


def _check_prompt_lengths(loaded: LoadedRecipe, model: LoadedModel) -> None:
    """Every prompt the run will feed the model (run prompts with the tokens to generate, and
    the texts of metrics) fits its learned positions: past them torch fails mid-run with a bare
    IndexError. Vector prompts are checked as they are extracted (vectors/extraction.py)."""
    from recipe_engine.format.prompts import PromptFile
    from recipe_engine.resolve.context import PromptTooLong, check_prompt_lengths
    from recipe_engine.vectors.sources import PromptSourceRef

    recipe, doc = loaded.recipe, loaded.document
    generated = recipe.run.generation.max_new_tokens if recipe.run.mode != "trace" else 0
    sources: list[tuple[Any, str, int]] = [
        (part.source, part.pointer, generated) for part in prompt_parts(recipe.run.prompts)
    ]
    for index, metric in enumerate(recipe.report.metrics):
        text = getattr(metric, "text", None)
        if text is not None:
            sources.append((text, f"/report/metrics/{index}/text", 0))
    for source, pointer, extra in sources:
        ref = PromptSourceRef(source, doc, pointer, doc.path.parent, model.tokenizer)
        try:
            with model.lock:  # the tokenizer is shared (LoadedModel)
                check_prompt_lengths(model, ref, extra=extra)
        except PromptTooLong as exc:
            where = pointer + "/file" if isinstance(source, PromptFile) else pointer
            message = str(exc)
            if extra and exc.tokens < exc.limit:  # the prompt fits; the generation does not
                where = "/run/generation/max_new_tokens"
                message = message.removesuffix("shorten it") + (
                    f"lower run.generation.max_new_tokens to {exc.limit - exc.tokens} or less"
                )
            if isinstance(source, PromptFile):
                message = f"{source.file}: {message}"
            raise RecipeError([doc.diagnostic("prompt-too-long", message, where)]) from None


# Prompts per pass on a CUDA device when the recipe leaves run.batch_size unset (the schema's
# default, 8, is sized for a CPU). Each generate step has a fixed cost (kernel launches, the
# trace's hooks) that a small batch cannot amortize on a GPU; 64 is the batch issue 12 measured,
# and the KV cache of 64 prompts x (prompt + 128 tokens) of a 1-8B model fits in a few GiB.
# A batch size the recipe (or --set) writes is always kept, on any device.
GPU_BATCH_SIZE = 64


def batch_for_device(recipe: Recipe, model: LoadedModel) -> Recipe:
    """The recipe with GPU_BATCH_SIZE on a CUDA device if it gives no run.batch_size."""
    if "batch_size" in recipe.run.model_fields_set or model.device.type != "cuda":
        return recipe
    run = recipe.run.model_copy(update={"batch_size": GPU_BATCH_SIZE})
    return recipe.model_copy(update={"run": run})


def run_recipe(
    source: CompiledRecipe | LoadedRecipe | str | Path,
    *,
    progress: Progress | None = None,
    baseline: PassResult | None = None,
) -> RunReport:
    """Run a recipe: baseline and steered passes (and prompting, with report.prompt_baseline),
    metrics, then the random controls of report.controls. Returns a RunReport.

    `baseline` (a PassResult from an earlier report's `passes["baseline"]`) skips recomputing
    the unsteered pass when only the interventions changed."""
    from recipe_engine.evaluate.controls import add_controls
    from recipe_engine.evaluate.sides import evaluate_passes, measure_run

    compiled = source if isinstance(source, CompiledRecipe) else compile_recipe(source)
    doc, model, plan = compiled.loaded.document, compiled.model, compiled.plan
    recipe = batch_for_device(compiled.recipe, model)
    tensors = {name: v.tensor for name, v in compiled.vectors.items()}
    passes = evaluate_passes(
        recipe, model, plan, doc, progress, baseline, compiled.part_plans or None, tensors
    )
    report = measure_run(recipe, doc, model, compiled.vectors, plan, passes, compiled.timing)
    report.groups = compiled._groups().get("groups", [])
    if recipe.report.controls is not None and recipe.report.controls.random:
        count = recipe.report.controls.random
        add_controls(report, recipe, doc, model, compiled.vectors, passes, count, progress)
        report.timing["run_s"] = time.perf_counter() - passes.started
    return report


def explain_recipe(
    source: LoadedRecipe | str | Path, *, no_model: bool = False, note: str | None = None
) -> dict[str, Any]:
    """What `steer explain` shows, as a JSON object: the compiled plan and the vectors. With
    `no_model` (torch-free), and on the remote and vLLM backends, nothing is loaded or sent: the
    backend and the interventions as written (`explain_without_model`), with `note` saying why."""
    loaded = _as_loaded(source)
    if no_model:
        return explain_without_model(loaded, note=note or NOTE_WITHOUT_MODEL)
    if loaded.recipe.run.backend in ("remote", "vllm"):
        return explain_without_model(loaded)
    return compile_recipe(loaded).explain()


def _recipe_sha256(paths: list[Path]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_vectors_file(
    source: LoadedRecipe | str | Path,
    out: str | Path,
    *,
    names: list[str] | None = None,
    cache: bool = True,
    progress: VectorProgress | None = None,
) -> dict[str, BuiltVector]:
    """Build a recipe's vectors (all, or `names`) and write them into one safetensors file,
    atomically, with their provenance (vectors/artifacts.py). Returns what was written."""
    from recipe_engine import __version__
    from recipe_engine.learned import train_vector
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.vectors import build_vectors
    from recipe_engine.vectors.artifacts import write_vector_file

    loaded = _as_loaded(source)
    recipe = loaded.recipe
    names = list(recipe.vectors) if names is None else names
    model = load_model(recipe.model, loaded.model_dir, recipe.run.backend)
    built = build_vectors(
        recipe, model, loaded.document, names, cache=cache, progress=progress, trainer=train_vector
    )
    wanted = {n: built[n] for n in names}
    header = {
        "engine_version": __version__,
        "recipe": recipe.name,
        "recipe_sha256": _recipe_sha256(list(loaded.document.file_paths.values())),
        "model": recipe.model.id + (f"@{recipe.model.revision}" if recipe.model.revision else ""),
    }
    write_vector_file(
        Path(out),
        {n: v.tensor for n, v in wanted.items()},
        {n: v.provenance for n, v in wanted.items()},
        header,
    )
    return wanted
