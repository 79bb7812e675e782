"""Load test of `steer serve` on loopback: many concurrent clients, mixed steering profiles.

    python benchmarks/serve_load.py [--requests 200] [--clients 16] [--new-tokens 8]
                                    [--scheduling-only]

Starts `steer serve` (its own process: clients in this one do not compete with it for the
GIL) with three profiles of the embedded model (the shipped sentiment vector at strengths 4, -4
and 1.5) on a free 127.0.0.1 port. First the reference: each (profile,
prompt) pair asked alone, one request at a time. Then two timed phases of the same requests
from --clients concurrent clients (official openai client, greedy): every request on one
profile, then the profiles mixed round-robin. Prints per phase the failed requests, the
cross-talk (answers that differ from their reference: another request's steering leaked in),
p50/p95 latency and throughput, then mixed / one-profile throughput. Then scheduling:
- head of line: a 4-token request alone, and sent 0.2 s after a 110-token one (median of 5
  each; the long one has min_tokens 110, so that it really runs 110 steps: checked): the
  ratio is what the short request pays for arriving behind a long one;
- a stop string hit at token 1 of max_tokens 120, against a 1-token request alone;
- mixed max_tokens (4, 16, 64 round-robin) from --clients clients: req/s and generated tok/s.
Nothing is asserted: read the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from recipe_engine.serve.server import free_port

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"positive": 4.0, "negative": -4.0, "mild": 1.5}
RECIPE = """version: 1
name: {name}
model: {{id: builtin:tiny-sentiment}}
vectors:
  sentiment: {{kind: file, path: {vector}, key: sentiment}}
interventions:
  - {{vector: sentiment, layers: 0, positions: all, strength: {strength}}}
run: {{mode: generate, prompts: ["x"]}}
"""


@dataclass
class Outcome:
    profile: str
    prompt: str
    text: str | None  # None: the request failed
    seconds: float


def _ask(url: str, profile: str, prompt: str, new_tokens: int) -> Outcome:
    client = openai.OpenAI(base_url=url, api_key="unused", timeout=600, max_retries=0)
    started = time.perf_counter()
    try:
        reply = client.completions.create(
            model=f"tiny-sentiment:{profile}", prompt=prompt, max_tokens=new_tokens, temperature=0
        )
        text: str | None = reply.choices[0].text
    except openai.OpenAIError:
        text = None
    return Outcome(profile, prompt, text, time.perf_counter() - started)


def _batches(log: Path, since: int) -> tuple[list[dict[str, float]], int]:
    lines = log.read_text().splitlines()
    found = [json.loads(line) for line in lines[since:]]
    return [b for b in found if b["event"] == "batch"], len(lines)


def _phase(
    url: str,
    log: Path,
    jobs: list[tuple[str, str]],
    clients: int,
    new_tokens: int,
    reference: dict[tuple[str, str], str],
    label: str,
) -> float:
    _, since = _batches(log, 0)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda job: _ask(url, job[0], job[1], new_tokens), jobs))
    elapsed = time.perf_counter() - started
    failed = sum(o.text is None for o in outcomes)
    crossed = sum(
        o.text is not None and o.text != reference[(o.profile, o.prompt)] for o in outcomes
    )
    latencies = sorted(o.seconds for o in outcomes)
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    throughput = len(jobs) / elapsed
    print(
        f"{label:12} {len(jobs)} requests  failed {failed}  cross-talk {crossed}  "
        f"p50 {p50:.2f} s  p95 {p95:.2f} s  {throughput:.2f} req/s  "
        f"{throughput * new_tokens:.1f} tok/s (at most)  {elapsed:.1f} s"
    )
    batches, _ = _batches(log, since)
    rows = statistics.mean(b["rows"] for b in batches)
    busy = sum(b["seconds"] for b in batches)
    print(
        f"{'':12} {len(batches)} batches of {rows:.1f} rows on average, "
        f"{busy / len(batches):.2f} s each; the model busy {100 * busy / elapsed:.0f}% of the time"
    )
    return throughput


def _timed(url: str, **body: object) -> tuple[float, int]:
    """(seconds, completion tokens) of one completion."""
    started = time.perf_counter()
    reply = httpx.post(f"{url}/completions", json={"model": "tiny-sentiment", **body}, timeout=600)
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()["usage"]["completion_tokens"]


def _long(url: str, body: dict[str, object]) -> float:
    seconds, tokens = _timed(url, **body)
    assert tokens == body["max_tokens"], f"the long request generated {tokens} tokens"
    return seconds


def _scheduling(url: str, prompt: str, clients: int, requests: int) -> None:
    short = {"prompt": prompt, "max_tokens": 4, "temperature": 0}
    # min_tokens: the unsteered model ends this prompt at EOS within 10 tokens; the long
    # request must really be generating when the short one comes.
    long = {"prompt": prompt, "max_tokens": 110, "min_tokens": 110, "temperature": 0}
    alone = statistics.median(_timed(url, **short)[0] for _ in range(5))
    long_alone = statistics.median(_long(url, long) for _ in range(3))
    behind: list[float] = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            first = pool.submit(_long, url, long)
            time.sleep(0.2)
            behind.append(_timed(url, **short)[0])
            first.result()
    late = statistics.median(behind)
    print(
        f"head of line  4 tokens alone {alone:.3f} s, sent 0.2 s after a 110-token request "
        f"{late:.3f} s: {late / alone:.2f}x (median of 5); the 110-token request alone "
        f"{long_alone:.3f} s (median of 3)"
    )
    one = statistics.median(_timed(url, **{**short, "max_tokens": 1})[0] for _ in range(5))
    text = httpx.post(
        f"{url}/completions", json={"model": "tiny-sentiment", **short, "max_tokens": 1}
    ).json()["choices"][0]["text"]
    stopped = statistics.median(
        _timed(url, **{**short, "max_tokens": 120, "stop": [text]})[0] for _ in range(5)
    )
    print(
        f"stop string   hit at token 1 of 120: {stopped:.3f} s, a 1-token request {one:.3f} s: "
        f"{stopped / one:.2f}x (median of 5)"
    )
    lengths = [4, 16, 64]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(
            pool.map(
                lambda i: _timed(url, prompt=prompt, max_tokens=lengths[i % 3], temperature=0),
                range(requests),
            )
        )
    elapsed = time.perf_counter() - started
    tokens = sum(n for _, n in done)
    latencies = sorted(t for t, _ in done)
    print(
        f"mixed lengths {requests} requests of max_tokens 4/16/64 from {clients} clients: "
        f"{requests / elapsed:.2f} req/s, {tokens / elapsed:.1f} generated tok/s, "
        f"p50 {statistics.median(latencies):.2f} s, {elapsed:.1f} s"
    )


def _start(folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    steer = Path(sys.executable).with_name("steer")
    command = [str(steer), "serve", str(folder), "--model", "builtin:tiny-sentiment"]
    command += ["--port", str(port), "--max-queue", "1024", "--allow-outside-root"]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, f"{url}/v1"
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"steer serve did not start:\n{log.read_text()}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument(
        "--scheduling-only", action="store_true", help="skip the load phases (a quick run)"
    )
    args = parser.parse_args()
    prompts = (REPO / "recipes" / "data" / "neutral.txt").read_text().splitlines()[:8]
    vector = REPO / "recipes" / "vectors" / "sentiment.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "profiles"
        folder.mkdir()
        for name, strength in PROFILES.items():
            text = RECIPE.format(name=name, vector=vector, strength=strength)
            (folder / f"{name}.yaml").write_text(text)
        log = Path(tmp) / "serve.log"  # the server's JSON lines
        process, url = _start(folder, log)
        try:
            if args.scheduling_only:
                _scheduling(url, prompts[0], args.clients, max(30, args.requests // 4))
                return
            pairs = [(p, q) for p in PROFILES for q in prompts]
            print(f"reference: {len(pairs)} (profile, prompt) pairs, one request at a time")
            reference = {
                pair: _ask(url, pair[0], pair[1], args.new_tokens).text or "" for pair in pairs
            }
            one = [("positive", prompts[i % len(prompts)]) for i in range(args.requests)]
            names = list(PROFILES)
            mixed = [(names[i % 3], prompts[(i // 3) % len(prompts)]) for i in range(args.requests)]
            single = _phase(url, log, one, args.clients, args.new_tokens, reference, "one profile")
            several = _phase(url, log, mixed, args.clients, args.new_tokens, reference, "mixed")
            print(f"mixed / one-profile throughput: {several / single:.2f}x")
            _scheduling(url, prompts[0], args.clients, max(30, args.requests // 4))
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
