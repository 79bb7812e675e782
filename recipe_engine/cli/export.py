"""`steer export RECIPE --format hf|gguf-control-vector --out PATH`: the recipe's steering for
tools that know nothing of the engine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recipe_engine.cli.common_flags import add_allow_outside_root, add_out, add_set
from recipe_engine.errors import UsageError

__all__ = ["add_parser", "run"]

FORMATS = ("hf", "gguf-control-vector")  # recipe_engine.export.EXPORT_FORMATS (held by a test)

EPILOG = """\
examples:
  steer export recipes/activation-addition.yaml --format hf --out baked/
  steer export RECIPE --format gguf-control-vector --out steer.gguf

hf: a transformers model folder with the steering folded into its weights (biases of the
output projections, orthogonalized writers for directional ablation); plain
AutoModelForCausalLM.from_pretrained(DIR) runs the steered model. Ops that no weight can hold
exactly (positions other than all, project_out or scale on the whole residual stream, ...) are
refused at their recipe line. config.json's steering_export records the provenance.
gguf-control-vector: `add` at resid_post as a llama.cpp control vector (--control-vector F.gguf;
tensor direction.N is added to the output of block N, N >= 1).
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="bake a recipe into a transformers folder, or write a llama.cpp control vector",
        description="Export a recipe's steering for plain transformers or llama.cpp.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", metavar="RECIPE", help="the recipe file (.yaml)")
    parser.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    add_out(parser, "export", required=True, help="where to write it")
    add_set(parser)
    add_allow_outside_root(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import export_recipe, load_recipe

    out = Path(args.out)
    if (args.format == "hf") == (out.suffix == ".gguf"):
        want = "a directory" if args.format == "hf" else "a file ending in .gguf"
        raise UsageError(f"--out {args.out}: --format {args.format} writes {want}")
    loaded = load_recipe(
        args.recipe, overrides=args.overrides, allow_outside_root=args.allow_outside_root
    )
    summary = export_recipe(loaded, args.format, out)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    else:
        print(f"wrote {out} ({args.format}; recipe {summary['recipe']})")
    return 0
