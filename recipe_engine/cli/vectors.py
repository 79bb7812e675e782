"""`steer vectors build|inspect`: build a recipe's vectors into a file; look inside one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recipe_engine.cli.common import add_recipe_arguments
from recipe_engine.cli.common_flags import add_format, add_out
from recipe_engine.errors import UsageError

__all__ = ["add_parser", "cosine_table"]

EPILOG = """\
examples:
  steer vectors build recipes/activation-addition.yaml --out sentiment.safetensors
  steer vectors build recipes/vector-arithmetic.yaml --out topic.safetensors --only food_only
  steer vectors inspect sentiment.safetensors
  steer vectors inspect sentiment.safetensors --model builtin:tiny-sentiment --top 15

`build` writes every vector of the recipe (or --only some) into one safetensors file, atomically,
with provenance in its metadata (model, layer, site, position, method, prompt counts, data hash,
engine version, recipe hash). A recipe reads it back with `kind: file, path: FILE, key: NAME`.
Extracted vectors are cached (STEER_CACHE_DIR; --no-cache to bypass).
`inspect` prints metadata, norms, cosine similarities, and, given a model (default: the one in
the file's metadata), the tokens each vector boosts and suppresses through the unembedding, raw
and through the final norm (logit lens).
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "vectors",
        help="build a recipe's vectors to safetensors, or inspect a vector file",
        description="Build and inspect steering vectors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    build = verbs.add_parser(
        "build",
        help="build vectors into a .safetensors file",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(build)
    add_out(build, ".safetensors", required=True, metavar="FILE", help="the vector file")
    build.add_argument("--only", nargs="+", metavar="NAME", help="build only these vectors")
    build.set_defaults(handler=run_build)
    inspect = verbs.add_parser(
        "inspect",
        help="show what a vector file holds",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("file", metavar="FILE", help="a .safetensors vector file")
    inspect.add_argument("--model", help="model id for token effects (default: from metadata)")
    inspect.add_argument("--top", type=int, default=10, help="tokens shown per direction")
    add_format(inspect)
    inspect.set_defaults(handler=run_inspect)


def run_build(args: argparse.Namespace) -> int:
    from recipe_engine.api import build_vectors_file, load_recipe
    from recipe_engine.cli.progress import Progress

    out = Path(args.out)  # its suffix is checked before any work (cli/common_flags.py)
    loaded = load_recipe(
        args.recipe, overrides=args.overrides, allow_outside_root=args.allow_outside_root
    )
    recipe = loaded.recipe
    names = args.only or list(recipe.vectors)
    unknown = [n for n in names if n not in recipe.vectors]
    if unknown:
        raise UsageError(
            f"--only: no vector named {', '.join(unknown)} in {args.recipe} "
            f"(it defines: {', '.join(recipe.vectors) or 'none'})"
        )
    if not names:
        raise UsageError(f"{args.recipe} defines no vectors")
    bars = Progress()

    def progress(name: str, done: int, total: int | None) -> None:
        bars(f"extracting {name}", done, total or done + 1)

    try:
        wanted = build_vectors_file(
            loaded, out, names=names, cache=not args.no_cache, progress=progress
        )
    finally:
        bars.close()
    summary = {
        name: {
            "shape": list(vector.tensor.shape),
            "norm": round(float(vector.tensor.norm()), 6),
            "source": "cache" if vector.cached else "built",
        }
        for name, vector in wanted.items()
    }
    if args.format == "json":
        sys.stdout.write(json.dumps({"file": str(out), "vectors": summary}, indent=2) + "\n")
        return 0
    for name, info in summary.items():
        print(f"{name}: shape {info['shape']}, norm {info['norm']:.4g} ({info['source']})")
    print(f"wrote {out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from recipe_engine.api import inspect_vectors

    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1")
    found = inspect_vectors(args.file, model=args.model, top=args.top)
    info = found.info
    for warning in found.warnings:
        print(f"steer: warning: {warning}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_inspect_text(info, found.model_id))
    return 0


def cosine_table(cosine: dict[str, dict[str, float]]) -> list[str]:
    """The cosine matrix as text, every column as wide as its full vector name (names cut
    to 8 characters were ambiguous: sentiment_l1 and sentiment_l2 both read `sentimen`)."""
    from recipe_engine.terminal import fixed

    names = list(cosine)
    width = max(len(n) for n in names)
    widths = {n: max(8, len(n)) for n in names}
    lines = ["cosine similarity", " " * (width + 3) + " ".join(f"{n:>{widths[n]}}" for n in names)]
    for a in names:
        cells = []
        for b in names:
            value = cosine[a].get(b, float("nan"))
            cells.append(f"{fixed(value, 3) if value == value else 'nan':>{widths[b]}}")
        lines.append(f"  {a:<{width}} " + " ".join(cells))
    return lines


def _inspect_text(info: dict[str, Any], model_id: str | None) -> str:
    lines = [f"{info['file']}"]
    for key, value in sorted(info["metadata"].items()):
        lines.append(f"  {key}: {value}")
    for name, vec in info["vectors"].items():
        prov = vec["provenance"]
        where = ", ".join(
            f"{k}={prov[k]}"
            for k in ("kind", "layer", "site", "position", "method")
            if prov.get(k) is not None
        )
        finite = "" if vec["finite"] else "  NOT FINITE (NaN/Inf)"
        lines.append(
            f"\n{name}: shape {vec['shape']} {vec['dtype']}, norm {vec['norm']:.4g}{finite}"
        )
        if where:
            lines.append(f"  {where}")
        for view, label in (("raw", "W_U v"), ("lens", "logit lens")):
            effect = vec["tokens"].get(view)
            if effect:
                up = ", ".join(f"{t!r}" for t, _ in effect["boosted"])
                down = ", ".join(f"{t!r}" for t, _ in effect["suppressed"])
                lines.append(f"  {label:<10} boosts   {up}")
                lines.append(f"  {'':<10} suppresses {down}")
    if len(info["cosine"]) > 1:
        lines += ["", *cosine_table(info["cosine"])]
    if model_id is None:
        lines.append("\n(token effects need a model: pass --model)")
    return "\n".join(lines) + "\n"
