"""`steer serve` for evaluation harnesses: logprobs, echo, token-id prompts and `n` on
/v1/completions (chat: logprobs/top_logprobs), each log-probability checked against plain
transformers with the profile's steering as a PyTorch forward hook; a stop string ends its
row's computation at once (forward passes counted); a failing row leaves its batch's others
answered."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import Future

import httpx
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from recipe_engine.api import RunningServer
from recipe_engine.builtin_models import BUILTINS
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.serve.engine import Row, RowResult
from recipe_engine.serve.logs import JsonLog
from tests.conftest import RECIPES
from tests.serve_support import NAME, PROFILES, client, serving, write_profiles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WEIGHTS = BUILTINS["tiny-sentiment"].weights_dir
PROMPT_IDS = [266, 660, 267, 582]  # token ids as lm-evaluation-harness sends them (no BOS)
TOL = 1e-4
LOG = io.StringIO()  # the server's JSON lines


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[RunningServer]:
    folder = write_profiles(tmp_path_factory.mktemp("profiles"))
    with serving(folder, LOG) as running:
        yield running


@pytest.fixture(scope="module")
def reference() -> AutoModelForCausalLM:
    """Plain transformers on the same weights, no engine code."""
    return AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()


def _log_softmax(model: AutoModelForCausalLM, ids: list[int], strength: float) -> torch.Tensor:
    """[T, V] log-probabilities of the next token after each position, with the `positive`
    profile's steering (its vector times `strength` added to block 0's output) as a hook."""
    vector = load_file(RECIPES / "vectors" / "sentiment.safetensors")["sentiment"].float()
    block = dict(model.named_modules())["transformer.h.0"]
    handle = block.register_forward_hook(lambda m, a, out: out + strength * vector)
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
    finally:
        handle.remove()
    return torch.log_softmax(logits, dim=-1)


def _post(server: RunningServer, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/completions", json={"model": NAME, **body}, timeout=300)


@pytest.mark.parametrize("model, strength", [(NAME, 0.0), (f"{NAME}:positive", 4.0)])
def test_echo_logprobs_of_token_ids_equal_plain_transformers(
    server: RunningServer, reference: AutoModelForCausalLM, model: str, strength: float
) -> None:
    """What lm-eval's loglikelihood sends: token ids, echo, logprobs, max_tokens 0 or 1."""
    assert PROFILES["positive"][0] == strength or strength == 0.0
    expected = _log_softmax(reference, PROMPT_IDS, strength)
    for max_tokens in (0, 1):
        reply = _post(
            server,
            model=model,
            prompt=[PROMPT_IDS],
            echo=True,
            logprobs=5,
            max_tokens=max_tokens,
            temperature=0,
        )
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        scores = choice["logprobs"]
        got = scores["token_logprobs"]
        assert len(got) == len(PROMPT_IDS) + max_tokens and got[0] is None
        assert scores["top_logprobs"][0] is None
        for t in range(1, len(PROMPT_IDS)):
            want = float(expected[t - 1, PROMPT_IDS[t]])
            assert abs(got[t] - want) < TOL
            top = sorted(scores["top_logprobs"][t].values(), reverse=True)
            torch.testing.assert_close(
                torch.tensor(top), expected[t - 1].topk(5).values, atol=TOL, rtol=0
            )
        if max_tokens == 1:  # the generated token: the greedy one, with its own logprob
            best = expected[-1].max()
            assert abs(got[-1] - float(best)) < TOL
            assert max(scores["top_logprobs"][-1].values()) == got[-1]  # lm-eval's is_greedy
        assert choice["text"].startswith(
            httpx.post(
                f"{server.url.removesuffix('/v1')}/detokenize", json={"tokens": PROMPT_IDS}
            ).json()["prompt"]
        )


def test_generated_logprobs_are_the_steered_distribution(
    server: RunningServer, reference: AutoModelForCausalLM
) -> None:
    reply = _post(
        server,
        model=f"{NAME}:positive",
        prompt=PROMPT_IDS,
        logprobs=3,
        max_tokens=6,
        temperature=0,
    )
    assert reply.status_code == 200, reply.text
    scores = reply.json()["choices"][0]["logprobs"]
    tokenize = f"{server.url.removesuffix('/v1')}/tokenize"
    names = scores["tokens"]
    new = [
        httpx.post(tokenize, json={"prompt": n, "add_special_tokens": False}).json()["tokens"]
        for n in names
    ]
    assert all(len(ids) == 1 for ids in new)
    ids = PROMPT_IDS + [i[0] for i in new]
    expected = _log_softmax(reference, ids, 4.0)
    for step, got in enumerate(scores["token_logprobs"]):
        at = len(PROMPT_IDS) - 1 + step
        assert abs(got - float(expected[at, ids[at + 1]])) < TOL
        assert len(scores["top_logprobs"][step]) <= 3
    assert scores["text_offset"][0] == 0


def test_chat_logprobs_and_top_logprobs(server: RunningServer) -> None:
    reply = client(server).chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": "The movie was"}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) <= 5
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert abs(entry.top_logprobs[0].logprob - entry.logprob) < TOL  # greedy


def test_n_token_id_batches_and_clear_refusals(server: RunningServer) -> None:
    reply = client(server).completions.create(
        model=NAME, prompt=[PROMPT_IDS, PROMPT_IDS[:2]], max_tokens=3, temperature=0, n=2
    )
    texts = [c.text for c in sorted(reply.choices, key=lambda c: c.index)]
    assert len(texts) == 4 and texts[0] == texts[1] and texts[2] == texts[3]
    alone = client(server).completions.create(
        model=NAME, prompt=PROMPT_IDS[:2], max_tokens=3, temperature=0
    )
    assert alone.choices[0].text == texts[2]
    for body, param in [
        ({"prompt": "a", "n": 2, "best_of": 3}, "best_of"),
        ({"prompt": "a", "logprobs": 21}, "logprobs"),
        ({"prompt": [99999]}, "prompt"),
        ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "a", "echo": True, "logprobs": 1, "stream": True}, "stream"),
    ]:
        refused = _post(server, **body)
        assert refused.status_code == 400, (body, refused.text)
        error = refused.json()["error"]
        assert param in (error["param"] or "") or param in error["message"]


def test_a_stop_string_at_token_1_of_120_ends_the_computation(server: RunningServer) -> None:
    """The row ends the step its text holds the stop string: forward passes are counted on
    the served model itself (a hook), not timed."""
    first = _post(server, prompt="The movie was", max_tokens=1, temperature=0).json()
    stop = first["choices"][0]["text"]
    assert stop.strip()
    forwards = [0]
    hf = server.state.model.hf
    handle = hf.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    try:
        reply = _post(server, prompt="The movie was", max_tokens=120, temperature=0, stop=[stop])
    finally:
        handle.remove()
    assert reply.status_code == 200
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["text"] == ""
    assert forwards[0] <= 2  # the prompt's pass and at most one more step


def test_a_failing_row_fails_alone(server: RunningServer) -> None:
    """A batch with a row that cannot run (a seed torch refuses): the others are answered."""
    from recipe_engine.serve.batcher import Batcher

    batcher = Batcher(server.state.model, JsonLog(None), max_queue=8, max_batch=8, wait_s=0.5)
    good = Row("The movie was", None, None, GenerationSpec(max_new_tokens=3))
    bad = Row(
        "The movie was", None, None, GenerationSpec(max_new_tokens=3, do_sample=True, seed=2**70)
    )
    futures: list[Future[RowResult]] = batcher.submit([good, bad, good])
    batcher.start()
    try:
        assert futures[0].result(timeout=300).text == futures[2].result(timeout=300).text
        assert futures[1].exception(timeout=300) is not None
    finally:
        batcher.stop()
    assert batcher.batches_started == 1  # they were one batch


def test_a_non_stream_client_that_leaves_stops_its_generation(server: RunningServer) -> None:
    """Defect 6: the client gives up after 0.2 s of 128 rows of 120 tokens (4 batches of 32:
    about 480 forward passes); its rows are abandoned, the running generate call stops at its
    next step, the queued batches never start, and the log says the client left."""
    forwards = [0]
    hf = server.state.model.hf
    handle = hf.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                f"{server.url}/completions",
                json={
                    "model": NAME,
                    "prompt": ["The movie was"] * 32,
                    "n": 4,
                    "max_tokens": 120,
                    "temperature": 0,
                },
                timeout=0.2,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in LOG.getvalue().splitlines()]
            if any(line.get("status") == 499 for line in lines):
                break
            time.sleep(0.05)
        time.sleep(1.0)  # a generate call that did not stop would go on counting
    finally:
        handle.remove()
    assert any(line.get("error") == "the client disconnected" for line in lines)
    assert forwards[0] < 121  # not even the first batch ran to its end
