"""`steer explain RECIPE`: the compiled plan, without running any prompt."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recipe_engine.cli.common import add_recipe_arguments

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  steer explain recipes/multi-layer.yaml
  steer explain recipes/head-ablation.yaml --format json
  steer explain recipes/multi-layer.yaml --no-model   torch-free: no model, no compiled plan

Shows, for each operation in execution order: the module path and port it touches, the layer
and site, the heads (site experts: the routed experts and how many the block has), the
positions at step 0 and at later generation steps, the vector's name and norm, and the
effective strength (strength x layer weight); then, for the first 3 prompts, the token
positions each intervention steers at step 0 and the text of the first ones (chat prompts
rendered by the model's chat template). Vectors are built (that needs the model) but
no prompt of run.prompts is run.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show the compiled plan of a recipe without running it",
        description="Compile a recipe and print its plan.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--no-model",
        action="store_true",
        help="do not load the model (torch-free, no run extra needed): the backend, what would "
        "leave the machine, and the interventions as written, without the compiled plan",
    )
    parser.set_defaults(handler=run)


NOTE_NO_MODEL = (
    "--no-model: nothing was loaded; without it, explain loads the model and shows the compiled "
    "plan (modules, positions per step, vector norms)"
)


def _backend_lines(info: dict[str, Any]) -> list[str]:
    lines = [f"backend {info['backend']}: runs on {info['where']}"]
    leaving = info["leaves_the_machine"]
    if not leaving:
        lines.append("  nothing leaves this machine")
    else:
        lines.append("  leaves this machine: " + "; ".join(leaving))
    return lines


def _prompt_lines(prompts: list[dict[str, Any]]) -> list[str]:
    """Per prompt, the tokens each intervention steers (the text of the first ones)."""
    if not prompts:
        return []
    lines = [f"positions in the first {len(prompts)} prompt(s), token indices with BOS:"]
    for number, prompt in enumerate(prompts, start=1):
        text = json.dumps(prompt["prompt"][:70] + ("..." if len(prompt["prompt"]) > 70 else ""))
        lines.append(f"  prompt {number} ({prompt['tokens']} tokens): {text}")
        for row in prompt["interventions"]:
            touched = row["step0"]
            shown = " ".join(json.dumps(token) for token in row["tokens"])
            more = " ..." if len(touched) > len(row["tokens"]) else ""
            lines.append(
                f"    #{row['intervention']} {row['label']}: step 0 -> {len(touched)} token(s) "
                f"{touched[:6]}{more} {shown}{more}; later steps -> {row['later_steps']}"
            )
    return lines


def _text(info: dict[str, Any]) -> str:
    model = info["model"]
    if info["plan"] is None:  # --no-model, remote, vllm: nothing compiled (explain_without_model)
        lines = [f"recipe {info['recipe']}: mode {info['mode']}", *_backend_lines(info)]
        lines.append(f"model {model['id']} (not loaded)")
        lines.append("interventions, as written:")
        lines.extend(f"  {json.dumps(item, sort_keys=True)}" for item in info["interventions"])
        lines.append(info["note"])
        return "\n".join(lines) + "\n"
    lines = [
        f"recipe {info['recipe']}: mode {info['mode']}",
        *_backend_lines(info),
        f"model {model['id']} [{model['family']}: {model['layers']} layers, width "
        f"{model['hidden_size']}, {model['heads']} heads x {model['head_dim']} "
        f"({model['head_dim_from']})]",
        f"decoder blocks {model['blocks']}: {model['blocks_why']}",
        f"operations ({info['order']}):",
    ]
    for i, op in enumerate(info["plan"], start=1):
        where = f"layer {op['layer']} {op['site']}" if op["layer"] is not None else "module"
        heads = f", heads {op['heads']}" if op["heads"] is not None else ""
        if op.get("head_columns"):
            spans = ", ".join(f"{a}:{b}" for a, b in op["head_columns"])
            heads += f" (input columns {spans})"
        if op.get("experts") is not None:  # which routed experts, of how many in the block
            heads += (
                f", routed experts {op['experts']} of {op['experts_count']} (before the router "
                "weights mix them)"
            )
        lines.append(f" {i:>2}. {op['op']} at {where}{heads} -> {op['module']}.{op['port']}")
        if op["vector"]:
            lines.append(
                f"     vector {op['vector']} "
                + (f"rank {op['rank']}" if "rank" in op else f"|v|={op['vector_norm']:.4g}")
                + ", "
                f"strength {op['strength']:g}"
            )
        else:
            lines.append(f"     strength {op['strength']:g}")
        steps = op["positions_per_step"]
        lines.append(
            f"     positions {op['positions']}: step 0 -> {steps['step 0']}; "
            f"later steps -> {steps['later steps']}"
        )
        if op.get("when"):
            lines.append(f"     only rows where {op['when']} (decided at step 0, held)")
    for group in info.get("groups", []):
        ops = ", ".join(
            f"{o['op']} x {o['strength']:g} at layer {o['layer']}" for o in group["plan"]
        )
        lines.append(f"  group {group['group']}: {ops or 'no operations (unsteered)'}")
    lines.extend(_prompt_lines(info.get("prompt_positions") or []))
    if info["vectors"]:
        lines.append("vectors:")
        for name, vec in info["vectors"].items():
            shown = (
                "kind",
                "layer",
                "site",
                "position",
                "method",
                "positive",
                "negative",
                "prompts",
                "examples",
                "test_accuracy",
                "seed",
                "expr",
                "path",
            )
            extra = ", ".join(f"{k}={vec[k]}" for k in shown if vec.get(k) is not None)
            lines.append(f"  {name}: shape {vec['shape']}, norm {vec['norm']:.4g} ({extra})")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from recipe_engine.api import explain_recipe, load_recipe

    loaded = load_recipe(
        args.recipe,
        overrides=args.overrides,
        allow_outside_root=args.allow_outside_root,
        check_model=not args.no_model,  # --no-model: not even the model's config is read
    )
    info = explain_recipe(loaded, no_model=args.no_model, note=NOTE_NO_MODEL)
    if args.format == "json":
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(_text(info))
    return 0
