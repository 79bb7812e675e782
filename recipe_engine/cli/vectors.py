"""`steer vectors build|inspect`: build a recipe's vectors into a file; look inside one."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from recipe_engine.cli.common import add_backend_argument

__all__ = ["add_parser", "cosine_table"]

EPILOG = """\
examples:
  steer vectors build recipes/activation-addition.yaml --out sentiment.safetensors
  steer vectors build recipes/mean-ablation.yaml --out means.safetensors --only mlp_mean_1
  steer vectors inspect sentiment.safetensors
  steer vectors inspect sentiment.safetensors --model builtin:tiny-random --top 15

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
    build.add_argument("recipe", metavar="RECIPE")
    build.add_argument("--out", required=True, metavar="FILE.safetensors")
    build.add_argument("--only", nargs="+", metavar="NAME", help="build only these vectors")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    add_backend_argument(build)
    build.add_argument("--no-cache", action="store_true", help="extract again, ignore the cache")
    build.add_argument("--allow-outside-root", action="store_true")
    build.set_defaults(handler=run_build)
    inspect = verbs.add_parser(
        "inspect",
        help="show what a vector file holds",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("file", metavar="FILE")
    inspect.add_argument("--model", help="model id for token effects (default: from metadata)")
    inspect.add_argument("--top", type=int, default=10)
    inspect.add_argument("--format", choices=("text", "json"), default="text")
    inspect.set_defaults(handler=run_inspect)


def _recipe_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_build(args: argparse.Namespace) -> int:
    from recipe_engine.api import load_recipe
    from recipe_engine.cli.progress import Progress
    from recipe_engine.errors import UsageError
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.vectors import build_vectors
    from recipe_engine.vectors.artifacts import write_vector_file

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise UsageError(f"--out {args.out}: vector files end in .safetensors")
    loaded = load_recipe(
        args.recipe, overrides=args.overrides, allow_outside_root=args.allow_outside_root
    )
    recipe = loaded.recipe
    names = args.only or list(recipe.vectors)
    unknown = [n for n in names if n not in recipe.vectors]
    if unknown:
        raise UsageError(f"no vector named {', '.join(unknown)} in {args.recipe}")
    if not names:
        raise UsageError(f"{args.recipe} defines no vectors")
    model = load_model(recipe.model, loaded.model_dir, recipe.run.backend)
    bars = Progress()

    def progress(name: str, done: int, total: int | None) -> None:
        bars(f"extracting {name}", done, total or done + 1)

    try:
        built = build_vectors(
            recipe, model, loaded.document, names, cache=not args.no_cache, progress=progress
        )
    finally:
        bars.close()
    wanted = {n: built[n] for n in names}
    header = {
        "engine_version": __import__("recipe_engine").__version__,
        "recipe": recipe.name,
        "recipe_sha256": _recipe_sha256(list(loaded.document.file_paths.values())),
        "model": recipe.model.id + (f"@{recipe.model.revision}" if recipe.model.revision else ""),
    }
    write_vector_file(
        out,
        {n: v.tensor for n, v in wanted.items()},
        {n: v.provenance for n, v in wanted.items()},
        header,
    )
    for name, vector in wanted.items():
        source = "cache" if vector.cached else "built"
        norm = float(vector.tensor.norm())
        print(f"{name}: shape {list(vector.tensor.shape)}, norm {norm:.4g} ({source})")
    print(f"wrote {out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from recipe_engine.errors import UsageError
    from recipe_engine.load.safetensors_header import SafetensorsError, read_header
    from recipe_engine.vectors.artifacts import read_vector_file
    from recipe_engine.vectors.inspect import cosine_matrix, token_effects

    path = Path(args.file)
    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1")
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    try:
        read_header(path)  # refuses pickles and malformed files before safetensors sees them
    except SafetensorsError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    tensors, metadata = read_vector_file(path)
    model_id = args.model or str(metadata.get("model", "")).split("@")[0] or None
    effects: dict[str, Any] = {}
    if model_id:
        from recipe_engine.format.model_spec import ModelSpec
        from recipe_engine.resolve.model_loader import load_model

        model = load_model(ModelSpec(id=model_id), Path.cwd())
        effects = {name: token_effects(model, t, args.top) for name, t in tensors.items()}
    info = {
        "file": str(path),
        "metadata": {k: v for k, v in metadata.items() if k != "vectors"},
        "vectors": {
            name: {
                "shape": list(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "norm": round(float(t.float().norm()), 6),
                "finite": bool(torch_isfinite(t)),
                "provenance": (metadata.get("vectors") or {}).get(name, {}),
                "tokens": effects.get(name, {}),
            }
            for name, t in tensors.items()
        },
        "cosine": cosine_matrix(tensors),
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_inspect_text(info, model_id))
    return 0


def torch_isfinite(tensor: Any) -> bool:
    import torch

    return bool(torch.isfinite(tensor).all())


def cosine_table(cosine: dict[str, dict[str, float]]) -> list[str]:
    """The cosine matrix as text, every column as wide as its full vector name (names cut
    to 8 characters were ambiguous: sentiment_l1 and sentiment_l2 both read `sentimen`)."""
    from recipe_engine.report.text import fixed

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
