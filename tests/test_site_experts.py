"""site: experts: chosen routed experts' outputs steered or ablated before the router mixes them.

Each family's tiny random MoE (tests/architecture_zoo.py: 3 layers, width 64, 4 experts, 2 per
token) runs through the engine on two left-padded prompts; the reference is an untouched copy in
plain transformers with a hand-written forward (pre-)hook on the experts module at
REFERENCE_EXPERTS, each prompt alone. The experts module returns y = sum_k w[t, k] E_{i[t, k]}(h):
- add v to expert e's output: y + (sum_k w[t, k] [i[t, k] = e]) s v, a forward hook;
- ablate e: w[t, k] = 0 where i[t, k] = e, a forward pre-hook on the routing weights.
Compared: the top-20 next-token probabilities (1e-5: float32, the padded batch and the lone
prompt only reorder sums), in trace mode and at every generate step, and the greedy tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError
from recipe_engine.execute.reduce import StepReduction
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import wrap_model
from recipe_engine.validate import validate_file
from tests.architecture_zoo import config_kwargs
from tests.conftest import MINIMAL

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ("qwen3_moe", "mixtral", "olmoe", "qwen2_moe")
# the routed-experts module of layer LAYER, written out by hand per family
REFERENCE_EXPERTS = {
    "qwen3_moe": "model.layers.1.mlp.experts",
    "mixtral": "model.layers.1.mlp.experts",
    "olmoe": "model.layers.1.mlp.experts",
    "qwen2_moe": "model.layers.1.mlp.experts",  # not mlp.shared_expert: not a routed expert
}
PROMPTS = ["The quick brown fox jumps", "Hi"]
LAYER = 1
STRENGTH = 2.0
NEW_TOKENS = 4
TOP = 20
ATOL = 1e-5
EOS = 256

Hook = Callable[[torch.nn.Module], list[Any]]  # installs hooks on the reference, returns handles


def _vector() -> torch.Tensor:
    return torch.randn(64, generator=torch.Generator().manual_seed(7))


def _chosen(index: torch.Tensor, experts: list[int]) -> torch.Tensor:
    hit = torch.zeros_like(index, dtype=torch.bool)
    for expert in experts:
        hit |= index == expert
    return hit


def add_hook(experts: list[int], delta: torch.Tensor) -> Hook:
    """delta added to each chosen expert's output, then weighted by the router as it is."""

    def install(module: torch.nn.Module) -> list[Any]:
        def hook(mod: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
            _, index, weights = args
            share = (weights * _chosen(index, experts)).sum(dim=-1, keepdim=True)
            return out + share * delta

        return [module.register_forward_hook(hook)]

    return install


def weights_hook(experts: list[int], factor: float) -> Hook:
    """The chosen experts' routing weights times factor (0: ablated), before the module runs."""

    def install(module: torch.nn.Module) -> list[Any]:
        def hook(mod: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            hidden, index, weights = args
            return hidden, index, torch.where(_chosen(index, experts), weights * factor, weights)

        return [module.register_forward_pre_hook(hook)]

    return install


def replace_hook(experts: list[int], value: torch.Tensor) -> Hook:
    """Each chosen expert's output replaced by value: its routing weight zeroed before the
    module runs, value added with that (original) weight after."""

    def install(module: torch.nn.Module) -> list[Any]:
        kept: dict[str, torch.Tensor] = {}

        def before(mod: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            hidden, index, weights = args
            kept["share"] = (weights * _chosen(index, experts)).sum(dim=-1, keepdim=True)
            return hidden, index, torch.where(_chosen(index, experts), 0.0, weights)

        def after(mod: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
            return out + kept["share"] * value

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    return install


def zero_output_hook(module: torch.nn.Module) -> list[Any]:
    """The experts module's whole output zeroed (the independent side of 'ablate them all')."""
    return [module.register_forward_hook(lambda mod, args, out: torch.zeros_like(out))]


class Family:
    def __init__(self, model_type: str) -> None:
        config = AutoConfig.for_model(model_type, **config_kwargs(model_type))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            hf = AutoModelForCausalLM.from_config(config).eval()  # type: ignore[no-untyped-call]
        self.model_type = model_type
        self.reference = copy.deepcopy(hf)
        self.tokenizer = byte_tokenizer()
        self.loaded = wrap_model(hf, byte_tokenizer())

    @contextmanager
    def hooked(self, install: Hook | None) -> Iterator[None]:
        module = self.reference.get_submodule(REFERENCE_EXPERTS[self.model_type])
        handles = install(module) if install is not None else []
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def reference_run(self, install: Hook | None) -> tuple[list[torch.Tensor], list[list[int]]]:
        """Per prompt alone: the logits of the prompt's next token and of every generate step
        ([1 + steps, V]), and the greedy tokens."""
        logits, tokens = [], []
        with torch.inference_mode(), self.hooked(install):
            for prompt in PROMPTS:
                inputs = self.tokenizer(prompt, return_tensors="pt")
                out = self.reference.generate(
                    **inputs,
                    max_new_tokens=NEW_TOKENS,
                    do_sample=False,
                    pad_token_id=EOS,
                    return_dict_in_generate=True,
                    output_logits=True,
                )
                new = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
                end = new.index(EOS) if EOS in new else len(new)
                tokens.append(new[:end])
                logits.append(torch.stack([step[0].float() for step in out.logits]))
        return logits, tokens


_FAMILIES: dict[str, Family] = {}


def family(model_type: str) -> Family:
    if model_type not in _FAMILIES:
        _FAMILIES[model_type] = Family(model_type)
    return _FAMILIES[model_type]


def _recipe(interventions: list[dict[str, Any]], mode: str) -> Recipe:
    run: dict[str, Any] = {"mode": mode, "prompts": PROMPTS}
    if mode == "generate":
        run["generation"] = {"max_new_tokens": NEW_TOKENS}
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "experts",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 0}},
            "interventions": interventions,
            "run": run,
        }
    )


def _top_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Max |difference| of the probabilities of the reference's top-20 tokens."""
    p, q = ours.float().softmax(-1), theirs.float().softmax(-1)
    top = q.topk(TOP, dim=-1).indices
    return float((p.gather(-1, top) - q.gather(-1, top)).abs().max())


def check(fam: Family, interventions: list[dict[str, Any]], install: Hook | None) -> None:
    """The engine in trace and generate mode against the hooked reference; steering moved."""
    vectors = {"v": _vector()}
    expected, tokens = fam.reference_run(install)
    baseline, _ = fam.reference_run(None)
    trace = compile_plan(_recipe(interventions, "trace"), fam.loaded, vectors)
    steered = trace_pass(fam.loaded, trace, PROMPTS, batch_size=2).next_logits
    generate = compile_plan(_recipe(interventions, "generate"), fam.loaded, vectors)
    generated = generate_pass(
        fam.loaded,
        generate,
        PROMPTS,
        GenerationSpec(max_new_tokens=NEW_TOKENS),
        batch_size=2,
        reduction=StepReduction(keep_logits=True),
    )
    assert generated.generated == tokens, "greedy tokens differ from the hooked reference"
    moved = max(float((e[0] - b[0]).abs().max()) for e, b in zip(expected, baseline, strict=True))
    assert moved > 1e-4, "the reference hook had no effect: the test could not fail"
    for row in range(len(PROMPTS)):
        assert _top_diff(steered[row], expected[row][0]) <= ATOL, f"trace, prompt {row}"
        steps = generated.step_logits[row]
        assert steps.shape[0] == len(tokens[row])
        for step in range(steps.shape[0]):
            diff = _top_diff(steps[step], expected[row][step])
            assert diff <= ATOL, f"generate, prompt {row}, step {step}: {diff:.2e}"


@pytest.mark.parametrize("model_type", FAMILIES)
def test_add_to_chosen_experts_matches_a_plain_hook(model_type: str) -> None:
    fam = family(model_type)
    item = {"op": "add", "site": "experts", "experts": [1, 3], "layers": LAYER, "vector": "v"}
    check(fam, [{**item, "strength": STRENGTH}], add_hook([1, 3], STRENGTH * _vector()))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_ablating_chosen_experts_matches_zeroed_router_weights(model_type: str) -> None:
    fam = family(model_type)
    item = {"op": "zero", "site": "experts", "experts": [0, 2], "layers": LAYER}
    check(fam, [item], weights_hook([0, 2], 0.0))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_ablating_every_routed_expert_zeroes_the_experts_output(model_type: str) -> None:
    """Independent of the weights' algebra: no routed expert left, the experts module returns
    zero (Qwen2-MoE's shared expert is outside it and keeps running)."""
    fam = family(model_type)
    item = {"op": "zero", "site": "experts", "experts": [0, 1, 2, 3], "layers": LAYER}
    check(fam, [item], zero_output_hook)
    _FAMILIES.pop(model_type)  # the last test of this family: free it


def _both(*hooks: Hook) -> Hook:
    return lambda module: [handle for install in hooks for handle in install(module)]


def test_set_scale_mean_ablate_and_composition_match_plain_hooks() -> None:
    """set = the expert's output replaced by s v; scale = its weight scaled; mean_ablate = its
    output replaced by m; zero then add = set; add then zero = zero (add hooks see the weights
    as the pre-hooks left them: the zeroed expert takes no share)."""
    fam = Family("qwen3_moe")
    v = _vector()
    base = {"site": "experts", "layers": LAYER}
    cases: list[tuple[list[dict[str, Any]], Hook]] = [
        (
            [{**base, "op": "set", "experts": [2], "vector": "v", "strength": STRENGTH}],
            replace_hook([2], STRENGTH * v),
        ),
        ([{**base, "op": "scale", "experts": [1], "strength": 0.25}], weights_hook([1], 0.25)),
        (
            [{**base, "op": "mean_ablate", "experts": [3], "vector": "v"}],
            replace_hook([3], v),
        ),
        (
            [
                {**base, "op": "zero", "experts": [0]},
                {**base, "op": "add", "experts": [0], "vector": "v", "strength": STRENGTH},
            ],
            replace_hook([0], STRENGTH * v),
        ),
        (
            [
                {**base, "op": "add", "experts": [0, 1], "vector": "v", "strength": STRENGTH},
                {**base, "op": "zero", "experts": [1]},
            ],
            _both(weights_hook([1], 0.0), add_hook([0], STRENGTH * v)),
        ),
    ]
    for interventions, install in cases:
        check(fam, interventions, install)


def test_positions_last_steers_only_the_last_token() -> None:
    fam = Family("mixtral")
    v = _vector()
    item = {"op": "add", "site": "experts", "experts": [1], "layers": LAYER, "vector": "v"}
    item |= {"strength": STRENGTH, "positions": "last"}
    plan = compile_plan(_recipe([item], "trace"), fam.loaded, {"v": v})
    steered = trace_pass(fam.loaded, plan, PROMPTS, batch_size=2).next_logits

    def last_only(module: torch.nn.Module) -> list[Any]:
        def hook(mod: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
            _, index, weights = args
            share = (weights * (index == 1)).sum(dim=-1, keepdim=True)
            share[:-1] = 0  # one prompt alone: its last row is its last token
            return out + share * STRENGTH * v

        return [module.register_forward_hook(hook)]

    expected, _ = fam.reference_run(last_only)
    for row in range(len(PROMPTS)):
        assert _top_diff(steered[row], expected[row][0]) <= ATOL


def test_compile_refuses_dense_layers_and_models_at_the_site() -> None:
    """A dense model (llama) and DeepSeek V3's first, dense layer have no routed experts."""
    for model_type, layer in (("llama", 1), ("deepseek_v3", 0)):
        config = AutoConfig.for_model(model_type, **config_kwargs(model_type))
        hf = AutoModelForCausalLM.from_config(config).eval()  # type: ignore[no-untyped-call]
        loaded = wrap_model(hf, byte_tokenizer())
        item = {"op": "zero", "site": "experts", "experts": [0], "layers": layer}
        with pytest.raises(RecipeError) as caught:
            compile_plan(_recipe([item], "trace"), loaded, {"v": _vector()})
        diagnostic = caught.value.diagnostics[0]
        assert diagnostic.code == "experts-site" and diagnostic.pointer.endswith("/site")
        assert f"layer {layer} has no routed experts" in diagnostic.message
        assert "site: mlp_out" in diagnostic.message
    item = {"op": "zero", "site": "experts", "experts": [0], "layers": 1}
    plan = compile_plan(_recipe([item], "trace"), loaded, {"v": _vector()})  # layer 1 is MoE
    assert plan.ops[0].path == "model.layers.1.mlp.experts"


# -- validation (torch-free) and the other stages' refusals ----------------------------------

_VECTORS = "vectors:\n  v: {kind: random}\n"


def _diagnostics(write: Any, item: str, model: str = "", **kw: Any) -> list[Any]:
    text = MINIMAL + _VECTORS + f"interventions:\n  - {item}\n"
    if model:
        text = text.replace("{id: builtin:tiny-random}", model)
    return [d for d in validate_file(write("r.yaml", text), **kw).diagnostics]


def _only(found: list[Any], code: str) -> Any:
    errors = [d for d in found if d.severity == "error"]
    assert [d.code for d in errors] == [code], [d.format() for d in errors]
    return errors[0]


def test_validation_requires_experts_with_the_site_and_refuses_it_elsewhere(write: Any) -> None:
    missing = _only(_diagnostics(write, "{op: zero, site: experts, layers: 1}"), "missing-experts")
    assert "r.yaml:10:" in missing.format() and missing.pointer == "/interventions/0/site"
    stray = _only(
        _diagnostics(write, "{op: add, vector: v, site: mlp_out, experts: [0], layers: 1}"),
        "experts-needs-experts-site",
    )
    assert stray.pointer == "/interventions/0/experts" and "r.yaml:10:" in stray.format()
    twice = _diagnostics(write, "{op: zero, site: experts, experts: [1, 1], layers: 1}")
    assert "duplicate-expert" in [d.code for d in twice]


def test_validation_refuses_ops_not_exact_at_the_site(write: Any) -> None:
    for item in (
        "{op: project_out, vector: v, site: experts, experts: [0], layers: 1}",
        "{op: scale, vector: v, site: experts, experts: [0], layers: 1}",
    ):
        found = _only(_diagnostics(write, item), "experts-op")
        assert found.pointer == "/interventions/0/op" and "r.yaml:10:" in found.format()
        assert "site mlp_out" in found.message


def test_validation_refuses_the_site_on_a_dense_model(write: Any) -> None:
    """A builtin model's shape is checked on every validation: tiny-random is dense."""
    found = _only(
        _diagnostics(write, "{op: zero, site: experts, experts: [0], layers: 1}"), "experts-site"
    )
    assert "site: mlp_out" in found.message and "r.yaml:10:" in found.format()


def _save_moe(folder: Path) -> None:
    config = AutoConfig.for_model("qwen3_moe", **config_kwargs("qwen3_moe"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)


def test_check_model_refuses_an_expert_out_of_range(write: Any, repo_dir: Path) -> None:
    config = AutoConfig.for_model("qwen3_moe", **config_kwargs("qwen3_moe"))
    (repo_dir / "model").mkdir()
    config.to_json_file(str(repo_dir / "model" / "config.json"))
    item = "{op: zero, site: experts, experts: [3, 4], layers: 1}"
    model = "{id: ./model}"
    assert not [d for d in _diagnostics(write, item, model) if d.severity == "error"]
    found = _only(_diagnostics(write, item, model, check_model=True), "expert-range")
    assert found.pointer == "/interventions/0/experts/1" and "4 routed experts" in found.message


def test_export_refuses_the_site_at_its_line_and_explain_names_the_experts(
    repo_dir: Path,
) -> None:
    from recipe_engine.cli.explain import _text
    from recipe_engine.export import export_recipe
    from recipe_engine.pipeline import explain_recipe

    _save_moe(repo_dir / "model")
    text = (
        "version: 1\nname: e\nmodel: {id: ./model, dtype: float32}\n"
        + _VECTORS
        + "interventions:\n"
        + "  - {op: add, vector: v, site: experts, experts: [0, 2], layers: 1}\n"
        + 'run: {mode: trace, prompts: ["hello"]}\n'
    )
    path = repo_dir / "r.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as caught:
        export_recipe(path, "hf", repo_dir / "baked")
    shown = caught.value.diagnostics[0].format()
    assert "r.yaml:7:" in shown and "/interventions/0/site" in shown and "[cannot-bake]" in shown
    assert "site experts" in shown and not (repo_dir / "baked").exists()
    explained = _text(explain_recipe(path))
    assert "layer 1 experts" in explained and "routed experts [0, 2] of 4" in explained
    assert "model.layers.1.mlp.experts.input" in explained
