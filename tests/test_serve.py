"""`steer serve` through the official openai client on the embedded model: completions and
chat, streaming and not, several profiles in flight at once, each answer equal to `steer run`
of the same recipe (greedy, and seeded sampling), and bad requests refused with a 4xx while the
server keeps serving."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from recipe_engine.api import RunningServer
from recipe_engine.serve.engine import Row, pass_groups
from tests.serve_support import (
    NAME,
    NEW_TOKENS,
    PROMPTS,
    client,
    recipe_text,
    serving,
    steer_run,
    write_profiles,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_profiles(tmp_path_factory.mktemp("profiles"))


LOG = io.StringIO()  # the server's JSON lines


@pytest.fixture(scope="module")
def server(folder: Path, one_torch_thread: None) -> Iterator[RunningServer]:
    with serving(folder, LOG) as running:
        yield running


def _batch_sizes() -> list[int]:
    lines = [json.loads(line) for line in LOG.getvalue().splitlines()]
    return [line["rows"] for line in lines if line["event"] == "batch"]


@pytest.fixture(scope="module")
def expected(folder: Path) -> dict[str, dict[str, dict[str, str]]]:
    """`steer run` of each profile: profile -> prompt -> side -> text."""
    return {name: steer_run(folder / f"{name}.yaml") for name in ("positive", "negative", "mild")}


def _complete(server: RunningServer, model: str, prompt: str, **extra: object) -> str:
    reply = client(server).completions.create(
        model=model,
        prompt=prompt,
        max_tokens=NEW_TOKENS,
        temperature=0,
        **extra,  # type: ignore[arg-type]
    )
    assert reply.usage is not None and reply.usage.completion_tokens <= NEW_TOKENS
    return reply.choices[0].text


def test_models_lists_every_profile(server: RunningServer) -> None:
    ids = [m.id for m in client(server).models.list()]
    assert ids == [NAME] + [f"{NAME}:{p}" for p in ("mild", "negative", "positive", "sampled")]


def test_three_profiles_in_flight_at_once_each_equal_to_steer_run(
    server: RunningServer, expected: dict[str, dict[str, dict[str, str]]]
) -> None:
    jobs = [(profile, prompt) for profile in ("positive", "negative", "mild") for prompt in PROMPTS]
    jobs += [(None, prompt) for prompt in PROMPTS]  # unsteered rows in the same batches
    before = len(_batch_sizes())
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(
            pool.map(
                lambda job: _complete(server, f"{NAME}:{job[0]}" if job[0] else NAME, job[1]), jobs
            )
        )
    for (profile, prompt), answer in zip(jobs, answers, strict=True):
        reference = expected[profile or "positive"][prompt]
        assert answer == reference["steered" if profile else "baseline"], (profile, prompt)
    # the profiles really steer: the three answers to one prompt differ
    assert len({answers[i] for i in (0, 3, 6)}) == 3
    # and requests were batched: fewer batches than requests, some of several rows
    sizes = _batch_sizes()[before:]
    assert sum(sizes) == len(jobs) and max(sizes) > 1


def test_profiles_strengths_and_unsteered_share_one_generate_pass(
    folder: Path, expected: dict[str, dict[str, dict[str, str]]]
) -> None:
    """A server that waits for every request before it runs a batch: three profiles, a strength
    override and unsteered rows in one batch, which the log shows ran as one generate pass, and
    each answer is still `steer run`'s of that recipe alone."""
    jobs = [(profile, prompt) for profile in ("positive", "negative", "mild") for prompt in PROMPTS]
    jobs += [(None, prompt) for prompt in PROMPTS]
    override = steer_run(folder / "mild.yaml", "interventions.0.strength=6")[PROMPTS[1]]
    log = io.StringIO()
    with (
        serving(folder, log, batch_wait_s=120, max_batch=len(jobs) + 1) as running,
        ThreadPoolExecutor(len(jobs) + 1) as pool,
    ):
        strong = pool.submit(
            _complete, running, f"{NAME}:mild", PROMPTS[1], extra_body={"strength": 6}
        )
        answers = list(
            pool.map(
                lambda job: _complete(running, f"{NAME}:{job[0]}" if job[0] else NAME, job[1]),
                jobs,
            )
        )
        assert strong.result() == override["steered"]
    for (profile, prompt), answer in zip(jobs, answers, strict=True):
        reference = expected[profile or "positive"][prompt]
        assert answer == reference["steered" if profile else "baseline"], (profile, prompt)
    assert len({answers[i] for i in (0, 3, 6)}) == 3  # the profiles really steer
    batches = [json.loads(line) for line in log.getvalue().splitlines()]
    batches = [line for line in batches if line["event"] == "batch"]
    assert len(batches) == 1, batches
    assert batches[0]["rows"] == len(jobs) + 1 and batches[0]["passes"] == 1
    assert batches[0]["profiles"] == ["", "mild", "negative", "positive"]


def test_profile_in_extra_body_and_steering_metadata(
    server: RunningServer, expected: dict[str, dict[str, dict[str, str]]]
) -> None:
    raw = client(server).completions.with_raw_response.create(
        model=NAME, prompt=PROMPTS[0], max_tokens=NEW_TOKENS, extra_body={"profile": "negative"}
    )
    reply = raw.parse()
    assert reply.choices[0].text == expected["negative"][PROMPTS[0]]["steered"]
    assert raw.headers["x-steer-profile"] == "negative"
    steering = (reply.model_extra or {})["steering"]
    assert steering["profile"] == "negative" and set(steering["vectors"]) == {"sentiment"}
    assert raw.headers["x-steer-vectors"] == f"sentiment={steering['vectors']['sentiment']}"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 5  # "The weather today is": 5 tokens of this tokenizer
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_strength_override_equals_steer_run_with_set(server: RunningServer, folder: Path) -> None:
    reference = steer_run(folder / "mild.yaml", "interventions.0.strength=6")
    answer = _complete(server, f"{NAME}:mild", PROMPTS[1], extra_body={"strength": 6})
    assert answer == reference[PROMPTS[1]]["steered"]


def test_streaming_completion_joins_to_the_same_text(
    server: RunningServer, expected: dict[str, dict[str, dict[str, str]]]
) -> None:
    stream = client(server).completions.create(
        model=f"{NAME}:positive", prompt=PROMPTS[2], max_tokens=NEW_TOKENS, stream=True
    )
    chunks = [c.choices[0] for c in stream if c.choices]
    assert len(chunks) > 2  # one per token, not one blob
    assert "".join(c.text for c in chunks) == expected["positive"][PROMPTS[2]]["steered"]
    assert chunks[-1].finish_reason in ("length", "stop")


def _chat_prompt(user: str) -> str:
    """The prompt a chat becomes, built independently of the server: the tokenizer's own chat
    template (transformers) when it has one, else the documented fallback."""
    from transformers import AutoTokenizer

    from recipe_engine.builtin_models import BUILTINS

    weights = BUILTINS["tiny-sentiment"].weights_dir
    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": user}]
        rendered: str = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return rendered
    return f"user: {user}\nassistant:"


@pytest.mark.parametrize("stream", [False, True])
def test_chat_equals_steer_run_of_its_prompt(
    server: RunningServer, folder: Path, tmp_path: Path, stream: bool
) -> None:
    user = "Tell me about the trip"
    recipe = folder / "chat-reference.yml.txt"  # not a .yaml: the server does not serve it
    recipe.write_text(
        recipe_text("chat", 4.0, f"{{max_new_tokens: {NEW_TOKENS}}}", [_chat_prompt(user)])
    )
    reference = next(iter(steer_run(recipe).values()))["steered"]
    recipe.unlink()
    messages = [{"role": "user", "content": user}]
    chat = client(server).chat.completions
    if stream:
        parts = chat.create(
            model=f"{NAME}:positive",
            messages=messages,
            max_tokens=NEW_TOKENS,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        chunks = list(parts)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    else:
        reply = chat.create(model=f"{NAME}:positive", messages=messages, max_tokens=NEW_TOKENS)  # type: ignore[arg-type]
        text = reply.choices[0].message.content or ""
        assert reply.choices[0].message.role == "assistant"
    assert text == reference


def test_seeded_sampling_equals_steer_run(server: RunningServer, folder: Path) -> None:
    """The `sampled` profile samples (temperature 0.9, seed 7): its rows run alone, so each
    answer is `steer run`'s, even with other requests in flight."""
    reference = steer_run(folder / "sampled.yaml")
    greedy = steer_run(folder / "sampled.yaml", "run.generation.do_sample=false")
    assert any(reference[p]["steered"] != greedy[p]["steered"] for p in PROMPTS)  # it samples
    jobs = [("sampled", p) for p in PROMPTS] + [("positive", PROMPTS[0])]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(
            pool.map(
                lambda job: (
                    client(server)
                    .completions.create(
                        model=f"{NAME}:{job[0]}", prompt=job[1], max_tokens=NEW_TOKENS
                    )
                    .choices[0]
                    .text
                ),
                jobs,
            )
        )
    for (profile, prompt), answer in zip(jobs[:3], answers, strict=False):
        assert answer == reference[prompt]["steered"], (profile, prompt)


def test_only_sampling_splits_a_batch(server: RunningServer) -> None:
    """Greedy rows of any profile, strength and length share a pass; each seeded sampled row
    has one of its own (one random stream per generate call)."""
    state = server.state
    sampled, positive, mild = (state.store.get(n) for n in ("sampled", "positive", "mild"))
    assert sampled is not None and positive is not None and mild is not None
    greedy = positive.generation
    rows = [
        Row(PROMPTS[0], positive, None, greedy),
        Row(PROMPTS[0], sampled, None, sampled.generation),
        Row(PROMPTS[1], mild, 6.0, greedy.model_copy(update={"max_new_tokens": 3})),
        Row(PROMPTS[2], sampled, 3.0, sampled.generation),
        Row(PROMPTS[2], None, None, greedy),
    ]
    assert pass_groups(state.model, rows) == [[0, 2, 4], [1], [3]]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": f"{NAME}:nope", "prompt": "x"}, 404, "unknown profile 'nope'"),
        ({"model": "gpt-4", "prompt": "x"}, 404, "unknown model 'gpt-4'"),
        ({"model": f"{NAME}:mild", "prompt": "x", "strength": 99}, 400, "over this server's limit"),
        ({"model": NAME, "prompt": "x", "strength": 2}, 400, "strength needs a profile"),
        ({"model": NAME, "prompt": "word " * 5000}, 400, "over this server's limit"),
        ({"model": NAME, "prompt": "word " * 120}, 400, "positions the model has learned"),
        ({"model": NAME, "prompt": "x", "max_tokens": 100000}, 400, "max_tokens 100000"),
        ({"model": NAME, "prompt": "x", "n": 17}, 400, "`n`"),
        ({"model": NAME}, 400, "`prompt` is required"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    server: RunningServer, body: dict[str, object], status: int, words: str
) -> None:
    reply = httpx.post(f"{server.url}/completions", json=body, timeout=300)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]["message"]


def test_malformed_and_huge_bodies_then_the_server_still_serves(
    server: RunningServer, expected: dict[str, dict[str, dict[str, str]]]
) -> None:
    url = f"{server.url}/completions"
    headers = {"content-type": "application/json"}
    broken = httpx.post(url, content=b'{"model": "x", "prompt": ', headers=headers, timeout=300)
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]["message"]
    huge = json.dumps({"model": NAME, "prompt": "a" * (2 << 20)})
    too_big = httpx.post(url, content=huge, headers=headers, timeout=300)
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError, match="unknown profile"):
        client(server).completions.create(model=f"{NAME}:nope", prompt="x")
    assert _complete(server, f"{NAME}:mild", PROMPTS[0]) == expected["mild"][PROMPTS[0]]["steered"]
    assert (
        httpx.get(server.url.removesuffix("/v1") + "/health", timeout=60).json()["status"] == "ok"
    )
