"""`steer serve RECIPE_DIR_OR_FILES --model MODEL`: an OpenAI-compatible HTTP server; each
recipe is a steering profile a request picks by name."""

from __future__ import annotations

import argparse
from pathlib import Path

from recipe_engine.cli.common_flags import add_allow_outside_root, missing_path_message
from recipe_engine.errors import UsageError
from recipe_engine.extras import require_serve_extra

__all__ = ["add_parser", "serve"]

EPILOG = """\
examples:
  steer serve recipes/ --model builtin:tiny-sentiment
  steer serve recipes/ --model builtin:tiny-sentiment --port 8080 --allow-post
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
    -d '{"model": "tiny-sentiment:generate-every-step", "prompt": "The weather today is",
         "max_tokens": 12}'

Each recipe (.yaml) of a folder, or each file given, is a profile named after its file:
`model: "NAME:PROFILE"` (NAME: --name) or `"profile": "PROFILE"` in the body (the openai
client's extra_body) picks it; `"strength": S` sets every intervention's strength (|S| at most
--max-strength); no profile: the unsteered model. Recipes reload when their files change; an
invalid edit keeps the old profile and logs why. Logs are JSON lines on stderr. SIGTERM drains:
no new connections, in-flight requests get --drain-timeout seconds, then are cut.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible API, one steering profile per recipe",
        description="Serve a model over HTTP (OpenAI API); every recipe is a steering profile.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "recipes",
        nargs="+",
        metavar="RECIPE_DIR_OR_FILES",
        help="a folder of recipes, or recipe files",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="the model served: builtin:NAME, a cached hub id or a local folder; "
        "every recipe runs on it",
    )
    parser.add_argument(
        "--name", default=None, help="the model name clients use (default: from --model)"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("auto", "float32", "float16", "bfloat16"),
        help="weight dtype",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 exposes the server to the network)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    _add_limits(parser)
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the recipe files (0: never reload)",
    )
    parser.add_argument(
        "--allow-post",
        action="store_true",
        help="accept new recipes by POST /v1/profiles (into the served folder)",
    )
    add_allow_outside_root(parser)
    parser.set_defaults(handler=serve)


def _add_limits(parser: argparse.ArgumentParser) -> None:
    """What one request, one connection and the queue may take."""
    parser.add_argument(
        "--max-strength", type=float, default=16.0, help="largest |strength| a request may set"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="most new tokens a request may ask for"
    )
    parser.add_argument(
        "--max-prompt-tokens", type=int, default=2048, help="longest prompt, in tokens"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="prompts waiting at most; a request past it gets 429",
    )
    parser.add_argument("--max-batch", type=int, default=32, help="prompts per batch")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds a request may wait and run before it gets 504",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="on SIGTERM or Ctrl-C, seconds in-flight requests get to finish (default: "
        "--timeout); streams cut then end with an error event",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send a request's headers, then its body; else closed",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=512,
        help="open connections at most; past it a new one gets 503",
    )


def serve(args: argparse.Namespace) -> int:
    for raw in args.recipes:
        if not Path(raw).exists():
            raise UsageError(missing_path_message(raw))
    for flag in ("max_tokens", "max_prompt_tokens", "max_queue", "max_batch", "max_connections"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    for flag in ("read_timeout", "timeout"):
        if not getattr(args, flag) > 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be over 0 seconds")
    if args.drain_timeout is not None and not args.drain_timeout >= 0:
        raise UsageError("--drain-timeout must be 0 seconds or more")
    require_serve_extra("steer serve")
    from recipe_engine.api import ServeConfig, run_server

    config = ServeConfig(
        sources=[Path(raw) for raw in args.recipes],
        model=args.model,
        dtype=args.dtype,
        device=args.device,
        host=args.host,
        port=args.port,
        served_name=args.name,
        max_strength=args.max_strength,
        max_tokens=args.max_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        max_queue=args.max_queue,
        max_batch=args.max_batch,
        timeout_s=args.timeout,
        drain_timeout_s=args.drain_timeout,
        read_timeout_s=args.read_timeout,
        max_connections=args.max_connections,
        reload_interval_s=args.reload_interval,
        allow_post=args.allow_post,
        allow_outside_root=args.allow_outside_root,
    )
    run_server(config)
    return 0
