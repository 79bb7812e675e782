"""Live streaming in `steer serve`, through the official openai client: chunks go out while their
batch is still generating (proved by a generate call that waits for the client's first chunk,
not by timing), a row's stream ends at its own max_tokens while its batch goes on, and the
streamed text equals the non-stream reply for several prompts, profiles and a stop string in one
batch. Below the server: `generate_pass`'s per-step callback hears exactly its tokens, changes
none, and its stop ends a call early."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import torch

from recipe_engine.api import RunningServer
from recipe_engine.execute.runner import generate_pass
from recipe_engine.plan import Plan
from recipe_engine.serve import engine
from recipe_engine.serve.engine import Row, RowResult, execute_batch
from tests.serve_support import NAME, NEW_TOKENS, PROMPTS, client, serving, write_profiles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WAIT_S = 120  # how long a held generate call waits for the client before it gives up


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_profiles(tmp_path_factory.mktemp("profiles"))


class _Held:
    """Makes the server's generate calls stop after step `after` until `release` is set (or
    WAIT_S passes): a stream that only went out at the end of its batch could not release it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
        self.release = threading.Event()
        self.released: bool | None = None  # did the client release it, or did the wait end?
        real = engine.generate_pass

        self.steps = 0  # steps the last call took

        def held(*args: Any, on_step: Callable[[list[int]], None], **kwargs: Any) -> Any:
            self.steps = 0

            def step(ids: list[int]) -> None:
                on_step(ids)
                self.steps += 1
                if self.steps == after:
                    self.released = self.release.wait(WAIT_S)

            return real(*args, on_step=step, **kwargs)

        monkeypatch.setattr(engine, "generate_pass", held)


def _stream(server: RunningServer, model: str, prompt: str, **extra: Any) -> Iterator[Any]:
    return iter(  # type: ignore[no-any-return]
        client(server).completions.create(
            model=model, prompt=prompt, temperature=0, stream=True, **extra
        )
    )


def _text(server: RunningServer, model: str, prompt: str, **extra: Any) -> tuple[str, str]:
    reply = (
        client(server)
        .completions.create(model=model, prompt=prompt, temperature=0, **extra)
        .choices[0]
    )
    return reply.text, reply.finish_reason


def test_chunks_go_out_while_the_batch_is_still_generating(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _Held(monkeypatch, after=3)  # of NEW_TOKENS steps
    with serving(folder) as server:
        chunks = _stream(server, f"{NAME}:positive", PROMPTS[2], max_tokens=NEW_TOKENS)
        texts: list[str] = []
        for chunk in chunks:  # blocks until a chunk comes
            texts.append(chunk.choices[0].text)
            if texts[-1]:
                held.release.set()  # the first token's text is here: generation may go on
        assert held.released is True, "no chunk came while generation was held at step 3"
        expected = _text(server, f"{NAME}:positive", PROMPTS[2], max_tokens=NEW_TOKENS)
    assert "".join(texts) == expected[0] and chunk.choices[0].finish_reason == expected[1]


def test_a_client_that_leaves_stops_its_generate_call(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _Held(monkeypatch, after=2)
    log = io.StringIO()
    with serving(folder, log) as server:
        stream = client(server).completions.create(
            model=f"{NAME}:positive", prompt=PROMPTS[2], max_tokens=NEW_TOKENS, stream=True
        )
        chunks = iter(stream)
        while not next(chunks).choices[0].text:
            pass
        stream.close()  # the client leaves mid-stream: its connection closes
        for _ in range(WAIT_S * 10):  # until the server has seen it go
            if "the client disconnected" in log.getvalue():
                break
            time.sleep(0.1)
        held.release.set()
        server.state.batcher.stop()  # waits for the running batch to end
    assert "the client disconnected" in log.getvalue(), log.getvalue()
    assert held.steps <= 3 < NEW_TOKENS  # the call stopped a step after it was released


def test_a_stream_past_its_timeout_ends_with_an_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first tokens went out (HTTP 200): the timeout comes as OpenAI's error event, which
    the client raises."""
    held = _Held(monkeypatch, after=3)
    with serving(folder, timeout_s=5) as server:
        texts: list[str] = []
        with pytest.raises(openai.APIError, match="no answer within 5 s"):
            for chunk in _stream(server, NAME, PROMPTS[0], max_tokens=NEW_TOKENS):
                texts.append(chunk.choices[0].text)
        held.release.set()
    assert held.released is True and "".join(texts)  # released by the test, after text came


def test_a_short_row_ends_before_its_batch(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two streams in one batch: 2 tokens and NEW_TOKENS. The short one is complete (finish
    reason, end of stream) while the batch is held at step 3, and releases it."""
    jobs = [(NAME, PROMPTS[0], 2), (f"{NAME}:mild", PROMPTS[1], NEW_TOKENS)]
    with serving(folder) as server:
        expected = [_text(server, m, p, max_tokens=n) for m, p, n in jobs]
    held = _Held(monkeypatch, after=3)
    with serving(folder, batch_wait_s=WAIT_S, max_batch=2) as server:

        def short() -> list[Any]:
            chunks = list(_stream(server, jobs[0][0], jobs[0][1], max_tokens=jobs[0][2]))
            held.release.set()
            return chunks

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(short)
            long = pool.submit(
                lambda: list(_stream(server, jobs[1][0], jobs[1][1], max_tokens=jobs[1][2]))
            )
            streams = [first.result(), long.result()]
        assert held.released is True, "the short stream did not end while its batch was held"
        assert server.state.batcher.batches_started == 1  # they shared one batch
    for chunks, reference in zip(streams, expected, strict=True):
        text = "".join(c.choices[0].text for c in chunks)
        assert (text, chunks[-1].choices[0].finish_reason) == reference


def test_streamed_text_equals_the_reply_for_a_mixed_batch(folder: Path) -> None:
    """Profiles, a strength, unsteered rows, lengths, a stop string, a two-prompt request and
    a chat, streamed in one batch (greedy): each equals its non-stream reply."""
    chat = {"model": f"{NAME}:positive", "max_tokens": NEW_TOKENS}
    messages = [{"role": "user", "content": "Tell me about the trip"}]
    with serving(folder) as server:
        base, _ = _text(server, NAME, PROMPTS[1], max_tokens=NEW_TOKENS)
        stop = base[len(base) // 2 : len(base) // 2 + 3]  # inside the text: it cuts it
        jobs: list[tuple[str, str | list[str], dict[str, Any]]] = [
            (f"{NAME}:positive", PROMPTS[0], {"max_tokens": NEW_TOKENS}),
            (f"{NAME}:negative", PROMPTS[1], {"max_tokens": 4}),
            (f"{NAME}:mild", PROMPTS[2], {"max_tokens": NEW_TOKENS, "extra_body": {"strength": 6}}),
            (NAME, PROMPTS[1], {"max_tokens": NEW_TOKENS, "stop": [stop]}),
            (NAME, PROMPTS[:2], {"max_tokens": 7}),
        ]
        replies = [
            [
                (c.text, c.finish_reason)
                for c in client(server).completions.create(model=m, prompt=p, **x).choices
            ]
            for m, p, x in jobs
        ]
        said = client(server).chat.completions.create(messages=messages, **chat)  # type: ignore[arg-type]
    assert replies[3][0][1] == "stop" and stop not in replies[3][0][0]  # the stop cut it
    with serving(folder, batch_wait_s=WAIT_S, max_batch=len(jobs) + 2) as server:
        with ThreadPoolExecutor(len(jobs) + 1) as pool:
            chatted = pool.submit(
                lambda: list(
                    client(server).chat.completions.create(
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        **chat,  # type: ignore[arg-type]
                    )
                )
            )
            streams = list(
                pool.map(lambda job: list(_stream(server, job[0], job[1], **job[2])), jobs)
            )
            chat_chunks = chatted.result()
        assert server.state.batcher.batches_started == 1
    for job, chunks, reply in zip(jobs, streams, replies, strict=True):
        for index, (text, finish) in enumerate(reply):
            mine = [c.choices[0] for c in chunks if c.choices[0].index == index]
            assert "".join(c.text for c in mine) == text, job
            assert mine[-1].finish_reason == finish, job
    streamed = "".join(c.choices[0].delta.content or "" for c in chat_chunks)
    assert streamed == said.choices[0].message.content


def test_generate_pass_callback_hears_its_tokens_and_changes_none(folder: Path) -> None:
    with serving(folder) as server:
        profile = server.state.store.get("positive")
        assert profile is not None
        model, gen = profile.compiled.model, profile.generation
        plans = [profile.plan(None), Plan(), profile.plan(1.0)]
        plain = generate_pass(model, plans, PROMPTS, gen, batch_size=3)
        heard: list[list[int]] = []
        tapped = generate_pass(model, plans, PROMPTS, gen, batch_size=3, on_step=heard.append)
        assert tapped.generated == plain.generated
        assert torch.equal(tapped.next_logits, plain.next_logits)
        eos = model.tokenizer.eos_token_id
        for row, tokens in enumerate(plain.generated):
            column = [step[row] for step in heard]
            assert column[: len(tokens)] == tokens  # then EOS (and padding), if it ended early
            assert len(tokens) == len(column) or column[len(tokens)] == eos
        # stop: the call ends after the step it first says so (or the one after)
        steps: list[list[int]] = []
        short = generate_pass(
            model, plans, PROMPTS, gen, 3, on_step=steps.append, stop=lambda: len(steps) >= 2
        )
        assert 2 <= len(steps) <= 3 < gen.max_new_tokens
        assert [r[: len(steps)] for r in plain.generated] == short.generated


class _GaveUp:
    """A request that gave up before its rows started generating."""

    live = False
    abandoned = True

    def piece(self, text: str) -> None:
        raise AssertionError("not a stream")

    def done(self, result: RowResult) -> None:
        raise AssertionError("not a stream")


def test_a_call_whose_rows_all_gave_up_stops_early(folder: Path) -> None:
    with serving(folder) as server:
        model, profile = server.state.model, server.state.store.get("mild")
        assert profile is not None
        long = profile.generation.model_copy(update={"max_new_tokens": 40})
        rows = [Row(p, profile, None, long) for p in PROMPTS]
        full = execute_batch(model, rows)
        given_up = execute_batch(model, rows, [_GaveUp()] * len(rows))
    assert max(len(r.token_ids) for r in full) > 3
    assert all(len(r.token_ids) <= 2 for r in given_up)  # stopped after its first step
    for short, whole in zip(given_up, full, strict=True):
        assert whole.token_ids[: len(short.token_ids)] == short.token_ids
