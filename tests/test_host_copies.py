"""A generate pass copies no full-vocabulary tensor to the host per step (issue 12).

Every way a tensor reaches the host (`.cpu()`, `.to("cpu")`, `.tolist()`, `.numpy()`) is
wrapped while a generate or edit pass runs; the copies the engine's own code makes (calls from
a recipe_engine module) are recorded with their shapes. A copy with a vocabulary-sized dimension
may happen once per batch (the next-token logits after the prompts, which the report's top
tokens, `at: next`, `logit_diff` and `kl_baseline` read), never once per generated step. On a
GPU each such call is a device-to-host transfer; on CPU the same calls are the proxy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.reduce import StepReduction, finite_rows
from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from tests.support.engine_reference import hooks, reference_generate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["The cat sat on", "A dog ran past", "Hello there"]
PACKAGE = str(Path(__file__).resolve().parents[1] / "recipe_engine")
BATCH = 2  # 3 prompts: two batches


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


def _plan(model: LoadedModel, mode: str):  # type: ignore[no-untyped-def]
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "copies",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 3, "norm": 8.0}},
            "interventions": [{"vector": "v", "layers": 1, "positions": "all", "strength": 1.0}],
            "run": {"mode": mode, "prompts": ["x"]},
        }
    )
    vector = torch.randn(model.shape.hidden_size, generator=torch.Generator().manual_seed(3)) * 2
    return compile_plan(recipe, model, {"v": vector}), vector


def _to_host(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    targets = [*args, kwargs.get("device")]
    return any(str(t) == "cpu" for t in targets if isinstance(t, (str, torch.device)))


@pytest.fixture
def host_copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, ...]]]:
    """Shapes of the tensors the engine's code copies to the host while the fixture is on."""
    shapes: list[tuple[int, ...]] = []

    def wrap(name: str, is_copy: Callable[[tuple[Any, ...], dict[str, Any]], bool]) -> None:
        original = getattr(torch.Tensor, name)

        def recorded(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(PACKAGE) and is_copy(args, kwargs):
                shapes.append(tuple(self.shape))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, recorded)

    for name in ("cpu", "tolist", "numpy"):
        wrap(name, lambda args, kwargs: True)
    wrap("to", _to_host)
    yield shapes


def _every(step: int, chunk: int) -> list[int]:
    return list(range(chunk))  # positions: all, at every step


def _vocabulary(model: LoadedModel) -> int:
    return int(model.hf.get_output_embeddings().weight.shape[0])


@pytest.mark.parametrize("mode", ["generate", "edit"])
def test_no_per_step_full_vocabulary_copy(
    model: LoadedModel, host_copies: list[tuple[int, ...]], mode: str
) -> None:
    plan, _ = _plan(model, mode)
    vocab = _vocabulary(model)
    batches = math.ceil(len(PROMPTS) / BATCH)
    counts = []
    for new_tokens in (3, 12):
        host_copies.clear()
        gen = GenerationSpec(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        result = generate_pass(model, plan, PROMPTS, gen, BATCH, persistent=mode == "edit")
        assert all(len(tokens) == new_tokens for tokens in result.generated)
        full = [shape for shape in host_copies if vocab in shape]
        # one copy per batch, the next-token logits, whatever the number of generated steps
        assert len(full) == batches, full
        assert sum(math.prod(shape) for shape in full) == len(PROMPTS) * vocab
        counts.append(len(host_copies))
    assert counts[0] == counts[1], "host copies grow with the number of generated steps"


def test_per_step_reductions_equal_a_reference(
    model: LoadedModel, host_copies: list[tuple[int, ...]]
) -> None:
    """The token-set masses reduced in the trace equal softmax of plain HF generate's logits."""
    plan, vector = _plan(model, "generate")
    sets = ((5, 17, 60), (101,))
    new = 6
    gen = GenerationSpec(max_new_tokens=new, min_new_tokens=new)
    result = generate_pass(model, plan, PROMPTS[:2], gen, 1, reduction=StepReduction(sets))
    assert not [shape for shape in host_copies if _vocabulary(model) in shape][2:]
    assert result.step_finite == [True, True]
    assert not result.step_logits  # not asked for: never kept
    for row, prompt in enumerate(PROMPTS[:2]):
        with hooks(model.hf, "gpt2", "resid_post", {1: 1.0}, "add", vector, 1.0, _every):
            tokens, logits = reference_generate(model, prompt, new)
        assert result.generated[row] == tokens
        probs = torch.softmax(torch.stack(logits), dim=-1)
        for ids in sets:
            expected = probs[:, list(ids)].sum(dim=-1)
            assert (result.step_mass[ids][row] - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_finite_rows_flags_exactly_the_rows_with_nan_or_inf(dtype: torch.dtype) -> None:
    rows = torch.randn(9, 1000, generator=torch.Generator().manual_seed(0)) * 30
    rows[1, 5] = float("nan")
    rows[2, 999] = float("inf")
    rows[3, 0] = float("-inf")
    big = torch.finfo(dtype).max  # finite, as large as the dtype goes: never overflows
    rows[4] = big
    rows[5] = -big
    rows[6, ::2] = big
    rows[6, 1::2] = -big
    rows[7] = torch.finfo(dtype).tiny
    x = rows.to(dtype).float()
    assert finite_rows(x).tolist() == torch.isfinite(x).all(dim=-1).tolist()
    assert finite_rows(x).tolist() == [True, False, False, False, True, True, True, True, True]
