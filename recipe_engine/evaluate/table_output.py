"""The evaluation table (table.py) as text, JSON, CSV and markdown, and as a figure: concept vs
fluency per row, each method's random-control band shaded (mean +- sd in both).

Every format is rendered from the same cells (`cells`), so they agree: CSV and JSON hold the
numbers unrounded, text and markdown round them to 3 decimals.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from typing import Any

from recipe_engine.evaluate.table import EvalRow, EvalTable

__all__ = [
    "cells",
    "render_eval_table",
    "table_csv",
    "table_json",
    "table_markdown",
    "table_png",
    "table_text",
]


def _band(values: list[float]) -> tuple[float, float] | None:
    real = [v for v in values if math.isfinite(v)]
    if len(real) < 2:
        return None
    return statistics.fmean(real), statistics.stdev(real)


def header(table: EvalTable) -> list[str]:
    return ["row", "strength", *table.columns, "aggregate"]


def cells(table: EvalTable) -> list[dict[str, Any]]:
    """One record per table line: every row, then under each method its control band."""
    out: list[dict[str, Any]] = []
    for row in table.rows:
        record: dict[str, Any] = {"row": row.label, "strength": row.strength}
        for name in table.columns:
            record[name] = row.values.get(name)
        record["aggregate"] = row.aggregate
        out.append(record)
        if row.controls and any(row.controls.values()):
            for stat in ("mean", "sd"):
                band: dict[str, Any] = {"row": f"{row.label} controls {stat}", "strength": None}
                for name in [*table.columns, "aggregate"]:
                    vs = row.control_aggregates if name == "aggregate" else row.controls[name]
                    found = _band(vs)
                    band[name] = None if found is None else found[0 if stat == "mean" else 1]
                out.append(band)
    return out


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.3f}" if isinstance(value, float) else f"{value:g}"


def _caption(table: EvalTable) -> list[str]:
    model = table.model
    parts = "concept, instruction and fluency" if table.instruction else "concept and fluency"
    lines = [
        f"{table.recipe} on {model['id']} ({model['family']}, {model['layers']} layers): "
        f"{table.test_prompts} test prompts; strengths chosen on {table.tuning_prompts} disjoint "
        f"tuning prompts (highest {table.concept} with fluency <= {table.fluency_budget:g}x the "
        f"unsteered model's)"
        if table.tuning_prompts
        else f"{table.recipe} on {model['id']}: {table.test_prompts} test prompts, strengths as "
        "written (untuned)",
        f"aggregate: harmonic mean of normalized {parts} (README, Evaluating: steer eval); "
        f"controls: {table.controls} random controls of each method's size (a vector's norm, a "
        "low-rank intervention's mean edit norm)",
    ]
    if table.instruction_text:
        lines.append(f"prompting instruction: {table.instruction_text!r}")
    lines += [f"{row.label}: {row.note}" for row in table.rows if row.note]
    return lines


def _lines(table: EvalTable) -> list[list[str]]:
    return [
        [str(r["row"]), "-" if r["strength"] is None else f"{r['strength']:g}"]
        + [_number(r[h]) for h in header(table)[2:]]
        for r in cells(table)
    ]


def table_markdown(table: EvalTable) -> str:
    head = header(table)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(line) + " |" for line in _lines(table)]
    return "\n".join([*lines, "", *_caption(table)]) + "\n"


def table_text(table: EvalTable) -> str:
    rows = [header(table), *_lines(table)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join([*out, "", *_caption(table)]) + "\n"


def table_csv(table: EvalTable) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header(table), lineterminator="\n")
    writer.writeheader()
    for record in cells(table):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


def _row_json(row: EvalRow) -> dict[str, Any]:
    return {
        "label": row.label,
        "kind": row.kind,
        "strength": row.strength,
        "values": {k: _json_number(v) for k, v in row.values.items()},
        "aggregate": _json_number(row.aggregate),
        "parts": row.parts,
        "controls": {k: [_json_number(v) for v in vs] for k, vs in row.controls.items()},
        "control_aggregates": row.control_aggregates,
        "tuning": [vars(p) for p in row.tuning],
        "note": row.note,
    }


def table_json(table: EvalTable) -> str:
    document = {
        "recipe": table.recipe,
        "model": table.model,
        "concept": table.concept,
        "instruction": table.instruction,
        "columns": table.columns,
        "fluency_budget": table.fluency_budget,
        "tuning_fluency": table.tuning_fluency,
        "test_prompts": table.test_prompts,
        "tuning_prompts": table.tuning_prompts,
        "controls": table.controls,
        "instruction_text": table.instruction_text,
        "rows": [_row_json(r) for r in table.rows],
        "cells": cells(table),
    }
    return json.dumps(document, indent=2, allow_nan=False, default=_json_number) + "\n"


def table_png(table: EvalTable) -> bytes:
    """Concept (y) vs fluency perplexity (x): a marker per row on the test prompts, each
    method's control band as a shaded box (mean +- sd of both), its tuning grid as a dashed
    line (tuning prompts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = {"baseline": "o", "prompting": "D", "method": "s"}
    for k, row in enumerate(r for r in table.rows if r.values):
        colour = "tab:gray" if row.kind == "baseline" else colours[k % len(colours)]
        x, y = row.values["fluency"], row.values[table.concept]
        label = row.label if row.strength is None else f"{row.label} ({row.strength:g})"
        ax.plot([x], [y], markers[row.kind], color=colour, markersize=9, label=label)
        fx, cy = _band(row.controls.get("fluency", [])), _band(row.controls.get(table.concept, []))
        if fx and cy:
            box = Rectangle(
                (fx[0] - fx[1], cy[0] - cy[1]), 2 * fx[1], 2 * cy[1], color=colour, alpha=0.18
            )
            ax.add_patch(box)
            ax.plot([fx[0]], [cy[0]], "x", color=colour, label=f"{row.label} controls")
        if row.tuning:
            xs = [p.fluency for p in row.tuning]
            ys = [p.concept for p in row.tuning]
            ax.plot(xs, ys, "--", color=colour, alpha=0.5, label=f"{row.label} tuning grid")
    ax.set_xlabel("fluency: perplexity of the continuations (lower is better)")
    ax.set_ylabel(table.concept)
    ax.autoscale_view()
    low, high = ax.get_xlim()
    if low > 0 and high / low > 4:  # a tuning grid that blows up perplexity squeezes the rest
        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    model = str(table.model["id"]).rsplit("/", 1)[-1]
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{table.recipe} on {model}\nconcept vs fluency (test prompts)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # no stamp: same file
    plt.close(fig)
    return buffer.getvalue()


def render_eval_table(table: EvalTable, fmt: str) -> bytes:
    """The table in one format: text, json, csv, markdown or plot (PNG)."""
    if fmt == "plot":
        return table_png(table)
    render = {"text": table_text, "json": table_json, "csv": table_csv, "markdown": table_markdown}
    return render[fmt](table).encode("utf-8")
