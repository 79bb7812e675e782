"""Stage 2b: checks that span fields: references between vectors and interventions, ops that
need (or forbid) a vector, positions that make no sense for the mode, expression cycles."""

from __future__ import annotations

import re
from collections.abc import Iterator

from recipe_engine import expr as expr_lang
from recipe_engine.builtin_models import BUILTINS, builtin_name
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.conditions import condition_leaves
from recipe_engine.format.interventions import OPS_NEEDING_VECTOR, OPS_WITHOUT_VECTOR, Intervention
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import ConceptMetric, KLBaselineMetric, TokenProbMetric
from recipe_engine.format.sites import VECTOR_NAME_PATTERN
from recipe_engine.format.vectors import ContrastiveVector, ExprVector, MeanActivationVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.source_map import join_pointer
from recipe_engine.model_config import machine_only_kind
from recipe_engine.validate.conditions import all_interventions
from recipe_engine.validate.eval_settings import check_eval_settings
from recipe_engine.validate.schema_errors import did_you_mean
from recipe_engine.validate.text_metrics import check_evaluation

__all__ = ["check_semantics"]

_NAME = re.compile(VECTOR_NAME_PATTERN)


def check_semantics(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    checker = _Checker(recipe, doc)
    return list(checker.run())


class _Checker:
    def __init__(self, recipe: Recipe, doc: LoadedDocument) -> None:
        self.recipe = recipe
        self.doc = doc
        self.used: set[str] = set()

    def error(self, code: str, message: str, pointer: str, **kw: object) -> Diagnostic:
        return self.doc.diagnostic(code, message, pointer, **kw)  # type: ignore[arg-type]

    def warning(self, code: str, message: str, pointer: str) -> Diagnostic:
        return self.doc.diagnostic(code, message, pointer, severity="warning")

    def run(self) -> Iterator[Diagnostic]:
        yield from self.model()
        yield from self.vector_names()
        yield from self.expressions()
        for at, intervention in all_interventions(self.recipe):
            yield from self.intervention(at, intervention)
            if intervention.when is not None:
                self.used.update(leaf.vector for leaf, _ in condition_leaves(intervention.when, at))
        self.used.update(
            m.probe for m in self.recipe.report.metrics if isinstance(m, ConceptMetric) and m.probe
        )
        if self.recipe.eval is not None:  # the methods steer eval compares are used too
            self.used.update(self.recipe.eval.methods)
            yield from check_eval_settings(self.recipe, self.doc, self.undefined)
        yield from self.unused_vectors()
        yield from self.run_section()
        yield from self.metrics()
        yield from check_evaluation(self.recipe, self.error)
        if self.recipe.run.backend == "vllm":
            yield from self.vllm_limits()

    # -- model -------------------------------------------------------------------------------
    def model(self) -> Iterator[Diagnostic]:
        spec = self.recipe.model
        name = builtin_name(spec.id)
        if name is not None and name not in BUILTINS:
            yield self.error(
                "unknown-builtin",
                f"no builtin model {name!r} (available: {', '.join(sorted(BUILTINS))})"
                f"{did_you_mean(name, BUILTINS)}",
                "/model/id",
            )
        backend = self.recipe.run.backend
        kind = machine_only_kind(spec.id)
        if backend in ("remote", "vllm") and kind is not None:
            # NDIF serves the models it hosts, by hub id; the vLLM backend loads by hub id too.
            yield self.error(
                "backend-needs-hub-model",
                f"run.backend {backend!r} needs a Hugging Face hub model id (org/name), but "
                f"model.id {spec.id!r} is {kind}. Use backend local (or remote-local to "
                "check the recipe survives NDIF's serialization), or name a hub model",
                "/run/backend",
            )
        if spec.trust_remote_code:
            where = self.doc.locate("/model/trust_remote_code")
            if where is not None and where.file != self.doc.display:
                yield self.error(
                    "remote-code-not-explicit",
                    f"trust_remote_code: true comes from the included file {where.file}; "
                    "running a model's own code must be asked for in the recipe itself",
                    "/model/trust_remote_code",
                )

    # -- vectors -----------------------------------------------------------------------------
    def vector_names(self) -> Iterator[Diagnostic]:
        for name in self.recipe.vectors:
            if not _NAME.match(name):
                yield self.error(
                    "invalid-name",
                    f"vector name {name!r} must be an identifier (letters, digits, _; not "
                    "starting with a digit) so expressions can refer to it",
                    join_pointer("/vectors", name),
                    prefer_key=True,
                )

    def expressions(self) -> Iterator[Diagnostic]:
        graph: dict[str, list[str]] = {}
        for name, spec in self.recipe.vectors.items():
            if not isinstance(spec, ExprVector):
                continue
            pointer = join_pointer("/vectors", name)
            refs: list[str] = []
            try:
                tree = expr_lang.parse(spec.expr)
            except expr_lang.ExprError as exc:
                yield self.error("expr-syntax", f"in expr: {exc}", pointer + "/expr")
            else:
                refs = [ref for ref, _ in expr_lang.names_in(tree)]
                try:
                    if expr_lang.type_check(tree) != "vector":
                        raise expr_lang.ExprError("the expression yields a number, not a vector", 0)
                except expr_lang.ExprError as exc:
                    yield self.error("expr-type", f"in expr: {exc}", pointer + "/expr")
            for ref in refs:
                if ref not in self.recipe.vectors:
                    yield self.undefined(ref, pointer + "/expr")
            for i, ref in enumerate(spec.orthogonalize_against):
                if ref not in self.recipe.vectors:
                    yield self.undefined(ref, f"{pointer}/orthogonalize_against/{i}")
            graph[name] = [*refs, *spec.orthogonalize_against]
            self.used.update(graph[name])
        yield from self.cycles(graph)

    def undefined(self, name: str, pointer: str) -> Diagnostic:
        known = ", ".join(sorted(self.recipe.vectors)) or "none defined"
        return self.error(
            "undefined-vector",
            f"no vector named {name!r} under `vectors:` ({known})"
            f"{did_you_mean(name, self.recipe.vectors)}",
            pointer,
        )

    def cycles(self, graph: dict[str, list[str]]) -> Iterator[Diagnostic]:
        state: dict[str, int] = {}  # 1 visiting, 2 done
        reported: set[frozenset[str]] = set()

        def visit(node: str, stack: list[str]) -> Iterator[Diagnostic]:
            state[node] = 1
            for ref in graph.get(node, []):
                if state.get(ref) == 1:
                    cycle = [*stack[stack.index(ref) :], ref]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        yield self.error(
                            "vector-cycle",
                            f"vectors depend on each other in a cycle: {' -> '.join(cycle)}",
                            join_pointer("/vectors", ref),
                        )
                elif state.get(ref) is None and ref in graph:
                    yield from visit(ref, [*stack, ref])
            state[node] = 2

        for name in graph:
            if state.get(name) is None:
                yield from visit(name, [name])

    def unused_vectors(self) -> Iterator[Diagnostic]:
        for name in self.recipe.vectors:
            if name not in self.used:
                yield self.warning(
                    "unused-vector",
                    f"vector {name!r} is defined but no intervention, expression or concept "
                    "metric uses it (`steer vectors build` still builds it)",
                    join_pointer("/vectors", name),
                )

    # -- interventions -----------------------------------------------------------------------
    def intervention(self, at: str, item: Intervention) -> Iterator[Diagnostic]:
        if item.vector is not None:
            self.used.add(item.vector)
            if item.vector not in self.recipe.vectors:
                yield self.undefined(item.vector, at + "/vector")
        if item.op in OPS_NEEDING_VECTOR and item.vector is None:
            yield self.error(
                "missing-vector", f"op {item.op!r} needs a `vector:` (name of a vector)", at
            )
        if item.op in OPS_WITHOUT_VECTOR and item.vector is not None:
            yield self.error(
                "unexpected-vector",
                f"op {item.op!r} takes no vector; remove `vector:` or use op: set",
                at + "/vector",
            )
        if item.heads is not None and item.site != "heads":
            yield self.error(
                "heads-needs-heads-site",
                f"`heads:` only applies with site: heads (this intervention's site is {item.site})",
                at + "/heads",
            )
        if item.heads is not None and len(set(item.heads)) != len(item.heads):
            yield self.error("duplicate-head", "a head is listed twice in `heads:`", at + "/heads")
        yield from self.intervention_layers(at, item)
        if item.op == "mean_ablate" and item.vector in self.recipe.vectors:
            source = self.recipe.vectors[item.vector]
            if not isinstance(source, MeanActivationVector):
                yield self.warning(
                    "mean-ablate-source",
                    f"mean_ablate usually takes a mean_activation vector; {item.vector!r} is "
                    f"kind {source.kind!r}",
                    at + "/vector",
                )
        if item.positions == "generated" and self.recipe.run.mode == "trace":
            yield self.error(
                "position-mode",
                "positions: generated means nothing in trace mode (no token is generated); "
                "use all, last or prompt, or run.mode: generate",
                at + "/positions",
            )
        if item.op == "zero" and item.strength != 1.0:
            yield self.warning(
                "strength-ignored",
                "op zero ignores `strength`: the activations become zero whatever its value "
                "(sweeping it changes nothing)",
                at + "/strength",
            )
        if item.positions == "generated" and self.recipe.run.mode != "trace":
            yield from self.generated_only_metrics(at)
        yield from self.turns_without_chat(at, item)

    def turns_without_chat(self, at: str, item: Intervention) -> Iterator[Diagnostic]:
        """`positions: user` (or system) on inline text prompts, which have no turns: the
        intervention would select no token and report +0.0000 as if the steering did nothing."""
        prompts = self.recipe.run.prompts
        texts = [prompts] if isinstance(prompts, str) else prompts
        roles = item.positions in ("user", "system")
        if roles and isinstance(texts, list) and all(isinstance(p, str) for p in texts):
            yield self.warning(
                "positions-no-turns",
                f"positions: {item.positions} selects the text of {item.positions} turns, but "
                "every prompt is plain text (no turns), so no token is steered; write the "
                "prompts as conversations (`messages:`)",
                at + "/positions",
            )

    def generated_only_metrics(self, at: str) -> Iterator[Diagnostic]:
        """An intervention on generated tokens cannot move a metric of the prompt's next
        token (it is read before any token is generated) or of neutral texts: such metrics
        would report +0.0000 as if the steering did nothing."""
        metrics = self.recipe.report.metrics
        if metrics and not any(
            isinstance(m, TokenProbMetric) and m.at == "generated" for m in metrics
        ):
            yield self.warning(
                "metrics-miss-generated",
                "positions: generated steers only generated tokens, but every metric reads the "
                "prompt's next token (or neutral texts), so none can show its effect; add a "
                "token_prob metric with `at: generated`, or steer positions: all",
                at + "/positions",
            )

    def intervention_layers(self, at: str, item: Intervention) -> Iterator[Diagnostic]:
        fixed_module = item.module is not None and "{layer}" not in item.module
        if item.module is not None and "site" in item.model_fields_set:
            yield self.error(
                "module-and-site",
                "give either `site:` or `module:`, not both (module overrides site)",
                at + "/module",
            )
        if fixed_module and item.layers is not None:
            yield self.error(
                "layers-with-fixed-module",
                "`module:` names one fixed module (no {layer} placeholder), so `layers:` has no "
                "meaning; remove it or write {layer} in the path",
                at + "/layers",
            )
        if not fixed_module and item.layers is None:
            yield self.error("missing-layers", "missing `layers:` (which layers to act on)", at)
        if isinstance(item.layers, list) and len(set(item.layers)) != len(item.layers):
            yield self.error(
                "duplicate-layer", "a layer is listed twice in `layers:`", at + "/layers"
            )

    # -- run and report ----------------------------------------------------------------------
    # -- backend -----------------------------------------------------------------------------
    def vllm_limits(self) -> Iterator[Diagnostic]:
        """What the vLLM backend cannot do (backends/vllm.py says why), each at its field."""
        hint = "; or run this recipe with backend local or remote"
        for index, item in enumerate(self.recipe.interventions):
            at = f"/interventions/{index}"
            if item.positions != "all":
                yield self.error(
                    "backend-unsupported",
                    f"positions {item.positions!r} on backend vllm: vLLM packs each request's "
                    f"tokens flat, so only `positions: all` is supported there{hint}",
                    at + "/positions",
                )
            if item.site == "resid_pre":
                yield self.error(
                    "backend-unsupported",
                    "site resid_pre on backend vllm: vLLM's layers take (positions, hidden, "
                    "residual); use site resid_post at the layer before (the same stream)"
                    f"{hint}",
                    at + "/site",
                )
        for name, spec in self.recipe.vectors.items():
            if spec.kind in ("contrastive", "probe", "activation", "mean_activation"):
                yield self.error(
                    "backend-unsupported",
                    f"vector {name!r} is read from activations, which backend vllm does not "
                    "extract: build it with `steer vectors build` (backend local or remote, "
                    "same model) and load the file with `kind: file`",
                    join_pointer("/vectors", name) + "/kind",
                )
        for index, metric in enumerate(self.recipe.report.metrics):
            if getattr(metric, "text", None) is not None:
                yield self.error(
                    "backend-unsupported",
                    f"metric {metric.kind} over texts on backend vllm: vLLM computes logits "
                    f"for the next token only, not for every position of a text{hint}",
                    f"/report/metrics/{index}",
                )

    def run_section(self) -> Iterator[Diagnostic]:
        run = self.recipe.run
        gen = run.generation
        at = "/run/generation"
        if gen.min_new_tokens is not None and gen.min_new_tokens > gen.max_new_tokens:
            yield self.error(
                "generation-range",
                f"min_new_tokens ({gen.min_new_tokens}) exceeds "
                f"max_new_tokens ({gen.max_new_tokens})",
                at + "/min_new_tokens",
            )
        if not gen.do_sample:
            for field in ("temperature", "top_k", "top_p"):
                if getattr(gen, field) is not None:
                    yield self.warning(
                        "sampling-param-ignored",
                        f"{field} has no effect with do_sample: false (greedy decoding)",
                        f"{at}/{field}",
                    )
        elif gen.seed is None:
            yield self.warning(
                "unseeded-sampling",
                "do_sample: true without a seed: runs will not be reproducible; add `seed:`",
                at,
            )
        for name, spec in self.recipe.vectors.items():
            if isinstance(spec, ContrastiveVector):
                yield from self.contrastive(name, spec)

    def contrastive(self, name: str, spec: ContrastiveVector) -> Iterator[Diagnostic]:
        at = join_pointer("/vectors", name)
        if spec.method == "pca_diff" and not spec.paired:
            yield self.error(
                "pca-needs-pairs",
                "method pca_diff works on paired differences: set `paired: true` and list "
                "positive and negative prompts in matching order",
                at + "/method",
            )
        if (
            spec.paired
            and isinstance(spec.positive, list)
            and isinstance(spec.negative, list)
            and len(spec.positive) != len(spec.negative)
        ):
            yield self.error(
                "paired-length",
                f"paired: true needs as many negative prompts as positive ones "
                f"({len(spec.positive)} vs {len(spec.negative)})",
                at + "/negative",
            )

    def metrics(self) -> Iterator[Diagnostic]:
        for index, metric in enumerate(self.recipe.report.metrics):
            at = f"/report/metrics/{index}"
            if (
                isinstance(metric, TokenProbMetric)
                and metric.at == "generated"
                and (self.recipe.run.mode == "trace")
            ):
                yield self.error(
                    "metric-mode",
                    "token_prob at: generated needs generated tokens; trace mode has none",
                    at + "/at",
                )
            if isinstance(metric, KLBaselineMetric) and not self.recipe.run.compare_baseline:
                yield self.error(
                    "metric-needs-baseline",
                    "kl_baseline compares with the unsteered run: set run.compare_baseline: true",
                    at,
                )
