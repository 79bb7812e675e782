"""Render a RunReport for a terminal: continuations side by side, top tokens, a metric table."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from recipe_engine.report.results import RunReport
from recipe_engine.terminal import colour, fixed

__all__ = ["fixed", "render_text"]  # fixed: from terminal.py, kept importable here


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return fixed(value, signed=signed)


def _tokens(items: list[tuple[str, int, float]], k: int | None) -> list[str]:
    return [f"{tok!r} {prob:.3f}" for tok, _, prob in items[:k]]


def render_text(report: RunReport, use_colour: bool = False, top: int | None = None) -> str:
    """The report as terminal text. `top`: how many next tokens to show per prompt; by
    default all the report recorded, which is the recipe's `report.top_tokens`."""
    lines: list[str] = []

    def bold(text: str) -> str:
        return colour(text, "bold", use_colour)

    model = report.model
    lines.append(bold(f"recipe {report.recipe_name}") + f"  ({report.recipe_path})")
    lines.append(
        f"model {model['id']} [{model['family']}, {model['layers']} layers, width "
        f"{model['hidden_size']}]  mode {report.mode}"
    )
    for op in report.plan:
        where = f"layer {op['layer']} {op['site']}" if op["layer"] is not None else op["module"]
        heads = ""
        if op["heads"] is not None:  # the heads site already says "heads": no "heads heads"
            heads = f" {op['heads']}" if op["site"] == "heads" else f" heads {op['heads']}"
        heads = f" {op['experts']}" if op.get("experts") is not None else heads  # site experts
        vec = ""
        if op["vector"]:  # a low-rank edit has a rank where a vector has a norm
            size = f"rank {op['rank']}" if "rank" in op else f"|v|={op['vector_norm']:.3g}"
            vec = f" {op['vector']} ({size})"
        lines.append(
            f"  {op['op']}{vec} x {op['strength']:g} at {where}{heads}, positions {op['positions']}"
            + (f", when {op['when']}" if op.get("when") else "")
        )
    for name, info in report.vectors.items():
        for view, label in (("raw", "W_U v"), ("lens", "logit lens")):
            effect = info.get("tokens", {}).get(view)
            if effect:
                up = ", ".join(repr(t) for t, _ in effect["boosted"])
                down = ", ".join(repr(t) for t, _ in effect["suppressed"])
                lines.append(f"  vector {name} {label}: boosts {up}; suppresses {down}")
    for outcome in report.prompts:
        lines.append("")
        group = f"  [group {outcome.group}]" if outcome.group else ""
        lines.append(bold(f"prompt: {outcome.prompt!r}") + group)
        for cond in outcome.conditions:
            verdict = "fired" if cond.fired else "held back"
            scores = ", ".join(f"{s:+.4f}" for s in cond.scores)
            lines.append(
                f"  when     intervention {cond.intervention} {verdict}: {cond.condition} "
                f"(score {scores})"
            )
        sides: list[tuple[str, Any]] = [("steered", outcome.steered)]
        if outcome.baseline is not None:
            sides.insert(0, ("baseline", outcome.baseline))
        if outcome.prompting is not None:
            sides.append(("prompted", outcome.prompting))
        for name, side in sides:
            if side.continuation is not None:
                lines.append(f"  {name:<8} ... {side.continuation!r}")
        for name, side in sides:
            if side.top_tokens:
                lines.append(f"  {name:<8} next: " + ", ".join(_tokens(side.top_tokens, top)))
    summary = report.condition_summary()
    if summary:
        lines.append("")
        lines.extend(_condition_lines(summary))
    if report.metrics:
        lines.append("")
        lines.extend(_metric_table(report, bold))
    for name, values in report.group_metrics.items():
        if values:
            lines.append("")
            lines.append(bold(f"group {name}"))
            lines.extend(_metric_table(replace(report, metrics=values), bold))
    timing = report.timing
    lines.append("")
    lines.append(
        colour(
            f"load {timing.get('load_s', 0):.2f}s, vectors {timing.get('vectors_s', 0):.2f}s, "
            f"run {timing.get('run_s', 0):.2f}s",
            "dim",
            use_colour,
        )
    )
    return "\n".join(lines) + "\n"


def _metric_table(report: RunReport, bold: Any) -> list[str]:
    """baseline, steered, delta; then prompting (report.prompt_baseline), the control band as
    mean +- sd with the steered value's distance in control sds (report.controls), and the
    steered mean's 95% interval (run.samples > 1), when the run has them."""
    metrics = report.metrics
    width = max(len(m.name) for m in metrics)
    prompting = any(m.prompting is not None for m in metrics)
    controls = any(m.controls for m in metrics)
    ci = any(m.ci95 is not None for m in metrics)
    head = f"{'metric':<{width}}  {'baseline':>10}  {'steered':>10}  {'delta':>10}"
    head += f"  {'prompting':>10}" if prompting else ""
    head += f"  {'controls (mean +- sd)':>23}  {'z':>7}" if controls else ""
    head += f"  {'steered 95% CI':>21}" if ci else ""
    lines = [bold(head)]
    for m in metrics:
        line = (
            f"{m.name:<{width}}  {_num(m.baseline):>10}  {_num(m.steered):>10}  "
            f"{_num(m.delta, signed=True):>10}"
        )
        if prompting:
            line += f"  {_num(m.prompting):>10}"
        if controls:
            band = f"{_num(m.control_mean)} +- {_num(m.control_sd)}" if m.controls else "-"
            z = m.control_z
            line += f"  {band:>23}  {('-' if z is None else f'{z:+.1f}'):>7}"
        if ci:
            interval = f"[{_num(m.ci95[0])}, {_num(m.ci95[1])}]" if m.ci95 else "-"
            line += f"  {interval:>21}"
        lines.append(line)
    return lines


def _condition_lines(summary: list[dict[str, Any]]) -> list[str]:
    """`when  intervention 0 fired on 6 of 14 prompts (food: 6 of 6, other: 0 of 8)`."""
    lines = []
    for entry in summary:
        groups = ", ".join(
            f"{name}: {g['fired']} of {g['prompts']}" for name, g in entry["groups"].items()
        )
        lines.append(
            f"when     intervention {entry['intervention']} fired on {entry['fired']} of "
            f"{entry['prompts']} prompts: {entry['condition']}" + (f" ({groups})" if groups else "")
        )
    return lines
