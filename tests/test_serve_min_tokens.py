"""vLLM's `min_tokens` on `steer serve`: EOS and stop strings cannot end a row before that many
tokens. The reference is plain transformers `generate(min_new_tokens=...)` on the same weights
with the same greedy settings (no engine code); a stop string within the first min_tokens
tokens does not count (vLLM's rule, its PR 22014); a call paused between two steps and resumed
keeps the count (execute/pausing.py `resumed_kwargs`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipe_engine.api import RunningServer
from recipe_engine.builtin_models import BUILTINS
from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from tests.serve_support import NAME, serving, write_profiles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WEIGHTS = BUILTINS["tiny-sentiment"].weights_dir
# Greedy, it ends at EOS after 9 tokens; with min_new_tokens 12 after 16 (its text repeats:
# " outside" comes at tokens 6 and 13).
PROMPT = "The weather today is"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[RunningServer]:
    with serving(write_profiles(tmp_path_factory.mktemp("profiles"))) as running:
        yield running


@pytest.fixture(scope="module")
def reference() -> tuple[Any, Any]:
    model = AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(WEIGHTS)


def _alone(reference: tuple[Any, Any], prompt: str, least: int, most: int) -> list[int]:
    """Plain transformers' greedy tokens, cut before EOS."""
    model, tokenizer = reference
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids,
            max_new_tokens=most,
            min_new_tokens=least,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    tokens = out[0, ids.shape[1] :].tolist()
    eos = tokenizer.eos_token_id
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def _post(server: RunningServer, **body: object) -> httpx.Response:
    url = f"{server.url}/completions"
    return httpx.post(url, json={"model": NAME, "temperature": 0, **body}, timeout=300)


def test_min_tokens_generates_past_eos_as_transformers(
    server: RunningServer, reference: tuple[Any, Any]
) -> None:
    tokenizer = reference[1]
    short = _alone(reference, PROMPT, 0, 40)
    tokens = _alone(reference, PROMPT, 12, 40)
    assert len(short) < 12 < len(tokens) < 40  # the setting changes where the row ends
    reply = _post(server, prompt=PROMPT, max_tokens=40, min_tokens=12).json()
    assert reply["choices"][0]["text"] == tokenizer.decode(tokens, skip_special_tokens=True)
    assert reply["usage"]["completion_tokens"] == len(tokens)
    assert reply["choices"][0]["finish_reason"] == "stop"
    full = _post(server, prompt=PROMPT, max_tokens=30, min_tokens=30).json()
    assert full["usage"]["completion_tokens"] == 30
    assert full["choices"][0]["finish_reason"] == "length"
    chat = httpx.post(
        f"{server.url}/chat/completions",
        json={
            "model": NAME,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 20,
            "min_tokens": 20,
        },
        timeout=300,
    ).json()
    assert chat["usage"]["completion_tokens"] == 20


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_string_within_min_tokens_does_not_count(
    server: RunningServer, reference: tuple[Any, Any], stream: bool
) -> None:
    tokenizer = reference[1]
    tokens = _alone(reference, PROMPT, 12, 40)
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    early = len(tokenizer.decode(tokens[:12], skip_special_tokens=True))
    stop = " outside"
    assert text.find(stop) + len(stop) <= early  # it is there within the first 12 tokens
    expected = text[: text.index(stop, early - len(stop) + 1)]
    body = {"prompt": PROMPT, "max_tokens": 40, "min_tokens": 12, "stop": [stop]}
    if not stream:
        choice = _post(server, **body).json()["choices"][0]
        assert (choice["text"], choice["finish_reason"]) == (expected, "stop")
        return
    lines = _post(server, **body, stream=True).text.splitlines()
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_min_tokens_over_max_tokens_is_a_400(server: RunningServer) -> None:
    reply = _post(server, prompt=PROMPT, max_tokens=10, min_tokens=30)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "min_tokens"
    assert "lower min_tokens to 10 or less, or raise max_tokens" in error["message"]
    assert _post(server, prompt=PROMPT, max_tokens=10, min_tokens="3").status_code == 400
    assert _post(server, prompt=PROMPT, max_tokens=10, min_tokens=-1).status_code == 400
    off = _post(server, prompt=PROMPT, max_tokens=40, min_tokens=0).json()
    assert (
        off["choices"][0]["text"]
        == _post(server, prompt=PROMPT, max_tokens=40).json()["choices"][0]["text"]
    )


def test_a_paused_call_keeps_min_new_tokens(
    server: RunningServer, reference: tuple[Any, Any]
) -> None:
    """Paused every third step: the count of tokens before EOS may end a row goes on from
    where the call stopped (neither restarted nor dropped at the resume)."""
    prompts = [PROMPT, "I think the movie was"]
    gen = GenerationSpec(max_new_tokens=40, min_new_tokens=12)
    model = server.state.model
    steps = [0]

    def step(ids: list[int]) -> None:
        steps[0] += 1

    def every_third() -> bool:
        return steps[0] % 3 == 0

    result = generate_pass(model, Plan(), prompts, gen, 2, on_step=step, pause=every_third)
    resumes = 0
    while result.paused is not None:
        resumes += 1
        result = generate_pass(
            model, Plan(), prompts, gen, 2, on_step=step, pause=every_third, resume=result.paused
        )
    assert resumes >= 4
    for prompt, tokens in zip(prompts, result.generated, strict=True):
        assert tokens == _alone(reference, prompt, 12, 40), prompt
