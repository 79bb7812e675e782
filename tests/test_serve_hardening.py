"""`steer serve` against hostile and unusual clients (issue 26; issue 24 items 3 and 10), through
the official openai client and raw HTTP on 127.0.0.1: OpenAI's limits on stop strings and seeds,
a body limit that holds with chunked framing, header and body read timeouts and a connection
cap, NaN/Inf as `steer run` says it, reloads of half-written files, a drain on shutdown, posted
recipes that cannot reach outside, OpenAI's no-op fields and error shapes, chat requests on
`steer run`'s chat path (role positions, prefills), and strengths that cannot apply."""

from __future__ import annotations

import io
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from recipe_engine.api import RunningServer
from recipe_engine.cli.main import main
from recipe_engine.format.positions import RolePositions
from recipe_engine.resolve.chat_tokens import text_masks
from recipe_engine.serve import engine
from recipe_engine.serve.live import sendable_end
from recipe_engine.serve.server import free_port
from tests.serve_support import (
    MODEL,
    NAME,
    NEW_TOKENS,
    PROMPTS,
    client,
    serving,
    steer_run,
    write_profiles,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe(name: str, intervention: str, prompts: str, generation: str = "") -> str:
    gen = generation or f"{{max_new_tokens: {NEW_TOKENS}}}"
    return f"""version: 1
name: {name}
model: {{id: {MODEL}}}
vectors:
  sentiment: {{kind: file, path: sentiment.safetensors, key: sentiment}}
interventions:
  - {intervention}
run:
  mode: generate
  prompts: {prompts}
  batch_size: 1
  generation: {gen}
"""


CHAT_USER = [{"role": "user", "content": "Tell me about the trip"}]
CHAT_SYSTEM = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How was dinner?"},
]
CHAT_PREFILL = [
    {"role": "user", "content": "How was the movie?"},
    {"role": "assistant", "content": "I think the movie was"},
]
ROLE_PROFILES = {  # profile -> (positions, the conversation it is checked on)
    "by-assistant": ("assistant", CHAT_USER),
    "by-user": ("user", CHAT_USER),
    "by-system": ("system", CHAT_SYSTEM),
    "prefill": ("assistant", CHAT_PREFILL),
}


def _chat_prompts(messages: list[dict[str, str]]) -> str:
    return json.dumps([{"messages": messages}])


def _extra_profiles(folder: Path) -> None:
    add = "{vector: sentiment, layers: 0, positions: all, strength: 4}"
    (folder / "zeroed.yaml").write_text(
        _recipe("zeroed", "{op: zero, layers: 0, positions: all}", json.dumps(PROMPTS))
    )
    (folder / "blown.yaml").write_text(
        _recipe(
            "blown",
            "{vector: sentiment, layers: 0, positions: all, strength: 1.0e+30}",
            json.dumps(PROMPTS),
        )
    )
    for name, compare in (("when-fires", "above"), ("when-not", "below")):
        when = f"{{vector: sentiment, layer: 0, aggregate: mean, compare: {compare}, threshold: -0.999}}"
        (folder / f"{name}.yaml").write_text(
            _recipe(
                name,
                f"{{vector: sentiment, layers: 0, positions: all, strength: 4, when: {when}}}",
                json.dumps(PROMPTS),
            )
        )
    for name, (positions, messages) in ROLE_PROFILES.items():
        intervention = add.replace("positions: all", f"positions: {positions}")
        (folder / f"{name}.yaml").write_text(_recipe(name, intervention, _chat_prompts(messages)))
    other = _recipe("other-model", add, json.dumps(PROMPTS))
    (folder / "other-model.yaml").write_text(other.replace(MODEL, "builtin:tiny-sentiment-x"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = write_profiles(tmp_path_factory.mktemp("profiles"))
    _extra_profiles(made)
    return made


LOG = io.StringIO()


@pytest.fixture(scope="module")
def server(folder: Path, one_torch_thread: None) -> Iterator[RunningServer]:
    with serving(folder, LOG, reload_interval_s=0, max_queue=8, allow_post=True) as running:
        yield running


def _records(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def _post(server: RunningServer, body: object, path: str = "/completions") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=300)


def _error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _host_port(server: RunningServer) -> tuple[str, int]:
    config = server.state.config
    return config.host, config.port


# 26.1 -----------------------------------------------------------------------------------------


def test_stop_strings_past_openais_limits_are_refused(server: RunningServer) -> None:
    five = _post(server, {"model": NAME, "prompt": "x", "max_tokens": 2, "stop": list("abcde")})
    error = _error(five, 400)
    assert error["param"] == "stop" and "at most 4" in error["message"]
    long = _post(server, {"model": NAME, "prompt": "x", "max_tokens": 2, "stop": ["z" * 200_000]})
    error = _error(long, 400)
    assert error["param"] == "stop[0]" and "at most 1024 characters" in error["message"]
    four = client(server).completions.create(
        model=NAME, prompt=PROMPTS[0], max_tokens=2, stop=["q" * 1024] * 4
    )
    assert four.choices[0].finish_reason in ("length", "stop")


def test_held_back_text_equals_trying_every_prefix() -> None:
    """The linear hold-back against the quadratic definition, on random texts."""
    rng = random.Random(0)

    def reference(text: str, stops: list[str]) -> int:
        cuts = [text.find(s) for s in stops if s in text]
        if cuts:
            return min(cuts)
        held = [k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])]
        return len(text) - max(held, default=0)

    for _ in range(3000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 5))) for _ in range(2)]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        searched = 0
        for end in range(len(text) + 1):  # as a stream grows: what was sent is not searched
            got = sendable_end(text[:end], stops, searched)
            assert got == reference(text[:end], stops), (text[:end], stops, searched)
            searched = got


# 26.2 -----------------------------------------------------------------------------------------


def test_an_out_of_range_seed_is_that_requests_400_only(server: RunningServer) -> None:
    good = {"model": NAME, "prompt": PROMPTS[0], "max_tokens": 3, "seed": 5}
    bad = {**good, "seed": 1180591620717411303424, "temperature": 0.9}
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda body: _post(server, body), [good, bad, good, bad]))
    for reply in replies[0::2]:
        assert reply.status_code == 200, reply.text
    for reply in replies[1::2]:
        error = _error(reply, 400)
        assert error["param"] == "seed" and "at most 9223372036854775807" in error["message"]


# 26.3 -----------------------------------------------------------------------------------------


def _read_response(sock: socket.socket, seconds: float = 30) -> bytes:
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_a_chunked_body_past_the_limit_is_413_before_it_is_read(server: RunningServer) -> None:
    host, port = _host_port(server)
    chunk = b"a" * (64 << 10)
    sent = 0
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.settimeout(0.05)
        answer = b""
        while sent < (64 << 20):  # a client could send 64 MiB: the server stops it far sooner
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        answer += _read_response(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < (4 << 20)  # not read whole: stopped soon after 1 MiB
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert "limit of 1048576" in body["error"]["message"]


# 26.4 -----------------------------------------------------------------------------------------


def _closed(sock: socket.socket, deadline: float) -> bool:
    """Did the server close it (EOF or reset) before `deadline` (time.monotonic)?"""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def test_slow_headers_and_slow_bodies_are_closed_after_the_read_timeout(folder: Path) -> None:
    with serving(folder, io.StringIO(), reload_interval_s=0, read_timeout_s=1.0) as server:
        host, port = _host_port(server)
        partial_headers = [socket.create_connection((host, port)) for _ in range(100)]
        partial_bodies = [socket.create_connection((host, port)) for _ in range(100)]
        try:
            for sock in partial_headers:
                sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for sock in partial_bodies:
                sock.sendall(
                    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mo'
                )
            deadline = time.monotonic() + 20  # the timeout is 1 s; slack for a loaded machine
            open_headers = [s for s in partial_headers if not _closed(s, deadline)]
            open_bodies = [s for s in partial_bodies if not _closed(s, deadline)]
            assert (len(open_headers), len(open_bodies)) == (0, 0)
            # and the server still answers
            reply = client(server).completions.create(model=NAME, prompt="x", max_tokens=1)
            assert reply.choices
        finally:
            for sock in partial_headers + partial_bodies:
                sock.close()


def test_connections_past_the_cap_get_503(folder: Path) -> None:
    with serving(folder, io.StringIO(), reload_interval_s=0, max_connections=3) as server:
        host, port = _host_port(server)
        held = [socket.create_connection((host, port)) for _ in range(3)]
        try:
            with socket.create_connection((host, port)) as extra:
                answer = _read_response(extra, 30)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert (
                "--max-connections"
                in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"]
            )
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 30
        while True:  # the held ones closed: room again
            try:
                reply = client(server).completions.create(model=NAME, prompt="x", max_tokens=1)
                break
            except openai.APIStatusError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.choices


# 26.7 -----------------------------------------------------------------------------------------


def test_nan_logits_are_an_error_with_steer_runs_message(
    server: RunningServer, folder: Path
) -> None:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["run", str(folder / "blown.yaml"), "--format", "json"])
    assert code == 3
    expected = err.getvalue().strip()
    assert "NaN/Inf logits" in expected
    for stream in (False, True):
        with pytest.raises(openai.APIError) as caught:
            reply = client(server).completions.create(
                model=f"{NAME}:blown", prompt=PROMPTS[0], max_tokens=NEW_TOKENS, stream=stream
            )
            if stream:
                list(reply)  # type: ignore[call-overload]
        body = caught.value.body
        message = str(body["message"] if isinstance(body, dict) else body)
        assert "NaN/Inf logits" in message and message in expected, (message, expected)


# 26.8 -----------------------------------------------------------------------------------------


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_empty_or_half_written_file_keeps_its_profile(tmp_path: Path) -> None:
    folder = write_profiles(tmp_path / "profiles")
    log = io.StringIO()
    with serving(folder, log, reload_interval_s=0.1) as server:
        text = (folder / "mild.yaml").read_text()
        for seen, broken in enumerate(("", text[: len(text) // 2]), start=1):
            (folder / "mild.yaml").write_text(broken)
            _wait_for(
                lambda: (
                    sum(r["event"] == "profile_rejected" for r in _records(log)) >= seen  # noqa: B023 (waited for within the iteration)
                ),
                "the broken file to be read",
            )
            assert "mild" in server.state.store.names()
            reply = client(server).completions.create(
                model=f"{NAME}:mild", prompt="x", max_tokens=1
            )
            assert reply.choices
        (folder / "mild.yaml").unlink()  # only a file that is gone removes its profile
        _wait_for(lambda: "mild" not in server.state.store.names(), "the profile to go")
    assert "profile_removed" in {r["event"] for r in _records(log)}


# 26.9 -----------------------------------------------------------------------------------------


class _Held:
    """The server's generate calls wait after step `after` until `release` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
        self.release = threading.Event()
        self.reached = threading.Event()
        real = engine.generate_pass

        def held(*args: Any, on_step: Callable[[list[int]], None], **kwargs: Any) -> Any:
            steps = 0

            def step(ids: list[int]) -> None:
                nonlocal steps
                on_step(ids)
                steps += 1
                if steps == after:
                    self.reached.set()
                    self.release.wait(120)

            return real(*args, on_step=step, **kwargs)

        monkeypatch.setattr(engine, "generate_pass", held)


def test_a_drain_lets_in_flight_requests_finish(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = steer_run(folder / "mild.yaml")[PROMPTS[0]]["steered"]
    held = _Held(monkeypatch, after=3)
    log = io.StringIO()
    with (
        serving(folder, log, reload_interval_s=0, drain_timeout_s=60) as server,
        ThreadPoolExecutor(1) as pool,
    ):
        answer = pool.submit(
            lambda: client(server).completions.create(
                model=f"{NAME}:mild", prompt=PROMPTS[0], max_tokens=NEW_TOKENS
            )
        )
        assert held.reached.wait(120)
        server.drain()  # what SIGTERM does
        _wait_for(lambda: server.state.drain_deadline is not None, "the drain")
        time.sleep(1)  # the drain goes on while the request generates (the command: below)
        held.release.set()
        assert answer.result(120).choices[0].text == expected
    events = [r["event"] for r in _records(log)]
    assert "draining" in events and events.count("request") == 1


def test_a_stream_cut_by_the_drain_ends_with_an_error_event(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _Held(monkeypatch, after=3)
    log = io.StringIO()
    with serving(folder, log, reload_interval_s=0, drain_timeout_s=1) as server:
        texts: list[str] = []

        def read() -> None:
            stream = client(server).completions.create(
                model=NAME, prompt=PROMPTS[0], max_tokens=NEW_TOKENS, stream=True
            )
            for chunk in stream:
                texts.append(chunk.choices[0].text)

        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(read)
            assert held.reached.wait(120)
            server.drain()
            with pytest.raises(openai.APIError, match="shutting down"):
                reading.result(60)
            held.release.set()
    assert "".join(texts)  # its first tokens went out before the cut
    cut = [r for r in _records(log) if r["event"] == "request"]
    assert len(cut) == 1 and "shutting down" in cut[0]["error"]


# The command, in its own process: each generate step slowed (0.8 s) so that a request is in
# flight when SIGTERM comes; then the command as `steer serve` runs it.
_SLOW_SERVE = """
import sys, time
from recipe_engine.serve import engine
real = engine.generate_pass
def slow(*args, on_step, **kwargs):
    def step(ids):
        on_step(ids)
        time.sleep(0.8)
    return real(*args, on_step=step, **kwargs)
engine.generate_pass = slow
from recipe_engine.cli.main import main
sys.exit(main(["serve", *sys.argv[1:]]))
"""


def test_sigterm_drains_the_command(folder: Path, tmp_path: Path) -> None:
    expected = steer_run(folder / "mild.yaml")[PROMPTS[0]]["steered"]
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [str(folder), "--model", MODEL, "--port", str(port), "--reload-interval", "0"]
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _SLOW_SERVE, *argv], stderr=stderr)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(up, "the server to start", seconds=300)
        with ThreadPoolExecutor(1) as pool:
            body = {"model": f"{NAME}:mild", "prompt": PROMPTS[0], "max_tokens": NEW_TOKENS}
            answer = pool.submit(
                lambda: httpx.post(f"{url}/v1/completions", json=body, timeout=300)
            )
            time.sleep(1.5)  # its batch has begun: 10 steps of 0.8 s, past uvicorn's old 5 s
            process.send_signal(signal.SIGTERM)
            reply = answer.result(120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["text"] == expected
        # after the drain uvicorn re-raises the signal it caught: the usual end of a SIGTERM
        assert process.wait(120) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line[:1] == "{"]
    assert "draining" in events and "request" in events, log.read_text()


# 26.10 ----------------------------------------------------------------------------------------


def test_a_posted_recipe_cannot_trust_remote_code(server: RunningServer, folder: Path) -> None:
    text = (folder / "mild.yaml").read_text()
    for key, value in (("trust_remote_code", "true"), ("revision", "main")):
        recipe = text.replace(f"model: {{id: {MODEL}}}", f"model: {{id: {MODEL}, {key}: {value}}}")
        reply = _post(server, {"name": f"posted-{key}", "recipe": recipe}, "/profiles")
        error = _error(reply, 403)
        assert f"model.{key}" in error["message"] and error["param"] == "recipe"
        assert not (folder / f"posted-{key}.yaml").exists()


# 26.11 ----------------------------------------------------------------------------------------


def test_openais_no_op_fields_are_accepted(server: RunningServer) -> None:
    chat = client(server).chat.completions.create(
        model=NAME,
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "How was it?"},
        ],
        max_tokens=2,
        logprobs=False,
        response_format={"type": "text"},
        tool_choice="none",
        parallel_tool_calls=False,
        store=False,
        metadata={"run": "1"},
        stream_options=None,
        extra_body={"top_k": -1},
    )
    assert chat.choices[0].message.role == "assistant"
    stream = client(server).completions.create(
        model=NAME,
        prompt="x",
        max_tokens=2,
        logprobs=None,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": False},  # type: ignore[typeddict-unknown-key]
    )
    assert list(stream)[-1].usage is not None


@pytest.mark.parametrize(
    ("field", "value", "param", "words"),
    [
        ("frobnicate", 1, "frobnicate", "`frobnicate` is not supported by this server: remove it"),
        ("max_tokens", "6", "max_tokens", "`max_tokens` must be an integer"),
        ("max_tokens", True, "max_tokens", "`max_tokens` must be an integer"),
        ("stream", "yes", "stream", "`stream` must be true or false"),
        ("logprobs", 21, "logprobs", "at most 20"),
        ("max_tokens", 0, "max_tokens", "give at least 1"),
    ],
)
def test_invalid_fields_are_said_with_their_param_and_the_fix(
    server: RunningServer, field: str, value: object, param: str, words: str
) -> None:
    error = _error(_post(server, {"model": NAME, "prompt": "x", field: value}), 400)
    assert error["param"] == param and words in error["message"], error


# 26.12 ----------------------------------------------------------------------------------------


def test_errors_are_in_openais_shape_everywhere(server: RunningServer) -> None:
    base = server.url.removesuffix("/v1")
    headers = {"content-type": "application/json"}
    utf8 = httpx.post(f"{server.url}/completions", content=b'{"model": "\xff"}', headers=headers)
    assert "UTF-8" in _error(utf8, 400)["message"]
    assert "no such route" in _error(httpx.get(f"{base}/v1/nothing"), 404)["message"]
    assert "POST" in _error(httpx.get(f"{server.url}/completions"), 405)["message"]


def test_models_retrieve(server: RunningServer) -> None:
    assert client(server).models.retrieve(NAME).id == NAME
    assert client(server).models.retrieve(f"{NAME}:mild").id == f"{NAME}:mild"
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve(f"{NAME}:nope")


def test_empty_prompts_alike_and_too_many_prompts_are_400(server: RunningServer) -> None:
    for prompt in ("", [""], ["x", ""]):
        error = _error(_post(server, {"model": NAME, "prompt": prompt, "max_tokens": 1}), 400)
        assert "must not be empty" in error["message"] and error["param"].startswith("prompt")
    many = _error(_post(server, {"model": NAME, "prompt": ["x"] * 9, "max_tokens": 1}), 400)
    assert "--max-queue" in many["message"] and many["param"] == "prompt"


def test_error_messages_show_no_server_paths(server: RunningServer, folder: Path) -> None:
    bad = (folder / "mild.yaml").read_text().replace("strength: 1.5", "strenght: 1.5")
    reply = _post(server, {"name": "typo", "recipe": bad}, "/profiles")
    error = _error(reply, 400)
    assert "typo.yaml" in error["message"]
    assert str(folder) not in error["message"] and str(Path.cwd()) not in error["message"]


# 24.3 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(ROLE_PROFILES))
def test_chat_requests_take_steer_runs_chat_path(
    server: RunningServer, folder: Path, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """positions by role select what they select in `steer run`; a trailing assistant message
    is continued (a prefill), not closed. The reference is steer run of the same conversation;
    and the role's tokens in the prompt the server runs are the message's own (on the embedded
    model steering user or system tokens leaves greedy text unchanged, so text alone cannot
    tell)."""
    positions, messages = ROLE_PROFILES[profile]
    reference = next(iter(steer_run(folder / f"{profile}.yaml").values()))
    submitted: list[Any] = []
    real = server.state.batcher.submit

    def submit(rows: list[Any], *args: Any, **kwargs: Any) -> Any:
        submitted.extend(rows)
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(server.state.batcher, "submit", submit)
    reply = client(server).chat.completions.create(
        model=f"{NAME}:{profile}",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=NEW_TOKENS,
    )
    assert reply.choices[0].message.content == reference["steered"]
    if positions == "assistant":
        assert reference["steered"] != reference["baseline"]  # the steering shows in the text
    (row,) = submitted
    tokenizer = server.state.tokenizer
    mask = text_masks([RolePositions(positions)], [row.prompt], tokenizer)[RolePositions(positions)]
    ids = tokenizer(row.prompt)["input_ids"]
    picked = [
        tokenizer.decode([i])
        for i, on in zip(ids, mask[0][-len(ids) :].tolist(), strict=True)
        if on
    ]
    wanted = [m["content"] for m in messages if m["role"] == positions]
    if positions == "assistant" and profile != "prefill":
        assert "".join(picked).strip() == "assistant:"  # the generation prompt the template opens
    else:
        assert "".join(picked).strip() == " ".join(wanted)
    if profile == "prefill":  # continued: the prompt ends with the prefill's own text
        assert row.prompt.endswith(CHAT_PREFILL[-1]["content"])


# 24.10 ----------------------------------------------------------------------------------------


def test_strengths_that_cannot_apply_are_refused(server: RunningServer) -> None:
    zero = _post(server, {"model": f"{NAME}:zeroed", "prompt": "x", "strength": 5})
    assert "do not read one" in _error(zero, 400)["message"]
    nan = httpx.post(
        f"{server.url}/completions",
        content=f'{{"model": "{NAME}:mild", "prompt": "x", "strength": NaN}}',
        headers={"content-type": "application/json"},
    )
    error = _error(nan, 400)
    assert "finite" in error["message"] and "limit" not in error["message"]


def test_replies_say_whether_a_condition_fired(server: RunningServer) -> None:
    fired = []
    for profile in ("when-fires", "when-not"):
        reply = _post(server, {"model": f"{NAME}:{profile}", "prompt": PROMPTS[0], "max_tokens": 2})
        assert reply.status_code == 200, reply.text
        (conditions,) = reply.json()["steering"]["conditions"]
        fired.append([c["fired"] for c in conditions])
    assert fired == [[True], [False]]


def test_a_profile_for_another_model_loads_with_a_warning(server: RunningServer) -> None:
    assert "other-model" in server.state.store.names()
    (warning,) = [r for r in _records(LOG) if r["event"] == "profile_model_differs"]
    assert warning["profile"] == "other-model"
    assert warning["recipe_model"] == "builtin:tiny-sentiment-x"
