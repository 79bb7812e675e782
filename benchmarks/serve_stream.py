"""Time to first streamed token vs the whole stream, in `steer serve` (official openai client).

    python benchmarks/serve_stream.py [--model builtin:tiny-sentiment] [--new-tokens 64]

Starts a server in this process on a free loopback port (no profiles: the unsteered model),
asks once to warm up, then --repeats streamed completions of up to --new-tokens tokens
(greedy) and prints, per request, the seconds to the first chunk with text, to the end, and
their ratio, then the medians. A stream sent only once its batch was done would print a
ratio near 1.
Nothing is asserted: read the numbers.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import openai

from recipe_engine.api import ServeConfig, start_server
from recipe_engine.serve.logs import JsonLog


def _timed_stream(
    client: openai.OpenAI, model: str, prompt: str, tokens: int
) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = 0.0
    pieces = 0
    for chunk in client.completions.create(
        model=model, prompt=prompt, max_tokens=tokens, temperature=0, stream=True
    ):
        if chunk.choices and chunk.choices[0].text:
            pieces += 1
            first = first or time.perf_counter() - start
    return first, time.perf_counter() - start, pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:tiny-sentiment")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt", default="The weather today is")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(
            ServeConfig([Path(folder)], args.model, port=0, log=JsonLog(io.StringIO()))
        )
        try:
            client = openai.OpenAI(base_url=server.url, api_key="unused", timeout=600)
            name = server.state.config.name
            _timed_stream(client, name, args.prompt, 4)  # warm-up
            firsts, totals = [], []
            for _ in range(args.repeats):
                first, total, pieces = _timed_stream(client, name, args.prompt, args.new_tokens)
                firsts.append(first)
                totals.append(total)
                print(
                    f"first chunk {first:.3f} s, whole stream {total:.3f} s "
                    f"({pieces} text chunks), ratio {first / total:.3f}"
                )
        finally:
            server.stop()
    first, total = statistics.median(firsts), statistics.median(totals)
    print(f"median: first chunk {first:.3f} s of {total:.3f} s: ratio {first / total:.3f}")


if __name__ == "__main__":
    main()
