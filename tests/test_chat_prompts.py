"""Chat prompts on the embedded model: the template's text and role spans (hand-computed), the
tokens each role or marker selects (hand-listed), and steering by role against plain
transformers with a PyTorch hook at positions found without the engine."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError, UsageError
from recipe_engine.execute.reduce import StepReduction
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.positions import MarkerPositions, RolePositions
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.load import load_document
from recipe_engine.load.prompt_files import Conversation
from recipe_engine.plan import Plan
from recipe_engine.resolve.chat import ChatTemplateError, RoleSpan, render_conversation
from recipe_engine.resolve.chat_tokens import text_masks
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from recipe_engine.validate import validate_file
from recipe_engine.vectors.sources import PromptSourceRef
from tests.support.engine_reference import hooks, reference_generate
from tests.support.float_tolerance import tiny_logits_tolerance

CHATS = [
    Conversation((("user", "How was the movie?"),)),
    Conversation((("system", "Answer in one sentence."), ("user", "How was dinner?"))),
    Conversation((("user", "My trip to the city was"), ("assistant", "It was"))),
]
NEW = 4
KEEP = StepReduction(keep_logits=True)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-sentiment"), Path("."))


def _decoded(model: LoadedModel, text: str, mask: torch.Tensor) -> list[str]:
    ids = model.tokenizer(text)["input_ids"]
    row = mask[-len(ids) :]  # left padding: the prompt's tokens are the last columns
    return [model.tokenizer.decode([i]) for i, keep in zip(ids, row.tolist(), strict=True) if keep]


def test_the_builtin_template_and_its_spans(model: LoadedModel) -> None:
    text = render_conversation(
        model.tokenizer, Conversation((("system", "Be kind."), ("user", "Hi there")))
    )
    assert text == "system: Be kind.\nuser: Hi there\nassistant:"
    # "system: " is 8 characters, "Be kind." 8, "\nuser: " 7, "Hi there" 8, "\n" 1, "assistant:" 10
    assert text.spans == (
        RoleSpan("system", 8, 16),
        RoleSpan("user", 23, 31),
        RoleSpan("assistant", 32, 42),
    )
    prefill = render_conversation(
        model.tokenizer, Conversation((("user", "Hi"), ("assistant", "It was")))
    )
    assert prefill == "user: Hi\nassistant: It was"  # continued, not closed
    assert prefill.spans == (RoleSpan("user", 6, 8), RoleSpan("assistant", 20, 26))


def test_plain_prompts_do_not_meet_the_template(model: LoadedModel) -> None:
    """Existing recipes keep every number: a text prompt is tokenized exactly as before."""
    ref = PromptSourceRef(["The movie was"], None, "/run/prompts", Path("."), model.tokenizer)
    assert list(ref) == ["The movie was"]
    assert all(type(prompt) is str for prompt in ref)


CHATML = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_default_system_prompt_belongs_to_no_role(model: LoadedModel) -> None:
    """SmolLM2-style: the template inserts its own system text; only messages have roles."""
    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.chat_template = CHATML
    text = render_conversation(tokenizer, Conversation((("user", "Hi"),)))
    head = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert text == head + "Hi<|im_end|>\n<|im_start|>assistant\n"
    assert text.spans == (
        RoleSpan("user", len(head), len(head) + 2),
        RoleSpan("assistant", len(head) + 13, len(text)),
    )


def test_a_template_that_rewrites_messages_is_refused(model: LoadedModel) -> None:
    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="rewrites message 0"):
        render_conversation(tokenizer, Conversation((("user", "hi"),)))


def test_role_and_marker_tokens(model: LoadedModel) -> None:
    chat = render_conversation(
        model.tokenizer,
        Conversation(
            (("system", "Be kind."), ("user", "The movie was great"), ("assistant", "It was (A"))
        ),
    )
    plain = "short (plain user: x"
    selectors = [
        RolePositions("system"),
        RolePositions("user"),
        RolePositions("assistant"),
        MarkerPositions("(", 1),
        MarkerPositions("user:"),
    ]
    masks = text_masks(selectors, [chat, plain], model.tokenizer)
    picked = {
        s: [_decoded(model, t, m[row]) for row, t in enumerate([chat, plain])]
        for s, m in masks.items()
    }
    assert picked[RolePositions("system")] == [["B", "e", " kind", "."], []]
    assert picked[RolePositions("user")] == [[" The", " movie", " was", " great"], []]
    assert picked[RolePositions("assistant")] == [[" It", " was", " ", "(", "A"], []]
    assert picked[MarkerPositions("(", 1)] == [["A"], ["pl"]]
    after_user = [" The", " movie", " was", " great", "\n", "ass", "is", "t", "ant", ":"]
    assert picked[MarkerPositions("user:")] == [
        [*after_user, " It", " was", " ", "(", "A"],
        [" ", "x"],
    ]
    with pytest.raises(UsageError, match="does not contain"):
        text_masks([MarkerPositions("[")], [plain], model.tokenizer)


def _plan(model: LoadedModel, positions: Any, mode: str) -> tuple[Any, torch.Tensor]:
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "chat",
            "model": {"id": "builtin:tiny-sentiment"},
            "vectors": {"v": {"kind": "random", "seed": 3, "norm": 8.0}},
            "interventions": [{"vector": "v", "layers": 1, "positions": positions}],
            "run": {"mode": mode, "prompts": ["x"]},
        }
    )
    vector = torch.randn(model.shape.hidden_size, generator=torch.Generator().manual_seed(3)) * 2
    return compile_plan(recipe, model, {"v": vector}), vector


def _answer_start(model: LoadedModel, conversation: Conversation) -> int:
    """Where the assistant's turn starts, found without the engine: the token count of the
    conversation rendered without the generation prompt (or without the prefill)."""
    messages = conversation.as_json()
    if messages[-1]["role"] == "assistant":
        head = model.tokenizer.apply_chat_template(messages[:-1], tokenize=False)
        head += "assistant:"
    else:
        head = model.tokenizer.apply_chat_template(messages, tokenize=False)
    return len(model.tokenizer(head)["input_ids"])


def test_assistant_positions_match_a_hook_at_the_answer(model: LoadedModel) -> None:
    plan, vector = _plan(model, "assistant", "generate")
    gen = GenerationSpec(max_new_tokens=NEW, min_new_tokens=NEW)
    rendered = [render_conversation(model.tokenizer, chat) for chat in CHATS]
    batched = generate_pass(model, plan, rendered, gen, batch_size=8, reduction=KEEP)
    for row, (chat, text) in enumerate(zip(CHATS, rendered, strict=True)):
        start = _answer_start(model, chat)

        def steps(step: int, chunk: int, start: int = start) -> list[int]:
            return list(range(start, chunk)) if step == 0 else [0]

        with hooks(model.hf, "gpt2", "resid_post", {1: 1.0}, "add", vector, 1.0, steps):
            tokens, logits = reference_generate(model, text, NEW)
        assert batched.generated[row] == tokens
        for step, expected in enumerate(logits):
            # another batch, another summation order: float32 noise of the model's widths
            difference = (batched.step_logits[row][step] - expected).abs().max()
            assert difference <= tiny_logits_tolerance(expected)


def test_user_turn_hidden_states_are_bit_identical_to_the_baseline(model: LoadedModel) -> None:
    """`positions: assistant` never reaches a user token: in a padded batch, every user-turn
    hidden state of the last layer (after the final norm) equals plain transformers' unsteered
    forward, bit for bit, while the assistant tokens move."""
    plan, _ = _plan(model, "assistant", "trace")
    rendered = [render_conversation(model.tokenizer, chat) for chat in CHATS]
    encoded = model.tokenizer(rendered, return_tensors="pt", padding=True)
    place = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate() counts
    with torch.inference_mode():
        out = model.hf(**encoded, position_ids=place, output_hidden_states=True)
        baseline = out.hidden_states[-1]
    masks = text_masks(plan.text_positions(), rendered, model.tokenizer)
    with torch.inference_mode(), model.nn.trace(rendered):
        apply_plan(model.nn, plan, text_masks=masks)
        steered = model.nn.transformer.ln_f.output.save()
    user = text_masks([RolePositions("user")], rendered, model.tokenizer)[RolePositions("user")]
    answer = masks[RolePositions("assistant")]
    assert user.sum() >= 10 and answer.sum() >= 8
    assert torch.equal(steered[user], baseline[user])
    assert (steered[answer] - baseline[answer]).abs().amax(dim=-1).min() > 1e-3


def test_trace_with_user_positions_leaves_the_answer_alone(model: LoadedModel) -> None:
    """`positions: user` steers the user's words only: the prompt's next-token logits move (the
    answer attends to them), and a steer of nothing (a role absent from every prompt) is a
    no-op to the bit."""
    rendered = [render_conversation(model.tokenizer, CHATS[0])]
    clean = trace_pass(model, Plan(), rendered, 8)
    user = trace_pass(model, _plan(model, "user", "trace")[0], rendered, 8)
    system = trace_pass(model, _plan(model, "system", "trace")[0], rendered, 8)
    assert torch.equal(system.next_logits, clean.next_logits)
    assert not torch.equal(user.next_logits, clean.next_logits)


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "chat.yaml"
    path.write_text(body, encoding="utf-8")
    return path


CHAT_RECIPE = """\
version: 1
name: chat
model: {id: builtin:tiny-sentiment}
vectors:
  v: {kind: random, seed: 1}
interventions:
  - {vector: v, layers: 0, positions: assistant}
run:
  mode: trace
  prompts:
    - messages:
        - {role: user, content: How was it?}
"""


def test_messages_are_validated_torch_free_with_a_location(tmp_path: Path) -> None:
    bad = CHAT_RECIPE.replace("role: user", "role: bot")
    result = validate_file(_recipe(tmp_path, bad), check_model=False)
    assert result.recipe is None
    first = result.errors[0]
    assert first.pointer.startswith("/run/prompts/0/messages/0/role"), first.format()
    assert first.format().startswith(f"{tmp_path / 'chat.yaml'}:12:18:"), first.format()


def test_a_prompt_file_conversation_is_checked_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "chats.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "fine"}]}\n'
        '{"messages": [{"role": "robot", "content": "bad"}]}\n',
        encoding="utf-8",
    )
    body = CHAT_RECIPE.split("  prompts:")[0] + "  prompts: {file: chats.jsonl}\n"
    result = validate_file(_recipe(tmp_path, body), check_model=False)
    text = " ".join(d.format() for d in result.errors)
    assert "line 2" in text and "messages[0]" in text, text


def test_no_chat_template_is_an_error_at_the_recipe_line(
    model: LoadedModel, tmp_path: Path
) -> None:
    path = _recipe(tmp_path, CHAT_RECIPE)
    doc = load_document(path)
    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.chat_template = None
    recipe = validate_file(path, check_model=False).recipe
    assert recipe is not None
    ref = PromptSourceRef(recipe.run.prompts, doc, "/run/prompts", tmp_path, tokenizer)
    with pytest.raises(RecipeError) as caught:
        list(ref)
    message = str(caught.value)
    assert message.startswith(f"{path}:12:"), message
    assert "/run/prompts/0/messages" in message and "no chat template" in message


def test_the_chat_recipe_steers_the_answers_and_explain_lists_its_tokens() -> None:
    from recipe_engine.api import compile_recipe, load_recipe, run_recipe
    from tests.conftest import RECIPES

    compiled = compile_recipe(load_recipe(RECIPES / "chat-assistant.yaml"))
    first = compiled.explain()["prompt_positions"][0]  # what `steer explain` prints
    assert first["prompt"] == "user: How was the movie?\nassistant: I think the movie was"
    row = first["interventions"][0]
    assert row["tokens"] == [" I", " think", " the", " movie", " was"]
    assert row["later_steps"] == "the new token"
    report = run_recipe(compiled)
    # the README's numbers for recipes/chat-assistant.yaml
    assert report.metric("token_prob:positive").delta >= 0.1
    assert report.metric("token_prob:negative").delta <= -0.05


QUESTIONS = ["Was it good? (A) yes (B) no", "Did you like the food? (A) yes (B) no"]


def _caa_side(letter: str) -> str:
    return "".join(
        f"      - messages:\n          - {{role: user, content: {q!r}}}\n"
        f"          - {{role: assistant, content: '({letter}'}}\n"
        for q in QUESTIONS
    )


CAA_RECIPE = f"""\
version: 1
name: caa
model: {{id: builtin:tiny-sentiment}}
vectors:
  caa:
    kind: contrastive
    layer: 1
    position: {{after: "(", tokens: 1}}
    positive:
{_caa_side("A")}    negative:
{_caa_side("B")}interventions:
  - {{vector: caa, layers: 1, positions: assistant}}
run: {{mode: trace, prompts: [x]}}
"""


def test_a_caa_vector_reads_the_answer_letter(model: LoadedModel, tmp_path: Path) -> None:
    """`{after: "(", tokens: 1}` reads the answer letter of the prefill, as CAA does: checked
    against plain transformers' hidden states at that token, rendered by the template itself."""
    from recipe_engine.api import compile_recipe, load_recipe

    compiled = compile_recipe(load_recipe(_recipe(tmp_path, CAA_RECIPE)))
    questions = QUESTIONS

    def letter_state(question: str, letter: str) -> torch.Tensor:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": letter}]
        text = model.tokenizer.apply_chat_template(
            messages, tokenize=False, continue_final_message=True
        )
        ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
        assert model.tokenizer.decode(ids[0, -1:]) == letter[-1]  # the letter is the last token
        with torch.inference_mode():
            states = model.hf(input_ids=ids, output_hidden_states=True).hidden_states
        return states[2][0, -1].float()  # block 1's output

    positive = torch.stack([letter_state(q, "(A") for q in questions]).mean(0)
    negative = torch.stack([letter_state(q, "(B") for q in questions]).mean(0)
    assert torch.allclose(compiled.vectors["caa"].tensor, positive - negative, atol=1e-5)


def test_a_conversation_cache_key_follows_the_template(model: LoadedModel) -> None:
    from recipe_engine.format.prompts import ChatPrompt

    source = [ChatPrompt.model_validate({"messages": [{"role": "user", "content": "Hi"}]})]
    other = copy.deepcopy(model.tokenizer)
    other.chat_template = CHATML
    key = PromptSourceRef(source, None, "/p", Path("."), model.tokenizer).sha256()
    assert key != PromptSourceRef(source, None, "/p", Path("."), other).sha256()
    text = PromptSourceRef(["Hi"], None, "/p", Path("."), model.tokenizer).sha256()
    assert text == PromptSourceRef(["Hi"], None, "/p", Path("."), other).sha256()
    assert text == PromptSourceRef(["Hi"], None, "/p", Path(".")).sha256()  # as before chats


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("assistant", RolePositions("assistant")),
        ("user", RolePositions("user")),
        ({"after": "(A)"}, MarkerPositions("(A)")),
        ({"after": "(", "tokens": 1}, MarkerPositions("(", 1)),
    ],
)
def test_role_and_marker_positions_parse(written: Any, expected: Any) -> None:
    from pydantic import TypeAdapter

    from recipe_engine.format.positions import PositionSpec, parse_positions

    selector = parse_positions(TypeAdapter(PositionSpec).validate_python(written))
    assert selector == expected
    assert selector.written == written  # explain and the report show it as written
    assert selector.steers_later_steps == (written in ("assistant", {"after": "(A)"}))


@pytest.mark.parametrize(
    "bad", [{"after": ""}, {"after": "x", "tokens": 0}, {"before": "x"}, "bot"]
)
def test_bad_role_and_marker_positions_are_refused(bad: Any) -> None:
    from pydantic import TypeAdapter, ValidationError

    from recipe_engine.format.positions import PositionSpec

    with pytest.raises(ValidationError):
        TypeAdapter(PositionSpec).validate_python(bad)


def test_a_user_position_on_text_prompts_warns(tmp_path: Path) -> None:
    body = CHAT_RECIPE.replace("positions: assistant", "positions: user")
    text_only = body.split("  prompts:")[0] + "  prompts: [How was it?]\n"
    result = validate_file(_recipe(tmp_path, text_only), check_model=False)
    assert [d.code for d in result.warnings] == ["positions-no-turns"]
    assert validate_file(_recipe(tmp_path, body), check_model=False).warnings == []


def test_a_template_that_writes_the_bos_leaves_one(model: LoadedModel) -> None:
    """The embedded tokenizer adds <|endoftext|> itself: a template writing it too would give
    two; the rendered text drops the template's, and the spans move with it."""
    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.chat_template = "{{ bos_token }}" + CHATML
    text = render_conversation(tokenizer, Conversation((("user", "Hi"),)))
    assert not text.startswith("<|endoftext|>")
    ids = tokenizer(text)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1
    user = next(span for span in text.spans if span.role == "user")
    assert text[user.start : user.end] == "Hi"
