"""The architecture matrix: every site on every decoder family, trace and generate, against
plain transformers with a hand-written forward hook.

For each family of tests/architecture_zoo.py a tiny random model is built once (3 layers,
width 64, 4 heads). Each cell compiles one intervention at layer 1 through the engine and runs
two left-padded prompts; the reference is an untouched copy of the HF model with a forward
(pre-)hook at the module path written out in architecture_zoo.REFERENCE, each prompt alone. A
cell is `ok` when the next-token logits agree to 1e-5 (float32; the padded batch and the lone
prompt only reorder sums) and, in generate mode, the greedy tokens are identical; `refused`
when the engine refuses it with a recipe error (its message is kept). A cell that runs and
differs fails the test. The cells' statuses must equal tests/data/architecture_matrix.json,
from which scripts/architecture_table.py writes the README's table (ARCH_MATRIX_WRITE=1
rewrites the file).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import wrap_model
from tests.architecture_zoo import ARCHITECTURES, config_kwargs, reference_paths
from tests.support.module_hooks import edit_first, pre_hook

MATRIX_FILE = Path(__file__).parent / "data" / "architecture_matrix.json"
PROMPTS = ["The quick brown fox jumps", "Hi"]  # row 1 is left-padded in the engine's batch
LAYER = 1
HEADS = [1, 2]
STRENGTH = 2.0
NEW_TOKENS = 4
ATOL = 1e-5
CELLS = (
    "resid_pre",
    "resid_post",
    "attn_out",
    "mlp_out",
    "heads_zero",
    "heads_add",
    "experts_zero",
)
EXPERTS = [0, 2]  # of the zoo's 4 routed experts: ablated at LAYER in the experts_zero cell
EOS = 256
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _vector(width: int, seed: int) -> torch.Tensor:
    return torch.randn(width, generator=torch.Generator().manual_seed(seed))


@contextmanager
def reference_hook(
    model_type: str, root: torch.nn.Module, cell: str, vector: torch.Tensor
) -> Iterator[None]:
    """The cell's intervention as a plain hook on the hand-written module path."""
    blocks, attn, mlp, out_proj = reference_paths(model_type)
    block = f"{blocks}.{LAYER}"
    delta = STRENGTH * vector
    if cell.startswith("heads"):
        projection = root.get_submodule(f"{block}.{out_proj}")
        # the head width the projection itself reads: its input features / heads
        width = getattr(projection, "in_features", None) or projection.nx  # GPT-2's Conv1D
        head_dim = int(width) // 4

        def heads(h: torch.Tensor) -> torch.Tensor:
            h = h.clone()
            for head in HEADS:
                cols = slice(head * head_dim, (head + 1) * head_dim)
                h[..., cols] = 0 if cell == "heads_zero" else h[..., cols] + delta[cols]
            return h

        handle = projection.register_forward_pre_hook(pre_hook(heads), with_kwargs=True)
    elif cell == "experts_zero":
        # routed experts: the fused experts module's routing weights of EXPERTS set to 0
        experts = root.get_submodule(f"{block}.{mlp}.experts")

        def ablate(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            bound = inspect.signature(type(mod).forward).bind(mod, *args, **kwargs)
            hidden, index, weights = list(bound.arguments.values())[1:4]
            hit = torch.zeros_like(index, dtype=torch.bool)
            for expert in EXPERTS:
                hit |= index == expert
            return (hidden, index, torch.where(hit, torch.zeros_like(weights), weights)), {}

        handle = experts.register_forward_pre_hook(ablate, with_kwargs=True)
    elif cell == "resid_pre":
        handle = root.get_submodule(block).register_forward_pre_hook(
            pre_hook(lambda h: h + delta), with_kwargs=True
        )
    else:
        path = {"resid_post": block, "attn_out": f"{block}.{attn}", "mlp_out": f"{block}.{mlp}"}
        handle = root.get_submodule(path[cell]).register_forward_hook(
            lambda m, i, o: edit_first(o, lambda h: h + delta)
        )
    try:
        yield
    finally:
        handle.remove()


def _intervention(cell: str) -> dict[str, Any]:
    base: dict[str, Any] = {"layers": LAYER, "positions": "all"}
    if cell == "heads_zero":
        return {**base, "op": "zero", "site": "heads", "heads": HEADS}
    if cell == "heads_add":
        return {**base, "op": "add", "site": "heads", "heads": HEADS, "vector": "v"}
    if cell == "experts_zero":
        return {**base, "op": "zero", "site": "experts", "experts": EXPERTS}
    return {**base, "op": "add", "site": cell, "vector": "v", "strength": STRENGTH}


def _recipe(cell: str, mode: str) -> Recipe:
    run: dict[str, Any] = {"mode": mode, "prompts": PROMPTS}
    if mode == "generate":
        run["generation"] = {"max_new_tokens": NEW_TOKENS}
    intervention = _intervention(cell)
    if cell == "heads_add":
        intervention["strength"] = STRENGTH
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "matrix",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 0}},
            "interventions": [intervention],
            "run": run,
        }
    )


class Family:
    """One tiny model: the engine's wrapped copy and an untouched reference copy."""

    def __init__(self, model_type: str) -> None:
        config = AutoConfig.for_model(model_type, **config_kwargs(model_type))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            hf = AutoModelForCausalLM.from_config(config).eval()  # type: ignore[no-untyped-call]
        self.model_type = model_type
        self.reference = copy.deepcopy(hf)
        self.tokenizer = byte_tokenizer()
        self.loaded = wrap_model(hf, byte_tokenizer())
        self.baseline = self.reference_run(None, torch.zeros(0))[0]  # unsteered, once

    def width(self, cell: str) -> int:
        if cell.startswith("heads"):
            blocks, _, _, out_proj = reference_paths(self.model_type)
            module = self.reference.get_submodule(f"{blocks}.{LAYER}.{out_proj}")
            return int(getattr(module, "in_features", None) or module.nx)
        return 64

    def reference_run(
        self, cell: str | None, vector: torch.Tensor
    ) -> tuple[torch.Tensor, list[list[int]]]:
        """Next-token logits and greedy tokens, each prompt alone, hooked when cell is set."""
        logits, tokens = [], []
        with torch.inference_mode():
            for prompt in PROMPTS:
                inputs = self.tokenizer(prompt, return_tensors="pt")
                hook = (
                    reference_hook(self.model_type, self.reference, cell, vector)
                    if cell
                    else _nothing()
                )
                with hook:
                    logits.append(self.reference(**inputs).logits[0, -1].float())
                    out = self.reference.generate(
                        **inputs,
                        max_new_tokens=NEW_TOKENS,
                        do_sample=False,
                        pad_token_id=EOS,
                    )
                new = out[0, inputs["input_ids"].shape[1] :].tolist()
                tokens.append(new[: new.index(EOS)] if EOS in new else new)
        return torch.stack(logits), tokens


@contextmanager
def _nothing() -> Iterator[None]:
    yield


_FAMILIES: dict[str, Family] = {}


def family(model_type: str) -> Family:
    if model_type not in _FAMILIES:
        _FAMILIES[model_type] = Family(model_type)
    return _FAMILIES[model_type]


def run_cell(fam: Family, cell: str) -> dict[str, Any]:
    """One cell: ok (with its largest difference), refused (with the message), or n/a (the
    experts cell on a model without routed experts: its config counts none)."""
    if cell == "experts_zero" and not _routed_experts(fam.reference.config):
        return {"status": "n/a"}
    vector = _vector(fam.width(cell), seed=CELLS.index(cell))
    vectors = {"v": vector}
    try:
        trace_plan = compile_plan(_recipe(cell, "trace"), fam.loaded, vectors)
        gen_plan = compile_plan(_recipe(cell, "generate"), fam.loaded, vectors)
    except RecipeError as exc:
        return {"status": "refused", "message": exc.diagnostics[0].message}
    steered = trace_pass(fam.loaded, trace_plan, PROMPTS, batch_size=2).next_logits
    generated = generate_pass(
        fam.loaded,
        gen_plan,
        PROMPTS,
        GenerationSpec(max_new_tokens=NEW_TOKENS),
        batch_size=2,
    )
    expected, tokens = fam.reference_run(cell, vector)
    baseline = fam.baseline
    trace_diff = (steered - expected).abs().max().item()
    gen_diff = (generated.next_logits - expected).abs().max().item()
    moved = (expected - baseline).abs().max().item()
    return {
        "status": "ok",
        "trace_diff": trace_diff,
        "generate_diff": gen_diff,
        "tokens_equal": generated.generated == tokens,
        "moved": moved,
    }


def _routed_experts(config: Any) -> int:
    names = ("num_experts", "num_local_experts", "n_routed_experts")
    return max(int(getattr(config, name, None) or 0) for name in names)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, dict[str, Any]]]:
    return {}


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_every_cell_matches_a_plain_hook_or_is_refused(
    model_type: str, results: dict[str, dict[str, dict[str, Any]]]
) -> None:
    fam = family(model_type)
    row = {cell: run_cell(fam, cell) for cell in CELLS}
    results[model_type] = row
    _FAMILIES.pop(model_type)  # built once, used by this test only: free it
    for cell, outcome in row.items():
        if outcome["status"] != "ok":
            continue
        assert outcome["trace_diff"] <= ATOL, f"{model_type} {cell} trace: {outcome}"
        assert outcome["generate_diff"] <= ATOL, f"{model_type} {cell} generate: {outcome}"
        assert outcome["tokens_equal"], f"{model_type} {cell}: greedy tokens differ"
        assert outcome["moved"] > 1e-4, f"{model_type} {cell}: steering had no effect"
    expected = json.loads(MATRIX_FILE.read_text())["architectures"] if MATRIX_FILE.exists() else {}
    statuses = {cell: _summary(outcome) for cell, outcome in row.items()}
    if os.environ.get("ARCH_MATRIX_WRITE"):
        _write(model_type, statuses)
    else:
        assert statuses == expected.get(model_type), (
            f"{model_type}: cells {statuses} differ from {MATRIX_FILE.name}; rerun with "
            "ARCH_MATRIX_WRITE=1 and regenerate the README table (scripts/architecture_table.py)"
        )


def _summary(outcome: dict[str, Any]) -> dict[str, str]:
    if outcome["status"] in ("ok", "n/a"):
        return {"status": outcome["status"]}
    return {"status": outcome["status"], "message": outcome["message"]}


def _write(model_type: str, statuses: dict[str, dict[str, str]]) -> None:
    data = json.loads(MATRIX_FILE.read_text()) if MATRIX_FILE.exists() else {}
    data.setdefault("cells", list(CELLS))
    architectures = data.setdefault("architectures", {})
    architectures[model_type] = statuses
    data["architectures"] = dict(sorted(architectures.items()))
    MATRIX_FILE.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
