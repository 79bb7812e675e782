"""Scheduling at step granularity in `steer serve`: a request that arrives while a batch
generates starts at that batch's next step (the running generate call pauses between two
steps, keeping its KV cache, and goes on after: execute/pausing.py `Paused`), and every row's
greedy tokens are those of plain transformers generating that row alone with its profile's
steering as a PyTorch forward hook, whatever ran beside or between its steps: a steered row
next to an unsteered one, a `when:` gate decided at step 0, prompt-only steering that must not
reach later steps."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipe_engine.api import RunningServer
from recipe_engine.builtin_models import BUILTINS
from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.serve import engine
from recipe_engine.serve.batcher import Batcher
from recipe_engine.serve.engine import Row, RowResult, execute_batch
from recipe_engine.serve.logs import JsonLog
from tests.conftest import RECIPES
from tests.serve_support import PROMPTS, recipe_text, serving, write_profiles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WEIGHTS = BUILTINS["tiny-sentiment"].weights_dir
GATE = "{vector: sentiment, layer: 0, aggregate: mean, compare: above, threshold: -0.999}"
# profile -> (its steering as the reference hook applies it: strength, prompt tokens only)
STEERING = {
    "mild": (1.5, False),
    "negative": (-4.0, False),
    "gated": (4.0, False),  # its gate fires on every prompt (cosine above -0.999)
    "prompt-only": (4.0, True),
    "": (0.0, False),  # unsteered
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[RunningServer]:
    folder = write_profiles(tmp_path_factory.mktemp("profiles"))
    gated = recipe_text("gated", 4.0, "{max_new_tokens: 10}", PROMPTS)
    gated = gated.replace("strength: 4.0}", f"strength: 4.0, when: {GATE}}}")
    prompt_only = recipe_text("prompt-only", 4.0, "{max_new_tokens: 10}", PROMPTS)
    prompt_only = prompt_only.replace("positions: all", "positions: prompt")
    assert "when:" in gated and "positions: prompt" in prompt_only
    (folder / "gated.yaml").write_text(gated)
    (folder / "prompt-only.yaml").write_text(prompt_only)
    with serving(folder) as running:
        yield running


@pytest.fixture(scope="module")
def reference() -> tuple[Any, Any]:
    """Plain transformers on the same weights, no engine code."""
    model = AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(WEIGHTS)


def _alone(reference: tuple[Any, Any], prompt: str, profile: str, new: int) -> list[int]:
    """Greedy tokens of one prompt on its own (cut before EOS), the profile's steering as a
    hook on block 0's output: every position of every step, or the prompt's pass only."""
    model, tokenizer = reference
    strength, prompt_only = STEERING[profile]
    vector = load_file(RECIPES / "vectors" / "sentiment.safetensors")["sentiment"].float()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    forwards = [0]

    def hook(module: Any, args: Any, out: torch.Tensor) -> torch.Tensor:
        forwards[0] += 1
        if prompt_only and forwards[0] > 1:  # a later step: the new token, not the prompt
            return out
        return out + strength * vector

    handle = dict(model.named_modules())["transformer.h.0"].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
    finally:
        handle.remove()
    tokens = out[0, ids.shape[1] :].tolist()
    eos = tokenizer.eos_token_id
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def _plan(server: RunningServer, profile: str) -> Plan:
    if not profile:
        return Plan()
    found = server.state.store.get(profile)
    assert found is not None
    return found.plan(None)


def _row(server: RunningServer, prompt: str, profile: str, new: int) -> Row:
    found = server.state.store.get(profile) if profile else None
    return Row(prompt, found, None, GenerationSpec(max_new_tokens=new))


def test_a_paused_call_goes_on_to_the_tokens_of_each_row_alone(
    server: RunningServer, reference: tuple[Any, Any]
) -> None:
    """One batch of five rows (four profiles and an unsteered row, prompts of different
    lengths: left padding) paused after every third step and resumed until it ends: each row's
    tokens are those of plain transformers on that row alone; the log-probabilities, the
    finite checks and the gates are those of the same call run without a pause."""
    model = server.state.model
    profiles = ["mild", "", "gated", "prompt-only", "negative"]
    prompts = [*PROMPTS, "I", "The food at the new place on the corner was"]
    plans = [_plan(server, p) for p in profiles]
    gen = GenerationSpec(max_new_tokens=14)
    whole = generate_pass(model, plans, prompts, gen, len(prompts), logprobs=2)
    steps = [0]

    def step(ids: list[int]) -> None:
        steps[0] += 1

    def every_third() -> bool:
        return steps[0] % 3 == 0

    result = generate_pass(
        model, plans, prompts, gen, len(prompts), on_step=step, pause=every_third, logprobs=2
    )
    calls = 1
    while result.paused is not None:
        assert result.paused.taken == steps[0]
        result = generate_pass(
            model,
            plans,
            prompts,
            gen,
            len(prompts),
            on_step=step,
            pause=every_third,
            logprobs=2,
            resume=result.paused,
        )
        calls += 1
    assert calls >= 4  # it paused at steps 3, 6 and 9 at least
    for prompt, profile, tokens in zip(prompts, profiles, result.generated, strict=True):
        assert tokens == _alone(reference, prompt, profile, 14), (prompt, profile)
    assert result.generated == whole.generated
    assert result.step_finite == whole.step_finite == [True] * len(prompts)
    assert [[g.fired for g in row] for row in result.gates] == [
        [g.fired for g in row] for row in whole.gates
    ]
    assert any(g.fired for row in result.gates for g in row)  # the gated row's gate fired
    torch.testing.assert_close(result.next_logits, whole.next_logits, rtol=0, atol=1e-5)
    for paused_row, whole_row in zip(result.logprobs, whole.logprobs, strict=True):
        assert [e.token for e in paused_row] == [e.token for e in whole_row]
        for a, b in zip(paused_row, whole_row, strict=True):
            assert abs(a.logprob - b.logprob) < 1e-5  # the same computation: float noise only


def test_a_seeded_sampled_call_never_pauses(server: RunningServer) -> None:
    """Its random stream would be drawn by the calls run in between: it runs to its end."""
    gen = GenerationSpec(max_new_tokens=6, do_sample=True, temperature=0.9, seed=3)
    result = generate_pass(
        server.state.model,
        Plan(),
        PROMPTS[:1],
        gen,
        1,
        on_step=lambda ids: None,
        pause=lambda: True,
    )
    assert result.paused is None and len(result.generated[0]) > 1


def _steps(tokens: list[int], most: int) -> int:
    """The steps a call of this one row takes: its tokens, and the step of its EOS if any."""
    return len(tokens) if len(tokens) == most else len(tokens) + 1


class _Timeline:
    """Every generate step the server's engine takes, in order, named by the call's token
    limit (which tells the long request's call from the short one's). When the long call's
    step `join_at` is heard, `join` submits the newcomer to the batcher from inside it: the
    newcomer waits when the running call is next asked whether to pause."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, long_tokens: int, join_at: int) -> None:
        self.steps: list[int] = []
        self.join: Callable[[], None] = lambda: None
        real = engine.generate_pass

        def counted(*args: Any, on_step: Callable[[list[int]], None] | None, **kwargs: Any) -> Any:
            tag = args[3].max_new_tokens

            def step(ids: list[int]) -> None:
                self.steps.append(tag)
                if on_step is not None:
                    on_step(ids)
                if tag == long_tokens and self.steps.count(tag) == join_at:
                    self.join()

            return real(*args, on_step=step, **kwargs)

        monkeypatch.setattr(engine, "generate_pass", counted)


@pytest.mark.parametrize("long_profile, short_profile", [("mild", ""), ("", "negative")])
def test_a_newcomer_starts_at_the_running_batch_next_step(
    server: RunningServer,
    reference: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    long_profile: str,
    short_profile: str,
) -> None:
    """A request of up to 40 tokens is generating; a 4-token request arrives with its step 2.
    The short one's steps come at the next step boundary and it is answered while the long
    one has 10 or more steps to go; the long one then goes on. Each row's tokens equal plain
    transformers on it alone (a steered row beside an unsteered one: no steering leaks either
    way)."""
    model = server.state.model
    long = _row(server, "I think the movie was", long_profile, 40)
    short = _row(server, "Our flight home was", short_profile, 4)
    lines = io.StringIO()
    batcher = Batcher(model, JsonLog(lines), max_queue=8, max_batch=8, wait_s=0.0)
    timeline = _Timeline(monkeypatch, long_tokens=40, join_at=2)
    joined: list[Future[RowResult]] = []
    timeline.join = lambda: joined.extend(batcher.submit([short]))
    batcher.start()
    try:
        first = batcher.submit([long])[0]
        long_result = first.result(timeout=300)
        short_result = joined[0].result(timeout=300)
    finally:
        batcher.stop()
    alone_long = _alone(reference, long.prompt, long_profile, 40)
    alone_short = _alone(reference, short.prompt, short_profile, 4)
    assert long_result.token_ids == alone_long
    assert short_result.token_ids == alone_short
    long_steps, short_steps = _steps(alone_long, 40), _steps(alone_short, 4)
    assert long_steps >= 12  # the long one goes on for 10 steps or more after the newcomer
    # transformers asks whether to stop before it hands the step's token on: the newcomer
    # that came with step 2's token is seen after step 3.
    assert timeline.steps == [40] * 3 + [4] * short_steps + [40] * (long_steps - 3)
    log = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(e["rows"], e["slices"]) for e in log if e["event"] == "batch"] == [(1, 1), (1, 2)]
    # The same rows through the engine without the scheduler: the same replies.
    assert execute_batch(model, [long])[0] == long_result
    assert execute_batch(model, [short])[0] == short_result
