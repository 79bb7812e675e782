"""`steer serve` as an operator runs it: profiles that follow their files (an invalid edit keeps
the old profile and logs the diagnostic with its line), recipes posted over HTTP (off unless
enabled; validated, size-limited, confined to the served folder), back-pressure (429 when the
queue is full) and the per-request timeout (504)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from recipe_engine.api import RunningServer
from recipe_engine.serve.server import free_port
from tests.serve_support import (
    MODEL,
    NAME,
    NEW_TOKENS,
    PROMPTS,
    client,
    recipe_text,
    serving,
    write_profiles,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _events(log: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return [line for line in lines if line["event"] == event]


def _vector_hash(server: RunningServer, profile: str) -> str:
    reply = client(server).completions.create(
        model=f"{NAME}:{profile}", prompt=PROMPTS[0], max_tokens=2
    )
    return str((reply.model_extra or {})["steering"]["vectors"]["sentiment"])


def test_profiles_reload_and_an_invalid_edit_keeps_the_old_one(tmp_path: Path) -> None:
    folder = write_profiles(tmp_path / "profiles")
    log = io.StringIO()
    with serving(folder, log, reload_interval_s=0.1) as server:
        old = server.state.store.get("mild")
        assert old is not None and old.compiled.recipe.interventions[0].strength == 1.5
        # an invalid edit: a typo at line 7
        path = folder / "mild.yaml"
        text = path.read_text()
        path.write_text(text.replace("strength: 1.5", "strenght: 1.5"))
        _wait_for(lambda: bool(_events(log, "profile_rejected")), "the rejection")
        rejected = _events(log, "profile_rejected")[0]
        assert rejected["profile"] == "mild"
        assert any("mild.yaml:7:52:" in d and "strenght" in d for d in rejected["diagnostics"])  # type: ignore[attr-defined]
        assert server.state.store.get("mild") is old  # still served
        client(server).completions.create(model=f"{NAME}:mild", prompt="x", max_tokens=1)
        # a valid edit replaces it
        path.write_text(text.replace("strength: 1.5", "strength: 2.5"))
        _wait_for(lambda: server.state.store.get("mild") is not old, "the reload")
        new = server.state.store.get("mild")
        assert new is not None and new.compiled.recipe.interventions[0].strength == 2.5
        # a new file is a new profile, a removed one is gone
        (folder / "extra.yaml").write_text(text.replace("name: mild", "name: extra"))
        _wait_for(lambda: "extra" in server.state.store.names(), "the new profile")
        (folder / "negative.yaml").unlink()
        _wait_for(lambda: "negative" not in server.state.store.names(), "the removal")
        with pytest.raises(openai.NotFoundError):
            client(server).completions.create(model=f"{NAME}:negative", prompt="x", max_tokens=1)


def test_post_a_recipe_only_when_enabled_and_only_inside_the_folder(tmp_path: Path) -> None:
    folder = write_profiles(tmp_path / "profiles")
    (tmp_path / "outside.safetensors").write_bytes((folder / "sentiment.safetensors").read_bytes())
    body = {"name": "posted", "recipe": recipe_text("posted", 3.0, "{max_new_tokens: 4}", ["a"])}
    with serving(folder, io.StringIO(), reload_interval_s=0) as server:
        off = httpx.post(f"{server.url}/profiles", json=body, timeout=300)
        assert off.status_code == 403 and "--allow-post" in off.json()["error"]["message"]
    with serving(
        folder, io.StringIO(), reload_interval_s=0, allow_post=True, max_post_bytes=4096
    ) as server:
        url = f"{server.url}/profiles"
        made = httpx.post(url, json=body, timeout=300)
        assert made.status_code == 201, made.text
        assert (folder / "posted.yaml").read_text() == body["recipe"]
        assert _vector_hash(server, "posted") == made.json()["vectors"]["sentiment"]
        again = httpx.post(url, json=body, timeout=300)
        assert again.status_code == 409
        escape = {
            "name": "escape",
            "recipe": body["recipe"].replace("path: sentiment", "path: ../outside"),
        }
        refused = httpx.post(url, json=escape, timeout=300)
        assert refused.status_code == 400 and "outside" in refused.json()["error"]["message"]
        assert not (folder / "escape.yaml").exists()
        invalid = {"name": "bad", "recipe": body["recipe"].replace("strength:", "strenght:")}
        message = httpx.post(url, json=invalid, timeout=300).json()["error"]["message"]
        assert "bad.yaml:7:" in message and "strenght" in message
        big = {"name": "big", "recipe": body["recipe"] + "#" * 5000}
        assert httpx.post(url, json=big, timeout=300).status_code == 413
        sneaky = {"name": "../up", "recipe": body["recipe"]}
        assert httpx.post(url, json=sneaky, timeout=300).status_code == 400
        assert sorted(p.name for p in folder.glob("*.yaml")) == [
            "mild.yaml",
            "negative.yaml",
            "positive.yaml",
            "posted.yaml",
            "sampled.yaml",
        ]


def test_full_queue_gets_429_and_a_slow_answer_504(tmp_path: Path) -> None:
    folder = write_profiles(tmp_path / "profiles")
    with serving(folder, io.StringIO(), reload_interval_s=0, max_queue=1, max_batch=1) as server:
        state = server.state
        answers: list[object] = []

        def ask() -> None:
            try:
                reply = client(server).completions.create(
                    model=NAME, prompt=PROMPTS[0], max_tokens=NEW_TOKENS
                )
                answers.append(reply.choices[0].text)
            except openai.APIStatusError as exc:
                answers.append(exc.status_code)

        # The model's lock held here: the first request is taken by the batcher and waits on
        # it, the second fills the queue, the third finds it full.
        with state.model.lock:
            first = threading.Thread(target=ask)
            first.start()
            _wait_for(lambda: state.batcher.batches_started == 1, "the first batch")
            second = threading.Thread(target=ask)
            second.start()
            _wait_for(lambda: state.batcher.waiting == 1, "the second request to queue")
            with pytest.raises(openai.RateLimitError, match="busy"):
                client(server).completions.create(model=NAME, prompt="x", max_tokens=1)
        first.join(300)
        second.join(300)
        assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
        state.config.timeout_s = 0.5
        with state.model.lock:
            with pytest.raises(openai.APIStatusError, match="no answer within") as caught:
                client(server).completions.create(model=NAME, prompt="x", max_tokens=1)
            assert caught.value.status_code == 504
        state.config.timeout_s = 300
        assert client(server).completions.create(model=NAME, prompt="x", max_tokens=1).choices


def test_the_command_serves_logs_json_lines_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`steer serve` as a user starts it, in its own process: it answers, logs one JSON object
    per line on stderr, and Ctrl-C (SIGINT) stops it: uvicorn shuts down gracefully, then the
    command ends as every `steer` command does on Ctrl-C, one line and exit status 130."""
    folder = write_profiles(tmp_path / "profiles")
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "recipe_engine", "serve", str(folder), "--model", MODEL]
    with log.open("wb") as stderr:
        process = subprocess.Popen([*command, "--port", str(port)], stderr=stderr)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(up, "the server to start", seconds=300)
        reply = httpx.post(
            f"{url}/v1/completions",
            json={"model": f"{NAME}:positive", "prompt": PROMPTS[0], "max_tokens": 3},
            timeout=300,
        )
        assert reply.status_code == 200 and reply.headers["x-steer-profile"] == "positive"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(120)
    text = log.read_text()
    assert code == 130, text
    assert text.endswith("steer: interrupted\n") and "Traceback" not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert {"serving", "batch", "request"} <= {r["event"] for r in records}
